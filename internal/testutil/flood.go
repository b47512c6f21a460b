package testutil

import (
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/iotgw/iotgw/adapters/mqtt/codec"
)

// FloodTimeout bounds a flood's writes: a gateway that holds the
// publisher longer than this fails the test.
const FloodTimeout = 30 * time.Second

// Flood connects a raw MQTT 3.1.1 client to the MQTT listener at addr and
// writes n QoS 0 PUBLISH packets on topic, payloads "0".."n-1" (padded
// with spaces to size bytes), in one write, in the background: the gateway reads a burst as fast as it can
// route it (a paho client, one packet per write, is often slower than the
// subscriber it floods). Only TCP flow control slows it, that is, the
// gateway not reading because it holds the publisher. The returned wait
// blocks until everything was written and fails the test if it could not
// be.
func Flood(t testing.TB, addr, topic string, n, size int) (wait func()) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, FloodTimeout)
	if err != nil {
		t.Fatalf("flood: %v", err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(FloodTimeout))
	b, err := codec.Append(nil, &codec.Connect{ProtocolLevel: codec.V311, CleanStart: true,
		ClientID: fmt.Sprintf("flood-%p", nc)}, codec.V311)
	if err != nil {
		t.Fatalf("flood: %v", err)
	}
	if _, err := nc.Write(b); err != nil {
		t.Fatalf("flood: CONNECT: %v", err)
	}
	ack := make([]byte, 4) // 3.1.1 CONNACK: 20 02 00 rc
	if _, err := io.ReadFull(nc, ack); err != nil || ack[0] != 0x20 || ack[3] != 0 {
		t.Fatalf("flood: CONNACK % X: %v", ack, err)
	}
	b = b[:0]
	for i := 0; i < n; i++ {
		if b, err = codec.Append(b, &codec.Publish{Topic: topic, Payload: fmt.Appendf(nil, "%-*d", size, i)}, codec.V311); err != nil {
			t.Fatalf("flood: %v", err)
		}
	}
	done := make(chan error, 1)
	go func() {
		_, err := nc.Write(b)
		done <- err
	}()
	return func() {
		t.Helper()
		if err := <-done; err != nil {
			t.Fatalf("flood: %v", err)
		}
	}
}

// PaceBound is one queue-full policy as the adapters' pacing tests see a
// subscriber that stops draining: YAML selects it, Kept is how many QoS 0
// messages the subscriber's sink keeps at most (soft is its
// max_pending_qos0) and Held whether the publisher waits (then for
// session.backpressure_timeout, short here, per publication).
type PaceBound struct {
	Name, YAML string
	Kept       int
	Held       bool
}

// PaceBounds returns the rule for a sink whose soft bound is soft: with
// drop_new nobody waits and the bound is hard; under backpressure
// publishers wait and twice the bound is kept.
func PaceBounds(soft int) []PaceBound {
	return []PaceBound{
		{Name: "drop_new", YAML: "session:\n  queue_full_policy: drop_new\n", Kept: soft},
		{Name: "backpressure", YAML: "session:\n  backpressure_timeout: 20ms\n", Kept: 2 * soft, Held: true},
	}
}
