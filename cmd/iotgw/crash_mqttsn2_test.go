package main

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iotgw/iotgw/adapters/mqttsn/codec"
)

var errRefused = errors.New("refused by the gateway")

// snQoS2Pub is an MQTT-SN QoS 2 publisher on a persistent session
// (clean_session=false) that survives gateway kills: its state lives
// here, across connections, the way a real client keeps it.
//
// PUBREC is the point at which the gateway owns a message (MQTT-SN 1.2
// §6.7 follows MQTT: the receiver has stored it and will not deliver it
// again), so a message counts as acknowledged when its PUBREC came back,
// not its PUBCOMP. What is open at a kill is finished after the restart
// as MQTT requires of a reconnecting client: a PUBLISH without PUBREC is
// resent with DUP and the same MsgID (the gateway must recognise it if it
// had stored it), a PUBREL without PUBCOMP is resent.
type snQoS2Pub struct {
	t       *testing.T
	id      string
	topicID uint16
	msgID   uint16 // carried across connections: ids keep increasing

	acked ackedSet   // bodies whose PUBREC came back
	mu    sync.Mutex // guards sent
	sent  []string   // every body ever sent, acknowledged or not

	// The open exchange at the kill; touched by the load goroutine until
	// it returns, then by the test goroutine.
	openPub *codec.Publish // sent, no PUBREC yet
	openRel uint16         // PUBREC came, PUBCOMP not yet
	// hold asks the load goroutine to stop right after the next PUBREC,
	// before its PUBREL: the test then kills the gateway in that gap.
	hold atomic.Bool
}

func (p *snQoS2Pub) nextID() uint16 {
	p.msgID++
	if p.msgID == 0 {
		p.msgID = 1
	}
	return p.msgID
}

// await reads until a message of type typ for msgID arrives and returns
// it; anything else is skipped. An error means nothing came for d: the
// gateway is gone (or, with the gateway up, a failure the caller reports).
func await(c *snConn, typ codec.Type, msgID uint16, d time.Duration) (codec.Message, error) {
	for {
		m, err := c.recv(d)
		if err != nil {
			return nil, err
		}
		switch m := m.(type) {
		case *codec.MsgIDOnly:
			if m.Kind == typ && m.MsgID == msgID {
				return m, nil
			}
		case *codec.Puback:
			// A PUBLISH is refused with PUBACK, whatever its QoS.
			if m.MsgID == msgID {
				return m, nil
			}
		}
	}
}

// publish sends one QoS 2 PUBLISH (or resends p with DUP) and waits for
// its PUBREC, leaving p open until it comes.
func (p *snQoS2Pub) publish(c *snConn, m *codec.Publish) error {
	p.openPub = m
	c.send(m)
	reply, err := await(c, codec.TypePubrec, m.MsgID, time.Second)
	if err != nil {
		return err
	}
	if ack, ok := reply.(*codec.Puback); ok {
		// The registration is stored with the persistent session, so an
		// id the gateway forgot is a failure, not something to relearn.
		return fmt.Errorf("%w: PUBLISH %d, %v", errRefused, m.MsgID, ack.Code)
	}
	p.openPub, p.openRel = nil, m.MsgID
	p.acked.add(string(m.Data))
	return nil
}

// release sends PUBREL for the open id and waits for PUBCOMP.
func (p *snQoS2Pub) release(c *snConn) error {
	c.send(&codec.MsgIDOnly{Kind: codec.TypePubrel, MsgID: p.openRel})
	if _, err := await(c, codec.TypePubcomp, p.openRel, time.Second); err != nil {
		return err
	}
	p.openRel = 0
	return nil
}

// resume reconnects after a restart and finishes the exchange the kill
// interrupted; the gateway is up, so every reply must come.
func (p *snQoS2Pub) resume(c *snConn) {
	p.t.Helper()
	c.connect(p.id, false)
	if p.openPub != nil {
		m := *p.openPub
		m.Flags.DUP = true
		if err := p.publish(c, &m); err != nil {
			p.t.Fatalf("resending PUBLISH %d after the restart: %v", m.MsgID, err)
		}
	}
	if p.openRel != 0 {
		id := p.openRel
		if err := p.release(c); err != nil {
			p.t.Fatalf("PUBREL %d after the restart: no PUBCOMP (%v)", id, err)
		}
	}
}

// load publishes until the gateway stops answering or hold is set.
func (p *snQoS2Pub) load(c *snConn, round int) {
	for i := 0; ; i++ {
		body := fmt.Sprintf("q2r%d-%d", round, i)
		p.mu.Lock()
		p.sent = append(p.sent, body)
		p.mu.Unlock()
		m := &codec.Publish{Flags: codec.Flags{QoS: 2, TopicIDType: codec.TopicNormal},
			TopicID: p.topicID, MsgID: p.nextID(), Data: []byte(body)}
		if err := p.publish(c, m); err != nil {
			// A read error (timeout, or refused once the port is
			// closed) is the kill; a refusal from the gateway is a
			// failure.
			if errors.Is(err, errRefused) {
				p.t.Error(err)
			}
			return
		}
		if p.hold.Load() {
			return
		}
		if p.release(c) != nil {
			return
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// snQoS2Sub is the receiver side of MQTT-SN QoS 2 on a persistent
// session, kept across connections: a PUBLISH's MsgID is held from the
// PUBLISH until the gateway's PUBREL and the message delivered once, on
// its first PUBLISH; a resent PUBLISH (DUP after a restart) with a held
// id is answered with PUBREC again but not delivered. known is the topic
// ids the gateway REGISTERed with this client.
type snQoS2Sub struct {
	t     *testing.T
	r     *receiver
	known map[uint16]bool
	held  map[uint16]bool
}

// receive runs the subscriber on c until r has every key and nothing more
// came for a while (so that a late duplicate would be seen), or nothing
// came for 5 s.
func (s *snQoS2Sub) receive(c *snConn, keys []string) {
	for {
		wait := 5 * time.Second
		if s.r.missing(keys) == 0 {
			wait = 700 * time.Millisecond
		}
		m, err := c.recv(wait)
		if isTimeout(err) {
			return
		}
		if err != nil {
			s.t.Fatal(err)
		}
		switch m := m.(type) {
		case *codec.Register:
			s.known[m.TopicID] = true
			c.send(&codec.Regack{TopicID: m.TopicID, MsgID: m.MsgID, Code: codec.Accepted})
		case *codec.Publish:
			if m.Flags.TopicIDType == codec.TopicNormal && !s.known[m.TopicID] {
				c.send(&codec.Puback{TopicID: m.TopicID, MsgID: m.MsgID, Code: codec.InvalidTopicID})
				continue
			}
			if m.Flags.QoS != 2 {
				s.t.Fatalf("PUBLISH at QoS %d on a QoS 2 subscription of QoS 2 messages", m.Flags.QoS)
			}
			if !s.held[m.MsgID] {
				s.held[m.MsgID] = true
				s.r.add(string(m.Data))
			}
			c.send(&codec.MsgIDOnly{Kind: codec.TypePubrec, MsgID: m.MsgID})
		case *codec.MsgIDOnly:
			if m.Kind == codec.TypePubrel {
				delete(s.held, m.MsgID)
				c.send(&codec.MsgIDOnly{Kind: codec.TypePubcomp, MsgID: m.MsgID})
			}
		}
	}
}

// TestCrashMQTTSNQoS2: an MQTT-SN QoS 2 publisher on a persistent session
// loads a topic that an offline clean_session=false MQTT-SN subscriber
// subscribed to at QoS 2; the gateway is killed with SIGKILL, in odd
// rounds right between a PUBREC and its PUBREL, otherwise at a random
// point; after the restart the publisher finishes its open exchange (DUP
// PUBLISH or PUBREL, which must get PUBCOMP) and the subscriber
// reconnects: every PUBRECed message must arrive, and no message may
// arrive twice. IOTGWTEST_CRASH_MQTTSN_ROUNDS sets the number of rounds.
func TestCrashMQTTSNQoS2(t *testing.T) {
	bin, dir, g := startCrashGateway(t)
	defer func() { g.term(t) }()

	sub := &snQoS2Sub{t: t, r: newReceiver(), known: map[uint16]bool{}, held: map[uint16]bool{}}
	sc := dialSN(t, g.mqttsn)
	sc.connect("crash-sn2-sub", false)
	sc.send(&codec.Subscribe{Kind: codec.TypeSubscribe, Flags: codec.Flags{QoS: 2, TopicIDType: codec.TopicNormal},
		MsgID: sc.nextID(), TopicName: "sn2/#"})
	if ack := sc.expect(codec.TypeSuback).(*codec.Suback); ack.Code != codec.Accepted || ack.Flags.QoS != 2 {
		t.Fatalf("SUBACK %v QoS %d", ack.Code, ack.Flags.QoS)
	}
	sc.send(&codec.Disconnect{})
	sc.expect(codec.TypeDisconnect)

	pub := &snQoS2Pub{t: t, id: "crash-sn2-pub"}
	pc := dialSN(t, g.mqttsn)
	pc.connect(pub.id, false)
	pc.send(&codec.Register{MsgID: pub.nextID(), TopicName: "sn2/load"})
	pub.topicID = pc.expect(codec.TypeRegack).(*codec.Regack).TopicID

	rounds := crashRoundsFrom(t, "IOTGWTEST_CRASH_MQTTSN_ROUNDS")
	for round := 0; round < rounds; round++ {
		between := round%2 == 1
		done := make(chan struct{})
		go func(c *snConn) {
			defer close(done)
			pub.load(c, round)
		}(pc)
		pub.acked.waitAcked(pub.acked.len() + 20 + rand.IntN(150))
		if between {
			pub.hold.Store(true)
			<-done
			pub.hold.Store(false)
		}
		g.kill(t)
		<-done
		if t.Failed() {
			t.FailNow()
		}
		open := "none"
		switch {
		case pub.openPub != nil:
			open = fmt.Sprintf("PUBLISH %d without PUBREC", pub.openPub.MsgID)
		case pub.openRel != 0:
			open = fmt.Sprintf("PUBREL %d without PUBCOMP", pub.openRel)
		}

		g = startGateway(t, bin, dir)
		pc = dialSN(t, g.mqttsn)
		pub.resume(pc)
		keys := pub.acked.snapshot()
		sc := dialSN(t, g.mqttsn)
		sc.connect("crash-sn2-sub", false)
		sub.receive(sc, keys)
		sc.send(&codec.Disconnect{})
		missing, dups := sub.r.missing(keys), snDuplicates(sub.r, pub)
		t.Logf("round %d (kill between PUBREC and PUBREL: %v; open at the kill: %s): %d PUBRECed in all, subscriber got %d (%d missing, %d duplicated); restart took %v (recovery %s)",
			round, between, open, len(keys), sub.r.total(), missing, dups, g.startup, g.recovered)
		if missing > 0 || dups > 0 {
			t.Fatalf("round %d: %d PUBRECed messages never reached the QoS 2 subscriber, %d arrived more than once", round, missing, dups)
		}
	}
}

// snDuplicates counts the messages p ever sent that r received more than
// once.
func snDuplicates(r *receiver, p *snQoS2Pub) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, k := range p.sent {
		if r.count(k) > 1 {
			n++
		}
	}
	return n
}
