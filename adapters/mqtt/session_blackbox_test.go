package mqtt_test

// Wills, keep alive, persistent sessions, takeover and a long QoS 2 run.

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

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
