package mqtt_test

// Wills, keep alive, persistent sessions, takeover and a long QoS 2 run.

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/gorilla/websocket"

	"github.com/iotgw/iotgw/adapters/mqtt/codec"
	"github.com/iotgw/iotgw/internal/testutil"
)

// willConnect is a CONNECT carrying a will at QoS 1.
func willConnect(id, topic, payload string, keepAlive uint16) *codec.Connect {
	return &codec.Connect{ClientID: id, CleanStart: true, KeepAlive: keepAlive,
		WillFlag: true, WillTopic: topic, WillPayload: []byte(payload), WillQoS: 1}
}

// expectWill waits for a will at the subscriber and checks it.
func expectWill(t *testing.T, sub *pahoClient, topic, payload string) {
	t.Helper()
	m := sub.next()
	if m.Topic != topic || m.Payload != payload {
		t.Fatalf("got %v, want the will %s %q [MQTT-3.1.2-8]", m, topic, payload)
	}
	if m.QoS != 1 {
		t.Errorf("will delivered at QoS %d, want 1 (will QoS 1, subscription QoS 2) [MQTT-3.8.4-6]", m.QoS)
	}
	if m.Retained {
		t.Errorf("will published without will retain arrived with RETAIN set [MQTT-3.3.1-9]")
	}
}

func TestWill(t *testing.T) {
	t.Parallel()

	t.Run("published_when_socket_drops", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, "")
		sub, _ := connectPaho(t, g.MQTTURL(), uniqueID("willsub"), nil)
		sub.subscribe("will/#", 2)
		raw := dialRaw(t, g.MQTTAddr())
		raw.connectOK(willConnect(uniqueID("dropper"), "will/drop", "dropped", 0))
		raw.nc.Close() // no DISCONNECT
		// [MQTT-3.1.2-8] the will is published when the network
		// connection closes without DISCONNECT.
		expectWill(t, sub, "will/drop", "dropped")
	})

	t.Run("published_on_keep_alive_expiry", func(t *testing.T) {
		t.Parallel()
		// A connect timeout far beyond waitTimeout, so that only the keep
		// alive can close the connection in time.
		g := testutil.Start(t, "mqtt:\n  connect_timeout: 60s\n")
		sub, _ := connectPaho(t, g.MQTTURL(), uniqueID("willsub"), nil)
		sub.subscribe("will/#", 2)
		raw := dialRaw(t, g.MQTTAddr())
		raw.connectOK(willConnect(uniqueID("silent"), "will/keepalive", "timed out", 1))
		silentSince := time.Now()
		// [MQTT-3.1.2-24] no packet within 1.5 × keep alive (1 s): the
		// broker disconnects the client ...
		raw.expectClosed("silent client with keep alive 1 s")
		// ... and, the close not being a DISCONNECT, publishes the will
		// [MQTT-3.1.2-8].
		expectWill(t, sub, "will/keepalive", "timed out")
		// A lower bound only (upper bounds are left to waitTimeout): the
		// client had the whole keep alive period to send something.
		if d := time.Since(silentSince); d < time.Second {
			t.Errorf("disconnected after %v of silence, before the keep alive of 1 s elapsed [MQTT-3.1.2-24]", d)
		}
	})

	t.Run("keep_alive_kept_by_pings", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, "")
		raw := dialRaw(t, g.MQTTAddr())
		raw.connectOK(&codec.Connect{ClientID: uniqueID("pinger"), CleanStart: true, KeepAlive: 1})
		// Pings every 200ms for 2.5 s, well past 1.5 × keep alive: each
		// is answered and the connection stays [MQTT-3.12.4-1].
		for start := time.Now(); time.Since(start) < 2500*time.Millisecond; {
			raw.send(&codec.Pingreq{})
			if p := raw.expect("PINGRESP"); p.Type() != codec.TypePingresp {
				t.Fatalf("got %s, want PINGRESP [MQTT-3.12.4-1]", p.Type())
			}
			time.Sleep(200 * time.Millisecond)
		}
	})

	t.Run("not_published_after_disconnect", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, "")
		sub, _ := connectPaho(t, g.MQTTURL(), uniqueID("willsub"), nil)
		sub.subscribe("will/#", 2)
		sessions := g.Broker.SessionCount()
		raw := dialRaw(t, g.MQTTAddr())
		raw.connectOK(willConnect(uniqueID("polite"), "will/clean", "must not appear", 0))
		raw.send(&codec.Disconnect{})
		raw.expectClosed("after DISCONNECT")
		// The clean session ends with the connection; the broker has then
		// handled the disconnect, will and all.
		testutil.Eventually(t, waitTimeout, func() bool { return g.Broker.SessionCount() == sessions },
			"the disconnected clean session to end")
		sub.publish("will/clean", 1, false, "END")
		// [MQTT-3.1.2-10], [MQTT-3.14.4-3] DISCONNECT discards the will.
		if got := sub.until("END"); len(got) != 0 {
			t.Errorf("will published after a clean DISCONNECT: %s [MQTT-3.1.2-10] [MQTT-3.14.4-3]", describe(got))
		}
	})
}

// TestPersistentSession checks that a clean-session-0 client gets the QoS
// 1 and 2 messages published while it was away, on both transports.
func TestPersistentSession(t *testing.T) {
	t.Parallel()
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			g := testutil.Start(t, "")
			url := tr.url(g)
			id := uniqueID("persistent")
			persistent := func(o *paho.ClientOptions) { o.SetCleanSession(false) }

			first, tok := connectPaho(t, url, id, persistent)
			// [MQTT-3.2.2-3] no stored session: Session Present 0.
			if tok.SessionPresent() {
				t.Errorf("first connection of %s: Session Present 1 [MQTT-3.2.2-3]", id)
			}
			first.subscribe("offline/#", 2)
			first.Disconnect(250)
			testutil.Eventually(t, waitTimeout, func() bool { return g.Broker.Stats().ClientsConnected.Load() == 0 },
				"the persistent client to be offline")

			pub, _ := connectPaho(t, url, uniqueID("opub"), nil)
			pub.publish("offline/one", 1, false, "q1")
			pub.publish("offline/two", 2, false, "q2")
			pub.publish("offline/three", 2, false, "q2-again")

			second, tok := connectPaho(t, url, id, persistent)
			// [MQTT-3.2.2-2] stored session: Session Present 1.
			if !tok.SessionPresent() {
				t.Errorf("reconnection of %s with clean session 0: Session Present 0 [MQTT-3.2.2-2]", id)
			}
			// [MQTT-3.1.2-4] the session resumes; [MQTT-3.1.2-5] QoS 1 and 2
			// messages that arrived while offline were kept for it.
			want := []received{
				{Topic: "offline/one", Payload: "q1", QoS: 1},
				{Topic: "offline/two", Payload: "q2", QoS: 2},
				{Topic: "offline/three", Payload: "q2-again", QoS: 2},
			}
			for _, w := range want {
				m := second.next()
				if m.Topic != w.Topic || m.Payload != w.Payload || m.QoS != w.QoS {
					t.Fatalf("after reconnecting got %v, want %v [MQTT-3.1.2-5] [MQTT-4.6.0-6]", m, w)
				}
			}
			// The subscription is part of the session: live messages flow
			// without subscribing again.
			pub.publish("offline/live", 1, false, "live")
			if m := second.next(); m.Payload != "live" || m.QoS != 1 {
				t.Errorf("live message on the resumed subscription: got %v [MQTT-3.1.2-4]", m)
			}
			second.Disconnect(250)
			testutil.Eventually(t, waitTimeout, func() bool { return g.Broker.Stats().ClientsConnected.Load() == 1 },
				"the persistent client to be offline")

			// Clean session 1 discards the session [MQTT-3.1.2-6] and
			// reports Session Present 0 [MQTT-3.2.2-1].
			_, tok = connectPaho(t, url, id, nil)
			if tok.SessionPresent() {
				t.Errorf("connection of %s with clean session 1: Session Present 1 [MQTT-3.2.2-1]", id)
			}
		})
	}
}

// TestSessionTakeover connects a raw client with a will, then a paho
// client with the same client id on each transport.
func TestSessionTakeover(t *testing.T) {
	t.Parallel()
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			g := testutil.Start(t, "")
			url := tr.url(g)
			watcher, _ := connectPaho(t, g.MQTTURL(), uniqueID("watcher"), nil)
			watcher.subscribe("takeover/#", 2)

			id := uniqueID("contested")
			first := dialRaw(t, g.MQTTAddr())
			first.connectOK(willConnect(id, "takeover/will", "first one gone", 0))

			second, _ := connectPaho(t, url, id, nil)
			// [MQTT-3.1.4-2] the server disconnects the existing client.
			first.expectClosed("first connection after a second one took its client id")
			// The first connection ended without DISCONNECT: its will is
			// published [MQTT-3.1.2-8].
			expectWill(t, watcher, "takeover/will", "first one gone")

			// The second connection works.
			second.subscribe("second/in", 1)
			watcher.publish("second/in", 1, false, "for the second")
			if m := second.next(); m.Payload != "for the second" {
				t.Errorf("second connection got %v", m)
			}
			second.publish("takeover/from-second", 1, false, "from the second")
			if m := watcher.next(); m.Payload != "from the second" {
				t.Errorf("watcher got %v, want the second connection's publication", m)
			}
			if err := second.lostErr(); err != nil || !second.IsConnected() {
				t.Errorf("second connection lost: %v", err)
			}
		})
	}
}

// TestQoS2Thousand sends 1,000 QoS 2 messages from one paho client to
// another: every one arrives exactly once, in order.
func TestQoS2Thousand(t *testing.T) {
	t.Parallel()
	const n = 1000
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			g := testutil.Start(t, "")
			url := tr.url(g)
			sub, _ := connectPaho(t, url, uniqueID("bulksub"), nil)
			sub.subscribe("bulk/qos2", 2)
			pub, _ := connectPaho(t, url, uniqueID("bulkpub"), nil)

			toks := make([]paho.Token, n)
			for i := range n {
				toks[i] = pub.Publish("bulk/qos2", 2, false, strconv.Itoa(i))
			}
			for i, tok := range toks {
				wait(t, fmt.Sprintf("publish %d", i), tok)
			}
			for i := range n {
				m := sub.next()
				// Exactly once (MQTT 3.1.1 section 4.3.3); in order [MQTT-4.6.0-6].
				if m.Payload != strconv.Itoa(i) {
					t.Fatalf("message %d: got payload %q (lost, duplicated or out of order) [MQTT-4.6.0-6]", i, m.Payload)
				}
				if m.QoS != 2 || m.Dup {
					t.Fatalf("message %d: QoS %d dup %v, want QoS 2 first delivery", i, m.QoS, m.Dup)
				}
			}
			pub.publish("bulk/qos2", 2, false, "END")
			if extra := sub.until("END"); len(extra) != 0 {
				t.Errorf("%d messages after the last one: %s", len(extra), describe(extra))
			}
		})
	}
}

// stalledSubscriber is a raw client, over TCP or WebSocket, that has
// subscribed to "flood/#" and then stopped reading.
type stalledSubscriber interface {
	// drainUntilClosed reads and discards until the broker closes the
	// connection; it fails the test if that takes longer than waitTimeout.
	drainUntilClosed(t *testing.T)
}

type stalledTCP struct{ r *rawClient }

func (s stalledTCP) drainUntilClosed(t *testing.T) {
	t.Helper()
	if !s.r.closedWithin(waitTimeout) {
		t.Fatalf("taken-over TCP connection whose client stopped reading still open after %v [MQTT-3.1.4-2]", waitTimeout)
	}
}

type stalledWS struct{ ws *websocket.Conn }

func (s stalledWS) drainUntilClosed(t *testing.T) {
	t.Helper()
	_ = s.ws.SetReadDeadline(time.Now().Add(waitTimeout))
	for {
		if _, _, err := s.ws.ReadMessage(); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("taken-over WebSocket connection whose client stopped reading still open after %v [MQTT-3.1.4-2]", waitTimeout)
			}
			return
		}
	}
}

// TestTakeoverOfStalledReader takes over the session of a client that
// stopped reading while the broker was sending to it, so that the broker's
// writer for it is blocked in a socket write when the takeover closes it
// (from another goroutine). The old connection must then end
// [MQTT-3.1.4-2] and the new one work. Under -race this also catches
// deadline handling that is not safe beside a blocked write (the
// WebSocket adapter's gorilla connection allows one writer goroutine only,
// SetWriteDeadline included).
func TestTakeoverOfStalledReader(t *testing.T) {
	t.Parallel()
	subscribe := &codec.Subscribe{PacketID: 1, Subscriptions: []codec.Subscription{{Filter: "flood/#", QoS: 0}}}
	for _, tr := range []struct {
		name  string
		stall func(t *testing.T, g *testutil.Gateway, id string) stalledSubscriber
	}{
		{"tcp", func(t *testing.T, g *testutil.Gateway, id string) stalledSubscriber {
			r := dialRaw(t, g.MQTTAddr())
			r.connectOK(&codec.Connect{ClientID: id, CleanStart: true})
			r.send(subscribe)
			if p := r.expect("SUBACK"); p.Type() != codec.TypeSuback {
				t.Fatalf("got %s, want SUBACK", p.Type())
			}
			return stalledTCP{r}
		}},
		{"ws", func(t *testing.T, g *testutil.Gateway, id string) stalledSubscriber {
			ws := dialWS(t, g.WSURL())
			for _, p := range []codec.Packet{&codec.Connect{ProtocolLevel: codec.V311, ClientID: id, CleanStart: true}, subscribe} {
				b, err := codec.Append(nil, p, codec.V311)
				if err != nil {
					t.Fatal(err)
				}
				if err := ws.WriteMessage(websocket.BinaryMessage, b); err != nil {
					t.Fatal(err)
				}
			}
			_ = ws.SetReadDeadline(time.Now().Add(waitTimeout))
			// CONNACK (4 bytes) and SUBACK (5 bytes), in one frame or two.
			var got []byte
			for len(got) < 9 {
				_, msg, err := ws.ReadMessage()
				if err != nil {
					t.Fatalf("reading CONNACK and SUBACK: %v", err)
				}
				got = append(got, msg...)
			}
			if got[0] != 0x20 || got[3] != 0 || got[4] != 0x90 {
				t.Fatalf("got % x, want CONNACK 0 and SUBACK", got)
			}
			return stalledWS{ws}
		}},
	} {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			// A short per-connection QoS 0 queue: once 100 publications
			// in a row overflow it (counted drops, while nothing more is
			// handed over), the writer is stuck in a socket write. Drops,
			// not backpressure: the flooder must not be held.
			g := testutil.Start(t, "mqtt:\n  max_pending_qos0: 4\nsession:\n  queue_full_policy: drop_new\n")
			id := uniqueID("stalled")
			stalled := tr.stall(t, g, id)

			pub, _ := connectPaho(t, g.MQTTURL(), uniqueID("flooder"), nil)
			payload := strings.Repeat("f", 64<<10)
			st := g.Broker.Stats()
			lastSent, dropMark := st.MessagesSent.Load(), st.DroppedQoS0.Load()
			for i := 0; ; i++ {
				if i == 4000 { // 256 MB: far beyond any socket buffer
					t.Fatal("the stalled subscriber's writer never got stuck")
				}
				pub.publish("flood/x", 0, false, payload)
				if s := st.MessagesSent.Load(); s != lastSent {
					lastSent, dropMark = s, st.DroppedQoS0.Load()
				} else if st.DroppedQoS0.Load()-dropMark >= 100 {
					break
				}
			}

			second := dialRaw(t, g.MQTTAddr())
			second.connectOK(&codec.Connect{ClientID: id, CleanStart: true})
			stalled.drainUntilClosed(t)
			second.send(&codec.Pingreq{})
			if p := second.expect("PINGRESP"); p.Type() != codec.TypePingresp {
				t.Fatalf("got %s, want PINGRESP from the new connection", p.Type())
			}
		})
	}
}
