package coap_test

import (
	"net"
	"sort"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"

	"github.com/iotgw/iotgw/adapters/coap"
	"github.com/iotgw/iotgw/internal/testutil"
)

// observer collects the notifications of one go-coap observation.
type observer struct {
	t testing.TB
	c chan response
}

func newObserver(t testing.TB) *observer { return &observer{t: t, c: make(chan response, 256)} }

func (o *observer) fn(m *pool.Message) { o.c <- copyResponse(m) }

func (o *observer) next() response {
	o.t.Helper()
	select {
	case r := <-o.c:
		return r
	case <-time.After(waitTimeout):
		o.t.Fatal("no notification arrived")
	}
	return response{}
}

// TestObserveExact: the registration answers 2.05 with Observe; each
// matching message is a notification with a higher Observe value, CON for
// QoS 1 and NON for QoS 0, with the message's Content-Format; cancelling
// (GET Observe=1) ends the observation and its session.
func TestObserveExact(t *testing.T) {
	g := startGateway(t, nil)
	base := g.b.SessionCount()
	cc := g.coapClient(t)
	o := newObserver(t)
	obs, err := cc.Observe(ctxTimeout(t), "/ps/obs/a", o.fn, queries("qos=1")...)
	if err != nil {
		t.Fatalf("observe: %v", err)
	}
	reg := o.next()
	if reg.Code != codes.Content || reg.Observe < 0 || reg.Payload != "" {
		t.Fatalf("registration: %+v", reg)
	}
	pub := g.mqttClient(t)
	pub.publish("obs/a", 1, false, "m1")
	pub.publish("obs/a", 0, false, "m0")
	pub.publish("obs/other", 1, false, "no")
	pc := g.coapClient(t)
	if r := post(t, pc, "/ps/obs/a", message.AppJSON, `{"v":2}`, "qos=2"); r.Code != codes.Changed {
		t.Fatalf("coap publish: %v", r.Code)
	}
	n1, n0, n2 := o.next(), o.next(), o.next()
	if n1.Payload != "m1" || n1.Type != message.Confirmable || n1.CF != -1 || n1.Loc != "" {
		t.Fatalf("QoS 1 notification: %+v", n1)
	}
	if n0.Payload != "m0" || n0.Type != message.NonConfirmable {
		t.Fatalf("QoS 0 notification: %+v", n0)
	}
	if n2.Payload != `{"v":2}` || n2.Type != message.Confirmable || n2.CF != int(message.AppJSON) {
		t.Fatalf("CoAP-published notification: %+v", n2)
	}
	if !(reg.Observe < n1.Observe && n1.Observe < n0.Observe && n0.Observe < n2.Observe) {
		t.Fatalf("Observe not increasing: %d %d %d %d", reg.Observe, n1.Observe, n0.Observe, n2.Observe)
	}
	if g.b.SessionCount() != base+2 { // the observer and the MQTT publisher
		t.Fatalf("sessions: %d, want %d", g.b.SessionCount(), base+2)
	}
	if err := obs.Cancel(ctxTimeout(t)); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	testutil.Eventually(t, waitTimeout, func() bool { return g.b.SessionCount() == base+1 }, "observer session ended")
}

// TestObserveWildcard: a wildcard observer learns each notification's
// concrete topic from Location-Path; overlapping observations of one
// client each get the message, routed by subscription identifier.
func TestObserveWildcard(t *testing.T) {
	g := startGateway(t, nil)
	cc := g.coapClient(t)
	plus, hash, exact := newObserver(t), newObserver(t), newObserver(t)
	for _, x := range []struct {
		path string
		o    *observer
	}{{"/ps/w/+/t", plus}, {"/ps/w/#", hash}, {"/ps/w/x/t", exact}} {
		if _, err := cc.Observe(ctxTimeout(t), x.path, x.o.fn); err != nil {
			t.Fatalf("observe %s: %v", x.path, err)
		}
		x.o.next() // registration
	}
	pub := g.mqttClient(t)
	pub.publish("w/x/t", 1, false, "xt")
	pub.publish("w/y", 1, false, "y")
	if r := plus.next(); r.Payload != "xt" || r.Loc != "ps/w/x/t" {
		t.Fatalf("+ observer: %+v", r)
	}
	if r := exact.next(); r.Payload != "xt" || r.Loc != "" {
		t.Fatalf("exact observer: %+v", r)
	}
	got := []response{hash.next(), hash.next()}
	sort.Slice(got, func(i, j int) bool { return got[i].Payload < got[j].Payload })
	if got[0].Payload != "xt" || got[0].Loc != "ps/w/x/t" || got[1].Payload != "y" || got[1].Loc != "ps/w/y" {
		t.Fatalf("# observer: %+v", got)
	}
	select {
	case r := <-plus.c:
		t.Fatalf("+ observer got an extra notification %+v", r)
	default:
	}
}

// rawObserve registers an observation from a raw client and returns the
// registration response.
func (rc *rawClient) observe(token []byte, obs uint32, path string, qs ...string) message.Message {
	rc.t.Helper()
	m := request(codes.GET, message.Confirmable, rc.nextMID(), token, path, qs...)
	m.Options = m.Options.Add(message.Option{ID: message.Observe, Value: encodeUint(obs)})
	rc.send(m)
	r := rc.mustRecv()
	if r.MessageID != m.MessageID || r.Type != message.Acknowledgement {
		rc.t.Fatalf("observe %s: got %v %v mid %d", path, r.Type, r.Code, r.MessageID)
	}
	return r
}

func encodeUint(v uint32) []byte {
	var b []byte
	for ; v > 0; v >>= 8 {
		b = append([]byte{byte(v)}, b...)
	}
	return b
}

// TestObserveRetainedAndDelete: retained messages follow the registration
// response as notifications; DELETE /ps/{filter} ends the observation.
func TestObserveRetainedAndDelete(t *testing.T) {
	g := startGateway(t, nil)
	pub := g.mqttClient(t)
	pub.publish("ret/a", 1, true, "kept-a")
	base := g.b.SessionCount()
	rc := g.raw(t)
	token := []byte{0xab, 0xcd}
	reg := rc.observe(token, 0, "/ps/ret/+", "qos=1")
	if reg.Code != codes.Content || observeOf(reg) < 0 || len(reg.Payload) != 0 {
		t.Fatalf("registration: %v observe=%d", reg.Code, observeOf(reg))
	}
	n := rc.mustRecv()
	if n.Code != codes.Content || string(n.Payload) != "kept-a" || observeOf(n) <= observeOf(reg) ||
		n.Type != message.Confirmable || !bytesEqual(n.Token, token) {
		t.Fatalf("retained notification: %v %v %q observe=%d", n.Type, n.Code, n.Payload, observeOf(n))
	}
	rc.reply(message.Acknowledgement, n.MessageID)
	if g.b.SessionCount() != base+1 {
		t.Fatalf("sessions %d, want %d", g.b.SessionCount(), base+1)
	}
	del := request(codes.DELETE, message.Confirmable, rc.nextMID(), []byte{1}, "/ps/ret/+")
	rc.send(del)
	if r := rc.mustRecv(); r.Code != codes.Deleted {
		t.Fatalf("DELETE: %v", r.Code)
	}
	testutil.Eventually(t, waitTimeout, func() bool { return g.b.SessionCount() == base }, "observation removed")
	// DELETE of nothing is still 2.02 [RFC 7252 §5.8.4].
	rc.send(request(codes.DELETE, message.Confirmable, rc.nextMID(), []byte{2}, "/ps/ret/+"))
	if r := rc.mustRecv(); r.Code != codes.Deleted {
		t.Fatalf("second DELETE: %v", r.Code)
	}
}

func bytesEqual(a, b []byte) bool { return string(a) == string(b) }

// TestCONRetransmission: an unacknowledged CON notification is
// retransmitted with the same message id; its ACK acknowledges the
// delivery, and the next message follows only then (one CON in flight).
func TestCONRetransmission(t *testing.T) {
	g := startGateway(t, func(c *coap.Config) { c.AckTimeout = 100 * time.Millisecond })
	rc := g.raw(t)
	token := []byte{7}
	rc.observe(token, 0, "/ps/rt", "qos=1")
	pub := g.mqttClient(t)
	pub.publish("rt", 1, false, "r1")
	pub.publish("rt", 1, false, "r2")
	first := rc.mustRecv()
	if string(first.Payload) != "r1" || first.Type != message.Confirmable {
		t.Fatalf("first: %v %q", first.Type, first.Payload)
	}
	again := rc.mustRecv()
	if again.MessageID != first.MessageID || string(again.Payload) != "r1" {
		t.Fatalf("expected a retransmission of mid %d, got mid %d %q", first.MessageID, again.MessageID, again.Payload)
	}
	rc.reply(message.Acknowledgement, first.MessageID)
	for {
		n := rc.mustRecv()
		if n.MessageID == first.MessageID {
			continue // a retransmission that crossed the ACK
		}
		if string(n.Payload) != "r2" || observeOf(n) <= observeOf(first) {
			t.Fatalf("second: %q observe %d", n.Payload, observeOf(n))
		}
		rc.reply(message.Acknowledgement, n.MessageID)
		break
	}
}

// TestResetCancels: an RST to a CON or a NON notification removes the
// observation [RFC 7641 §3.6, §4.5]. With the default ACK_TIMEOUT, the
// CON's retransmissions outlast the wait, so only the RST can do it.
func TestResetCancels(t *testing.T) {
	g := startGateway(t, nil)
	pub := g.mqttClient(t)
	base := g.b.SessionCount()
	for _, qos := range []string{"1", "0"} {
		rc := g.raw(t)
		rc.observe([]byte{1, 2, 3}, 0, "/ps/rst/"+qos, "qos="+qos)
		testutil.Eventually(t, waitTimeout, func() bool { return g.b.SessionCount() == base+1 }, "observer session")
		pub.publish("rst/"+qos, 1, false, "x")
		n := rc.mustRecv()
		rc.reply(message.Reset, n.MessageID)
		testutil.Eventually(t, waitTimeout, func() bool { return g.b.SessionCount() == base }, "observation removed after RST (qos "+qos+")")
	}
}

// TestRetryExhaustion: a CON notification never acknowledged is
// retransmitted MAX_RETRANSMIT times, then the observation is removed.
func TestRetryExhaustion(t *testing.T) {
	g := startGateway(t, func(c *coap.Config) {
		c.AckTimeout = 30 * time.Millisecond
		c.MaxRetransmit = 2
	})
	pub := g.mqttClient(t)
	base := g.b.SessionCount()
	rc := g.raw(t)
	rc.observe([]byte{4}, 0, "/ps/rst/silent", "qos=1")
	testutil.Eventually(t, waitTimeout, func() bool { return g.b.SessionCount() == base+1 }, "observer session")
	pub.publish("rst/silent", 1, false, "x")
	n := rc.mustRecv()
	for i := 0; i < 2; i++ {
		if r := rc.mustRecv(); r.MessageID != n.MessageID {
			t.Fatalf("retransmission %d: mid %d, want %d", i, r.MessageID, n.MessageID)
		}
	}
	testutil.Eventually(t, waitTimeout, func() bool { return g.b.SessionCount() == base }, "observation removed after retries")
}

// TestWildcardListener: on a wildcard address (the default ":5683") the
// ACKs of CON notifications still complete them: notifications go out on
// the connection the client's requests came in on.
func TestWildcardListener(t *testing.T) {
	g := startGateway(t, func(c *coap.Config) {
		c.UDP = ":0"
		c.AckTimeout = 50 * time.Millisecond
		c.MaxRetransmit = 1
	})
	_, port, _ := net.SplitHostPort(g.addr)
	g.addr = net.JoinHostPort("127.0.0.1", port)
	cc := g.coapClient(t)
	o := newObserver(t)
	if _, err := cc.Observe(ctxTimeout(t), "/ps/wl", o.fn, queries("qos=1")...); err != nil {
		t.Fatalf("observe: %v", err)
	}
	o.next()
	pub := g.mqttClient(t)
	for _, p := range []string{"a", "b", "c"} {
		pub.publish("wl", 1, false, p)
	}
	for _, p := range []string{"a", "b", "c"} {
		if r := o.next(); r.Payload != p || r.Type != message.Confirmable {
			t.Fatalf("got %+v, want CON %q", r, p)
		}
	}
}
