package interop

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"testing"

	"github.com/go-stomp/stomp/v3"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/iotgw/iotgw/adapters/mqttsn/codec"
	"github.com/iotgw/iotgw/adapters/mqttsn/sntest"
	"github.com/iotgw/iotgw/internal/testutil"
)

// snPredefinedID is a predefined MQTT-SN topic id of the mapping tests'
// gateway, for topic snPredefinedTopic.
const (
	snPredefinedID    = 7
	snPredefinedTopic = "map/sn/predefined"
)

// TestMapping proves the rows of docs/interop.md that the matrix does not:
// defaults, the mapping of fields one side lacks, and what is dropped.
// Each subtest is named after its row.
func TestMapping(t *testing.T) {
	e := startEnv(t, "mqttsn:\n  predefined:\n    - {id: 7, topic: map/sn/predefined}\n")

	t.Run("stomp-default-qos", func(t *testing.T) {
		// A SEND without a qos header is stomp.default_qos (1).
		m5 := dialPaho5(t, e.gw.MQTTAddr(), uniqueID("m5"), nil)
		m5.Subscribe(t, "map/stomp/default", 2)
		st := dialSTOMP(t, e.gw.STOMPAddr(), "", uniqueID("st"))
		if err := st.c.Send("map/stomp/default", "", []byte("no qos header"), stomp.SendOpt.Receipt); err != nil {
			t.Fatal(err)
		}
		expectAll(t, m5, want{topic: "map/stomp/default", payload: []byte("no qos header"), qos: 1, retain: 0})
	})

	t.Run("stomp-reply-to-not-a-topic", func(t *testing.T) {
		// A reply-to that is no MQTT topic name stays a user property.
		m5 := dialPaho5(t, e.gw.MQTTAddr(), uniqueID("m5"), nil)
		m5.Subscribe(t, "map/stomp/replyto", 1)
		st := dialSTOMP(t, e.gw.STOMPAddr(), "", uniqueID("st"))
		st.Publish(t, msg{Topic: "map/stomp/replyto", Payload: []byte("x"), QoS: 1, ResponseTopic: "replies/#"})
		expectAll(t, m5, want{topic: "map/stomp/replyto", payload: []byte("x"), qos: 1, retain: 0,
			check: func(t testing.TB, d delivery) {
				if d.ResponseTopic != "" || len(d.UserProps) != 1 || d.UserProps[0] != [2]string{"reply-to", "replies/#"} {
					t.Errorf("response topic %q, user properties %v; want none and [reply-to replies/#]", d.ResponseTopic, d.UserProps)
				}
			}})
	})

	t.Run("mqtt5-binary-correlation-to-stomp", func(t *testing.T) {
		// Correlation data that is not UTF-8 cannot be a STOMP header: it
		// is left out, the message still arrives.
		st := dialSTOMP(t, e.gw.STOMPAddr(), "", uniqueID("st"))
		st.Subscribe(t, "map/m5/corr", 1)
		m5 := dialPaho5(t, e.gw.MQTTAddr(), uniqueID("m5"), nil)
		m5.Publish(t, msg{Topic: "map/m5/corr", Payload: []byte("y"), QoS: 1, Correlation: []byte{0xff, 0x00, 0xfe}})
		expectAll(t, st, want{topic: "map/m5/corr", payload: []byte("y"), qos: 1, retain: 0,
			check: func(t testing.TB, d delivery) {
				if _, ok := d.Headers["correlation-id"]; ok {
					t.Errorf("correlation-id header %q for binary correlation data", d.Headers["correlation-id"])
				}
			}})
	})

	t.Run("mqtt5-reserved-user-properties-to-stomp", func(t *testing.T) {
		// User properties named like the headers the adapter writes are not
		// copied; the others are, in order.
		st := dialSTOMP(t, e.gw.STOMPAddr(), "", uniqueID("st"))
		st.Subscribe(t, "map/m5/reserved", 1)
		m5 := dialPaho5(t, e.gw.MQTTAddr(), uniqueID("m5"), nil)
		m5.Publish(t, msg{Topic: "map/m5/reserved", Payload: []byte("z"), QoS: 1, UserProps: [][2]string{
			{"destination", "elsewhere"}, {"subscription", "9"}, {"message-id", "1"}, {"content-length", "0"},
			{"ack", "x"}, {"retain", "true"}, {"kept", "1"}, {"reply-to", "r/t"}}})
		expectAll(t, st, want{topic: "map/m5/reserved", payload: []byte("z"), qos: 1, retain: 0,
			check: func(t testing.TB, d delivery) {
				if d.Headers["destination"] != "map/m5/reserved" || d.Headers["kept"] != "1" || d.Headers["retain"] != "" ||
					d.ResponseTopic != "r/t" {
					t.Errorf("headers %v", d.Headers)
				}
			}})
	})

	t.Run("mqtt5-to-mqtt311-drops-properties", func(t *testing.T) {
		m3 := dialPaho3(t, e.gw.MQTTURL(), uniqueID("m3"), nil)
		m3.Subscribe(t, "map/m5/v3", 1)
		m5 := dialPaho5(t, e.gw.MQTTAddr(), uniqueID("m5"), nil)
		p := binaryPayload(300)
		m5.Publish(t, msg{Topic: "map/m5/v3", Payload: p, QoS: 1, ContentType: "application/json",
			UserProps: [][2]string{{"a", "b"}}, ResponseTopic: "r", Correlation: []byte("c"), ExpirySeconds: 60})
		expectAll(t, m3, want{topic: "map/m5/v3", payload: p, qos: 1, retain: 0})
	})

	t.Run("overlapping-subscriptions", func(t *testing.T) {
		// Two matching subscriptions of one client: MQTT and MQTT-SN get
		// one delivery [MQTT-3.3.4-2] (the core merges them), STOMP and
		// CoAP one per subscription or observation, each of which the
		// client asked for separately.
		for _, s := range e.protos {
			t.Run(s.name, func(t *testing.T) {
				base := "map/overlap/" + s.name
				sub := s.dial(t, e, uniqueID("overlap-"+s.name), nil)
				sub.Subscribe(t, base+"/#", 1)
				sub.Subscribe(t, base+"/x", 1)
				pub := dialPaho5(t, e.gw.MQTTAddr(), uniqueID("m5"), nil)
				pub.Publish(t, msg{Topic: base + "/x", Payload: []byte("both match"), QoS: 1})
				w := want{topic: base + "/x", payload: []byte("both match"), qos: 1, retain: 0}
				ws := []want{w}
				if s.name == "stomp" || s.name == "stompws" || s.name == "coap" {
					ws = append(ws, w)
				}
				expectAll(t, sub, ws...)
				fence(t, pub, sub, base+"/fence", 1)
			})
		}
	})

	t.Run("mqttsn-sleeping-subscriber", func(t *testing.T) {
		// A sleeping MQTT-SN client (§6.14) misses nothing published by
		// the other protocols meanwhile, QoS 0 included: it all arrives,
		// REGISTERed first, when a PINGREQ wakes it.
		sn := dialSN(t, e.gw.MQTTSNAddr(), uniqueID("sleeper"), nil, 300)
		sn.Subscribe(t, "map/sleep/#", 1)
		sn.c.Send(&codec.Disconnect{HasDuration: true, Duration: 300})
		sn.c.Expect(codec.TypeDisconnect)
		var ws []want
		for _, p := range e.protos {
			if p.name == "mqttsn" {
				continue
			}
			c := p.dial(t, e, uniqueID("wake-"+p.name), nil)
			for _, q := range []int{0, 1} {
				m := msg{Topic: "map/sleep/" + p.name, Payload: []byte(fmt.Sprintf("while asleep, QoS %d", q)), QoS: q}
				c.Publish(t, m)
				ws = append(ws, want{topic: m.Topic, payload: m.Payload, qos: q, retain: 0})
			}
		}
		sn.c.Send(&codec.Pingreq{ClientID: sn.c.ClientID})
		expectAll(t, sn, ws...)
	})

	if e.coap == "" {
		return
	}

	t.Run("coap-unregistered-content-format", func(t *testing.T) {
		// A Content-Format number without a registered media type travels
		// as the user property coap-content-format, and back to CoAP.
		m5 := dialPaho5(t, e.gw.MQTTAddr(), uniqueID("m5"), nil)
		m5.Subscribe(t, "map/coap/cf", 1)
		obs := dialCoAP(t, e.coap)
		obs.Subscribe(t, "map/coap/cf", 1)
		c := dialCoAP(t, e.coap)
		coapPost(t, c, "/ps/map/coap/cf", message.MediaType(65000), []byte("cf"), message.Confirmable)
		expectAll(t, m5, want{topic: "map/coap/cf", payload: []byte("cf"), qos: 1, retain: 0,
			check: func(t testing.TB, d delivery) {
				if d.ContentType != "" || len(d.UserProps) != 1 || d.UserProps[0] != [2]string{"coap-content-format", "65000"} {
					t.Errorf("content type %q, user properties %v", d.ContentType, d.UserProps)
				}
			}})
		expectAll(t, obs, want{topic: "map/coap/cf", payload: []byte("cf"), qos: 1, retain: retainUnknown,
			check: func(t testing.TB, d delivery) {
				if d.ContentType != "cf:65000" {
					t.Errorf("Content-Format %q, want 65000", d.ContentType)
				}
			}})
	})

	t.Run("coap-text-plain-payload-format", func(t *testing.T) {
		// Content-Format 0 is text/plain;charset=utf-8 with the UTF-8
		// payload format indicator.
		m5 := dialPaho5(t, e.gw.MQTTAddr(), uniqueID("m5"), nil)
		m5.Subscribe(t, "map/coap/text", 1)
		c := dialCoAP(t, e.coap)
		coapPost(t, c, "/ps/map/coap/text", message.TextPlain, []byte("21.5 °C"), message.Confirmable)
		expectAll(t, m5, want{topic: "map/coap/text", payload: []byte("21.5 °C"), qos: 1, retain: 0,
			check: func(t testing.TB, d delivery) {
				if d.ContentType != "text/plain;charset=utf-8" || d.PayloadFormat != 1 {
					t.Errorf("content type %q, payload format %d", d.ContentType, d.PayloadFormat)
				}
			}})
	})

	t.Run("mqtt5-unregistered-content-type-to-coap", func(t *testing.T) {
		// A content type without a Content-Format number is dropped for
		// CoAP (still a STOMP content-type).
		obs := dialCoAP(t, e.coap)
		obs.Subscribe(t, "map/m5/ct", 1)
		st := dialSTOMP(t, e.gw.STOMPAddr(), "", uniqueID("st"))
		st.Subscribe(t, "map/m5/ct", 1)
		m5 := dialPaho5(t, e.gw.MQTTAddr(), uniqueID("m5"), nil)
		m5.Publish(t, msg{Topic: "map/m5/ct", Payload: []byte("ct"), QoS: 1, ContentType: "application/x-iotgw"})
		none, custom := "", "application/x-iotgw"
		expectAll(t, obs, want{topic: "map/m5/ct", payload: []byte("ct"), qos: 1, retain: retainUnknown, ct: &none})
		expectAll(t, st, want{topic: "map/m5/ct", payload: []byte("ct"), qos: 1, retain: 0, ct: &custom})
	})

	t.Run("expiry-mqtt5-coap", func(t *testing.T) {
		// MQTT 5 message expiry ↔ CoAP Max-Age (notifications) and the
		// expiry query (publish).
		obs := dialCoAP(t, e.coap)
		obs.Subscribe(t, "map/exp/#", 1)
		m5 := dialPaho5(t, e.gw.MQTTAddr(), uniqueID("m5"), nil)
		m5.Subscribe(t, "map/exp/#", 1)
		m5.Publish(t, msg{Topic: "map/exp/m5", Payload: []byte("e1"), QoS: 1, ExpirySeconds: 600})
		c := dialCoAP(t, e.coap)
		c.Publish(t, msg{Topic: "map/exp/coap", Payload: []byte("e2"), QoS: 1, ExpirySeconds: 120})
		upTo := func(secs int64) func(t testing.TB, d delivery) {
			return func(t testing.TB, d delivery) {
				if !d.HasExpiry || d.ExpiryRaw < 1 || d.ExpiryRaw > secs {
					t.Errorf("expiry present %v, %d s, want 1..%d", d.HasExpiry, d.ExpiryRaw, secs)
				}
			}
		}
		expectAll(t, obs,
			want{topic: "map/exp/m5", payload: []byte("e1"), qos: 1, retain: retainUnknown, check: upTo(600)},
			want{topic: "map/exp/coap", payload: []byte("e2"), qos: 1, retain: retainUnknown, check: upTo(120)})
		expectAll(t, m5,
			want{topic: "map/exp/m5", payload: []byte("e1"), qos: 1, retain: 0, check: upTo(600)},
			want{topic: "map/exp/coap", payload: []byte("e2"), qos: 1, retain: 0, check: upTo(120)})
	})

	t.Run("coap-non-with-qos-query", func(t *testing.T) {
		// The qos query overrides the message type's default QoS.
		m3 := dialPaho3(t, e.gw.MQTTURL(), uniqueID("m3"), nil)
		m3.Subscribe(t, "map/coap/non", 2)
		c := dialCoAP(t, e.coap)
		coapPost(t, c, "/ps/map/coap/non", message.TextPlain, []byte("non q1"), message.NonConfirmable, "qos=1")
		coapPost(t, c, "/ps/map/coap/non", message.TextPlain, []byte("con q0"), message.Confirmable, "qos=0")
		expectAll(t, m3,
			want{topic: "map/coap/non", payload: []byte("non q1"), qos: 1, retain: 0},
			want{topic: "map/coap/non", payload: []byte("con q0"), qos: 0, retain: 0})
	})

	t.Run("coap-get-retained", func(t *testing.T) {
		// A plain GET on /ps/{topic} reads the retained message, with its
		// Content-Format; 4.04 when there is none.
		m5 := dialPaho5(t, e.gw.MQTTAddr(), uniqueID("m5"), nil)
		m5.Publish(t, msg{Topic: "map/coap/get", Payload: []byte(`{"on":true}`), QoS: 1, Retain: true,
			ContentType: "application/json"})
		c := dialCoAP(t, e.coap)
		ctx, cancel := context.WithTimeout(context.Background(), coapMaxTransmitWait)
		defer cancel()
		for _, tc := range []struct {
			path string
			code codes.Code
			body string
			cf   int
		}{{"/ps/map/coap/get", codes.Content, `{"on":true}`, 50}, {"/ps/map/coap/nothing", codes.NotFound, "", -1}} {
			resp, err := c.cc.Get(ctx, tc.path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := resp.ReadBody()
			cf := -1
			if v, err := resp.ContentFormat(); err == nil {
				cf = int(v)
			}
			code := resp.Code()
			c.cc.ReleaseMessage(resp)
			if code != tc.code || (tc.code == codes.Content && (string(body) != tc.body || cf != tc.cf)) {
				t.Errorf("GET %s: %v %q Content-Format %d, want %v %q %d", tc.path, code, body, cf, tc.code, tc.body, tc.cf)
			}
		}
	})

	t.Run("coap-percent-decoding", func(t *testing.T) {
		// Uri-Path segments are percent-decoded once more by the gateway
		// ("%23" for "#"), so a topic level holding "%25" is published as
		// "%": a literal "%xx" in a topic cannot be published from CoAP.
		m3 := dialPaho3(t, e.gw.MQTTURL(), uniqueID("m3"), nil)
		m3.Subscribe(t, "map/coap/pct/#", 1)
		c := dialCoAP(t, e.coap)
		coapPost(t, c, "/ps/map/coap/pct/100%25", message.TextPlain, []byte("pct"), message.Confirmable)
		expectAll(t, m3, want{topic: "map/coap/pct/100%", payload: []byte("pct"), qos: 1, retain: 0})
	})

	t.Run("mqttsn-qos-minus1-unconnected", func(t *testing.T) {
		// QoS −1 from a client that never connected, on a predefined topic
		// id, is published at QoS 0.
		m3 := dialPaho3(t, e.gw.MQTTURL(), uniqueID("m3"), nil)
		m3.Subscribe(t, snPredefinedTopic, 1)
		ua, err := net.ResolveUDPAddr("udp", e.gw.MQTTSNAddr())
		if err != nil {
			t.Fatal(err)
		}
		sn := sntest.Dial(t, ua)
		sn.Send(&codec.Publish{Flags: codec.Flags{QoS: codec.QoSMinus1, TopicIDType: codec.TopicPredefined},
			TopicID: snPredefinedID, Data: []byte("fire and forget")})
		expectAll(t, m3, want{topic: snPredefinedTopic, payload: []byte("fire and forget"), qos: 0, retain: 0})
	})

	t.Run("mqttsn-predefined-and-short-topics-out", func(t *testing.T) {
		// Deliveries use the predefined id of a topic, or its short name
		// when it has two characters, without REGISTER.
		sn := dialSN(t, e.gw.MQTTSNAddr(), uniqueID("sn"), nil, 300)
		sn.c.Subscribe(codec.TopicPredefined, "", snPredefinedID, 1)
		sn.names[snPredefinedID] = snPredefinedTopic
		sn.Subscribe(t, "ab", 1) // a short name: SUBACK has no id to give
		m5 := dialPaho5(t, e.gw.MQTTAddr(), uniqueID("m5"), nil)
		m5.Publish(t, msg{Topic: snPredefinedTopic, Payload: []byte("pre"), QoS: 1})
		m5.Publish(t, msg{Topic: "ab", Payload: []byte("short"), QoS: 1})
		expectAll(t, sn,
			want{topic: snPredefinedTopic, payload: []byte("pre"), qos: 1, retain: 0},
			want{topic: "ab", payload: []byte("short"), qos: 1, retain: 0})
	})

	t.Run("expired-retained-not-delivered", func(t *testing.T) {
		// A retained message whose expiry passed reaches no late
		// subscriber of any protocol.
		m5 := dialPaho5(t, e.gw.MQTTAddr(), uniqueID("m5"), nil)
		m5.Publish(t, msg{Topic: "map/expired/x", Payload: []byte("stale"), QoS: 1, Retain: true, ExpirySeconds: 1})
		testutil.Eventually(t, waitTimeout, func() bool {
			_, ok := e.gw.Broker.Retained("map/expired/x")
			return !ok
		}, "retained message expiry")
		for _, s := range e.protos {
			late := s.dial(t, e, uniqueID("late-"+s.name), nil)
			late.Subscribe(t, "map/expired/#", 1)
			// The marker is the first thing the subscriber sees: nothing
			// retained came before it.
			fence(t, m5, late, "map/expired/fence-"+s.name, 1)
		}
	})
}

// coapPost posts body with a Content-Format and message type, and query
// options, expecting 2.04 Changed.
func coapPost(t testing.TB, c *coapClient, path string, cf message.MediaType, body []byte, typ message.Type, qs ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	var opts []message.Option
	for _, q := range qs {
		opts = append(opts, message.Option{ID: message.URIQuery, Value: []byte(q)})
	}
	req, err := c.cc.NewPostRequest(ctx, path, cf, bytes.NewReader(body), opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer c.cc.ReleaseMessage(req)
	req.SetType(typ)
	resp, err := c.cc.Do(req)
	if err != nil {
		t.Fatalf("coap post %s: %v", path, err)
	}
	defer c.cc.ReleaseMessage(resp)
	if resp.Code() != codes.Changed {
		t.Fatalf("coap post %s: %v", path, resp.Code())
	}
}
