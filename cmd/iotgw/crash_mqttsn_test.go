package main

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/iotgw/iotgw/adapters/mqttsn/codec"
)

// snConn is a bare MQTT-SN client socket. The crash test cannot use
// sntest.Client, which fails the test when an answer does not come: here
// a missing PUBACK is how the publisher learns that the gateway died.
type snConn struct {
	t     *testing.T
	uc    *net.UDPConn
	msgID uint16
}

func dialSN(t *testing.T, addr string) *snConn {
	t.Helper()
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	uc, err := net.DialUDP("udp", nil, ua)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { uc.Close() })
	return &snConn{t: t, uc: uc}
}

func (c *snConn) nextID() uint16 {
	c.msgID++
	if c.msgID == 0 {
		c.msgID = 1
	}
	return c.msgID
}

func (c *snConn) send(m codec.Message) error {
	raw, err := codec.Encode(m)
	if err != nil {
		c.t.Fatalf("encode %s: %v", m.Type(), err)
	}
	_, err = c.uc.Write(raw)
	return err
}

// recv returns the next message, or an error after d.
func (c *snConn) recv(d time.Duration) (codec.Message, error) {
	buf := make([]byte, 2048)
	c.uc.SetReadDeadline(time.Now().Add(d))
	n, err := c.uc.Read(buf)
	if err != nil {
		return nil, err
	}
	return codec.Decode(buf[:n])
}

// expect returns the next message, failing the test unless it is of type
// typ and arrives within a few seconds.
func (c *snConn) expect(typ codec.Type) codec.Message {
	c.t.Helper()
	m, err := c.recv(5 * time.Second)
	if err != nil || m.Type() != typ {
		c.t.Fatalf("want %s, got %v %v", typ, m, err)
	}
	return m
}

func (c *snConn) connect(id string, clean bool) {
	c.t.Helper()
	c.send(&codec.Connect{Flags: codec.Flags{CleanSession: clean}, ProtocolID: codec.ProtocolID12, Duration: 60, ClientID: id})
	if ack := c.expect(codec.TypeConnack).(*codec.ReturnOnly); ack.Code != codec.Accepted {
		c.t.Fatalf("CONNACK %v", ack.Code)
	}
}

// snReceive runs the persistent subscriber's side after a restart until
// r holds every key or nothing arrives for a while: the gateway lost its
// topic registrations (they are not persisted), so it REGISTERs topic
// names before publishing on them; a PUBLISH on an id this client does
// not know is answered with PUBACK "invalid topic id" (0x02), which makes
// the gateway register the topic and resend.
func (c *snConn) snReceive(r *receiver, keys []string) {
	known := map[uint16]bool{}
	for r.missing(keys) > 0 {
		m, err := c.recv(5 * time.Second)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return
		}
		if err != nil {
			c.t.Fatal(err)
		}
		switch m := m.(type) {
		case *codec.Register:
			known[m.TopicID] = true
			c.send(&codec.Regack{TopicID: m.TopicID, MsgID: m.MsgID, Code: codec.Accepted})
		case *codec.Publish:
			if !known[m.TopicID] {
				c.send(&codec.Puback{TopicID: m.TopicID, MsgID: m.MsgID, Code: codec.InvalidTopicID})
				continue
			}
			r.add(string(m.Data))
			if m.Flags.QoS == 1 {
				c.send(&codec.Puback{TopicID: m.TopicID, MsgID: m.MsgID, Code: codec.Accepted})
			}
		}
	}
}

// TestCrashMQTTSN: an MQTT-SN publisher sends QoS 1 PUBLISHes to a topic
// that an offline clean_session=false MQTT-SN subscriber subscribed to at
// QoS 1; the gateway is killed at a random point and restarted on the
// same store, and every PUBACKed message must reach the subscriber when
// it reconnects (without subscribing again: the subscription is the
// session's and survives). Several rounds.
func TestCrashMQTTSN(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	dir := filepath.Join(t.TempDir(), "data")
	g := startGateway(t, bin, dir)
	defer func() { g.term(t) }()

	sub := dialSN(t, g.mqttsn)
	sub.connect("crash-sn-sub", false)
	sub.send(&codec.Subscribe{Kind: codec.TypeSubscribe, Flags: codec.Flags{QoS: 1, TopicIDType: codec.TopicNormal},
		MsgID: sub.nextID(), TopicName: "sn/#"})
	if ack := sub.expect(codec.TypeSuback).(*codec.Suback); ack.Code != codec.Accepted {
		t.Fatalf("SUBACK %v", ack.Code)
	}
	sub.send(&codec.Disconnect{})
	sub.expect(codec.TypeDisconnect)

	r := newReceiver()
	var acked ackedSet
	for round := 0; round < crashRounds; round++ {
		pub := dialSN(t, g.mqttsn)
		pub.connect(fmt.Sprintf("crash-sn-pub%d", round), true)
		pub.send(&codec.Register{MsgID: pub.nextID(), TopicName: "sn/load"})
		topicID := pub.expect(codec.TypeRegack).(*codec.Regack).TopicID
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := 0; ; i++ {
				body := fmt.Sprintf("r%d-%d", round, i)
				id := pub.nextID()
				pub.send(&codec.Publish{Flags: codec.Flags{QoS: 1, TopicIDType: codec.TopicNormal},
					TopicID: topicID, MsgID: id, Data: []byte(body)})
				// The PUBACK comes once the message is durable; none
				// within a few seconds means the gateway is gone.
				m, err := pub.recv(time.Second)
				if err != nil {
					return
				}
				if ack, ok := m.(*codec.Puback); ok && ack.MsgID == id && ack.Code == codec.Accepted {
					acked.add(body)
				}
			}
		}()
		acked.waitAcked(acked.len() + 20 + rand.IntN(150))
		g.kill(t)
		<-done

		g = startGateway(t, bin, dir)
		keys := acked.snapshot()
		sub := dialSN(t, g.mqttsn)
		sub.connect("crash-sn-sub", false)
		sub.snReceive(r, keys)
		sub.send(&codec.Disconnect{})
		missing := r.missing(keys)
		t.Logf("round %d: %d acknowledged in all, subscriber got %d (%d missing); restart took %v (recovery %s)",
			round, len(keys), r.total(), missing, g.startup, g.recovered)
		if missing > 0 {
			t.Fatalf("round %d: %d PUBACKed messages never reached the persistent subscriber", round, missing)
		}
	}
}
