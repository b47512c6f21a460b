package mqtt_test

// Publish/subscribe through the whole gateway with paho (a client nobody
// here wrote), over TCP and over WebSocket alike.

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/iotgw/iotgw/internal/testutil"
)

// pubSubCase is one scenario run on every transport, each run with a
// gateway of its own.
type pubSubCase struct {
	name string
	yaml string
	run  func(t *testing.T, g *testutil.Gateway, url string)
}

func TestPahoPubSub(t *testing.T) {
	t.Parallel()
	cases := []pubSubCase{
		{name: "qos_matrix", run: testQoSMatrix},
		{name: "wildcards", yaml: "sys:\n  interval: 100ms\n", run: testWildcards},
		{name: "retained", run: testRetained},
	}
	for _, tr := range transports {
		for _, tc := range cases {
			t.Run(tr.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				g := testutil.Start(t, tc.yaml)
				tc.run(t, g, tr.url(g))
			})
		}
	}
}

// testQoSMatrix publishes at QoS 0, 1 and 2 to subscriptions of QoS 0, 1
// and 2: each delivery has the lower of the two.
func testQoSMatrix(t *testing.T, g *testutil.Gateway, url string) {
	sub, _ := connectPaho(t, url, uniqueID("qsub"), nil)
	pub, _ := connectPaho(t, url, uniqueID("qpub"), nil)
	for sq := byte(0); sq <= 2; sq++ {
		sub.subscribe(fmt.Sprintf("qos/sub%d", sq), sq)
	}
	for pq := byte(0); pq <= 2; pq++ {
		for sq := byte(0); sq <= 2; sq++ {
			pub.publish(fmt.Sprintf("qos/sub%d", sq), pq, false, fmt.Sprintf("pub%d-sub%d", pq, sq))
		}
	}
	pub.publish("qos/sub1", 1, false, "END")
	got := sub.until("END")
	seen := map[string]received{}
	for _, m := range got {
		if _, dup := seen[m.Payload]; dup {
			t.Errorf("duplicate delivery %v", m)
		}
		seen[m.Payload] = m
	}
	for pq := byte(0); pq <= 2; pq++ {
		for sq := byte(0); sq <= 2; sq++ {
			p := fmt.Sprintf("pub%d-sub%d", pq, sq)
			m, ok := seen[p]
			if !ok {
				t.Errorf("published at QoS %d, subscribed at QoS %d: not delivered (got %s)", pq, sq, describe(got))
				continue
			}
			// [MQTT-3.8.4-6] delivered QoS = min(published QoS, granted QoS).
			if want := min(pq, sq); m.QoS != want {
				t.Errorf("published at QoS %d, subscribed at QoS %d: delivered at QoS %d, want %d [MQTT-3.8.4-6]", pq, sq, m.QoS, want)
			}
			// [MQTT-3.3.1-9] a live delivery has RETAIN 0.
			if m.Retained {
				t.Errorf("%v: retain flag set on a non-retained message [MQTT-3.3.1-9]", m)
			}
		}
	}
}

// testWildcards checks + and # (including #'s parent level) and that
// topics starting with $ are matched by no filter starting with a wildcard.
func testWildcards(t *testing.T, g *testutil.Gateway, url string) {
	type subscriber struct {
		filter string
		want   []string
		c      *pahoClient
	}
	subs := []*subscriber{
		{filter: "sport/tennis/+", want: []string{"sport/tennis/player1"}},
		// "sport/#" also matches "sport" itself (MQTT 3.1.1 section 4.7.1.2).
		{filter: "sport/#", want: []string{"sport", "sport/tennis", "sport/tennis/player1",
			"sport/tennis/player1/ranking", "sport/badminton/player1"}},
		{filter: "+/tennis/#", want: []string{"sport/tennis", "sport/tennis/player1", "sport/tennis/player1/ranking"}},
		// [MQTT-4.7.2-1] neither "#" nor "+" matches a topic beginning with $.
		{filter: "#", want: []string{"sport", "sport/tennis", "sport/tennis/player1",
			"sport/tennis/player1/ranking", "sport/badminton/player1", "a/x", "/finance"}},
		{filter: "+", want: []string{"sport"}},
		{filter: "+/x", want: []string{"a/x"}},
		{filter: "$app/#", want: []string{"$app", "$app/x", "$app/sport/tennis/player1"}},
		{filter: "$app/+/tennis/#", want: []string{"$app/sport/tennis/player1"}},
	}
	for i, s := range subs {
		s.c, _ = connectPaho(t, url, uniqueID(fmt.Sprintf("wsub%d", i)), nil)
		s.c.subscribe(s.filter, 1)
	}
	// The broker's own $SYS tree (published every 100ms here): a "$SYS/#"
	// subscriber gets it; the "#" subscriber must not. Once a live (not
	// retained) $SYS message has reached "$SYS/#", one had been routed
	// while "#" was subscribed, ahead of everything published below.
	sys, _ := connectPaho(t, url, uniqueID("syssub"), nil)
	sys.subscribe("$SYS/#", 0)
	for {
		m := sys.next()
		if !strings.HasPrefix(m.Topic, "$SYS/") {
			t.Fatalf("$SYS/# delivered %v", m)
		}
		if !m.Retained {
			break
		}
	}

	pub, _ := connectPaho(t, url, uniqueID("wpub"), nil)
	for _, topic := range []string{"sport", "sport/tennis", "sport/tennis/player1",
		"sport/tennis/player1/ranking", "sport/badminton/player1", "a/x", "/finance",
		"$app", "$app/x", "$app/sport/tennis/player1"} {
		pub.publish(topic, 1, false, "to "+topic)
	}
	// One marker per subscriber shape, published after everything else.
	for _, topic := range []string{"sport/tennis/end", "end", "end/x", "$app/end", "$app/end/tennis"} {
		pub.publish(topic, 1, false, "END")
	}
	for _, s := range subs {
		got := s.c.until("END")
		var topics []string
		for _, m := range got {
			topics = append(topics, m.Topic)
			if m.Payload != "to "+m.Topic {
				t.Errorf("%s: payload %q on topic %q", s.filter, m.Payload, m.Topic)
			}
		}
		slices.Sort(topics)
		want := slices.Clone(s.want)
		slices.Sort(want)
		if !slices.Equal(topics, want) {
			t.Errorf("filter %q received %q, want %q [MQTT-4.7.1-2] [MQTT-4.7.1-3] [MQTT-4.7.2-1]", s.filter, topics, want)
		}
	}
}

// testRetained checks that retained messages are stored, sent to new
// subscriptions with RETAIN 1, replaced, and deleted by an empty payload,
// while live deliveries carry RETAIN 0.
func testRetained(t *testing.T, g *testutil.Gateway, url string) {
	pub, _ := connectPaho(t, url, uniqueID("rpub"), nil)
	live, _ := connectPaho(t, url, uniqueID("rlive"), nil)
	live.subscribe("ret/#", 2)

	// A retained marker on a topic of its own: subscribing to it after
	// "ret/#" queues it behind every retained message "ret/#" matched.
	pub.publish("mark/ret", 1, true, "MARK")

	// retainedNow subscribes a fresh client and returns the retained
	// messages it is sent for "ret/#".
	retainedNow := func(step string) map[string]received {
		t.Helper()
		c, _ := connectPaho(t, url, uniqueID("rsub-"+step), nil)
		c.subscribe("ret/#", 2)
		c.subscribe("mark/ret", 1)
		got := map[string]received{}
		for _, m := range c.until("MARK") {
			if _, dup := got[m.Topic]; dup {
				t.Errorf("%s: two retained messages for %s", step, m.Topic)
			}
			got[m.Topic] = m
			// [MQTT-3.3.1-8] RETAIN 1 on messages sent for a new subscription.
			if !m.Retained {
				t.Errorf("%s: %v sent for a new subscription without RETAIN [MQTT-3.3.1-8]", step, m)
			}
		}
		c.Disconnect(50)
		return got
	}
	// expectLive checks the established subscription's copy of a publication.
	expectLive := func(topic, payload string) {
		t.Helper()
		m := live.next()
		if m.Topic != topic || m.Payload != payload {
			t.Fatalf("live subscriber got %v, want %s %q", m, topic, payload)
		}
		// [MQTT-3.3.1-9] RETAIN 0 on deliveries to an established subscription.
		if m.Retained {
			t.Errorf("live subscriber got %v with RETAIN set [MQTT-3.3.1-9]", m)
		}
	}

	pub.publish("ret/a", 1, true, "v1")
	expectLive("ret/a", "v1")
	pub.publish("ret/b/c", 2, true, "b1")
	expectLive("ret/b/c", "b1")
	pub.publish("ret/n", 1, false, "not retained")
	expectLive("ret/n", "not retained")

	got := retainedNow("stored")
	// [MQTT-3.3.1-5] stored; [MQTT-3.3.1-6] sent to a new matching
	// subscription; [MQTT-3.3.1-12] RETAIN 0 messages are not stored.
	if len(got) != 2 || got["ret/a"].Payload != "v1" || got["ret/b/c"].Payload != "b1" {
		t.Errorf("retained after first publications: %v, want ret/a=v1 and ret/b/c=b1 [MQTT-3.3.1-5] [MQTT-3.3.1-6] [MQTT-3.3.1-12]", got)
	}
	if m := got["ret/b/c"]; m.QoS != 2 {
		t.Errorf("retained QoS 2 message sent to a QoS 2 subscription at QoS %d [MQTT-3.8.4-6]", m.QoS)
	}

	// A QoS 0 retained publication replaces the stored one too [MQTT-3.3.1-7].
	pub.publish("ret/a", 0, true, "v2")
	expectLive("ret/a", "v2")
	got = retainedNow("replaced")
	if len(got) != 2 || got["ret/a"].Payload != "v2" || got["ret/b/c"].Payload != "b1" {
		t.Errorf("retained after replacing ret/a: %v, want ret/a=v2 and ret/b/c=b1 [MQTT-3.3.1-5] [MQTT-3.3.1-7]", got)
	}
	if m := got["ret/a"]; m.QoS != 0 {
		t.Errorf("retained QoS 0 message sent at QoS %d [MQTT-3.8.4-6]", m.QoS)
	}

	// An empty retained payload is delivered as usual and deletes the
	// retained message [MQTT-3.3.1-10], [MQTT-3.3.1-11].
	pub.publish("ret/a", 1, true, "")
	expectLive("ret/a", "")
	got = retainedNow("deleted")
	if len(got) != 1 || got["ret/b/c"].Payload != "b1" {
		t.Errorf("retained after deleting ret/a: %v, want only ret/b/c=b1 [MQTT-3.3.1-10] [MQTT-3.3.1-11]", got)
	}
}
