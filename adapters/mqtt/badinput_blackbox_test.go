package mqtt_test

// Malformed and out-of-order input from raw sockets, each against a broker
// that keeps serving a healthy paho pair: every bad connection is closed,
// and only that one.

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/iotgw/iotgw/adapters/mqtt/codec"
	"github.com/iotgw/iotgw/internal/testutil"
)

const badInputYAML = `
mqtt:
  max_packet_size: 1024
  connect_timeout: 300ms
`

// healthyPair is a paho publisher and a paho subscriber to "#" that must
// keep working whatever other connections do.
type healthyPair struct {
	t        *testing.T
	g        *testutil.Gateway
	pub, sub *pahoClient
	n        int
}

func newHealthyPair(t *testing.T, g *testutil.Gateway) *healthyPair {
	h := &healthyPair{t: t, g: g}
	h.sub, _ = connectPaho(t, g.WSURL(), uniqueID("healthy-sub"), nil)
	h.sub.subscribe("#", 1)
	h.pub, _ = connectPaho(t, g.MQTTURL(), uniqueID("healthy-pub"), nil)
	return h
}

// check publishes through the pair and fails on anything else reaching
// the subscriber: nothing a bad client sent may have been routed.
func (h *healthyPair) check(after string) {
	h.t.Helper()
	h.n++
	payload := fmt.Sprintf("healthy %d", h.n)
	h.pub.publish("healthy/t", 1, false, payload)
	if m := h.sub.next(); m.Topic != "healthy/t" || m.Payload != payload {
		h.t.Errorf("after %s: healthy subscriber got %v, want %q", after, m, payload)
	}
	for _, c := range []*pahoClient{h.pub, h.sub} {
		if err := c.lostErr(); err != nil || !c.IsConnected() {
			h.t.Fatalf("after %s: healthy client %s lost its connection: %v", after, c.id, err)
		}
	}
	// Only the bad connection's session went away.
	testutil.Eventually(h.t, waitTimeout, func() bool { return h.g.Broker.Stats().ClientsConnected.Load() == 2 },
		"only the healthy pair to stay connected after "+after)
}

// connected returns a raw client past CONNECT.
func connected(t *testing.T, g *testutil.Gateway) *rawClient {
	t.Helper()
	r := dialRaw(t, g.MQTTAddr())
	r.connectOK(&codec.Connect{ClientID: uniqueID("raw"), CleanStart: true})
	return r
}

// publishBytes builds a QoS 0 PUBLISH with a hand-made topic.
func publishBytes(topic, payload string) []byte {
	body := append(mqttString(topic), payload...)
	return fixedHeader(0x30, vbi(len(body)), body)
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	g := testutil.Start(t, badInputYAML)
	h := newHealthyPair(t, g)
	h.check("start")

	cases := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"garbage_bytes", func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			junk := make([]byte, 512)
			for i := range junk {
				junk[i] = byte(rng.UintN(256))
			}
			r := dialRaw(t, g.MQTTAddr())
			r.write(junk)
			// [MQTT-4.8.0-1] a protocol violation closes the connection.
			r.expectClosed("garbage")
		}},
		{"garbage_after_connect", func(t *testing.T) {
			r := connected(t, g)
			r.write(bytes.Repeat([]byte{0xFF, 0x00, 0x13}, 100))
			r.expectClosed("garbage after CONNECT [MQTT-4.8.0-1]")
		}},
		{"truncated_connect_then_close", func(t *testing.T) {
			b, err := codec.Append(nil, &codec.Connect{ProtocolLevel: codec.V311, ClientID: uniqueID("half"), CleanStart: true}, 0)
			if err != nil {
				t.Fatal(err)
			}
			r := dialRaw(t, g.MQTTAddr())
			r.write(b[:len(b)/2])
			r.nc.Close()
		}},
		{"truncated_connect_then_silence", func(t *testing.T) {
			b, err := codec.Append(nil, &codec.Connect{ProtocolLevel: codec.V311, ClientID: uniqueID("half"), CleanStart: true}, 0)
			if err != nil {
				t.Fatal(err)
			}
			r := dialRaw(t, g.MQTTAddr())
			r.write(b[:len(b)-3])
			// The CONNECT never completes within connect_timeout (300ms).
			r.expectClosed("incomplete CONNECT (MQTT 3.1.1 section 3.1.4)")
		}},
		{"publish_larger_than_max_packet_size", func(t *testing.T) {
			r := connected(t, g)
			body := append(mqttString("bad/big"), bytes.Repeat([]byte("x"), 2000)...)
			// Announce the whole body but send only a part: the broker must
			// refuse on the announced size without waiting for the rest.
			r.write(fixedHeader(0x30, vbi(len(body)), body[:300]))
			r.expectClosed("PUBLISH of 2000+ bytes with mqtt.max_packet_size 1024")
		}},
		{"publish_of_exactly_max_packet_size_accepted", func(t *testing.T) {
			// The limit is inclusive: a 1024-byte packet is fine.
			r := connected(t, g)
			topic := "bad/limit"
			fixed := 1 + 2 // header byte + two remaining-length bytes (128..16383)
			payload := strings.Repeat("y", 1024-fixed-2-len(topic)-2)
			body := append(append(mqttString(topic), 0x00, 0x09), payload...)
			pkt := fixedHeader(0x32, vbi(len(body)), body)
			if len(pkt) != 1024 {
				t.Fatalf("test bug: packet is %d bytes", len(pkt))
			}
			r.write(pkt)
			if p, ok := r.expect("PUBACK").(*codec.Ack); !ok || p.Kind != codec.TypePuback || p.PacketID != 9 {
				t.Fatalf("got %v, want PUBACK 9 for a packet of exactly max_packet_size", p)
			}
			if m := h.sub.next(); m.Topic != topic || len(m.Payload) != len(payload) {
				t.Errorf("healthy subscriber got %v, want the %d-byte message on %s", m, len(payload), topic)
			}
			r.send(&codec.Disconnect{})
			r.expectClosed("after DISCONNECT")
		}},
		{"remaining_length_five_bytes", func(t *testing.T) {
			r := connected(t, g)
			// At most four remaining-length bytes (MQTT 3.1.1 section 2.2.3).
			r.write([]byte{0x30, 0x80, 0x80, 0x80, 0x80, 0x01, 0x00, 0x03, 'b', 'a', 'd'})
			r.expectClosed("a remaining length with 5 bytes")
		}},
		{"invalid_utf8_topic", func(t *testing.T) {
			r := connected(t, g)
			r.write(publishBytes("bad/\xc3\x28", "bad utf-8"))
			// [MQTT-1.5.3-1] ill-formed UTF-8 closes the connection.
			r.expectClosed("PUBLISH topic with ill-formed UTF-8 [MQTT-1.5.3-1]")
		}},
		{"null_character_in_topic", func(t *testing.T) {
			r := connected(t, g)
			r.write(publishBytes("bad/\x00/nul", "nul"))
			r.expectClosed("PUBLISH topic with U+0000 [MQTT-1.5.3-2]")
		}},
		{"wildcard_plus_in_publish_topic", func(t *testing.T) {
			r := connected(t, g)
			r.send(&codec.Publish{Topic: "bad/+/wild", QoS: 1, PacketID: 1, Payload: []byte("wild")})
			// [MQTT-3.3.2-2] no wildcards in a topic name: no PUBACK, close.
			r.expectClosed("PUBLISH to bad/+/wild [MQTT-3.3.2-2]")
		}},
		{"wildcard_hash_in_publish_topic", func(t *testing.T) {
			r := connected(t, g)
			r.write(publishBytes("bad/#", "wild"))
			r.expectClosed("PUBLISH to bad/# [MQTT-3.3.2-2]")
		}},
		{"publish_qos_3", func(t *testing.T) {
			r := connected(t, g)
			body := append(mqttString("bad/qos3"), 0x00, 0x01, 'x')
			r.write(fixedHeader(0x36, vbi(len(body)), body))
			r.expectClosed("PUBLISH with QoS 3 [MQTT-3.3.1-4]")
		}},
		{"never_sends_connect", func(t *testing.T) {
			r := dialRaw(t, g.MQTTAddr())
			// mqtt.connect_timeout is 300ms (MQTT 3.1.1 section 3.1.4: the
			// server should close a connection that sends no CONNECT).
			r.expectClosed("no CONNECT sent")
		}},
		{"first_packet_pingreq", func(t *testing.T) {
			r := dialRaw(t, g.MQTTAddr())
			r.write([]byte{0xC0, 0x00})
			// [MQTT-3.1.0-1] the first packet must be CONNECT: no PINGRESP.
			r.expectClosed("PINGREQ before CONNECT [MQTT-3.1.0-1]")
		}},
		{"first_packet_publish", func(t *testing.T) {
			r := dialRaw(t, g.MQTTAddr())
			r.write(publishBytes("bad/first", "before connect"))
			r.expectClosed("PUBLISH before CONNECT [MQTT-3.1.0-1]")
		}},
		{"second_connect", func(t *testing.T) {
			r := connected(t, g)
			r.send(&codec.Connect{ProtocolLevel: codec.V311, ClientID: uniqueID("again"), CleanStart: true})
			// [MQTT-3.1.0-2] a second CONNECT is a protocol violation.
			r.expectClosed("second CONNECT [MQTT-3.1.0-2]")
		}},
		{"protocol_level_9", func(t *testing.T) {
			r := dialRaw(t, g.MQTTAddr())
			body := append(mqttString("MQTT"), 9, 0x02, 0x00, 0x3C)
			body = append(body, mqttString(uniqueID("level9"))...)
			r.write(fixedHeader(0x10, vbi(len(body)), body))
			p := r.expect("CONNACK")
			ack, ok := p.(*codec.Connack)
			// [MQTT-3.1.2-2] unsupported level: CONNACK 0x01, then close.
			if !ok || ack.ReasonCode != codec.ConnRefusedProtocolVersion {
				t.Fatalf("got %#v, want CONNACK return code 0x01 [MQTT-3.1.2-2]", p)
			}
			// [MQTT-3.2.2-4] a refusal has Session Present 0.
			if ack.SessionPresent {
				t.Errorf("refusing CONNACK has Session Present 1 [MQTT-3.2.2-4]")
			}
			r.expectClosed("after CONNACK 0x01 [MQTT-3.1.2-2] [MQTT-3.2.2-5]")
		}},
		{"empty_client_id_clean_session_0", func(t *testing.T) {
			r := dialRaw(t, g.MQTTAddr())
			ack := r.connect(&codec.Connect{ClientID: "", CleanStart: false})
			// [MQTT-3.1.3-8] CONNACK 0x02 (identifier rejected), then close.
			if ack.ReasonCode != codec.ConnRefusedIdentifier {
				t.Fatalf("CONNACK return code %#x, want 0x02 [MQTT-3.1.3-8]", byte(ack.ReasonCode))
			}
			if ack.SessionPresent {
				t.Errorf("refusing CONNACK has Session Present 1 [MQTT-3.2.2-4]")
			}
			r.expectClosed("after CONNACK 0x02 [MQTT-3.1.3-8] [MQTT-3.2.2-5]")
		}},
		{"empty_client_id_clean_session_1_accepted", func(t *testing.T) {
			r := dialRaw(t, g.MQTTAddr())
			// [MQTT-3.1.3-6] the server may accept it and assigns an id.
			ack := r.connectOK(&codec.Connect{ClientID: "", CleanStart: true})
			if ack.SessionPresent {
				t.Errorf("clean session 1: Session Present 1 [MQTT-3.2.2-1]")
			}
			r.send(&codec.Pingreq{})
			if p := r.expect("PINGRESP"); p.Type() != codec.TypePingresp {
				t.Fatalf("got %s, want PINGRESP [MQTT-3.12.4-1]", p.Type())
			}
			r.send(&codec.Disconnect{})
			r.expectClosed("after DISCONNECT")
		}},
		{"websocket_text_frame", func(t *testing.T) {
			ws := dialWS(t, g.WSURL())
			b, err := codec.Append(nil, &codec.Connect{ProtocolLevel: codec.V311, ClientID: uniqueID("text"), CleanStart: true}, 0)
			if err != nil {
				t.Fatal(err)
			}
			// [MQTT-6.0.0-1] MQTT travels in binary frames only.
			if err := ws.WriteMessage(websocket.TextMessage, b); err != nil {
				t.Fatal(err)
			}
			_ = ws.SetReadDeadline(time.Now().Add(waitTimeout))
			if mt, msg, err := ws.ReadMessage(); err == nil {
				t.Errorf("got frame type %d % x after a text frame, want the connection closed [MQTT-6.0.0-1]", mt, msg)
			} else if strings.Contains(err.Error(), "timeout") {
				t.Errorf("connection still open after a text frame [MQTT-6.0.0-1]")
			}
		}},
		{"websocket_garbage", func(t *testing.T) {
			ws := dialWS(t, g.WSURL())
			if err := ws.WriteMessage(websocket.BinaryMessage, []byte{0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}); err != nil {
				t.Fatal(err)
			}
			_ = ws.SetReadDeadline(time.Now().Add(waitTimeout))
			if mt, msg, err := ws.ReadMessage(); err == nil {
				t.Errorf("got frame type %d % x after garbage, want the connection closed", mt, msg)
			} else if strings.Contains(err.Error(), "timeout") {
				t.Errorf("websocket connection still open after garbage")
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Failures inside the subtest must be reported on its own t.
			h.t, h.pub.t, h.sub.t = t, t, t
			tc.run(t)
			h.check(tc.name)
		})
	}
}

// dialWS opens a WebSocket to the broker with the "mqtt" subprotocol.
func dialWS(t testing.TB, url string) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: waitTimeout}
	ws, resp, err := d.Dial(url, http.Header{})
	if err != nil {
		t.Fatalf("websocket dial %s: %v", url, err)
	}
	if resp.Body != nil {
		resp.Body.Close()
	}
	// [MQTT-6.0.0-4] the server selects the "mqtt" subprotocol.
	if ws.Subprotocol() != "mqtt" {
		t.Errorf("websocket subprotocol %q, want mqtt [MQTT-6.0.0-4]", ws.Subprotocol())
	}
	t.Cleanup(func() { ws.Close() })
	return ws
}

// TestSubackFailureCode subscribes to invalid filters among valid ones:
// each invalid one gets 0x80, the others their granted QoS, in order.
func TestSubackFailureCode(t *testing.T) {
	t.Parallel()
	g := testutil.Start(t, "")
	r := connected(t, g)
	r.send(&codec.Subscribe{PacketID: 7, Subscriptions: []codec.Subscription{
		{Filter: "suback/a", QoS: 1},
		{Filter: "a/#/b", QoS: 0}, // # not last [MQTT-4.7.1-2]
		{Filter: "other/+", QoS: 2},
		{Filter: "a/b#", QoS: 1}, // # not a whole level [MQTT-4.7.1-2]
		{Filter: "a+/b", QoS: 2}, // + not a whole level [MQTT-4.7.1-3]
	}})
	p, err := r.read()
	if err != nil {
		t.Fatalf("no SUBACK for a SUBSCRIBE with invalid filters (the broker closed the connection?): %v", err)
	}
	ack, ok := p.(*codec.Suback)
	if !ok {
		t.Fatalf("got %s, want SUBACK [MQTT-3.8.4-1]", p.Type())
	}
	if ack.PacketID != 7 {
		t.Errorf("SUBACK packet id %d, want 7 [MQTT-3.8.4-2]", ack.PacketID)
	}
	// [MQTT-3.8.4-5], [MQTT-3.9.3-1] one code per filter, in order;
	// 0x80 for failures [MQTT-3.9.3-2].
	if want := []byte{1, 0x80, 2, 0x80, 0x80}; !bytes.Equal(ack.ReasonCodes, want) {
		t.Errorf("SUBACK return codes % x, want % x [MQTT-3.8.4-5] [MQTT-3.9.3-1] [MQTT-3.9.3-2]", ack.ReasonCodes, want)
	}

	// The valid subscriptions hold and the connection stays usable.
	pub, _ := connectPaho(t, g.MQTTURL(), uniqueID("subackpub"), nil)
	pub.publish("suback/a", 2, false, "one")
	pub.publish("other/b", 2, false, "two")
	for _, want := range []struct {
		topic string
		qos   byte
	}{{"suback/a", 1}, {"other/b", 2}} {
		p := r.expect("PUBLISH on " + want.topic)
		m, ok := p.(*codec.Publish)
		if !ok || m.Topic != want.topic || m.QoS != want.qos {
			t.Fatalf("got %#v, want PUBLISH %s at QoS %d", p, want.topic, want.qos)
		}
		if m.QoS == 1 {
			r.send(&codec.Ack{Kind: codec.TypePuback, PacketID: m.PacketID})
		} else {
			r.send(&codec.Ack{Kind: codec.TypePubrec, PacketID: m.PacketID})
			if rel, ok := r.expect("PUBREL").(*codec.Ack); !ok || rel.Kind != codec.TypePubrel || rel.PacketID != m.PacketID {
				t.Fatalf("got %#v, want PUBREL %d", rel, m.PacketID)
			}
			r.send(&codec.Ack{Kind: codec.TypePubcomp, PacketID: m.PacketID})
		}
	}
	r.send(&codec.Pingreq{})
	if p := r.expect("PINGRESP"); p.Type() != codec.TypePingresp {
		t.Fatalf("got %s, want PINGRESP", p.Type())
	}
}
