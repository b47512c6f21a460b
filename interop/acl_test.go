package interop

// One set of access rules (acl.rules) across every protocol: each client
// is refused in its protocol's own way, and nothing refused reaches a
// subscriber. The refusals are read with each protocol's client library
// (raw frames for STOMP, whose ERROR go-stomp does not show), the
// deliveries with the drivers.

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	paho3 "github.com/eclipse/paho.mqtt.golang"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/iotgw/iotgw/adapters/mqttsn/codec"
)

// aclRules deny publishing below secret/ and subscribing below private/
// to everyone, publishing below acl/nostomp/ to STOMP clients only, and
// publishing at QoS 2 below acl/noqos2/; everything else is allowed.
const aclRules = `
acl:
  default: allow
  rules:
    - {permission: deny, action: publish, topic: "secret/#"}
    - {permission: deny, action: subscribe, topic: "private/#"}
    - {permission: deny, action: publish, topic: "acl/nostomp/#", protocol: stomp}
    - {permission: deny, action: publish, topic: "acl/noqos2/#", qos: [2]}
`

// TestACLAcrossProtocols: with aclRules, an MQTT 3.1.1, MQTT 5, MQTT-SN,
// CoAP and STOMP client each publishes to secret/ and subscribes to
// private/:
//
//   - MQTT 3.1.1: PUBACK (3.1.1 cannot say no), the message dropped;
//     SUBACK 0x80;
//   - MQTT 5: PUBACK 0x87 (Not authorized); SUBACK 0x80, as Mosquitto
//     answers an access rule's refusal;
//   - MQTT-SN: PUBACK and SUBACK with return code 0x03 ("not supported":
//     1.2 has no "not authorized");
//   - CoAP: 4.03 Forbidden to the POST and to the observation (GET with
//     Observe);
//   - STOMP: an ERROR frame with message "not authorized" naming the
//     frame's receipt, then the connection closes;
//
// and a watcher subscribed to secret/# gets nothing (fences), nor does a
// refused subscriber get what is then published below private/. The
// protocol rule refuses STOMP only; the QoS rule refuses QoS 2 only, for
// every protocol.
func TestACLAcrossProtocols(t *testing.T) {
	e := startEnv(t, aclRules)
	watch := dialPaho5(t, e.gw.MQTTAddr(), uniqueID("acl-watch"), nil)
	watch.Subscribe(t, "secret/#", 1)
	watch.Subscribe(t, "acl/#", 1)
	pub := dialPaho5(t, e.gw.MQTTAddr(), uniqueID("acl-pub"), nil)
	// allowed collects what the watcher must get: the publications the
	// rules let through.
	var allowed []want
	allow := func(topic, payload string) {
		allowed = append(allowed, want{topic: topic, payload: []byte(payload), qos: 1, retain: 0})
	}
	// refusedSubGetsNothing publishes below the refused filter, then on
	// an allowed topic c subscribed to: c gets only the latter.
	refusedSubGetsNothing := func(t *testing.T, c client, name string) {
		t.Helper()
		fenceTopic := "fence/" + name
		c.Subscribe(t, fenceTopic, 1)
		pub.Publish(t, msg{Topic: "private/" + name + "/x", Payload: []byte("not for a refused subscriber"), QoS: 1})
		fence(t, pub, c, fenceTopic, 1)
	}

	t.Run("mqtt311", func(t *testing.T) {
		c := dialPaho3(t, e.gw.MQTTURL(), uniqueID("acl-mqtt311"), nil)
		tok := c.c.Publish("secret/mqtt311", 1, false, "denied")
		if !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
			t.Fatalf("publish: no PUBACK (%v): 3.1.1 acknowledges a refused publication", tok.Error())
		}
		st := c.c.Subscribe("private/mqtt311/#", 1, nil)
		if !st.WaitTimeout(waitTimeout) {
			t.Fatal("subscribe: no SUBACK")
		}
		if rc := st.(*paho3.SubscribeToken).Result()["private/mqtt311/#"]; rc != 0x80 {
			t.Fatalf("SUBACK 0x%02X, want 0x80", rc)
		}
		refusedSubGetsNothing(t, c, "mqtt311")
	})

	t.Run("mqtt5", func(t *testing.T) {
		c := dialPaho5(t, e.gw.MQTTAddr(), uniqueID("acl-mqtt5"), nil)
		if rc := paho5PublishReason(t, c, "secret/mqtt5", 1); rc != 0x87 {
			t.Fatalf("PUBACK 0x%02X, want 0x87", rc)
		}
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		sa, _ := c.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "private/mqtt5/#", QoS: 1}}})
		if sa == nil || len(sa.Reasons) != 1 || sa.Reasons[0] != 0x80 {
			t.Fatalf("SUBACK %+v, want reason 0x80", sa)
		}
		refusedSubGetsNothing(t, c, "mqtt5")
		// Rules for another protocol do not apply; the QoS rule refuses
		// QoS 2 (PUBREC 0x87) and lets QoS 1 through.
		if rc := paho5PublishReason(t, c, "acl/nostomp/mqtt5", 1); rc != 0 {
			t.Fatalf("publish to acl/nostomp/ from MQTT: 0x%02X", rc)
		}
		allow("acl/nostomp/mqtt5", "payload")
		if rc := paho5PublishReason(t, c, "acl/noqos2/mqtt5", 2); rc != 0x87 {
			t.Fatalf("QoS 2 to acl/noqos2/: PUBREC 0x%02X, want 0x87", rc)
		}
		if rc := paho5PublishReason(t, c, "acl/noqos2/mqtt5", 1); rc != 0 {
			t.Fatalf("QoS 1 to acl/noqos2/: 0x%02X", rc)
		}
		allow("acl/noqos2/mqtt5", "payload")
	})

	t.Run("mqttsn", func(t *testing.T) {
		sc := dialSN(t, e.gw.MQTTSNAddr(), uniqueID("acl-sn"), nil, 300)
		snPublishCode := func(topic string, qos byte) codec.ReturnCode {
			t.Helper()
			id := sc.topicID(t, topic)
			msgID := sc.c.NextID()
			sc.c.Send(&codec.Publish{Flags: codec.Flags{QoS: qos, TopicIDType: codec.TopicNormal}, TopicID: id, MsgID: msgID,
				Data: []byte("payload")})
			if qos == 2 {
				// A refused QoS 2 PUBLISH is answered by a PUBACK with
				// the code (§6.7), an accepted one by PUBREC.
				m := sc.c.Recv()
				if rec, ok := m.(*codec.MsgIDOnly); ok && rec.Kind == codec.TypePubrec {
					sc.c.Send(&codec.MsgIDOnly{Kind: codec.TypePubrel, MsgID: msgID})
					sc.c.Expect(codec.TypePubcomp)
					return codec.Accepted
				}
				ack, ok := m.(*codec.Puback)
				if !ok {
					t.Fatalf("QoS 2 PUBLISH answered by %s", m.Type())
				}
				return ack.Code
			}
			return sc.c.Expect(codec.TypePuback).(*codec.Puback).Code
		}
		if rc := snPublishCode("secret/mqttsn", 1); rc != codec.NotSupported {
			t.Fatalf("PUBACK code 0x%02X, want 0x03", rc)
		}
		sc.c.Send(&codec.Subscribe{Kind: codec.TypeSubscribe, Flags: codec.Flags{QoS: 1, TopicIDType: codec.TopicNormal},
			MsgID: sc.c.NextID(), TopicName: "private/mqttsn/#"})
		sc.c.ExpectCode(codec.TypeSuback, codec.NotSupported)
		refusedSubGetsNothing(t, sc, "mqttsn")
		if rc := snPublishCode("acl/noqos2/mqttsn", 2); rc != codec.NotSupported {
			t.Fatalf("QoS 2 to acl/noqos2/: code 0x%02X, want 0x03", rc)
		}
		if rc := snPublishCode("acl/noqos2/mqttsn", 1); rc != codec.Accepted {
			t.Fatalf("QoS 1 to acl/noqos2/: code 0x%02X", rc)
		}
		allow("acl/noqos2/mqttsn", "payload")
	})

	t.Run("coap", func(t *testing.T) {
		c := dialCoAP(t, e.coap)
		if code := coapPostCode(t, c, "secret/coap", "qos=1"); code != codes.Forbidden {
			t.Fatalf("POST: %v, want 4.03", code)
		}
		// go-coap's Observe hides a refused registration's code in an
		// error string: the registration (GET, Observe 0) is sent as a
		// plain request to read it.
		ctx, cancel := coapCtx()
		defer cancel()
		req, err := c.cc.NewGetRequest(ctx, psPath("private/coap/#"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.cc.ReleaseMessage(req)
		req.SetObserve(0)
		resp, err := c.cc.Do(req)
		if err != nil {
			t.Fatalf("observe: %v", err)
		}
		if resp.Code() != codes.Forbidden {
			t.Fatalf("observe: %v, want 4.03", resp.Code())
		}
		c.cc.ReleaseMessage(resp)
		refusedSubGetsNothing(t, c, "coap")
		if code := coapPostCode(t, c, "acl/nostomp/coap", "qos=1"); code != codes.Changed {
			t.Fatalf("POST to acl/nostomp/ from CoAP: %v", code)
		}
		allow("acl/nostomp/coap", "payload")
		if code := coapPostCode(t, c, "acl/noqos2/coap", "qos=2"); code != codes.Forbidden {
			t.Fatalf("QoS 2 POST to acl/noqos2/: %v, want 4.03", code)
		}
		if code := coapPostCode(t, c, "acl/noqos2/coap", "qos=1"); code != codes.Changed {
			t.Fatalf("QoS 1 POST to acl/noqos2/: %v", code)
		}
		allow("acl/noqos2/coap", "payload")
	})

	t.Run("stomp", func(t *testing.T) {
		addr := e.gw.STOMPAddr()
		refusedWith := func(f string) {
			t.Helper()
			s := dialRawSTOMP(t, addr)
			s.send(t, f)
			cmd, h := s.read(t)
			if cmd != "ERROR" || h["message"] != "not authorized" || h["receipt-id"] != "r1" {
				t.Fatalf("%q: %s %v, want ERROR message:not authorized receipt-id:r1", strings.SplitN(f, "\n", 2)[0], cmd, h)
			}
			s.closed(t)
		}
		refusedWith("SEND\ndestination:secret/stomp\nreceipt:r1\n\ndenied")
		refusedWith("SUBSCRIBE\ndestination:private/stomp/#\nid:0\nreceipt:r1\n\n")
		// The protocol rule refuses STOMP (MQTT and CoAP went through
		// above); the QoS rule refuses qos:2 and lets qos:1 through.
		refusedWith("SEND\ndestination:acl/nostomp/stomp\nreceipt:r1\n\ndenied")
		refusedWith("SEND\ndestination:acl/noqos2/stomp\nqos:2\nreceipt:r1\n\ndenied")
		s := dialRawSTOMP(t, addr)
		s.send(t, "SEND\ndestination:acl/noqos2/stomp\nqos:1\nreceipt:r2\n\npayload")
		if cmd, h := s.read(t); cmd != "RECEIPT" || h["receipt-id"] != "r2" {
			t.Fatalf("qos:1 to acl/noqos2/: %s %v, want RECEIPT", cmd, h)
		}
		allow("acl/noqos2/stomp", "payload")
	})

	// Everything allowed arrived, and nothing refused (secret/..., the
	// QoS 2 and STOMP publications below acl/) before the fence.
	expectAll(t, watch, allowed...)
	fence(t, pub, watch, "acl/fence", 1)
}

// paho5PublishReason publishes at qos and returns the PUBACK's (QoS 1) or
// PUBREC's (QoS 2) reason code.
func paho5PublishReason(t *testing.T, c *paho5Client, topic string, qos byte) byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	r, err := c.c.Publish(ctx, &paho.Publish{Topic: topic, QoS: qos, Payload: []byte("payload")})
	if r == nil {
		t.Fatalf("publish %s at QoS %d: no acknowledgement: %v", topic, qos, err)
	}
	return r.ReasonCode
}

// coapPostCode posts "payload" to topic with the query and returns the
// response code.
func coapPostCode(t *testing.T, c *coapClient, topic, query string) codes.Code {
	t.Helper()
	ctx, cancel := coapCtx()
	defer cancel()
	resp, err := c.cc.Post(ctx, psPath(topic), message.TextPlain, strings.NewReader("payload"),
		message.Option{ID: message.URIQuery, Value: []byte(query)})
	if err != nil {
		t.Fatalf("POST %s: %v", topic, err)
	}
	return resp.Code()
}

// rawSTOMP is a STOMP 1.2 connection spoken frame by frame, to read the
// ERROR frames client libraries turn into bare errors.
type rawSTOMP struct {
	nc net.Conn
	r  *bufio.Reader
}

func dialRawSTOMP(t *testing.T, addr string) *rawSTOMP {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(waitTimeout))
	s := &rawSTOMP{nc: nc, r: bufio.NewReader(nc)}
	s.send(t, "CONNECT\naccept-version:1.2\nhost:iotgw\nheart-beat:0,0\n\n")
	if cmd, h := s.read(t); cmd != "CONNECTED" {
		t.Fatalf("CONNECT: %s %v", cmd, h)
	}
	return s
}

// send writes a frame (command, headers, blank line, body) and its NUL.
func (s *rawSTOMP) send(t *testing.T, f string) {
	t.Helper()
	if _, err := s.nc.Write([]byte(f + "\x00")); err != nil {
		t.Fatalf("stomp write: %v", err)
	}
}

// read returns the next frame's command and headers (the first of a
// repeated one, as STOMP 1.2 says).
func (s *rawSTOMP) read(t *testing.T) (string, map[string]string) {
	t.Helper()
	f, err := s.r.ReadString(0)
	if err != nil {
		t.Fatalf("stomp read: %v", err)
	}
	head, _, _ := strings.Cut(strings.TrimLeft(f, "\r\n"), "\n\n")
	lines := strings.Split(head, "\n")
	h := map[string]string{}
	for _, l := range lines[1:] {
		if k, v, ok := strings.Cut(l, ":"); ok {
			if _, seen := h[k]; !seen {
				h[k] = v
			}
		}
	}
	return lines[0], h
}

// closed checks that the gateway closed the connection after the ERROR.
func (s *rawSTOMP) closed(t *testing.T) {
	t.Helper()
	b, err := s.r.ReadByte()
	var ne net.Error
	switch {
	case err == nil:
		t.Fatalf("stomp: data after ERROR (%q), want the connection closed", b)
	case errors.As(err, &ne) && ne.Timeout():
		t.Fatal("stomp: the connection stayed open after ERROR")
	}
}
