package mqttsn_test

// Pacing (issue 14): QoS 0 messages to an MQTT-SN subscriber. The test
// decides when the subscriber's queue drains: its first delivery on a
// topic it has no id for waits for the REGACK of the gateway's REGISTER
// (§6.10), and every later delivery waits behind it.

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/iotgw/iotgw/adapters/mqttsn/codec"
	"github.com/iotgw/iotgw/adapters/mqttsn/sntest"
	"github.com/iotgw/iotgw/internal/testutil"
)

// paceSoft is mqttsn.max_pending_qos0 in these tests.
const paceSoft = 4

// pacedGateway runs a whole gateway configured by yaml: MQTT-SN's
// retransmissions are slow enough that a held REGISTER is not repeated
// during a test, let alone given up on.
func pacedGateway(t *testing.T, yaml string) *testutil.Gateway {
	t.Helper()
	return testutil.Start(t, fmt.Sprintf("mqttsn:\n  max_pending_qos0: %d\n  retry_interval: 1m\n  new_session_rate: 0\n", paceSoft)+yaml)
}

// heldSubscriber connects an MQTT-SN client subscribed to pace/+ (and to +,
// for short topic names) at QoS 0.
func heldSubscriber(t *testing.T, g *testutil.Gateway) *sntest.Client {
	t.Helper()
	c := sntest.Dial(t, g.Addr("mqttsn.udp"))
	c.Connect(uniqueID("sn-sub"), true, 0)
	c.Subscribe(codec.TopicNormal, "pace/+", 0, 0)
	c.Subscribe(codec.TopicNormal, "+", 0, 0)
	return c
}

// floodHeld starts a gateway configured by yaml with a held subscriber
// and an MQTT flood of n QoS 0 messages on pace/sn (testutil.Flood) to
// it; the subscriber has the gateway's REGISTER, unanswered. base is the
// core's count of publications before the flood.
func floodHeld(t *testing.T, yaml string, n int) (g *testutil.Gateway, c *sntest.Client, reg *codec.Register, base uint64, wait func()) {
	t.Helper()
	g = pacedGateway(t, yaml)
	c = heldSubscriber(t, g)
	base = g.Broker.Stats().MessagesReceived.Load()
	wait = testutil.Flood(t, g.MQTTAddr(), "pace/sn", n, 0)
	reg = c.Expect(codec.TypeRegister).(*codec.Register)
	return g, c, reg, base, wait
}

// release answers the gateway's REGISTER of topic: the held deliveries flow.
func release(t *testing.T, c *sntest.Client, reg *codec.Register, topic string) {
	t.Helper()
	if reg.TopicName != topic {
		t.Fatalf("REGISTER %+v, want %s", reg, topic)
	}
	c.Send(&codec.Regack{TopicID: reg.TopicID, MsgID: reg.MsgID})
}

// expectSeq receives n PUBLISHes, payloads first..first+n-1 (padding
// trimmed).
func expectSeq(t *testing.T, c *sntest.Client, first, n int) {
	t.Helper()
	for i := first; i < first+n; i++ {
		p := c.Expect(codec.TypePublish).(*codec.Publish)
		if got := strings.TrimSpace(string(p.Data)); got != strconv.Itoa(i) {
			t.Fatalf("PUBLISH %q, want %d", got, i)
		}
	}
}

func routed(g *testutil.Gateway, base uint64) uint64 {
	return g.Broker.Stats().MessagesReceived.Load() - base
}

// TestPaceSubscriberThatReads: under backpressure an MQTT QoS 0 flood to
// an MQTT-SN subscriber loses nothing: the publisher is held while the
// subscriber's queue is at mqttsn.max_pending_qos0 and goes on as it
// drains.
func TestPaceSubscriberThatReads(t *testing.T) {
	const n = 200
	g, c, reg, base, wait := floodHeld(t, "", n)
	st := g.Broker.Stats()
	testutil.Eventually(t, waitTimeout, func() bool { return routed(g, base) >= paceSoft }, "queue at its bound")
	if r := routed(g, base); r > paceSoft {
		t.Fatalf("%d publications routed while the subscriber held %d: the publisher was not held", r, paceSoft)
	}
	release(t, c, reg, "pace/sn")
	expectSeq(t, c, 0, n)
	wait()
	if d, to := st.DroppedQoS0.Load(), st.BackpressureTimeouts.Load(); d != 0 || to != 0 {
		t.Fatalf("dropped %d, backpressure timeouts %d", d, to)
	}
}

// TestPaceBounds: with drop_new nobody is held and QoS 0 beyond
// mqttsn.max_pending_qos0 is dropped; under backpressure a subscriber
// that answers nothing holds its publisher at most
// session.backpressure_timeout per publication, and what goes beyond
// twice the bound is dropped. The drops are counted exactly, and once the
// subscriber answers it gets the messages kept.
func TestPaceBounds(t *testing.T) {
	for _, tc := range testutil.PaceBounds(paceSoft) {
		t.Run(tc.Name, func(t *testing.T) {
			const n = 40
			g, c, reg, base, wait := floodHeld(t, tc.YAML, n)
			st := g.Broker.Stats()
			wait()
			testutil.Eventually(t, waitTimeout, func() bool { return routed(g, base) == n }, "every publication routed")
			testutil.Eventually(t, waitTimeout, func() bool { return st.DroppedQoS0.Load() == uint64(n-tc.Kept) }, "drops counted")
			if held := st.BackpressureTimeouts.Load() > 0; held != tc.Held {
				t.Fatalf("publisher held: %v, want %v", held, tc.Held)
			}
			release(t, c, reg, "pace/sn")
			expectSeq(t, c, 0, tc.Kept)
		})
	}
}

// TestPaceMQTTSNPublishers: an MQTT-SN client cannot be slowed at QoS 0:
// its worker is not held (it answers a PINGREQ at once) and leaves no wait
// behind for a later QoS 1 publication elsewhere. At QoS 1 it waits, in
// its own worker, before its PUBACK. QoS -1 is never held; what goes past
// the subscriber's hard bound is dropped and counted, at every QoS.
func TestPaceMQTTSNPublishers(t *testing.T) {
	// The timeout is the test's witness of a wait: the subscriber never
	// makes room while it is held.
	g := pacedGateway(t, "session:\n  backpressure_timeout: 20ms\n")
	sub := heldSubscriber(t, g)
	st := g.Broker.Stats()
	pub := sntest.Dial(t, g.Addr("mqttsn.udp"))
	pub.Connect(uniqueID("sn-pub"), true, 0)
	id := pub.Register("pace/sn")
	pub.Publish(codec.TopicNormal, id, 0, false, "0")
	reg := sub.Expect(codec.TypeRegister).(*codec.Register)
	for i := 1; i < paceSoft+2; i++ { // past the soft bound
		pub.Publish(codec.TopicNormal, id, 0, false, strconv.Itoa(i))
	}
	pub.Send(&codec.Bare{Kind: codec.TypePingreq})
	pub.Expect(codec.TypePingresp)
	if to := st.BackpressureTimeouts.Load(); to != 0 {
		t.Fatalf("a QoS 0 publisher was held (%d timeouts)", to)
	}
	free := pub.Register("free/x") // no subscriber there
	pub.Publish(codec.TopicNormal, free, 1, false, "free")
	if to := st.BackpressureTimeouts.Load(); to != 0 {
		t.Fatalf("a QoS 1 publication waited for the QoS 0 ones' subscriber (%d timeouts)", to)
	}
	pub.Publish(codec.TopicNormal, id, 1, false, strconv.Itoa(paceSoft+2))
	if to := st.BackpressureTimeouts.Load(); to != 1 {
		t.Fatalf("QoS 1 publication: %d backpressure timeouts, want 1", to)
	}
	// One more fills the subscriber (twice the soft bound); QoS -1
	// beyond is dropped, and counted.
	pub.Publish(codec.TopicNormal, id, 0, false, strconv.Itoa(paceSoft+3))
	pub.Send(&codec.Bare{Kind: codec.TypePingreq}) // routed before the QoS -1 ones
	pub.Expect(codec.TypePingresp)
	anon := sntest.Dial(t, g.Addr("mqttsn.udp"))
	const extra = 3
	for i := 0; i < extra; i++ {
		anon.Send(&codec.Publish{Flags: codec.Flags{QoS: codec.QoSMinus1, TopicIDType: codec.TopicShort},
			TopicID: codec.ShortTopicID("pa"), Data: []byte("x")})
	}
	testutil.Eventually(t, waitTimeout, func() bool { return st.DroppedQoS0.Load() == extra }, "QoS -1 drops counted")
	release(t, sub, reg, "pace/sn")
	expectSeq(t, sub, 0, 2*paceSoft)
	if to := st.BackpressureTimeouts.Load(); to != 1 {
		t.Fatalf("%d backpressure timeouts, want 1", to)
	}
}
