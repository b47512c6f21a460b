package stomp_test

// Black-box tests with go-stomp's client (a STOMP client nobody here wrote)
// over TCP, with MQTT clients on the other side.

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"testing"
	"time"

	gostomp "github.com/go-stomp/stomp/v3"
	"github.com/go-stomp/stomp/v3/frame"

	"github.com/iotgw/iotgw/adapters/mqtt/codec"
	"github.com/iotgw/iotgw/adapters/stomp"
	"github.com/iotgw/iotgw/core"
)

func dialStomp(t testing.TB, addr string, opts ...func(*gostomp.Conn) error) *gostomp.Conn {
	t.Helper()
	opts = append([]func(*gostomp.Conn) error{gostomp.ConnOpt.Host("iotgw"),
		gostomp.ConnOpt.HeartBeat(0, 0)}, opts...)
	c, err := gostomp.Dial("tcp", addr, opts...)
	if err != nil {
		t.Fatalf("stomp dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Disconnect() })
	return c
}

// syncStomp returns once the server has handled every frame c sent
// before: a SEND with a receipt is answered in order.
func syncStomp(t testing.TB, c *gostomp.Conn) {
	t.Helper()
	if err := c.Send("sync/"+uniqueID("s"), "", nil, gostomp.SendOpt.Receipt); err != nil {
		t.Fatalf("sync: %v", err)
	}
}

// unsubscribe works around go-stomp's Unsubscribe, which can miss the
// RECEIPT it waits for: waitWithTimeout starts its cond.Wait in a new
// goroutine, while the reader broadcasts without the cond's lock, so the
// wake-up may come first and be lost (go-stomp/stomp#122 reports the
// hang). Dial with a short UnsubscribeReceiptTimeout; a timeout is not
// an error here, and the caller checks the effect of the UNSUBSCRIBE.
func unsubscribe(t testing.TB, sub *gostomp.Subscription) {
	t.Helper()
	if err := sub.Unsubscribe(); err != nil && !errors.Is(err, &gostomp.ErrUnsubscribeReceiptTimeout) {
		t.Fatalf("unsubscribe %s: %v", sub.Id(), err)
	}
}

func nextMsg(t testing.TB, sub *gostomp.Subscription) *gostomp.Message {
	t.Helper()
	select {
	case m := <-sub.C:
		if m == nil || m.Err != nil {
			t.Fatalf("subscription %s: %v", sub.Id(), m)
		}
		return m
	case <-time.After(waitTimeout):
		t.Fatalf("subscription %s: no message within %v", sub.Id(), waitTimeout)
		return nil
	}
}

func noMsg(t testing.TB, sub *gostomp.Subscription, d time.Duration) {
	t.Helper()
	select {
	case m := <-sub.C:
		t.Fatalf("subscription %s: unexpected message %v %q", sub.Id(), m.Header, m.Body)
	case <-time.After(d):
	}
}

// TestSendToMQTT: SEND becomes an MQTT publish at the qos header's QoS
// (default_qos without it), with the body as payload, binary included.
func TestSendToMQTT(t *testing.T) {
	t.Parallel()
	e := startEnv(t, nil)
	p := connectPaho(t, e.mqtt)
	p.sub("s/#", 2)
	c := dialStomp(t, e.stomp)
	bin := []byte{0, 1, 2, 0, 255, 0}
	cases := []struct {
		topic string
		qos   string
		want  byte
		body  []byte
	}{
		{"s/q0", "0", 0, []byte("zero")},
		{"s/q1", "1", 1, []byte("one")},
		{"s/q2", "2", 2, []byte("two")},
		{"s/def", "", 1, bin},
	}
	for _, tc := range cases {
		var opts []func(*frame.Frame) error
		if tc.qos != "" {
			opts = append(opts, gostomp.SendOpt.Header("qos", tc.qos))
		}
		if err := c.Send(tc.topic, "application/octet-stream", tc.body, append(opts, gostomp.SendOpt.Receipt)...); err != nil {
			t.Fatalf("send %s: %v", tc.topic, err)
		}
		m := p.next()
		if m.Topic != tc.topic || m.QoS != tc.want || !bytes.Equal(m.Payload, tc.body) {
			t.Errorf("MQTT got %s qos %d %q, want %s qos %d %q", m.Topic, m.QoS, m.Payload, tc.topic, tc.want, tc.body)
		}
	}
	// retain:true is stored as a retained message.
	if err := c.Send("s/ret", "", []byte("kept"), gostomp.SendOpt.Header("retain", "true"), gostomp.SendOpt.Receipt); err != nil {
		t.Fatal(err)
	}
	p.next()
	if m, ok := e.b.Retained("s/ret"); !ok || string(m.Payload) != "kept" {
		t.Errorf("retained s/ret = %v, %v", m, ok)
	}
}

// TestMQTTToStomp: MQTT publications reach STOMP subscriptions through
// wildcards, each subscription gets its own MESSAGE with the concrete
// destination, and retained messages arrive on subscribe.
func TestMQTTToStomp(t *testing.T) {
	t.Parallel()
	e := startEnv(t, nil)
	p := connectPaho(t, e.mqtt)
	p.pub("w/ret/x", 1, true, "retained")
	c := dialStomp(t, e.stomp, gostomp.ConnOpt.UnsubscribeReceiptTimeout(time.Second))
	plus, err := c.Subscribe("w/+/x", gostomp.AckAuto)
	if err != nil {
		t.Fatal(err)
	}
	hash, err := c.Subscribe("w/#", gostomp.AckAuto)
	if err != nil {
		t.Fatal(err)
	}
	twin, err := c.Subscribe("w/#", gostomp.AckAuto) // same destination, second id
	if err != nil {
		t.Fatal(err)
	}
	syncStomp(t, c)
	for _, sub := range []*gostomp.Subscription{plus, hash} {
		m := nextMsg(t, sub)
		if m.Destination != "w/ret/x" || string(m.Body) != "retained" || m.Header.Get("retain") != "true" {
			t.Errorf("%s: retained message %s %q %v", sub.Id(), m.Destination, m.Body, m.Header)
		}
	}
	m := nextMsg(t, twin)
	if string(m.Body) != "retained" {
		t.Errorf("second subscription to w/#: retained message %q", m.Body)
	}
	noMsg(t, hash, 100*time.Millisecond) // the first w/# got its retained copy once
	p.pub("w/a/x", 1, false, "both")
	p.pub("w/a/y", 0, false, "hash only")
	ids := map[string]bool{}
	for _, sub := range []*gostomp.Subscription{plus, hash, twin} {
		m := nextMsg(t, sub)
		if m.Destination != "w/a/x" || string(m.Body) != "both" {
			t.Errorf("%s: got %s %q, want w/a/x both", sub.Id(), m.Destination, m.Body)
		}
		if got := m.Header.Get(frame.Subscription); got != sub.Id() {
			t.Errorf("subscription header %q, want %q", got, sub.Id())
		}
		ids[m.Header.Get(frame.MessageId)] = true
	}
	if len(ids) != 3 {
		t.Errorf("message-ids %v are not unique", ids)
	}
	for _, sub := range []*gostomp.Subscription{hash, twin} {
		if m := nextMsg(t, sub); m.Destination != "w/a/y" {
			t.Errorf("%s: got %s, want w/a/y", sub.Id(), m.Destination)
		}
	}
	unsubscribe(t, plus)
	unsubscribe(t, twin)
	p.pub("w/b/x", 0, false, "after")
	if m := nextMsg(t, hash); string(m.Body) != "after" {
		t.Errorf("remaining subscription got %q", m.Body)
	}
}

// TestHeadersAndProperties: STOMP headers ↔ MQTT 5 user properties and
// content type, both ways, protocol headers excluded.
func TestHeadersAndProperties(t *testing.T) {
	t.Parallel()
	e := startEnv(t, nil)
	m5 := dialMQTT5(t, e.mqtt)
	m5.send(&codec.Subscribe{PacketID: 1, Subscriptions: []codec.Subscription{{Filter: "h/#", QoS: 1}}})
	if _, ok := m5.read().(*codec.Suback); !ok {
		t.Fatal("no SUBACK")
	}
	c := dialStomp(t, e.stomp)
	err := c.Send("h/in", "application/json", []byte(`{"a":1}`), gostomp.SendOpt.Header("x-trace", "abc"),
		gostomp.SendOpt.Header("colon", "a:b"), gostomp.SendOpt.Header("reply-to", "h/reply"),
		gostomp.SendOpt.Header("correlation-id", "c-1"), gostomp.SendOpt.Receipt)
	if err != nil {
		t.Fatal(err)
	}
	p := m5.publish()
	if p.Props.ContentType != "application/json" || string(p.Payload) != `{"a":1}` {
		t.Errorf("content type %q payload %q", p.Props.ContentType, p.Payload)
	}
	if p.Props.ResponseTopic != "h/reply" || string(p.Props.CorrelationData) != "c-1" {
		t.Errorf("response topic %q correlation %q", p.Props.ResponseTopic, p.Props.CorrelationData)
	}
	got := map[string]string{}
	for _, u := range p.Props.User {
		got[u.Key] = u.Value
	}
	want := map[string]string{"x-trace": "abc", "colon": "a:b"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("user properties %v, want %v (protocol headers excluded)", got, want)
	}

	sub, err := c.Subscribe("h/out", gostomp.AckAuto)
	if err != nil {
		t.Fatal(err)
	}
	syncStomp(t, c)
	pub := &codec.Publish{Topic: "h/out", Payload: []byte("x\x00y"), QoS: 0}
	pub.Props.ContentType = "text/x"
	pub.Props.Set(codec.PropContentType)
	pub.Props.User = []codec.UserProperty{{Key: "k1", Value: "v1"}, {Key: "k2", Value: "line\nbreak"}, {Key: "message-id", Value: "spoof"}}
	m5.send(pub)
	m := nextMsg(t, sub)
	if m.ContentType != "text/x" || string(m.Body) != "x\x00y" {
		t.Errorf("MESSAGE content-type %q body %q", m.ContentType, m.Body)
	}
	if m.Header.Get("k1") != "v1" || m.Header.Get("k2") != "line\nbreak" {
		t.Errorf("MESSAGE headers %v", m.Header)
	}
	if ids := m.Header.GetAll(frame.MessageId); len(ids) != 1 || ids[0] == "spoof" {
		t.Errorf("message-id headers %v: a user property must not shadow it", ids)
	}
}

// TestClientIndividualNack: client-individual messages stay inflight until
// ACK; NACK sends them again (redelivered header) up to max_redeliveries,
// then they are dropped and counted.
func TestClientIndividualNack(t *testing.T) {
	t.Parallel()
	e := startEnv(t, func(c *stomp.Config) { c.MaxRedeliveries = 2 })
	p := connectPaho(t, e.mqtt)
	c := dialStomp(t, e.stomp)
	sub, err := c.Subscribe("n/#", gostomp.AckClientIndividual)
	if err != nil {
		t.Fatal(err)
	}
	syncStomp(t, c)
	p.pub("n/1", 1, false, "one")
	p.pub("n/2", 1, false, "two")
	m1, m2 := nextMsg(t, sub), nextMsg(t, sub)
	if string(m1.Body) != "one" || string(m2.Body) != "two" {
		t.Fatalf("got %q %q", m1.Body, m2.Body)
	}
	if m1.Header.Get(frame.Ack) == "" {
		t.Error("STOMP 1.2 MESSAGE of a client-individual subscription without ack header")
	}
	if err := c.Ack(m2); err != nil {
		t.Fatal(err)
	}
	m := m1
	for i := 0; i < 2; i++ {
		if err := c.Nack(m); err != nil {
			t.Fatal(err)
		}
		m = nextMsg(t, sub)
		if string(m.Body) != "one" || m.Header.Get("redelivered") != "true" {
			t.Fatalf("redelivery %d: %q %v", i+1, m.Body, m.Header)
		}
		if m.Header.Get(frame.MessageId) == m1.Header.Get(frame.MessageId) {
			t.Error("a redelivery reuses the message-id")
		}
	}
	if err := c.Nack(m); err != nil {
		t.Fatal(err)
	}
	syncStomp(t, c)
	noMsg(t, sub, 200*time.Millisecond)
	if n := e.srv.DroppedRedeliveries(); n != 1 {
		t.Errorf("DroppedRedeliveries = %d, want 1", n)
	}
	p.pub("n/3", 1, false, "three")
	if m := nextMsg(t, sub); string(m.Body) != "three" {
		t.Errorf("after the drop got %q", m.Body)
	}
}

// TestClientCumulativeWindow: max_pending_acks bounds the unacknowledged
// messages; a client-mode ACK acknowledges every earlier message too.
func TestClientCumulativeWindow(t *testing.T) {
	t.Parallel()
	e := startEnv(t, func(c *stomp.Config) { c.MaxPendingAcks = 2 })
	p := connectPaho(t, e.mqtt)
	c := dialStomp(t, e.stomp)
	sub, err := c.Subscribe("cw", gostomp.AckClient)
	if err != nil {
		t.Fatal(err)
	}
	syncStomp(t, c)
	for i := 0; i < 5; i++ {
		p.pub("cw", 1, false, fmt.Sprint(i))
	}
	a, b := nextMsg(t, sub), nextMsg(t, sub)
	noMsg(t, sub, 200*time.Millisecond) // the window is full
	if err := c.Ack(b); err != nil {    // acknowledges a too
		t.Fatal(err)
	}
	var got []string
	for _, m := range []*gostomp.Message{a, b, nextMsg(t, sub), nextMsg(t, sub)} {
		got = append(got, string(m.Body))
	}
	if fmt.Sprint(got) != "[0 1 2 3]" {
		t.Errorf("got %v", got)
	}
}

// TestTransactions: ABORT discards, COMMIT applies every SEND and ACK; a
// COMMIT with one refused SEND applies nothing and ends the connection.
func TestTransactions(t *testing.T) {
	t.Parallel()
	acl := &core.ACL{DefaultAllow: true, Rules: []core.ACLRule{{Allow: false, Action: "publish", Topic: "tx/denied"}}}
	e := startEnv(t, nil, core.WithAuthorizer(acl))
	p := connectPaho(t, e.mqtt)
	p.sub("tx/#", 1)
	c := dialStomp(t, e.stomp)
	tx := c.Begin()
	_ = tx.Send("tx/a", "", []byte("aborted"))
	if err := tx.AbortWithReceipt(); err != nil {
		t.Fatal(err)
	}
	tx = c.Begin()
	_ = tx.Send("tx/a", "", []byte("a"))
	_ = tx.Send("tx/b", "", []byte("b"))
	select {
	case m := <-p.msgs:
		t.Fatalf("published before COMMIT: %s", m.Topic)
	case <-time.After(100 * time.Millisecond):
	}
	if err := tx.CommitWithReceipt(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := 0; i < 2; i++ {
		got = append(got, string(p.next().Payload))
	}
	sort.Strings(got)
	if fmt.Sprint(got) != "[a b]" {
		t.Errorf("committed %v", got)
	}

	r := dialRaw(t, e.stomp)
	r.connect()
	r.write("BEGIN\ntransaction:t1\n\n\x00SEND\ndestination:tx/ok\ntransaction:t1\n\nok\x00" +
		"SEND\ndestination:tx/denied\ntransaction:t1\n\nno\x00COMMIT\ntransaction:t1\nreceipt:c1\n\n\x00")
	f := r.expectError("not authorized")
	if f.Header.Get(frame.ReceiptId) != "c1" {
		t.Errorf("ERROR receipt-id %q, want c1", f.Header.Get(frame.ReceiptId))
	}
	p.pub("tx/end", 1, false, "end")
	if m := p.next(); m.Topic != "tx/end" {
		t.Errorf("a refused COMMIT published %s", m.Topic)
	}
}

// TestTransactionalAck: an ACK inside a transaction takes effect at COMMIT.
func TestTransactionalAck(t *testing.T) {
	t.Parallel()
	e := startEnv(t, func(c *stomp.Config) { c.MaxPendingAcks = 1 })
	p := connectPaho(t, e.mqtt)
	c := dialStomp(t, e.stomp)
	sub, err := c.Subscribe("ta", gostomp.AckClientIndividual)
	if err != nil {
		t.Fatal(err)
	}
	syncStomp(t, c)
	p.pub("ta", 1, false, "1")
	p.pub("ta", 1, false, "2")
	m := nextMsg(t, sub)
	tx := c.Begin()
	if err := tx.Ack(m); err != nil {
		t.Fatal(err)
	}
	noMsg(t, sub, 200*time.Millisecond) // not acknowledged yet: the window stays full
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if m := nextMsg(t, sub); string(m.Body) != "2" {
		t.Errorf("after COMMIT got %q", m.Body)
	}
}

// TestSharedAndVersions: $share destinations split the messages between
// connections; STOMP 1.0 and 1.1 clients work too.
func TestSharedAndVersions(t *testing.T) {
	t.Parallel()
	e := startEnv(t, nil)
	p := connectPaho(t, e.mqtt)
	c10 := dialStomp(t, e.stomp, gostomp.ConnOpt.AcceptVersion(gostomp.V10))
	c11 := dialStomp(t, e.stomp, gostomp.ConnOpt.AcceptVersion(gostomp.V11))
	if c10.Version() != gostomp.V10 || c11.Version() != gostomp.V11 {
		t.Fatalf("versions %s %s", c10.Version(), c11.Version())
	}
	s10, err := c10.Subscribe("$share/g/sh/#", gostomp.AckClient)
	if err != nil {
		t.Fatal(err)
	}
	s11, err := c11.Subscribe("$share/g/sh/#", gostomp.AckClientIndividual)
	if err != nil {
		t.Fatal(err)
	}
	syncStomp(t, c10)
	syncStomp(t, c11)
	const n = 10
	for i := 0; i < n; i++ {
		p.pub("sh/x", 1, false, fmt.Sprint(i))
	}
	seen := map[string]int{}
	for len(seen) < n {
		select {
		case m := <-s10.C:
			seen[string(m.Body)]++
			_ = c10.Ack(m)
		case m := <-s11.C:
			seen[string(m.Body)]++
			_ = c11.Ack(m)
		case <-time.After(waitTimeout):
			t.Fatalf("shared subscription: got %v", seen)
		}
	}
	for k, v := range seen {
		if v != 1 {
			t.Errorf("message %s delivered %d times", k, v)
		}
	}
}
