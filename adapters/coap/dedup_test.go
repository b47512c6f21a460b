package coap_test

// Deduplication is keyed by the sender's message id and endpoint
// [RFC 7252 §4.5]: whatever ids the gateway draws for its own messages
// (NON responses, notifications) must never make a fresh request look like
// a duplicate.

import (
	"strconv"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// nonPublish sends a NON POST with message id mid and returns the reply.
func (rc *rawClient) nonPublish(mid uint16, topic, payload string) message.Message {
	rc.t.Helper()
	m := request(codes.POST, message.NonConfirmable, int32(mid), []byte{byte(mid >> 8), byte(mid), 0x5a}, "/ps/"+topic)
	m.Payload = []byte(payload)
	rc.send(m)
	return rc.mustRecv()
}

// countPayloads reads n MQTT messages and counts them by payload; it fails
// on a message beyond n within a short grace period only via the marker
// check the callers do.
func countPayloads(t *testing.T, sub *pahoClient, n int) map[string]int {
	t.Helper()
	got := make(map[string]int, n)
	for i := 0; i < n; i++ {
		got[sub.next().Payload]++
	}
	return got
}

// TestNONMessageIDSweep: NON publishes whose message ids sweep through the
// ids the gateway draws for its own NON responses are all published, once.
func TestNONMessageIDSweep(t *testing.T) {
	g := startGateway(t, nil)
	sub := g.mqttClient(t)
	sub.subscribe("sweep/#", 0)
	rc := g.raw(t)

	// Learn the gateway's counter from its reply to a first NON publish.
	probeMID := uint16(rc.nextMID())
	first := rc.nonPublish(probeMID, "sweep/probe", "probe")
	if first.Code != codes.Changed || first.Type != message.NonConfirmable {
		t.Fatalf("probe: %v %v", first.Code, first.Type)
	}
	if got := sub.next(); got.Payload != "probe" {
		t.Fatalf("probe: %+v", got)
	}
	const n = 500
	start := uint16(first.MessageID) - n/2 // through the ids already used and those to come
	for i := 0; i < n; i++ {
		if start+uint16(i) == probeMID {
			t.Skip("random first message id fell into the sweep")
		}
	}
	for i := 0; i < n; i++ {
		r := rc.nonPublish(start+uint16(i), "sweep/x", strconv.Itoa(i))
		if r.Code != codes.Changed {
			t.Fatalf("publish %d: %v", i, r.Code)
		}
	}
	got := countPayloads(t, sub, n)
	for i := 0; i < n; i++ {
		if c := got[strconv.Itoa(i)]; c != 1 {
			t.Fatalf("message %d published %d times (%d distinct of %d)", i, c, len(got), n)
		}
	}
	// A repeated NON (same id, same endpoint) is a duplicate: not
	// published again [RFC 7252 §4.5].
	dup := start + n - 1
	m := request(codes.POST, message.NonConfirmable, int32(dup), []byte{1}, "/ps/sweep/x")
	m.Payload = []byte("duplicate")
	rc.send(m)
	rc.send(m)
	marker := rc.nonPublish(start+n, "sweep/x", "marker")
	if marker.Code != codes.Changed {
		t.Fatalf("marker: %v", marker.Code)
	}
	for {
		got := sub.next()
		if got.Payload == "marker" {
			break
		}
		t.Fatalf("unexpected publish %q before the marker", got.Payload)
	}
}

// TestCONAfterNONReplyID: a CON request carrying the message id of one of
// the gateway's earlier NON responses is a new request: it is published and
// answered with its own token.
func TestCONAfterNONReplyID(t *testing.T) {
	g := startGateway(t, nil)
	sub := g.mqttClient(t)
	sub.subscribe("mix/#", 1)
	rc := g.raw(t)
	for i := 0; i < 3; i++ {
		r := rc.nonPublish(uint16(rc.nextMID()), "mix/non", "non"+strconv.Itoa(i))
		if r.Code != codes.Changed {
			t.Fatalf("non %d: %v", i, r.Code)
		}
		con := request(codes.POST, message.Confirmable, r.MessageID, []byte{0xc0, byte(i)}, "/ps/mix/con")
		con.Payload = []byte("con" + strconv.Itoa(i))
		rc.send(con)
		ack := rc.mustRecv()
		if ack.Type != message.Acknowledgement || ack.MessageID != con.MessageID || ack.Code != codes.Changed ||
			string(ack.Token) != string(con.Token) {
			t.Fatalf("con %d: %v %v mid %d token %x", i, ack.Type, ack.Code, ack.MessageID, ack.Token)
		}
		for _, want := range []string{"non" + strconv.Itoa(i), "con" + strconv.Itoa(i)} {
			if got := sub.next(); got.Payload != want {
				t.Fatalf("want %q, got %+v", want, got)
			}
		}
	}
	// Nothing else arrives before a marker (no duplicate of either).
	if r := rc.nonPublish(uint16(rc.nextMID()), "mix/non", "marker"); r.Code != codes.Changed {
		t.Fatalf("marker: %v", r.Code)
	}
	if got := sub.next(); got.Payload != "marker" {
		t.Fatalf("unexpected %+v", got)
	}
}

// TestRequestWithNotificationID: a request of the client's that carries
// the message id of the CON notification in flight is served, and does
// not acknowledge the notification: only an Acknowledgement or Reset
// with that id does [RFC 7252 §4.4]; the two directions have separate id
// spaces. So the notification is retransmitted, with its own message id
// [RFC 7252 §4.2], until the client acknowledges it.
func TestRequestWithNotificationID(t *testing.T) {
	g := startGateway(t, nil) // ACK_TIMEOUT 2 s: no retransmission in between
	sub := g.mqttClient(t)
	sub.subscribe("nid/req", 0)
	rc := g.raw(t)
	token := []byte{7, 7}
	rc.observe(token, 0, "/ps/nid/obs", "qos=1")
	pub := g.mqttClient(t)
	pub.publish("nid/obs", 1, false, "n1")
	first := rc.mustRecv()
	if first.Type != message.Confirmable || string(first.Payload) != "n1" {
		t.Fatalf("notification: %v %q", first.Type, first.Payload)
	}
	r := rc.nonPublish(uint16(first.MessageID), "nid/req", "req")
	for r.Code != codes.Changed {
		// the resent notification may come first
		if string(r.Payload) != "n1" {
			t.Fatalf("publish: %v %q", r.Code, r.Payload)
		}
		r = rc.mustRecv()
	}
	if got := sub.next(); got.Payload != "req" {
		t.Fatalf("request not served: %+v", got)
	}
	// Still unacknowledged: the notification is retransmitted as it was.
	n := rc.mustRecv()
	if string(n.Payload) != "n1" || n.Type != message.Confirmable || n.MessageID != first.MessageID {
		t.Fatalf("retransmitted notification: %v %q mid %d (first %d)", n.Type, n.Payload, n.MessageID, first.MessageID)
	}
	rc.reply(message.Acknowledgement, n.MessageID)
	// Acknowledged now: the next message is a new notification.
	pub.publish("nid/obs", 1, false, "n2")
	if n2 := rc.mustRecv(); string(n2.Payload) != "n2" || n2.MessageID == first.MessageID {
		t.Fatalf("next notification: %v %q mid %d", n2.Type, n2.Payload, n2.MessageID)
	}
}

// TestBlock1PiggybackedAcks: every block of a CON block-wise publish is
// answered by a piggybacked ACK carrying its message id (2.31 Continue,
// then 2.04) [RFC 7959 §2.3, RFC 7252 §5.2.1]; a retransmitted block gets
// the same answer and is not taken twice.
func TestBlock1PiggybackedAcks(t *testing.T) {
	g := startGateway(t, nil)
	sub := g.mqttClient(t)
	sub.subscribe("b1/big", 1)
	rc := g.raw(t)
	body := make([]byte, 3*1024)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	for num := 0; num < 3; num++ {
		m := request(codes.PUT, message.Confirmable, rc.nextMID(), []byte{1, 2}, "/ps/b1/big", "qos=1")
		more := 1
		if num == 2 {
			more = 0
		}
		m.Options = m.Options.Add(message.Option{ID: message.Block1, Value: encodeUint(uint32(num<<4 | more<<3 | 6))})
		m.Payload = body[num*1024 : (num+1)*1024]
		want := codes.Continue
		if more == 0 {
			want = codes.Changed
		}
		for try := 0; try < 2; try++ {
			rc.send(m)
			r := rc.mustRecv()
			if r.Type != message.Acknowledgement || r.MessageID != m.MessageID || r.Code != want || string(r.Token) != string(m.Token) {
				t.Fatalf("block %d try %d: %v %v mid %d (sent %d) token %x", num, try, r.Type, r.Code, r.MessageID, m.MessageID, r.Token)
			}
		}
	}
	if got := sub.next(); got.Payload != string(body) {
		t.Fatalf("got %d bytes", len(got.Payload))
	}
}
