package mqtt_test

// MQTT 5.0 PUBLISH: message expiry, topic aliases in both directions,
// payload format validation, properties passed through untouched, the
// server's Receive Maximum, ACL refusals and $delayed publishing.

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"

	"github.com/iotgw/iotgw/adapters/mqtt/codec"
	"github.com/iotgw/iotgw/internal/testutil"
)

func TestV5Publish(t *testing.T) {
	t.Parallel()

	t.Run("message_expiry_offline_subscriber", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, "")
		id := uniqueID("expsub")
		s := v5Connect(t, g, v5Persistent(id, true, 300), nil)
		s.sub("exp/t", 1)
		_ = s.Disconnect(&paho5.Disconnect{})
		v5WaitConnected(t, g, 0)

		pub := v5Connect(t, g, nil, nil)
		pub.pub(&paho5.Publish{Topic: "exp/t", QoS: 1, Payload: []byte("short"),
			Properties: &paho5.PublishProperties{MessageExpiry: paho5.Uint32(1)}})
		pub.pub(&paho5.Publish{Topic: "exp/t", QoS: 1, Payload: []byte("long"),
			Properties: &paho5.PublishProperties{MessageExpiry: paho5.Uint32(100)}})
		// The broker started both intervals before its PUBACKs: once this
		// sleep is over "short" has expired, whatever the machine's speed.
		time.Sleep(1100 * time.Millisecond)

		s2 := v5Connect(t, g, v5Persistent(id, false, 300), nil)
		if !s2.ack.SessionPresent {
			t.Fatalf("Session Present 0 [MQTT-3.2.2-3]")
		}
		// [MQTT-3.3.2-5] the expired copy is deleted, not delivered; it
		// was queued first, so it would come first.
		m := s2.next()
		if string(m.Payload) != "long" {
			t.Fatalf("first message %q, want %q: an expired message was delivered [MQTT-3.3.2-5]", m.Payload, "long")
		}
		// [MQTT-3.3.2-6] the interval sent is what is left of the 100 s:
		// more than a second has gone by.
		if e := m.Properties.MessageExpiry; e == nil || *e >= 100 || *e == 0 {
			t.Errorf("Message Expiry Interval %v after waiting over a second, want 1..99 [MQTT-3.3.2-6]", e)
		}
		if rest := s2.flush(); len(rest) != 0 {
			t.Errorf("unexpected messages %s [MQTT-3.3.2-5]", v5Payloads(rest))
		}
	})

	t.Run("retained_message_expiry", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, "")
		pub := v5Connect(t, g, nil, nil)
		pub.pub(&paho5.Publish{Topic: "rexp/gone", QoS: 1, Retain: true, Payload: []byte("gone"),
			Properties: &paho5.PublishProperties{MessageExpiry: paho5.Uint32(1)}})
		pub.pub(&paho5.Publish{Topic: "rexp/stay", QoS: 1, Retain: true, Payload: []byte("stay"),
			Properties: &paho5.PublishProperties{MessageExpiry: paho5.Uint32(30)}})
		time.Sleep(1100 * time.Millisecond) // "gone" is past its interval

		s := v5Connect(t, g, nil, nil)
		s.sub("rexp/+", 1)
		got := s.flush()
		// [MQTT-3.3.2-5] an expired retained message is not sent to a new
		// subscriber; the live one is, with RETAIN 1 (3.3.1.3) and its
		// remaining interval [MQTT-3.3.2-6].
		if len(got) != 1 || string(got[0].Payload) != "stay" {
			t.Fatalf("new subscriber got %s, want only the unexpired retained message [MQTT-3.3.2-5]", v5Payloads(got))
		}
		if !got[0].Retain {
			t.Errorf("retained message sent on subscribe without RETAIN (3.3.1.3)")
		}
		if e := got[0].Properties.MessageExpiry; e == nil || *e >= 30 || *e == 0 {
			t.Errorf("retained Message Expiry Interval %v after over a second, want 1..29 [MQTT-3.3.2-6]", e)
		}
	})

	t.Run("topic_alias_from_client", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, "mqtt:\n  topic_alias_maximum: 3\n")
		sub := v5Connect(t, g, nil, nil)
		sub.sub("tac/#", 0)
		r, ack := v5RawConnect(t, g, "tac", codec.Properties{})
		if ack.Props.TopicAliasMaximum != 3 {
			t.Fatalf("CONNACK Topic Alias Maximum %d, want 3", ack.Props.TopicAliasMaximum)
		}
		alias := func(topic string, a uint16, payload string) *codec.Publish {
			return &codec.Publish{Topic: topic, Payload: []byte(payload),
				Props: codec.Properties{Present: codec.PropMask(codec.PropTopicAlias), TopicAlias: a}}
		}
		// [MQTT-3.3.2-12] every alias 1..3 is accepted: set, then use;
		// setting an alias again replaces its topic (3.3.2.3.4).
		r.send(alias("tac/a", 1, "a1"))
		r.send(alias("", 1, "a2"))
		r.send(alias("tac/b", 3, "b1"))
		r.send(alias("", 3, "b2"))
		r.send(alias("tac/c", 1, "c1"))
		r.send(alias("", 1, "c2"))
		r.send(&codec.Publish{Topic: "tac/x", Payload: []byte("end")})
		got := sub.untilPayload("end")
		want := "[tac/a=a1 tac/a=a2 tac/b=b1 tac/b=b2 tac/c=c1 tac/c=c2]"
		if v5Payloads(got) != want {
			t.Errorf("subscriber got %s, want %s [MQTT-3.3.2-12]", v5Payloads(got), want)
		}

		// [MQTT-3.3.2-7] mappings do not outlive the connection.
		r.send(&codec.Disconnect{})
		r.expectClosed("after DISCONNECT")
		r2, _ := v5RawConnect(t, g, "tac", codec.Properties{})
		r2.send(alias("", 1, "stale"))
		// Protocol Error (3.3.2.3.4), or Topic Alias invalid.
		before := r2.expectDisconnectAny("an alias from the previous connection")
		if !(before == codec.ProtocolError || before == codec.TopicAliasInvalid) {
			t.Errorf("unknown alias: DISCONNECT %#x, want 0x82 or 0x94 [MQTT-3.3.2-7]", byte(before))
		}
	})

	t.Run("topic_alias_from_client_refused", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, "mqtt:\n  topic_alias_maximum: 3\n")
		for _, tc := range []struct {
			name  string
			topic string
			alias uint16
			want  []codec.ReasonCode
			rule  string
		}{
			{"above maximum", "tacr/t", 4, []codec.ReasonCode{codec.TopicAliasInvalid}, "[MQTT-3.2.2-17], [MQTT-3.3.2-9] (3.3.2.3.4)"},
			{"zero", "tacr/t", 0, []codec.ReasonCode{codec.TopicAliasInvalid}, "[MQTT-3.3.2-8]"},
			{"unknown", "", 2, []codec.ReasonCode{codec.ProtocolError, codec.TopicAliasInvalid}, "(3.3.2.3.4)"},
		} {
			r, _ := v5RawConnect(t, g, "tacr", codec.Properties{})
			// By hand: the codec refuses to encode alias 0. PUBLISH QoS 0
			// with one property, Topic Alias (0x23).
			body := append(mqttString(tc.topic), 3, 0x23, byte(tc.alias>>8), byte(tc.alias))
			body = append(body, 'x')
			r.write(fixedHeader(0x30, vbi(len(body)), body))
			got := r.expectDisconnectAny(tc.name)
			ok := false
			for _, w := range tc.want {
				ok = ok || got == w
			}
			if !ok {
				t.Errorf("alias %s: DISCONNECT %#x, want one of %v %s", tc.name, byte(got), tc.want, tc.rule)
			}
		}
	})

	t.Run("topic_alias_to_client", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, "")
		id := uniqueID("tao")
		props := codec.Properties{Present: codec.PropMask(codec.PropTopicAliasMaximum, codec.PropSessionExpiry),
			TopicAliasMaximum: 2, SessionExpiry: 60}
		r := v5DialRaw(t, g)
		r.connectOK(&codec.Connect{ClientID: id, CleanStart: true, Props: props})
		r.subscribe(1, codec.Properties{}, codec.Subscription{Filter: "tao/#", QoS: 0})
		noAlias, _ := v5RawConnect(t, g, "tao-none", codec.Properties{})
		noAlias.subscribe(1, codec.Properties{}, codec.Subscription{Filter: "tao/#", QoS: 0})

		pub := v5Connect(t, g, nil, nil)
		topics := []string{"tao/1", "tao/1", "tao/2", "tao/3", "tao/3", "tao/1", "tao/2", "tao/1"}
		for i, tp := range topics {
			pub.publish(tp, 0, false, fmt.Sprint(i))
		}
		aliases := map[uint16]string{}
		aliasOnly := 0
		for i, tp := range topics {
			p := r.nextPublish("aliased delivery")
			if string(p.Payload) != fmt.Sprint(i) {
				t.Fatalf("message %d: payload %q", i, p.Payload)
			}
			if p.Props.Has(codec.PropTopicAlias) {
				a := p.Props.TopicAlias
				// [MQTT-3.3.2-8] never 0; [MQTT-3.1.2-26], [MQTT-3.3.2-11]
				// never above the client's maximum of 2.
				if a == 0 || a > 2 {
					t.Fatalf("message %d: Topic Alias %d, client maximum 2 [MQTT-3.1.2-26]", i, a)
				}
				if p.Topic != "" {
					aliases[a] = p.Topic
				} else {
					aliasOnly++
				}
			}
			// An alias-only PUBLISH resolves through a mapping this
			// connection set earlier [MQTT-3.3.2-7], to the topic that was
			// published [MQTT-3.3.2-3].
			resolved := p.Topic
			if resolved == "" {
				resolved = aliases[p.Props.TopicAlias]
			}
			if resolved != tp {
				t.Fatalf("message %d: resolves to topic %q, want %q [MQTT-3.3.2-3]", i, resolved, tp)
			}
		}
		if aliasOnly == 0 {
			t.Errorf("the broker never sent an alias-only PUBLISH to a client allowing 2 aliases")
		}
		// [MQTT-3.1.2-27] no Topic Alias Maximum: no aliases at all.
		for i := range topics {
			p := noAlias.nextPublish("unaliased delivery")
			if p.Props.Has(codec.PropTopicAlias) || p.Topic != topics[i] {
				t.Fatalf("client without Topic Alias Maximum got topic %q alias %d [MQTT-3.1.2-27]", p.Topic, p.Props.TopicAlias)
			}
		}

		// A new connection starts with no mappings [MQTT-3.3.2-7]: the
		// first PUBLISH of a topic names it.
		r.nc.Close()
		v5WaitConnected(t, g, 2)
		r2 := v5DialRaw(t, g)
		r2.connectOK(&codec.Connect{ClientID: id, CleanStart: false, Props: props})
		pub.publish("tao/1", 0, false, "after reconnect")
		if p := r2.nextPublish("after reconnect"); p.Topic != "tao/1" {
			t.Errorf("first PUBLISH on a new connection has topic %q alias %d, want the topic name [MQTT-3.3.2-7]", p.Topic, p.Props.TopicAlias)
		}
	})

	t.Run("payload_format_invalid", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, "")
		sub := v5Connect(t, g, nil, nil)
		sub.sub("pfi/#", 1)
		pub := v5Connect(t, g, nil, nil)
		utf8 := paho5.Byte(1)
		pr := pub.pub(&paho5.Publish{Topic: "pfi/bad", QoS: 1, Payload: []byte{'o', 0xff, 0xfe, 'k'},
			Properties: &paho5.PublishProperties{PayloadFormat: utf8}})
		// 3.3.2.3.2: a server may check the payload against the format
		// indicator and refuse it with 0x99 (3.4.2.1).
		if pr.ReasonCode != byte(codec.PayloadFormatInvalid) {
			t.Errorf("invalid UTF-8 with Payload Format Indicator 1: PUBACK %#x, want 0x99", pr.ReasonCode)
		}
		pr = pub.pub(&paho5.Publish{Topic: "pfi/good", QoS: 1, Payload: []byte("ünïcödé"),
			Properties: &paho5.PublishProperties{PayloadFormat: utf8}})
		if pr.ReasonCode != 0 {
			t.Errorf("valid UTF-8 with Payload Format Indicator 1: PUBACK %#x, want 0x00", pr.ReasonCode)
		}
		got := sub.flush()
		if len(got) != 1 || got[0].Topic != "pfi/good" {
			t.Fatalf("subscriber got %s, want only pfi/good: a refused message was delivered", v5Payloads(got))
		}
		// [MQTT-3.3.2-4] the indicator reaches subscribers unaltered.
		if f := got[0].Properties.PayloadFormat; f == nil || *f != 1 {
			t.Errorf("Payload Format Indicator %v, want 1 [MQTT-3.3.2-4]", f)
		}
	})

	t.Run("properties_passed_through", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, "")
		sub1 := v5Connect(t, g, nil, nil)
		sub1.sub("props/t", 1)
		sub0 := v5Connect(t, g, nil, nil)
		sub0.sub("props/+", 0)
		pub := v5Connect(t, g, nil, nil)
		user := paho5.UserProperties{{Key: "k", Value: "1"}, {Key: "z", Value: "2"}, {Key: "k", Value: "3"},
			{Key: "k", Value: "1"}, {Key: "ünï", Value: "cödé"}, {Key: "empty", Value: ""}}
		sent := &paho5.PublishProperties{
			ContentType:     "application/json; charset=utf-8",
			ResponseTopic:   "props/reply/42",
			CorrelationData: []byte{0, 1, 2, 0xfe, 0xff},
			PayloadFormat:   paho5.Byte(1),
			User:            user,
		}
		pub.pub(&paho5.Publish{Topic: "props/t", QoS: 1, Retain: true, Payload: []byte(`{"v":1}`), Properties: sent})
		late := v5Connect(t, g, nil, nil)
		late.sub("props/t", 1)
		for _, c := range []struct {
			who string
			m   *paho5.Publish
		}{{"QoS 1 subscriber", sub1.next()}, {"QoS 0 subscriber", sub0.next()}, {"retained copy", late.next()}} {
			p := c.m.Properties
			// [MQTT-3.3.2-20] Content Type, [MQTT-3.3.2-15] Response Topic,
			// [MQTT-3.3.2-16] Correlation Data, [MQTT-3.3.2-4] Payload
			// Format Indicator, all unaltered.
			if p.ContentType != sent.ContentType {
				t.Errorf("%s: Content Type %q, want %q [MQTT-3.3.2-20]", c.who, p.ContentType, sent.ContentType)
			}
			if p.ResponseTopic != sent.ResponseTopic {
				t.Errorf("%s: Response Topic %q, want %q [MQTT-3.3.2-15]", c.who, p.ResponseTopic, sent.ResponseTopic)
			}
			if !bytes.Equal(p.CorrelationData, sent.CorrelationData) {
				t.Errorf("%s: Correlation Data % x, want % x [MQTT-3.3.2-16]", c.who, p.CorrelationData, sent.CorrelationData)
			}
			if p.PayloadFormat == nil || *p.PayloadFormat != 1 {
				t.Errorf("%s: Payload Format Indicator %v, want 1 [MQTT-3.3.2-4]", c.who, p.PayloadFormat)
			}
			// [MQTT-3.3.2-17] every User Property, [MQTT-3.3.2-18] in
			// order, duplicates included.
			if fmt.Sprint(p.User) != fmt.Sprint(user) {
				t.Errorf("%s: User Properties %v, want %v [MQTT-3.3.2-17], [MQTT-3.3.2-18]", c.who, p.User, user)
			}
			if string(c.m.Payload) != `{"v":1}` {
				t.Errorf("%s: payload %q", c.who, c.m.Payload)
			}
		}
	})

	t.Run("server_receive_maximum_exceeded", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, "mqtt:\n  receive_maximum: 2\n")
		qos2 := func(id uint16) *codec.Publish {
			return &codec.Publish{Topic: "rmx/t", QoS: 2, PacketID: id, Payload: []byte("x")}
		}
		// Within the window: two outstanding, one released, a third fits.
		ok, ack := v5RawConnect(t, g, "rmx-ok", codec.Properties{})
		if !ack.Props.Has(codec.PropReceiveMaximum) || ack.Props.ReceiveMaximum != 2 {
			t.Fatalf("CONNACK Receive Maximum %d (present %v), want 2 (3.2.2.3.3)", ack.Props.ReceiveMaximum, ack.Props.Has(codec.PropReceiveMaximum))
		}
		ok.send(qos2(1))
		ok.send(qos2(2))
		for range 2 {
			if a := v5Expect[*codec.Ack](ok, "PUBREC"); a.Kind != codec.TypePubrec || a.ReasonCode != 0 {
				t.Fatalf("got %v %#x, want PUBREC 0x00", a.Kind, byte(a.ReasonCode))
			}
		}
		ok.send(&codec.Ack{Kind: codec.TypePubrel, PacketID: 1})
		if a := v5Expect[*codec.Ack](ok, "PUBCOMP"); a.Kind != codec.TypePubcomp || a.PacketID != 1 {
			t.Fatalf("got %v %d, want PUBCOMP 1", a.Kind, a.PacketID)
		}
		ok.send(qos2(3))
		if a := v5Expect[*codec.Ack](ok, "PUBREC"); a.Kind != codec.TypePubrec || a.PacketID != 3 {
			t.Fatalf("got %v %d, want PUBREC 3: a release must free a slot", a.Kind, a.PacketID)
		}

		// Three unreleased QoS 2 PUBLISH packets against Receive Maximum 2
		// [MQTT-3.3.4-7]: DISCONNECT 0x93 (3.3.4, 4.13).
		bad, _ := v5RawConnect(t, g, "rmx-bad", codec.Properties{})
		bad.send(qos2(1))
		bad.send(qos2(2))
		bad.send(qos2(3))
		before := bad.expectDisconnect(codec.ReceiveMaximumExceeded, "[MQTT-3.3.4-7] (3.3.4)")
		if len(before) != 2 {
			t.Errorf("before the DISCONNECT: %s, want the two PUBRECs", v5Types(before))
		}
	})

	t.Run("acl_publish_refused", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, "acl:\n  rules: [{permission: deny, action: publish, topic: test/nopublish}]\n")
		sub := v5Connect(t, g, nil, nil)
		sub.sub("test/#", 2)
		pub := v5Connect(t, g, nil, nil)
		// 3.4.2.1 / 3.5.2.1: 0x87 Not authorized in PUBACK and PUBREC.
		for _, qos := range []byte{1, 2} {
			pr := pub.pub(&paho5.Publish{Topic: "test/nopublish", QoS: qos, Payload: []byte("denied")})
			if pr.ReasonCode != byte(codec.NotAuthorized) {
				t.Errorf("denied QoS %d publish: reason %#x, want 0x87", qos, pr.ReasonCode)
			}
		}
		pub.publish("test/allowed", 1, false, "allowed")
		got := sub.flush()
		if len(got) != 1 || got[0].Topic != "test/allowed" {
			t.Errorf("subscriber got %s, want only test/allowed", v5Payloads(got))
		}
	})

	t.Run("delayed_publish", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, "")
		sub := v5Connect(t, g, nil, nil)
		sub.sub("dl/#", 1)
		pub := v5Connect(t, g, nil, nil)
		start := time.Now() // before the broker can have scheduled anything
		pub.publish("$delayed/2/dl/t", 1, false, "later")
		pub.publish("dl/t", 1, false, "now")
		// Not before: the plain message published after it comes first ...
		if m := sub.next(); string(m.Payload) != "now" {
			t.Fatalf("first message %s=%q, want the undelayed one", m.Topic, m.Payload)
		}
		// ... and the delayed one arrives on the real topic, no sooner than
		// its 2 s.
		m := sub.next()
		if m.Topic != "dl/t" || string(m.Payload) != "later" {
			t.Fatalf("got %s=%q, want dl/t=later", m.Topic, m.Payload)
		}
		if d := time.Since(start); d < 2*time.Second {
			t.Errorf("$delayed/2 message arrived after %v, before its delay", d)
		}
	})
}
