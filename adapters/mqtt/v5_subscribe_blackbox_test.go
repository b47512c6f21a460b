package mqtt_test

// MQTT 5.0 SUBSCRIBE: No Local, Retain As Published, Retain Handling,
// Subscription Identifiers and SUBACK reason codes; shared subscriptions
// ($share and $queue) over MQTT 5 and 3.1.1 clients and their strategies.

import (
	"fmt"
	"slices"
	"testing"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"
	paho3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/iotgw/iotgw/adapters/mqtt/codec"
	"github.com/iotgw/iotgw/internal/testutil"
)

func TestV5Subscribe(t *testing.T) {
	t.Parallel()

	t.Run("no_local", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, "")
		a := v5Connect(t, g, nil, nil)
		sa := a.subscribe(&paho5.Subscribe{Subscriptions: []paho5.SubscribeOptions{{Topic: "nl/t", QoS: 1, NoLocal: true}}})
		if sa.Reasons[0] != 1 {
			t.Fatalf("No Local subscription: reason %#x", sa.Reasons[0])
		}
		b := v5Connect(t, g, nil, nil)
		b.sub("nl/t", 1)
		a.publish("nl/t", 1, false, "from a")
		if m := b.next(); string(m.Payload) != "from a" {
			t.Fatalf("other subscriber got %q, want %q", m.Payload, "from a")
		}
		b.publish("nl/t", 1, false, "from b")
		// [MQTT-3.8.3-3] a's own message is not forwarded to it; it would
		// have been queued before b's.
		if m := a.next(); string(m.Payload) != "from b" {
			t.Errorf("No Local subscriber got %q first, want %q [MQTT-3.8.3-3]", m.Payload, "from b")
		}
		// Without No Local a client does get its own messages.
		if m := b.next(); string(m.Payload) != "from b" {
			t.Errorf("subscriber without No Local got %q, want its own %q", m.Payload, "from b")
		}
	})

	t.Run("retain_as_published", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, "")
		rap1 := v5Connect(t, g, nil, nil)
		rap1.subscribe(&paho5.Subscribe{Subscriptions: []paho5.SubscribeOptions{{Topic: "rap/t", QoS: 1, RetainAsPublished: true}}})
		rap0 := v5Connect(t, g, nil, nil)
		rap0.sub("rap/t", 1)
		pub := v5Connect(t, g, nil, nil)
		pub.publish("rap/t", 1, true, "retained")
		pub.publish("rap/t", 1, false, "plain")
		for _, want := range []struct {
			payload string
			retain  bool
		}{{"retained", true}, {"plain", false}} {
			// [MQTT-3.3.1-13] Retain As Published 1: RETAIN as published.
			if m := rap1.next(); string(m.Payload) != want.payload || m.Retain != want.retain {
				t.Errorf("Retain As Published 1: %q retain %v, want %q retain %v [MQTT-3.3.1-13]", m.Payload, m.Retain, want.payload, want.retain)
			}
			// [MQTT-3.3.1-12] Retain As Published 0: RETAIN 0.
			if m := rap0.next(); string(m.Payload) != want.payload || m.Retain {
				t.Errorf("Retain As Published 0: %q retain %v, want %q retain false [MQTT-3.3.1-12]", m.Payload, m.Retain, want.payload)
			}
		}
		// Retained messages sent because of a new subscription carry
		// RETAIN 1 whatever the option (3.3.1.3).
		late := v5Connect(t, g, nil, nil)
		late.sub("rap/t", 1)
		if m := late.next(); string(m.Payload) != "retained" || !m.Retain {
			t.Errorf("new subscription got %q retain %v, want the retained message with RETAIN 1", m.Payload, m.Retain)
		}
	})

	t.Run("retain_handling", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, "")
		pub := v5Connect(t, g, nil, nil)
		pub.publish("rh/t", 1, true, "kept")
		c := v5Connect(t, g, nil, nil)
		subscribe := func(filter string, rh byte) []*paho5.Publish {
			t.Helper()
			sa := c.subscribe(&paho5.Subscribe{Subscriptions: []paho5.SubscribeOptions{{Topic: filter, QoS: 1, RetainHandling: rh}}})
			if sa.Reasons[0] != 1 {
				t.Fatalf("subscribe %s: reason %#x", filter, sa.Reasons[0])
			}
			return c.flush()
		}
		for _, step := range []struct {
			filter string
			rh     byte
			want   int
			rule   string
		}{
			{"rh/t", 0, 1, "[MQTT-3.3.1-9]"},
			{"rh/t", 0, 1, "[MQTT-3.3.1-9], [MQTT-3.8.4-4] (again on an existing subscription)"},
			{"rh/+", 1, 1, "[MQTT-3.3.1-10] (new subscription)"},
			{"rh/+", 1, 0, "[MQTT-3.3.1-10] (existing subscription)"},
			{"rh/#", 2, 0, "[MQTT-3.3.1-11]"},
		} {
			got := subscribe(step.filter, step.rh)
			if len(got) != step.want {
				t.Errorf("subscribe %s with Retain Handling %d: got %s, want %d retained message(s) %s",
					step.filter, step.rh, v5Payloads(got), step.want, step.rule)
				continue
			}
			if step.want == 1 && (string(got[0].Payload) != "kept" || !got[0].Retain) {
				t.Errorf("subscribe %s: got %q retain %v, want the retained message with RETAIN 1", step.filter, got[0].Payload, got[0].Retain)
			}
		}
	})

	t.Run("subscription_identifiers", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, "")
		r, _ := v5RawConnect(t, g, "sid", codec.Properties{})
		ids := func(id ...uint32) codec.Properties { return codec.Properties{SubscriptionIDs: id} }
		r.subscribe(1, ids(1), codec.Subscription{Filter: "sid/+"})
		r.subscribe(2, ids(2), codec.Subscription{Filter: "sid/#"})
		r.subscribe(3, codec.Properties{}, codec.Subscription{Filter: "sid/x"})
		r.subscribe(4, ids(268435455), codec.Subscription{Filter: "sid/y/+"})
		pub := v5Connect(t, g, nil, nil)
		for _, tc := range []struct {
			topic string
			want  []uint32
		}{
			{"sid/x", []uint32{1, 2}},
			{"sid/y/z", []uint32{2, 268435455}},
			{"sid/y", []uint32{1, 2}},
		} {
			pub.publish(tc.topic, 0, false, tc.topic)
			// The broker may send one copy or one per matching subscription
			// [MQTT-3.3.4-2]; the PINGRESP shows when all have come.
			copies := append([]*codec.Publish{r.nextPublish(tc.topic)}, r.ping()...)
			var got []uint32
			for _, p := range copies {
				if p.Topic != tc.topic {
					t.Fatalf("got %s, want %s", p.Topic, tc.topic)
				}
				got = append(got, p.Props.SubscriptionIDs...)
			}
			// [MQTT-3.3.4-3] the identifiers of every matching subscription
			// that has one are sent: all in a single copy [MQTT-3.3.4-4]
			// (order not significant) or each in its own [MQTT-3.3.4-5].
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("%s: %d copies with Subscription Identifiers %v, want %v [MQTT-3.3.4-3], [MQTT-3.3.4-4], [MQTT-3.3.4-5]",
					tc.topic, len(copies), got, tc.want)
			}
		}
		// A retained message sent for a new subscription carries its
		// identifier too (3.8.2.1.2).
		pub.publish("sidr/t", 1, true, "retained") // stored once PUBACK is in
		r.subscribe(5, ids(9), codec.Subscription{Filter: "sidr/t"})
		if p := r.nextPublish("retained"); !p.Retain || !slices.Equal(p.Props.SubscriptionIDs, []uint32{9}) {
			t.Errorf("retained delivery: RETAIN %v, Subscription Identifiers %v; want RETAIN 1 and [9]", p.Retain, p.Props.SubscriptionIDs)
		}
		// Replacing the subscription without an identifier drops it
		// [MQTT-3.8.4-3].
		r.subscribe(6, codec.Properties{}, codec.Subscription{Filter: "sidr/t", RetainHandling: 2})
		pub.publish("sidr/t", 0, false, "plain")
		if p := r.nextPublish("plain"); len(p.Props.SubscriptionIDs) != 0 {
			t.Errorf("Subscription Identifiers %v after the subscription was replaced without one", p.Props.SubscriptionIDs)
		}
	})

	t.Run("suback_reason_codes", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, `
mqtt:
  shared_subscriptions: false
acl:
  rules: [{permission: deny, action: subscribe, topic: test/nosubscribe}]
`)
		r, _ := v5RawConnect(t, g, "suback", codec.Properties{})
		sa := r.subscribe(1, codec.Properties{},
			codec.Subscription{Filter: "ok/t", QoS: 1},
			codec.Subscription{Filter: "bad/#/x", QoS: 1},
			codec.Subscription{Filter: "bad+/t", QoS: 0},
			codec.Subscription{Filter: "$share/g/ok/t", QoS: 1},
			codec.Subscription{Filter: "test/nosubscribe", QoS: 1},
			codec.Subscription{Filter: "ok/#", QoS: 2})
		// [MQTT-3.9.3-1] one code per filter, in order; [MQTT-3.9.3-2]
		// from the SUBACK table: 0x8F invalid filter, 0x9E shared
		// subscriptions not supported, 0x80 for the access rule.
		want := []byte{1, 0x8F, 0x8F, 0x9E, 0x80, 2}
		if !slices.Equal(sa.ReasonCodes, want) {
			t.Errorf("SUBACK % x, want % x [MQTT-3.9.3-1], [MQTT-3.9.3-2]", sa.ReasonCodes, want)
		}
		// The refused subscription delivers nothing.
		pub := v5Connect(t, g, nil, nil)
		pub.publish("test/nosubscribe", 1, false, "denied")
		pub.publish("ok/marker", 1, false, "marker")
		if p := r.nextPublish("marker"); p.Topic != "ok/marker" {
			t.Errorf("got %s before the marker: a refused subscription delivered", p.Topic)
		}
	})

	t.Run("no_local_on_shared_is_protocol_error", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, "")
		r, _ := v5RawConnect(t, g, "nlshare", codec.Properties{})
		r.send(&codec.Subscribe{PacketID: 1, Subscriptions: []codec.Subscription{{Filter: "$share/g/nl/t", QoS: 1, NoLocal: true}}})
		r.expectDisconnect(codec.ProtocolError, "[MQTT-3.8.3-4]")
	})
}

// v5SharedReceipts counts, per payload, which members received it.
type v5SharedReceipts map[string][]string

// collectShared reads from the members until n deliveries have arrived in
// total, returning who got which payload.
func collectShared(t *testing.T, n int, v5 map[string]*v5Client, v3 map[string]*pahoClient) v5SharedReceipts {
	t.Helper()
	got := v5SharedReceipts{}
	total := 0
	deadline := time.After(waitTimeout)
	for total < n {
		progressed := false
		for name, c := range v5 {
			select {
			case m := <-c.msgs:
				got[string(m.Payload)] = append(got[string(m.Payload)], name)
				total++
				progressed = true
			default:
			}
		}
		for name, c := range v3 {
			select {
			case m := <-c.msgs:
				got[m.Payload] = append(got[m.Payload], name)
				total++
				progressed = true
			default:
			}
		}
		if !progressed {
			select {
			case <-deadline:
				t.Fatalf("shared subscription: %d of %d deliveries after %v: %v", total, n, waitTimeout, got)
			case <-time.After(2 * time.Millisecond):
			}
		}
	}
	return got
}

// perMember inverts receipts: how many messages each member got.
func (r v5SharedReceipts) perMember() map[string]int {
	m := map[string]int{}
	for _, who := range r {
		for _, w := range who {
			m[w]++
		}
	}
	return m
}

// checkOnce checks every payload 0..n-1 reached exactly one member
// (4.8.2: a message goes to only one session of the group).
func (r v5SharedReceipts) checkOnce(t *testing.T, n int) {
	t.Helper()
	for i := range n {
		if who := r[fmt.Sprint(i)]; len(who) != 1 {
			t.Errorf("message %d reached %v, want exactly one member of the group (4.8.2)", i, who)
		}
	}
}

func TestV5Shared(t *testing.T) {
	t.Parallel()

	for _, tc := range []struct{ name, filter string }{
		{"share", "$share/grp/sh/t"},
		{"queue", "$queue/sh/t"},
	} {
		t.Run(tc.name+"_v5_and_v311_round_robin", func(t *testing.T) {
			t.Parallel()
			g := testutil.Start(t, "shared:\n  strategy: round_robin\n")
			a := v5Connect(t, g, nil, nil)
			a.sub(tc.filter, 1)
			b, _ := connectPaho(t, g.MQTTURL(), uniqueID("share311"), nil)
			tok := b.Subscribe(tc.filter, 1, nil)
			wait(t, "MQTT 3.1.1 shared subscribe", tok)
			// paho.mqtt.golang files the result under the filter without
			// its $share/{group}/ or $queue/ prefix.
			if got := tok.(*paho3.SubscribeToken).Result()["sh/t"]; got != 1 {
				t.Fatalf("MQTT 3.1.1 subscribe %s: granted %#x, want QoS 1", tc.filter, got)
			}
			plain := v5Connect(t, g, nil, nil)
			plain.sub("sh/t", 1)
			pub := v5Connect(t, g, nil, nil)
			const n = 10
			for i := range n {
				pub.publish("sh/t", 1, false, fmt.Sprint(i))
			}
			got := collectShared(t, n, map[string]*v5Client{"v5": a}, map[string]*pahoClient{"v311": b})
			got.checkOnce(t, n)
			// round_robin takes the members in turn.
			if per := got.perMember(); per["v5"] != n/2 || per["v311"] != n/2 {
				t.Errorf("round_robin over two members: %v, want %d each", per, n/2)
			}
			// Nothing more reaches either member.
			if extra := a.flush(); len(extra) != 0 {
				t.Errorf("MQTT 5 member got extra %s", v5Payloads(extra))
			}
			b.subscribe("marker/"+b.id, 1)
			pub.publish("marker/"+b.id, 1, false, "marker")
			if extra := b.until("marker"); len(extra) != 0 {
				t.Errorf("MQTT 3.1.1 member got extra %s", describe(extra))
			}
			// A non-shared subscription to the same topic gets every
			// message besides (4.8.2).
			if all := plain.untilPayload(fmt.Sprint(n - 1)); len(all) != n-1 {
				t.Errorf("non-shared subscriber got %s before the last message, want all", v5Payloads(all))
			}
		})
	}

	t.Run("sticky", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, "shared:\n  strategy: sticky\n")
		a := v5Connect(t, g, nil, nil)
		a.sub("$share/st/st/t", 1)
		b := v5Connect(t, g, nil, nil)
		b.sub("$share/st/st/t", 1)
		pub := v5Connect(t, g, nil, nil)
		const n = 10
		for i := range n {
			pub.publish("st/t", 1, false, fmt.Sprint(i))
		}
		got := collectShared(t, n, map[string]*v5Client{"a": a, "b": b}, nil)
		got.checkOnce(t, n)
		// sticky keeps choosing the member it chose first while it is
		// online.
		if per := got.perMember(); per["a"] != n && per["b"] != n {
			t.Errorf("sticky spread messages over members: %v", per)
		}
	})

	t.Run("retained_not_sent", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, "")
		pub := v5Connect(t, g, nil, nil)
		pub.publish("shr/t", 1, true, "retained")
		a := v5Connect(t, g, nil, nil)
		a.sub("$share/g/shr/t", 1)
		// 3.3.1.3, 4.8.2: retained messages are sent for new non-shared
		// subscriptions only.
		if got := a.flush(); len(got) != 0 {
			t.Errorf("shared subscription got retained %s", v5Payloads(got))
		}
		pub.publish("shr/t", 1, false, "live")
		if m := a.next(); string(m.Payload) != "live" || m.Retain {
			t.Errorf("shared member got %q retain %v, want the live message", m.Payload, m.Retain)
		}
	})

	t.Run("member_leaves_qos1_redistributed", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, "shared:\n  strategy: round_robin\n")
		a, _ := v5RawConnect(t, g, "leaver", codec.Properties{})
		a.subscribe(1, codec.Properties{}, codec.Subscription{Filter: "$share/g/lv/t", QoS: 1})
		b := v5Connect(t, g, nil, nil)
		b.sub("$share/g/lv/t", 1)
		pub := v5Connect(t, g, nil, nil)
		for i := range 4 {
			pub.publish("lv/t", 1, false, fmt.Sprint(i))
		}
		// Round robin: two each; a never acknowledges its two.
		unacked := []string{string(a.nextPublish("first").Payload), string(a.nextPublish("second").Payload)}
		seen := map[string]int{}
		for range 2 {
			seen[string(b.next().Payload)]++
		}
		// a's session ends with its connection (expiry 0). 4.8.2: the
		// server SHOULD send its unacknowledged QoS 1 messages to another
		// member of the group.
		a.send(&codec.Disconnect{})
		a.expectClosed("after DISCONNECT")
		for range 2 {
			seen[string(b.next().Payload)]++
		}
		for i := range 4 {
			if seen[fmt.Sprint(i)] != 1 {
				t.Errorf("remaining member got message %d %d times (leaver had %v): %v", i, seen[fmt.Sprint(i)], unacked, seen)
			}
		}
	})

	t.Run("member_leaves_qos2_not_redistributed", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, "shared:\n  strategy: round_robin\n")
		a, _ := v5RawConnect(t, g, "leaver2", codec.Properties{})
		a.subscribe(1, codec.Properties{}, codec.Subscription{Filter: "$share/g/lv2/t", QoS: 2})
		b := v5Connect(t, g, nil, nil)
		b.sub("$share/g/lv2/t", 2)
		pub := v5Connect(t, g, nil, nil)
		// QoS 1, 1, 2, 2: taking turns, each member gets one of each.
		for i, qos := range []byte{1, 1, 2, 2} {
			pub.publish("lv2/t", qos, false, fmt.Sprint(i))
		}
		var q1, q2 string
		for range 2 {
			p := a.nextPublish("leaver's share")
			if p.QoS == 1 {
				q1 = string(p.Payload)
			} else {
				q2 = string(p.Payload)
			}
		}
		if q1 == "" || q2 == "" {
			t.Fatalf("leaver did not get one QoS 1 and one QoS 2 message (%q, %q)", q1, q2)
		}
		b.next()
		b.next()
		// a leaves, its session ending, having received a QoS 2 PUBLISH it
		// never acknowledged: [MQTT-4.8.2-5] that message MUST NOT go to
		// any other subscriber. Its QoS 1 message should (4.8.2), which
		// also shows the broker has handled a's departure.
		a.send(&codec.Disconnect{})
		a.expectClosed("after DISCONNECT")
		m := b.next()
		if string(m.Payload) == q2 {
			t.Fatalf("the QoS 2 message in flight to the departed member went to another member [MQTT-4.8.2-5]")
		}
		if string(m.Payload) != q1 {
			t.Fatalf("remaining member got %q, want the leaver's QoS 1 message %q", m.Payload, q1)
		}
		if rest := b.flush(); len(rest) != 0 {
			t.Errorf("remaining member also got %s; the QoS 2 message in flight to the departed member must not be resent to it [MQTT-4.8.2-5]", v5Payloads(rest))
		}
	})
}
