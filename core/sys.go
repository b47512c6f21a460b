package core

import (
	"strconv"
	"time"
)

// sysLoop publishes the $SYS tree every SysInterval, as retained messages
// so a new subscriber sees values at once. Names follow Mosquitto's $SYS
// tree where it has one.
func (b *Broker) sysLoop() {
	defer b.wg.Done()
	t := time.NewTicker(b.cfg.SysInterval)
	defer t.Stop()
	b.publishSys()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			b.publishSys()
		}
	}
}

// SysSnapshot returns the current $SYS values by topic.
func (b *Broker) SysSnapshot() map[string]string {
	st := &b.stats
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	i := func(v int64) string { return strconv.FormatInt(v, 10) }
	// Mosquitto's meanings: connected (active) clients, disconnected
	// (inactive) ones whose sessions are kept, and total, the two
	// together. The session table and the connection counter are read
	// apart, so total is made of the two figures published rather than
	// of the table's size, which a connect between the reads left below
	// connected (and disconnected clamped to zero).
	_, offline := b.sessionCounts()
	disconnected := int64(offline)
	connected := st.ClientsConnected.Load()
	var pktIn, pktOut uint64
	m := map[string]string{
		"$SYS/broker/version":                   b.cfg.Version,
		"$SYS/broker/uptime":                    strconv.FormatInt(int64(time.Since(b.started)/time.Second), 10) + " seconds",
		"$SYS/broker/clients/connected":         i(connected),
		"$SYS/broker/clients/active":            i(connected),
		"$SYS/broker/clients/disconnected":      i(disconnected),
		"$SYS/broker/clients/inactive":          i(disconnected),
		"$SYS/broker/clients/maximum":           i(st.ClientsMaximum.Load()),
		"$SYS/broker/clients/total":             i(connected + disconnected),
		"$SYS/broker/publish/messages/received": u(st.MessagesReceived.Load()),
		"$SYS/broker/publish/messages/sent":     u(st.MessagesSent.Load()),
		"$SYS/broker/publish/bytes/received":    u(st.BytesReceived.Load()),
		"$SYS/broker/publish/bytes/sent":        u(st.BytesSent.Load()),
		"$SYS/broker/bytes/received":            u(st.WireBytesReceived.Load()),
		"$SYS/broker/bytes/sent":                u(st.WireBytesSent.Load()),
		"$SYS/broker/subscriptions/count":       i(int64(b.subs.Len())),
		"$SYS/broker/retained messages/count":   i(int64(b.retained.Len())),
		"$SYS/broker/publish/messages/dropped":  u(st.DroppedQoS0.Load() + st.DroppedQueueFull.Load() + st.DroppedOffline.Load() + st.DroppedExpired.Load()),
		"$SYS/broker/dropped/qos0_sink_full":    u(st.DroppedQoS0.Load()),
		"$SYS/broker/dropped/queue_full":        u(st.DroppedQueueFull.Load()),
		"$SYS/broker/dropped/offline_qos0":      u(st.DroppedOffline.Load()),
		"$SYS/broker/dropped/expired":           u(st.DroppedExpired.Load()),
		"$SYS/broker/dropped/no_subscriber":     u(st.DroppedNoSubscriber.Load()),
		"$SYS/broker/backpressure/timeouts":     u(st.BackpressureTimeouts.Load()),
		"$SYS/broker/publish/messages/replayed": u(st.MessagesReplayed.Load()),
		"$SYS/broker/delayed/pending":           i(st.DelayedPending.Load()),
		"$SYS/broker/wills/published":           u(st.WillsPublished.Load()),
	}
	for _, pc := range st.AllPackets() {
		for idx, name := range pc.Names {
			if name == "" {
				continue
			}
			in, out := pc.Received(idx), pc.Sent(idx)
			pktIn += in
			pktOut += out
			m["$SYS/broker/packets/"+pc.Protocol+"/received/"+name] = u(in)
			m["$SYS/broker/packets/"+pc.Protocol+"/sent/"+name] = u(out)
		}
	}
	m["$SYS/broker/messages/received"] = u(pktIn)
	m["$SYS/broker/messages/sent"] = u(pktOut)
	if srcs := b.sysSources.Load(); srcs != nil {
		add := func(topic, value string) { m[topic] = value }
		for _, f := range *srcs {
			f(add)
		}
	}
	return m
}

// SysSource adds values to the $SYS tree each time it is published, by
// calling add once per topic (e.g. the gateway's secured listeners and
// their certificates' expiry). It must be quick and must not block.
type SysSource func(add func(topic, value string))

// AddSysSource adds f to every later $SYS snapshot.
func (b *Broker) AddSysSource(f SysSource) {
	for {
		old := b.sysSources.Load()
		var next []SysSource
		if old != nil {
			next = append(next, *old...)
		}
		next = append(next, f)
		if b.sysSources.CompareAndSwap(old, &next) {
			return
		}
	}
}

func (b *Broker) publishSys() {
	now := time.Now()
	for t, v := range b.SysSnapshot() {
		msg := &Message{Topic: t, Payload: []byte(v), Retain: true, Created: now,
			Origin: Origin{Protocol: ProtoSys}}
		b.retained.Set(t, msg) // $SYS is not counted against limits.max_retained
		b.route(msg, nil, nil)
	}
}
