package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"time"
)

// orderSubscriber is a subscribing connection the order scenario drives by
// hand: it writes a SUBSCRIBE without waiting for the broker's answer, then
// reads until the first delivery.
type orderSubscriber interface {
	wire
	// sendSubscribe writes a QoS 0 subscription to topic and returns at
	// once: no SUBACK, RECEIPT or retransmission.
	sendSubscribe(topic string) error
	// awaitDelivery reads until a message arrives (true) or until passes
	// (false, nil); the subscription's own answer is skipped.
	awaitDelivery(until time.Time) (bool, error)
}

// missOnTimeout turns a read deadline into "nothing arrived": the probe's
// miss, not a failure.
func missOnTimeout(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return nil
	}
	return err
}

func (c *mqttConn) sendSubscribe(topic string) error {
	return c.writeFlush(c.subscribePacket(nil, 1, topic, 0))
}

func (c *mqttConn) awaitDelivery(until time.Time) (bool, error) {
	if err := c.nc.SetReadDeadline(until); err != nil {
		return false, err
	}
	for {
		h, _, err := c.pr.next()
		if err != nil {
			return false, missOnTimeout(err)
		}
		if h>>4 == pktPublish {
			return true, nil
		}
	}
}

func (c *stompConn) sendSubscribe(dest string) error {
	return c.writeFlush(subscribeFrame(dest, 0, false))
}

func (c *stompConn) awaitDelivery(until time.Time) (bool, error) {
	if err := c.nc.SetReadDeadline(until); err != nil {
		return false, err
	}
	for {
		if err := c.readFrame(); err != nil {
			return false, missOnTimeout(err)
		}
		switch {
		case bytes.Equal(c.frame, stompMessage):
			return true, nil
		case bytes.Equal(c.frame, stompError):
			return false, fmt.Errorf("stomp ERROR: %s", c.emsg)
		}
	}
}

func (c *snConn) sendSubscribe(topic string) error {
	return c.write(snSubscribeMsg(c.setupID(), topic, 0))
}

func (c *snConn) awaitDelivery(until time.Time) (bool, error) {
	if err := c.uc.SetReadDeadline(until); err != nil {
		return false, err
	}
	var ack [7]byte
	for {
		n, err := c.uc.Read(c.rbuf)
		if err != nil {
			return false, missOnTimeout(err)
		}
		t, body, err := snParse(c.rbuf[:n])
		if err != nil {
			return false, err
		}
		switch t {
		case snPublish:
			return true, nil
		case snRegister:
			// A gateway may name the topic before delivering on it.
			if len(body) < 4 {
				return false, errSNMalformed
			}
			if err := c.write(snRegackFor(ack[:0], body)); err != nil {
				return false, err
			}
		}
	}
}

// Order probe modes (the result's kind).
const (
	orderNoWait      = "no-wait"      // PUBLISH right after SUBSCRIBE is written
	orderSubackFirst = "suback-first" // PUBLISH after the subscription's answer: a control
)

// orderTarget is one (broker, subscriber protocol) of the order scenario.
type orderTarget struct {
	label, proto     string
	pubAddr, subAddr string
	fired, misses    int
	hist             histogram // PUBLISH write to delivery, hits only
	errs             failures
}

// orderPair is one trial's fresh subscriber and publisher.
type orderPair struct {
	sub orderSubscriber
	pub *mqttConn
}

func (p orderPair) close() {
	if p.sub != nil {
		p.sub.disconnect()
	}
	if p.pub != nil {
		p.pub.disconnect()
	}
}

// orderTargets lists every (broker, protocol) the run can reach: MQTT over
// TCP at the broker's -addrs address, anything else only where -sub-addrs
// names one (mosquitto speaks neither STOMP nor MQTT-SN). skipped names
// the combinations left out for want of an address.
func orderTargets(cfg config) (targets []*orderTarget, skipped []string, err error) {
	brokers, err := parseAddrs(cfg.addrs, cfg.label, cfg.addr)
	if err != nil {
		return nil, nil, err
	}
	subAddrs, err := parseSubAddrs(cfg.subAddrs)
	if err != nil {
		return nil, nil, err
	}
	protos := parseList(cfg.orderProtos)
	for _, p := range protos {
		if !knownProto(p) || p == protoCoAP {
			return nil, nil, fmt.Errorf("-order-protos: %q is not an MQTT, STOMP or MQTT-SN protocol", p)
		}
	}
	for _, b := range brokers {
		for _, p := range protos {
			sub, ok := subAddrs[[2]string{b.label, p}]
			if !ok && (p == protoMQTT || p == protoMQTT5) {
				sub, ok = b.addr, true
			}
			if !ok {
				skipped = append(skipped, b.label+"/"+p)
				continue
			}
			targets = append(targets, &orderTarget{label: b.label, proto: p, pubAddr: b.addr, subAddr: sub})
		}
	}
	if len(targets) == 0 {
		return nil, skipped, errors.New("order: nothing to probe (STOMP and MQTT-SN subscribers need -sub-addrs)")
	}
	return targets, skipped, nil
}

// orderStagger is how long one target's probe has the brokers to itself
// before the next target's starts (see runOrder).
const orderStagger = 5 * time.Millisecond

// orderBudget is the default -duration of an order run: every trial
// missing, with slow connection set-ups, plus a margin.
func orderBudget(cfg config, targets int) time.Duration {
	perTrial := cfg.idle + cfg.orderWait + time.Duration(targets)*(orderStagger+50*time.Millisecond)
	return time.Duration(cfg.trials)*perTrial*3/2 + 20*time.Second
}

// topic is a trial's unique topic as the subscriber names it and as the
// MQTT publisher must publish to it: iotgw maps a STOMP destination to the
// MQTT topic verbatim (adapters/stomp/mapping.go), so "/topic/..." is the
// topic "/topic/..." on both sides.
func (t *orderTarget) topic(trial int) string {
	s := "bench/order/" + strconv.Itoa(os.Getpid()) + "/" + t.label + "/" + t.proto + "/" + strconv.Itoa(trial)
	if t.proto == protoSTOMP || t.proto == protoSTOMPWS {
		s = "/topic/" + s
	}
	return s
}

// dial opens a trial's subscriber and publisher.
func (t *orderTarget) dial(cfg config, trial int, ioDL time.Time) (orderPair, error) {
	var p orderPair
	id := fmt.Sprintf("iotgw-bench-%d-order-%s-%s-%d", os.Getpid(), t.label, t.proto, trial)
	o := dialOpts{proto: t.proto, addr: t.subAddr, wsPath: cfg.wsPath, clientID: id + "-s", keepAlive: cfg.keepAlive,
		deadline: ioDL, sz: bufSizes{read: 2 << 10, write: 512}, retry: cfg.retry}
	w, err := dialWire(o)
	if err != nil {
		return p, fmt.Errorf("subscriber (%s): %w", t.proto, err)
	}
	p.sub = w.(orderSubscriber)
	o.proto, o.addr, o.clientID = protoMQTT, t.pubAddr, id+"-p"
	pw, err := dialWire(o)
	if err != nil {
		p.close()
		return orderPair{}, fmt.Errorf("publisher: %w", err)
	}
	p.pub = pw.(*mqttConn)
	return p, nil
}

// fire runs the probe on a pair whose connections have been quiet: the
// subscriber's SUBSCRIBE, then at once (or, as a control, after its answer)
// the publisher's QoS 0 PUBLISH to the same topic, then up to -order-wait
// for the message.
func (t *orderTarget) fire(cfg config, p orderPair, trial int, payload []byte) error {
	topic := t.topic(trial)
	if cfg.orderSuback {
		if _, err := p.sub.subscribe(topic, 0); err != nil {
			return err
		}
	} else if err := p.sub.sendSubscribe(topic); err != nil {
		return err
	}
	pkt := appendPublishHeader(nil, topic, 0, len(payload))
	pkt = append(pkt, payload...)
	start := time.Now()
	if err := p.pub.writeFlush(pkt); err != nil {
		return err
	}
	got, err := p.sub.awaitDelivery(start.Add(cfg.orderWait))
	if err != nil {
		return err
	}
	t.fired++
	if got {
		t.hist.record(int64(time.Since(start)))
	} else {
		t.misses++
	}
	return nil
}

// runOrder is the cross-client ordering probe. Per trial, every target
// gets a fresh subscriber B and MQTT 3.1.1 publisher A; both stay quiet for
// -idle; then B writes SUBSCRIBE t and A, without waiting for the SUBACK,
// PUBLISH t at QoS 0; a miss is B not receiving it within -order-wait.
// MQTT does not order one client's packets against another's, but a broker
// that reads B's SUBSCRIBE later than A's PUBLISH, although B wrote first,
// shows how long a quiet connection takes to be read again.
//
// Targets are dialled and fired in one random order per trial, one after
// the other, so that no two brokers work at once and noise is shared. A
// target therefore idles for -idle plus the firing time of those before it
// (at most orderStagger each): at least -idle.
func runOrder(ctx context.Context, cfg config) ([]result, error) {
	targets, skipped, err := orderTargets(cfg)
	if err != nil {
		return nil, err
	}
	for _, k := range skipped {
		fmt.Fprintf(os.Stderr, "iotgw-bench: order: %s skipped, no address (-sub-addrs %s=...)\n", k, k)
	}
	dl, _ := ctx.Deadline()
	ioDL := dl.Add(2 * time.Second)
	payload := make([]byte, cfg.size)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(os.Getpid())))
	pairs := make([]orderPair, len(targets))
	timedOut := false
	for trial := 0; trial < cfg.trials && !timedOut; trial++ {
		perm := rng.Perm(len(targets))
		for _, i := range perm {
			t := targets[i]
			p, err := t.dial(cfg, trial, ioDL)
			if err != nil {
				t.errs.add(err)
			}
			pairs[i] = p
		}
		sleepCtx(ctx, cfg.idle)
		var pending []chan struct{}
		for _, i := range perm {
			if ctx.Err() != nil {
				timedOut = true
				break
			}
			if pairs[i].sub == nil {
				continue
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				if err := targets[i].fire(cfg, pairs[i], trial, payload); err != nil {
					targets[i].errs.add(err)
				}
			}()
			// The next broker's probe starts once this one delivered or
			// orderStagger passed: deliveries take well under that, so
			// probes do not overlap, while a miss overlaps only waiting
			// and does not cost every later target -order-wait of extra
			// idling (and the run -order-wait per target and trial).
			select {
			case <-done:
			case <-time.After(orderStagger):
				pending = append(pending, done)
			}
		}
		for _, done := range pending {
			<-done
		}
		// Closed only after every target fired: a broker tearing down
		// connections must not work while another one is probed.
		for i := range pairs {
			pairs[i].close()
			pairs[i] = orderPair{}
		}
	}
	kind := orderNoWait
	if cfg.orderSuback {
		kind = orderSubackFirst
	}
	out := make([]result, 0, len(targets))
	for _, t := range targets {
		misses := t.misses
		r := result{Label: t.label, Scenario: "order", Proto: protoMQTT, Kind: kind,
			GapMs: float64(cfg.idle) / float64(time.Millisecond), Size: cfg.size, Tag: cfg.tag,
			Trials: t.fired, Misses: &misses, Sent: int64(t.fired), Expected: int64(t.fired),
			Received: int64(t.fired - t.misses), Unique: int64(t.fired - t.misses), TimedOut: timedOut}
		if t.proto != protoMQTT {
			r.SubProto = t.proto
		}
		if t.fired > 0 {
			r.LossPct = 100 * float64(t.misses) / float64(t.fired)
		}
		histResult(&r, &t.hist)
		if n := t.errs.n.Load(); n > 0 {
			r.Errors, r.Error = n, t.errs.firstErr().Error()
		}
		out = append(out, r)
	}
	return out, nil
}
