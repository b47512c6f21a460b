package mqttsn

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/iotgw/iotgw/adapters/mqttsn/codec"
	"github.com/iotgw/iotgw/core"
	"github.com/iotgw/iotgw/internal/pace"
)

// state is a client's state as the gateway sees it (§6.14, Figure 4),
// plus the steps of the CONNECT exchange.
type state int

const (
	stNew       state = iota // nothing but AUTH seen yet
	stAuthWait               // CONNECT seen, AUTH required and awaited
	stWillTopic              // WILLTOPICREQ sent
	stWillMsg                // WILLMSGREQ sent
	stActive
	stAsleep
	stAwake
	stGone // disconnected or lost; the virtual connection is finished
)

var stateNames = [...]string{"new", "auth_wait", "will_topic", "will_msg", "active", "asleep", "awake", "gone"}

func (s state) String() string { return stateNames[s] }

func (s state) connected() bool { return s == stActive || s == stAsleep || s == stAwake }

// maxInbox bounds the client messages waiting for one worker; a client
// flooding faster than its worker keeps up loses datagrams, as UDP may.
const maxInbox = 256

type evKind int

const (
	evMsg      evKind = iota // a message from the client
	evDeliver                // a delivery from the core
	evClose                  // the core closes the link (takeover, kick)
	evTimer                  // the virtual connection's timer fired
	evUnbound                // another client took this address
	evShutdown               // the adapter stops
	evTaken                  // a delivery given back to the session (goToSleep): nothing to do
)

type event struct {
	kind evKind
	msg  codec.Message
	at   int64 // evMsg: the datagram's kernel receive time, Unix ns (0 unknown)
	d    core.Delivery
	l    *link
	err  error
}

// vconn is one client's virtual connection. Events (datagrams, deliveries,
// timer ticks) queue in its inbox; a worker goroutine, started only while
// there is work, handles them one at a time, so the state below needs no
// lock. A sleeping client costs no goroutine.
type vconn struct {
	srv *Server

	// key and cid are the virtual connection's entries in the server's
	// maps, guarded by srv.mu.
	key string
	cid string

	mu      sync.Mutex
	p       *peer // nil once another client took the address
	inbox   []event
	running bool
	dead    bool
	qos0    pace.Bound // QoS 0 deliveries held (inbox and fifo): mqttsn.max_pending_qos0
	creds   *credentials
	timer   *time.Timer

	// Worker-owned state.
	log       *zap.Logger
	st        state
	clientID  string
	connect   *codec.Connect // the CONNECT being completed
	will      willState
	link      *link
	sess      *core.Session
	limit     *core.ClientLimit // limits.client_* budget; nil without one
	reg       *registry
	keepAlive time.Duration
	sleep     time.Duration
	lastSeen  time.Time
	at        int64 // receive time of the client message being handled (event.at)
	connectBy time.Time
	fifo      []core.Delivery // deliveries in order, waiting for the wire
	batch     []event         // the inbox events run is handling, batch[bi] now
	bi        int
	out       map[uint16]*flight
	regf      *flight // the gateway's REGISTER awaiting REGACK
	regName   string
	nextMsgID uint16
	armed     time.Time
}

// credentials come from the AUTH extension.
type credentials struct {
	user string
	pass []byte
	bad  bool // unsupported method or malformed data
}

// willState is the will as the client defined it, piecewise.
type willState struct {
	set    bool
	topic  string
	qos    byte
	retain bool
	msg    []byte
}

// flight is a message to the client awaiting its reply (§6.13).
type flight struct {
	d     core.Delivery
	await codec.Type // PUBACK, PUBREC, PUBCOMP or REGACK
	raw   []byte     // the message as last sent, unencapsulated
	tries int
	due   time.Time
}

func newVconn(s *Server, p *peer) *vconn {
	vc := &vconn{srv: s, key: p.key, p: p, log: s.log.With(zap.String("remote", p.key)),
		out: make(map[uint16]*flight), lastSeen: time.Now(), connectBy: time.Now().Add(s.cfg.ConnectTimeout)}
	vc.qos0.Init(s.cfg.MaxPendingQoS0, s.backpressure)
	return vc
}

// link is the core.Sink of one session attachment. A new CONNECT on the
// same virtual connection gets a new link, so a Close aimed at an old
// attachment never ends the new one.
type link struct {
	vc     *vconn
	closed atomic.Bool
}

var (
	_ core.Sink  = (*link)(nil)
	_ core.Pacer = (*link)(nil)
)

// Deliver queues a delivery for the worker; it never blocks. QoS 0 beyond
// mqttsn.max_pending_qos0 (twice it under backpressure, see Room) is
// refused and the core counts the drop; QoS 1/2 are bounded by the
// session's inflight window. The core calls it with the subscriber's
// session locked: vc.mu is taken after that lock, and the worker never
// holds it while calling into the session.
func (l *link) Deliver(d core.Delivery) bool {
	vc := l.vc
	vc.mu.Lock()
	defer vc.mu.Unlock()
	if vc.dead || l.closed.Load() {
		return false
	}
	if d.QoS == 0 && !d.Release && !vc.qos0.Admit() {
		return false
	}
	vc.enqueueLocked(event{kind: evDeliver, d: d, l: l})
	return true
}

// Room implements core.Pacer: while mqttsn.max_pending_qos0 or more
// QoS 0 deliveries wait for the worker (a REGISTER awaiting its REGACK
// holds those behind it; a flood outruns the worker), publishers that can
// be slowed wait on the returned channel, closed once the worker has sent
// half of them (popFront). A client keeping up costs one atomic load.
func (l *link) Room() <-chan struct{} {
	vc := l.vc
	if !vc.qos0.Over() {
		return nil
	}
	vc.mu.Lock()
	defer vc.mu.Unlock()
	if vc.dead || l.closed.Load() {
		return nil
	}
	return vc.qos0.Room()
}

// Close implements core.Sink; the worker ends the virtual connection.
func (l *link) Close(reason error) {
	l.vc.post(event{kind: evClose, l: l, err: reason})
}

// post queues an event, reporting false when the virtual connection is
// finished or its inbox is full of client messages.
func (vc *vconn) post(ev event) bool {
	vc.mu.Lock()
	defer vc.mu.Unlock()
	if vc.dead || (ev.kind == evMsg && len(vc.inbox) >= maxInbox) {
		return false
	}
	vc.enqueueLocked(ev)
	return true
}

func (vc *vconn) enqueueLocked(ev event) {
	vc.inbox = append(vc.inbox, ev)
	if !vc.running {
		vc.running = true
		vc.srv.workers.Add(1)
		go vc.run()
	}
}

// run handles queued events until none are left.
func (vc *vconn) run() {
	defer vc.srv.workers.Done()
	for {
		vc.mu.Lock()
		evs := vc.inbox
		vc.inbox = nil
		if len(evs) == 0 || vc.dead {
			vc.inbox = nil
			vc.running = false
			vc.mu.Unlock()
			return
		}
		vc.mu.Unlock()
		vc.batch = evs
		for vc.bi = 0; vc.bi < len(evs); vc.bi++ {
			if vc.st == stGone {
				break
			}
			vc.handle(&evs[vc.bi])
		}
		vc.batch = nil
		if vc.st == stGone {
			continue
		}
		vc.pump()
		vc.mu.Lock()
		idle := len(vc.inbox) == 0
		vc.mu.Unlock()
		if idle {
			vc.checkWakeDone()
			vc.rearm()
		}
	}
}

func (vc *vconn) handle(ev *event) {
	switch ev.kind {
	case evMsg:
		vc.lastSeen = time.Now()
		vc.at = ev.at
		vc.onMessage(ev.msg)
	case evDeliver:
		if ev.l != vc.link {
			vc.releaseQoS0(ev.d)
			return
		}
		vc.onDeliver(ev.d)
	case evClose:
		if ev.l == vc.link {
			vc.log.Info("closed by the core", zap.Error(ev.err))
			vc.end(true, true)
		}
	case evTimer:
		vc.armed = time.Time{}
		vc.onTimer(time.Now())
	case evUnbound:
		vc.mu.Lock()
		vc.p = nil
		vc.mu.Unlock()
		if !vc.st.connected() {
			vc.end(false, false)
		}
	case evShutdown:
		vc.end(true, true)
	}
}

// releaseQoS0 gives back a QoS 0 delivery's place in the bound (sent or
// discarded); at half of it, paced publishers go on.
func (vc *vconn) releaseQoS0(d core.Delivery) {
	if d.QoS == 0 && !d.Release {
		vc.mu.Lock()
		vc.qos0.Done(1)
		vc.mu.Unlock()
	}
}

// peer returns where the client is now (nil when unknown).
func (vc *vconn) peer() *peer {
	vc.mu.Lock()
	defer vc.mu.Unlock()
	return vc.p
}

func (vc *vconn) isDead() bool {
	vc.mu.Lock()
	defer vc.mu.Unlock()
	return vc.dead
}

// remote names the client's address for logs and ClientInfo.
func (vc *vconn) remote() string {
	if p := vc.peer(); p != nil {
		return p.key
	}
	return ""
}

// setPeer moves the virtual connection to a new address.
func (vc *vconn) setPeer(p *peer) {
	vc.mu.Lock()
	vc.p = p
	vc.mu.Unlock()
}

// send encodes and sends one message to the client.
func (vc *vconn) send(m codec.Message) []byte {
	raw, err := codec.Encode(m)
	if err != nil {
		vc.log.Warn("encode failed", zap.Stringer("type", m.Type()), zap.Error(err))
		return nil
	}
	vc.srv.write(vc.peer(), raw, m.Type())
	return raw
}

// end finishes the virtual connection: the session is detached (its will
// published when publishWill; a persistent session keeps its registry as
// adapter state, saveRegistry),
// and with notify the client is told by DISCONNECT.
func (vc *vconn) end(publishWill, notify bool) {
	if vc.st == stGone {
		return
	}
	if notify && vc.st.connected() {
		vc.send(&codec.Disconnect{})
	}
	if vc.link != nil {
		vc.link.closed.Store(true)
		vc.saveRegistry()
		vc.sess.Disconnect(vc.link, core.DisconnectOptions{PublishWill: publishWill})
	}
	vc.st = stGone
	vc.mu.Lock()
	vc.dead = true
	vc.inbox = nil
	vc.qos0.Reset() // its deliveries are gone: nobody waits for them
	if vc.timer != nil {
		vc.timer.Stop()
	}
	vc.mu.Unlock()
	vc.srv.forget(vc)
}

// lost ends a client that went silent or stopped answering: its will is
// published [§6.14 "lost" state].
func (vc *vconn) lost(why string) {
	vc.log.Info("client lost", zap.String("reason", why), zap.Stringer("state", vc.st))
	vc.end(true, true)
}

// onDeliver queues a delivery behind earlier ones. While asleep, QoS 1/2
// deliveries (racing the pause) are left to the session, which resends
// them at the next Start; the QoS 0 ones went back to it (goToSleep).
func (vc *vconn) onDeliver(d core.Delivery) {
	if vc.st == stAsleep && (d.QoS > 0 || d.Release) {
		return
	}
	vc.fifo = append(vc.fifo, d)
}

// pump sends queued deliveries in order while the client is reachable. A
// topic the client has no id for is REGISTERed first (§6.10), and later
// deliveries wait behind it so that order is kept.
func (vc *vconn) pump() {
	for len(vc.fifo) > 0 && (vc.st == stActive || vc.st == stAwake) {
		d := vc.fifo[0]
		if d.Release {
			vc.sendPubrel(d)
			vc.popFront()
			continue
		}
		idType, id, ok := vc.outTopic(d.Msg.Topic)
		if !ok {
			if vc.regf == nil {
				vc.startRegister(d.Msg.Topic)
				continue // a full registry dropped the head; look again
			}
			return
		}
		vc.sendPublish(d, idType, id)
		vc.popFront()
	}
}

func (vc *vconn) popFront() {
	d := vc.fifo[0]
	vc.fifo[0] = core.Delivery{}
	vc.fifo = vc.fifo[1:]
	if len(vc.fifo) == 0 {
		vc.fifo = nil
	}
	vc.releaseQoS0(d)
}

// outTopic picks the topic id type for a delivery: predefined first, then
// an id the client knows, then a two-character short name (§3, §6.7).
func (vc *vconn) outTopic(name string) (byte, uint16, bool) {
	if id, ok := vc.srv.pre.byName[name]; ok {
		return codec.TopicPredefined, id, true
	}
	if id, ok := vc.reg.knownID(name); ok {
		return codec.TopicNormal, id, true
	}
	if len(name) == 2 {
		return codec.TopicShort, codec.ShortTopicID(name), true
	}
	return 0, 0, false
}

func (vc *vconn) sendPublish(d core.Delivery, idType byte, id uint16) {
	qos := d.QoS
	msgID := d.ID
	if qos == 0 {
		msgID = 0 // §5.4.12: MsgId is 0x0000 for QoS 0
	}
	p := &codec.Publish{Flags: codec.Flags{DUP: d.Dup, QoS: qos, Retain: d.Retain, TopicIDType: idType},
		TopicID: id, MsgID: msgID, Data: d.Msg.Payload}
	raw, err := codec.Encode(p)
	if err == nil && len(raw) > vc.peer().maxDatagram() {
		err = fmt.Errorf("%w: %d bytes exceed one UDP datagram", codec.ErrTooLong, len(raw))
	}
	if err != nil {
		// Larger than MQTT-SN (or one UDP datagram) can carry: counted as
		// delivered so the session does not hold it forever, rather than
		// retransmitted until the client is declared lost.
		vc.log.Debug("message too large for MQTT-SN", zap.String("topic", d.Msg.Topic), zap.Error(err))
		if qos > 0 {
			vc.sess.Acked(d.ID)
		}
		return
	}
	vc.srv.write(vc.peer(), raw, codec.TypePublish)
	if qos == 0 {
		return
	}
	await := codec.TypePuback
	if qos == 2 {
		await = codec.TypePubrec
	}
	vc.out[d.ID] = &flight{d: d, await: await, raw: raw, due: time.Now().Add(vc.srv.cfg.RetryInterval)}
}

func (vc *vconn) sendPubrel(d core.Delivery) {
	raw := vc.send(&codec.MsgIDOnly{Kind: codec.TypePubrel, MsgID: d.ID})
	vc.out[d.ID] = &flight{d: d, await: codec.TypePubcomp, raw: raw, due: time.Now().Add(vc.srv.cfg.RetryInterval)}
}

// startRegister tells the client the id of a topic before the first
// PUBLISH on it (§6.10). A full registry drops the deliveries on it.
func (vc *vconn) startRegister(name string) {
	id, ok := vc.reg.assign(name)
	if !ok {
		vc.log.Debug("topic registry full; message dropped", zap.String("topic", name))
		vc.dropTopic(name)
		return
	}
	vc.nextMsgID++
	if vc.nextMsgID == 0 {
		vc.nextMsgID = 1
	}
	raw := vc.send(&codec.Register{TopicID: id, MsgID: vc.nextMsgID, TopicName: name})
	vc.regf = &flight{await: codec.TypeRegack, d: core.Delivery{ID: vc.nextMsgID}, raw: raw,
		due: time.Now().Add(vc.srv.cfg.RetryInterval)}
	vc.regName = name
}

// dropTopic discards queued deliveries on a topic the client refused or
// cannot be given an id for; QoS 1/2 ones are completed in the session.
func (vc *vconn) dropTopic(name string) {
	kept := vc.fifo[:0]
	for _, d := range vc.fifo {
		if d.Msg != nil && d.Msg.Topic == name {
			if d.QoS > 0 {
				vc.sess.Acked(d.ID)
			}
			vc.releaseQoS0(d)
			continue
		}
		kept = append(kept, d)
	}
	vc.fifo = kept
}

// goToSleep enters the asleep state (§6.14): the session buffers every
// QoS for the sleeper. What was in flight is left to it (Start resends it
// with DUP on wake), and the QoS 0 deliveries this connection accepted but
// has not sent go back to it, ahead of what it queues from now on, so a
// sleeper's messages wait in one place, under one bound, in order.
func (vc *vconn) goToSleep() {
	vc.st = stAsleep
	vc.sess.Pause()
	// Pause returned: every delivery the session handed over before it
	// is in fifo, in the rest of the batch being handled, or in the
	// inbox, in that order.
	var back []core.Delivery
	for _, d := range vc.fifo {
		if d.QoS == 0 && !d.Release {
			back = append(back, d)
		}
	}
	vc.fifo = nil
	take := func(evs []event) {
		for i := range evs {
			if ev := &evs[i]; ev.kind == evDeliver && ev.l == vc.link && ev.d.QoS == 0 && !ev.d.Release {
				back = append(back, ev.d)
				*ev = event{kind: evTaken}
			}
		}
	}
	if vc.batch != nil {
		take(vc.batch[vc.bi+1:])
	}
	vc.mu.Lock()
	take(vc.inbox)
	vc.qos0.Done(len(back))
	// Publishers must not wait for a sleeper: the paused session queues
	// instead of delivering, so no new wait starts until Start.
	vc.qos0.Release()
	vc.mu.Unlock()
	vc.sess.GiveBack(back)
	clear(vc.out)
	vc.regf = nil
	vc.lastSeen = time.Now()
}

// checkWakeDone answers an awake client's PINGREQ once everything
// buffered for it was delivered and acknowledged, then lets it sleep
// again (§6.14; emqx#4507: PINGRESP must not overtake the messages).
func (vc *vconn) checkWakeDone() {
	if vc.st != stAwake || len(vc.fifo) > 0 || len(vc.out) > 0 || vc.regf != nil {
		return
	}
	if vc.sess.InflightCount() > 0 || vc.sess.QueuedCount() > 0 {
		return
	}
	vc.send(&codec.Bare{Kind: codec.TypePingresp})
	vc.sess.Pause()
	vc.st = stAsleep
	vc.lastSeen = time.Now()
}

// onTimer enforces the connect timeout, keep alive (1.5 × Duration),
// the sleep duration (1.5 × its Duration) and retransmissions (§6.13).
func (vc *vconn) onTimer(now time.Time) {
	switch vc.st {
	case stNew, stAuthWait, stWillTopic, stWillMsg:
		if now.After(vc.connectBy) {
			vc.log.Debug("CONNECT not completed in time", zap.Stringer("state", vc.st))
			vc.end(false, false)
		}
		return
	case stActive:
		if vc.keepAlive > 0 && now.After(vc.lastSeen.Add(vc.keepAlive*3/2)) {
			vc.lost("keep alive expired")
			return
		}
	case stAsleep, stAwake:
		if vc.sleep > 0 && now.After(vc.lastSeen.Add(vc.sleep*3/2)) {
			vc.lost("sleep duration expired")
			return
		}
	}
	if vc.st != stActive && vc.st != stAwake {
		return
	}
	retry := vc.srv.cfg.RetryInterval
	for _, f := range vc.pending() {
		if f.due.After(now) {
			continue
		}
		if f.tries >= vc.srv.cfg.MaxRetries {
			if vc.st == stAwake {
				// The client dozed off before acknowledging: keep the
				// messages for its next wake-up rather than losing it.
				vc.log.Debug("no reply while awake; back to sleep", zap.Stringer("awaiting", f.await))
				vc.goToSleep()
			} else {
				vc.lost("no " + f.await.String() + " after retransmissions")
			}
			return
		}
		f.tries++
		f.due = now.Add(retry)
		if f.raw == nil {
			continue
		}
		if f.raw[codecHeaderLen(f.raw)] == byte(codec.TypePublish) {
			f.raw[codecHeaderLen(f.raw)+1] |= 0x80 // DUP on retransmission (§5.3.4)
		}
		vc.srv.write(vc.peer(), f.raw, codec.Type(f.raw[codecHeaderLen(f.raw)]))
	}
}

// codecHeaderLen returns the length-field size of an encoded message.
func codecHeaderLen(raw []byte) int {
	if raw[0] == 0x01 {
		return 3
	}
	return 1
}

// pending lists the flights awaiting replies.
func (vc *vconn) pending() []*flight {
	fs := make([]*flight, 0, len(vc.out)+1)
	for _, f := range vc.out {
		fs = append(fs, f)
	}
	if vc.regf != nil {
		fs = append(fs, vc.regf)
	}
	return fs
}

// rearm points the timer at the earliest deadline. A timer already due
// earlier is left alone: when it fires, the deadline is computed again.
func (vc *vconn) rearm() {
	var next time.Time
	consider := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	switch vc.st {
	case stNew, stAuthWait, stWillTopic, stWillMsg:
		consider(vc.connectBy)
	case stActive:
		if vc.keepAlive > 0 {
			consider(vc.lastSeen.Add(vc.keepAlive * 3 / 2))
		}
	case stAsleep, stAwake:
		if vc.sleep > 0 {
			consider(vc.lastSeen.Add(vc.sleep * 3 / 2))
		}
	}
	if vc.st == stActive || vc.st == stAwake {
		for _, f := range vc.pending() {
			consider(f.due)
		}
	}
	if next.IsZero() || (!vc.armed.IsZero() && !vc.armed.After(next)) {
		return
	}
	vc.armed = next
	d := time.Until(next) + time.Millisecond
	vc.mu.Lock()
	defer vc.mu.Unlock()
	if vc.dead {
		return
	}
	if vc.timer == nil {
		vc.timer = time.AfterFunc(d, func() { vc.post(event{kind: evTimer}) })
		return
	}
	vc.timer.Reset(d)
}
