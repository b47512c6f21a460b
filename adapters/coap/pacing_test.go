package coap_test

// Pacing (issue 14): an MQTT publisher's QoS 0 messages to a CoAP
// observer. The observer is a raw client under coap.notify_type con, so
// the test decides when the endpoint's queue drains: each notification
// waits for the client's ACK.

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"

	"github.com/iotgw/iotgw/internal/testutil"
)

// paceSoft is coap.max_pending_qos0 in these tests.
const paceSoft = 4

// pacedGateway runs a whole gateway configured by yaml (internal/testutil)
// and returns it as the CoAP tests' gateway.
func pacedGateway(t *testing.T, yaml string) *gateway {
	t.Helper()
	tg := testutil.Start(t, fmt.Sprintf("coap:\n  max_pending_qos0: %d\n", paceSoft)+yaml)
	return &gateway{t: t, b: tg.Broker, coap: tg.CoAP, mqttURL: tg.MQTTURL(), addr: tg.CoAPAddr()}
}

// flood writes n QoS 0 publications "0".."n-1" (padded to size bytes)
// on topic at the MQTT listener in one burst (testutil.Flood).
func (g *gateway) flood(topic string, n, size int) (wait func()) {
	g.t.Helper()
	return testutil.Flood(g.t, strings.TrimPrefix(g.mqttURL, "tcp://"), topic, n, size)
}

// routed returns how many publications the core took in since base.
func (g *gateway) routed(base uint64) uint64 { return g.b.Stats().MessagesReceived.Load() - base }

// readAll acknowledges and collects notifications until done says the
// count is complete; a notification is counted once (retransmissions
// repeat its message id), and each must come after the previous one.
func readAll(t *testing.T, rc *rawClient, done func(got int) bool) int {
	t.Helper()
	seen := map[int32]bool{}
	last := -1
	deadline := time.Now().Add(waitTimeout)
	for !done(len(seen)) {
		if time.Now().After(deadline) {
			t.Fatalf("%d notifications, then nothing", len(seen))
		}
		m, ok := rc.recv(20 * time.Millisecond)
		if !ok {
			continue
		}
		if m.Type == message.Confirmable {
			rc.reply(message.Acknowledgement, m.MessageID)
		}
		if seen[m.MessageID] {
			continue
		}
		seen[m.MessageID] = true
		i, err := strconv.Atoi(strings.TrimSpace(string(m.Payload)))
		if err != nil || i <= last {
			t.Fatalf("notification %q after %d", m.Payload, last)
		}
		last = i
	}
	return len(seen)
}

// TestPaceObserverThatReads: under backpressure a QoS 0 flood to an
// observer that acknowledges its notifications loses nothing: the
// publisher is held while the observer's queue is past
// coap.max_pending_qos0, and goes on as it drains.
func TestPaceObserverThatReads(t *testing.T) {
	g := pacedGateway(t, "coap:\n  notify_type: con\n")
	rc := g.raw(t)
	rc.observe([]byte{9}, 0, "/ps/pace", "qos=0")
	base := g.b.Stats().MessagesReceived.Load()
	const n = 200
	wait := g.flood("pace", n, 0)
	// The first notification is not acknowledged yet: the publisher
	// fills the queue up to the bound and is held there.
	testutil.Eventually(t, waitTimeout, func() bool { return g.routed(base) >= paceSoft }, "queue at its bound")
	if r := g.routed(base); r > paceSoft+1 {
		t.Fatalf("%d publications routed while the observer held %d: the publisher was not held", r, paceSoft)
	}
	got := readAll(t, rc, func(got int) bool { return got == n })
	wait()
	st := g.b.Stats()
	if d, to := st.DroppedQoS0.Load(), st.BackpressureTimeouts.Load(); got != n || d != 0 || to != 0 {
		t.Fatalf("got %d of %d, dropped %d, backpressure timeouts %d", got, n, d, to)
	}
}

// TestPaceBounds: with drop_new nobody is held and QoS 0 beyond
// coap.max_pending_qos0 is dropped; under backpressure an observer that
// acknowledges nothing holds its publisher at most
// session.backpressure_timeout per publication, and what goes beyond
// twice the bound is dropped. Once the observer reads again it gets the
// notifications kept, and every publication is either notified or
// counted. (One more may be kept: the notification in flight.)
func TestPaceBounds(t *testing.T) {
	for _, tc := range testutil.PaceBounds(paceSoft) {
		t.Run(tc.Name, func(t *testing.T) {
			g := pacedGateway(t, "coap:\n  notify_type: con\n"+tc.YAML)
			rc := g.raw(t)
			rc.observe([]byte{9}, 0, "/ps/pace", "qos=0")
			base := g.b.Stats().MessagesReceived.Load()
			const n = 40
			wait := g.flood("pace", n, 0)
			testutil.Eventually(t, waitTimeout, func() bool { return g.routed(base) == n }, "every publication routed")
			wait()
			st := g.b.Stats()
			testutil.Eventually(t, waitTimeout, func() bool { return st.DroppedQoS0.Load() >= uint64(n-tc.Kept-1) }, "drops counted")
			if held := st.BackpressureTimeouts.Load() > 0; held != tc.Held {
				t.Fatalf("publisher held: %v, want %v", held, tc.Held)
			}
			got := readAll(t, rc, func(got int) bool { return uint64(got)+st.DroppedQoS0.Load() == n })
			if got > tc.Kept+1 {
				t.Fatalf("%d notifications kept, beyond %d", got, tc.Kept+1)
			}
		})
	}
}

// TestPaceNON: under the default notify_type QoS 0 goes out as NON. A
// small one is sent inline, under the subscriber's session lock, so the
// queue does not build however many publishers there are: each pays its
// datagram's send. One that needs block-wise transfer goes through the
// writer and go-coap, far slower than a publisher's burst: under
// backpressure the publisher is paced and nothing is lost in the gateway
// (the kernel may still drop datagrams the observer reads too late; they
// are only logged); with drop_new nearly all of the burst is dropped, and
// counted.
func TestPaceNON(t *testing.T) {
	for _, tc := range []struct {
		name  string
		yaml  string
		size  int
		drops bool
	}{
		{"inline", "", 0, false},
		{"blockwise", "coap:\n  block_size: 16\n", 64, false},
		{"blockwise-drop_new", "coap:\n  block_size: 16\nsession:\n  queue_full_policy: drop_new\n", 64, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := pacedGateway(t, tc.yaml)
			rc := g.raw(t)
			rc.observe([]byte{9}, 0, "/ps/pace", "qos=0")
			base := g.b.Stats().MessagesReceived.Load()
			sent0 := g.notifications()
			const n = 2000
			received := rc.count()
			wait := g.flood("pace", n, tc.size)
			testutil.Eventually(t, waitTimeout, func() bool { return g.routed(base) == n }, "every publication routed")
			wait()
			st := g.b.Stats()
			testutil.Eventually(t, waitTimeout, func() bool {
				return g.notifications()-sent0+st.DroppedQoS0.Load() == n
			}, "every publication notified or counted")
			if d := st.DroppedQoS0.Load(); (d > 0) != tc.drops {
				t.Fatalf("dropped %d of %d", d, n)
			}
			t.Logf("dropped %d; the observer read %d of %d datagrams", st.DroppedQoS0.Load(), <-received, n)
		})
	}
}

// count reads datagrams in the background until none came for a while,
// then sends how many it read.
func (rc *rawClient) count() <-chan int {
	_ = rc.conn.SetReadBuffer(4 << 20)
	received := make(chan int, 1)
	go func() {
		buf := make([]byte, 2048)
		got := 0
		for {
			_ = rc.conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			if _, err := rc.conn.Read(buf); err != nil {
				received <- got
				return
			}
			got++
		}
	}()
	return received
}
