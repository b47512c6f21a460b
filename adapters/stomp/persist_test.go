package stomp_test

// Persistent sessions (client-id on CONNECT): unacknowledged messages and
// those that arrived meanwhile reach the subscription of the next
// connection, redeliveries are bounded across reconnects, and the
// adapter's state ends with the session. Without client-id the session
// ends with the connection, and shared subscriptions hand what the client
// left unacknowledged to another member.

import (
	"fmt"
	"sort"
	"testing"
	"time"

	gostomp "github.com/go-stomp/stomp/v3"
	"github.com/go-stomp/stomp/v3/frame"

	"github.com/iotgw/iotgw/adapters/stomp"
	"github.com/iotgw/iotgw/internal/testutil"
)

// waitConnected waits until n clients (all protocols) are connected.
func (e *env) waitConnected(t testing.TB, n int64) {
	t.Helper()
	testutil.Eventually(t, waitTimeout, func() bool { return e.b.Stats().ClientsConnected.Load() == n }, fmt.Sprintf("%d connected clients", n))
}

// subscribe sends SUBSCRIBE with a receipt and waits for it.
func (r *rawStomp) subscribe(id, dest, ack string) {
	r.t.Helper()
	r.write("SUBSCRIBE\nid:" + id + "\ndestination:" + dest + "\nack:" + ack + "\nreceipt:sub-" + id + "\n\n\x00")
	if f := r.expect(frame.RECEIPT); f.Header.Get(frame.ReceiptId) != "sub-"+id {
		r.t.Fatalf("receipt %v, want sub-%s", f.Header, id)
	}
}

// sync sends a frame with a receipt and waits for the RECEIPT; a MESSAGE
// before it fails the test.
func (r *rawStomp) sync(frameText string) {
	r.t.Helper()
	r.write(frameText)
	r.expect(frame.RECEIPT)
}

func TestPersistentSessionResumes(t *testing.T) {
	t.Parallel()
	e := startEnv(t, nil)
	p := connectPaho(t, e.mqtt)
	a := dialRaw(t, e.stomp)
	a.connect("client-id:dur-1")
	a.subscribe("a", "ps/#", "client-individual")
	p.pub("ps/1", 1, false, "one")
	m1 := a.expect(frame.MESSAGE)
	if m1.Header.Get(frame.Subscription) != "a" || m1.Header.Get("redelivered") != "" {
		t.Fatalf("first delivery %v", m1.Header)
	}
	a.nc.Close() // dropped without ACK
	e.waitConnected(t, 1)
	p.pub("ps/2", 1, false, "two") // arrives while away
	if n := e.srv.PersistentSessions(); n != 1 {
		t.Errorf("PersistentSessions = %d, want 1", n)
	}

	b := dialRaw(t, e.stomp)
	b.connect("client-id:dur-1")
	b.subscribe("b", "ps/#", "client-individual") // a new id binds the old subscription
	r1, r2 := b.expect(frame.MESSAGE), b.expect(frame.MESSAGE)
	if string(r1.Body) != "one" || r1.Header.Get("redelivered") != "true" || r1.Header.Get(frame.Subscription) != "b" {
		t.Errorf("resent message %q %v", r1.Body, r1.Header)
	}
	if string(r2.Body) != "two" || r2.Header.Get("redelivered") != "" || r2.Header.Get(frame.Subscription) != "b" {
		t.Errorf("message from while away %q %v", r2.Body, r2.Header)
	}
	if r1.Header.Get(frame.MessageId) == m1.Header.Get(frame.MessageId) {
		t.Error("message-id reused across connections of a session")
	}
	// An ACK of the first connection's message-id is stale, not an error.
	b.sync("ACK\nid:" + m1.Header.Get(frame.Ack) + "\nreceipt:old\n\n\x00")
	b.sync("ACK\nid:" + r1.Header.Get(frame.Ack) + "\nreceipt:r1\n\n\x00")
	b.sync("ACK\nid:" + r2.Header.Get(frame.Ack) + "\nreceipt:r2\n\n\x00")
	b.write("DISCONNECT\nreceipt:bye\n\n\x00")
	b.expect(frame.RECEIPT)
	e.waitConnected(t, 1)

	// Everything acknowledged: the next connection gets nothing again,
	// but its subscription is still the session's.
	c := dialRaw(t, e.stomp)
	c.connect("client-id:dur-1")
	c.subscribe("c", "ps/#", "auto")
	c.sync("SEND\ndestination:sync/x\nreceipt:s\n\n\x00")
	p.pub("ps/3", 1, false, "three")
	if m := c.expect(frame.MESSAGE); string(m.Body) != "three" || m.Header.Get(frame.Subscription) != "c" {
		t.Errorf("after reconnect got %q %v", m.Body, m.Header)
	}
}

// TestPersistentSessionGoStomp: the same with go-stomp's client, client
// (cumulative) acks and a dropped TCP connection.
func TestPersistentSessionGoStomp(t *testing.T) {
	t.Parallel()
	e := startEnv(t, nil)
	p := connectPaho(t, e.mqtt)
	c1 := dialStomp(t, e.stomp, gostomp.ConnOpt.Header("client-id", "gs-dur"))
	sub, err := c1.Subscribe("gd/x", gostomp.AckClient)
	if err != nil {
		t.Fatal(err)
	}
	syncStomp(t, c1)
	p.pub("gd/x", 1, false, "a")
	if m := nextMsg(t, sub); string(m.Body) != "a" {
		t.Fatalf("got %q", m.Body)
	}
	_ = c1.MustDisconnect()
	e.waitConnected(t, 1)
	p.pub("gd/x", 2, false, "b")

	c2 := dialStomp(t, e.stomp, gostomp.ConnOpt.Header("client-id", "gs-dur"))
	sub2, err := c2.Subscribe("gd/x", gostomp.AckClient)
	if err != nil {
		t.Fatal(err)
	}
	ma, mb := nextMsg(t, sub2), nextMsg(t, sub2)
	if string(ma.Body) != "a" || ma.Header.Get("redelivered") != "true" || string(mb.Body) != "b" {
		t.Fatalf("after reconnect %q %v, %q %v", ma.Body, ma.Header, mb.Body, mb.Header)
	}
	if err := c2.Ack(mb); err != nil { // cumulative: a too
		t.Fatal(err)
	}
	syncStomp(t, c2)
	_ = c2.MustDisconnect()
	e.waitConnected(t, 1)
	c3 := dialStomp(t, e.stomp, gostomp.ConnOpt.Header("client-id", "gs-dur"))
	sub3, err := c3.Subscribe("gd/x", gostomp.AckClient)
	if err != nil {
		t.Fatal(err)
	}
	syncStomp(t, c3)
	noMsg(t, sub3, 200*time.Millisecond)
}

// TestRedeliveryBoundAcrossReconnects: NACKs and resends on reconnect
// count together against max_redeliveries.
func TestRedeliveryBoundAcrossReconnects(t *testing.T) {
	t.Parallel()
	e := startEnv(t, func(c *stomp.Config) { c.MaxRedeliveries = 2 })
	p := connectPaho(t, e.mqtt)
	a := dialRaw(t, e.stomp)
	a.connect("client-id:rb")
	a.subscribe("s", "rb", "client-individual")
	p.pub("rb", 1, false, "x")
	m := a.expect(frame.MESSAGE)
	a.write("NACK\nid:" + m.Header.Get(frame.Ack) + "\n\n\x00") // redelivery 1
	if m = a.expect(frame.MESSAGE); m.Header.Get("redelivered") != "true" {
		t.Fatalf("after NACK %v", m.Header)
	}
	a.nc.Close()
	e.waitConnected(t, 1)
	b := dialRaw(t, e.stomp)
	b.connect("client-id:rb")
	b.subscribe("s", "rb", "client-individual") // resend: redelivery 2
	if m = b.expect(frame.MESSAGE); string(m.Body) != "x" || m.Header.Get("redelivered") != "true" {
		t.Fatalf("after reconnect %q %v", m.Body, m.Header)
	}
	b.nc.Close()
	e.waitConnected(t, 1)
	c := dialRaw(t, e.stomp)
	c.connect("client-id:rb") // a third would exceed the bound: dropped
	c.subscribe("s", "rb", "client-individual")
	testutil.Eventually(t, waitTimeout, func() bool { return e.srv.DroppedRedeliveries() == 1 }, "the drop to be counted")
	p.pub("rb", 1, false, "y")
	if m = c.expect(frame.MESSAGE); string(m.Body) != "y" {
		t.Errorf("after the drop got %q", m.Body)
	}
}

// TestResubscribeTimeout: a subscription the client does not renew after
// reconnecting is dropped, with what it held, so that it does not block
// the pending-ack window of the renewed ones for ever.
func TestResubscribeTimeout(t *testing.T) {
	t.Parallel()
	e := startEnv(t, func(c *stomp.Config) {
		c.MaxPendingAcks = 2
		c.ResubscribeTimeout = 300 * time.Millisecond
	})
	p := connectPaho(t, e.mqtt)
	a := dialRaw(t, e.stomp)
	a.connect("client-id:rs")
	a.subscribe("keep", "rs/keep", "client-individual")
	a.subscribe("gone", "rs/gone", "client-individual")
	a.nc.Close()
	e.waitConnected(t, 1)
	for i := 0; i < 3; i++ {
		p.pub("rs/gone", 1, false, fmt.Sprint("gone", i))
	}
	p.pub("rs/keep", 1, false, "kept")
	b := dialRaw(t, e.stomp)
	b.connect("client-id:rs")
	b.subscribe("k2", "rs/keep", "client-individual")
	m := b.expect(frame.MESSAGE)
	if string(m.Body) != "kept" || m.Header.Get(frame.Subscription) != "k2" {
		t.Errorf("got %q %v", m.Body, m.Header)
	}
	// The dropped subscription no longer receives anything.
	p.pub("rs/gone", 1, false, "late")
	p.pub("rs/keep", 1, false, "kept2")
	if m := b.expect(frame.MESSAGE); string(m.Body) != "kept2" {
		t.Errorf("got %q %v", m.Body, m.Header)
	}
}

// TestSessionExpiry: the adapter's state of a persistent session goes
// with the core session; with session_expiry 0 a client-id names no
// persistent session at all.
func TestSessionExpiry(t *testing.T) {
	t.Parallel()
	e := startEnv(t, func(c *stomp.Config) { c.SessionExpiry = 100 * time.Millisecond })
	p := connectPaho(t, e.mqtt)
	a := dialRaw(t, e.stomp)
	a.connect("client-id:se")
	a.subscribe("s", "se", "client")
	a.nc.Close()
	e.waitConnected(t, 1)
	testutil.Eventually(t, waitTimeout, func() bool { return e.srv.PersistentSessions() == 0 }, "the session state to be dropped")
	p.pub("se", 1, false, "nobody") // the session is gone: not queued
	b := dialRaw(t, e.stomp)
	b.connect("client-id:se")
	b.subscribe("s", "se", "client")
	p.pub("se", 1, false, "fresh")
	if m := b.expect(frame.MESSAGE); string(m.Body) != "fresh" {
		t.Errorf("got %q", m.Body)
	}

	e0 := startEnv(t, func(c *stomp.Config) { c.SessionExpiry = 0 })
	p0 := connectPaho(t, e0.mqtt)
	c := dialRaw(t, e0.stomp)
	c.connect("client-id:ephemeral")
	c.subscribe("s", "eph", "client-individual")
	p0.pub("eph", 1, false, "unacked")
	c.expect(frame.MESSAGE)
	if n := e0.srv.PersistentSessions(); n != 0 {
		t.Errorf("PersistentSessions = %d with session_expiry 0", n)
	}
	c.nc.Close()
	e0.waitConnected(t, 1)
	d := dialRaw(t, e0.stomp)
	d.connect("client-id:ephemeral")
	d.subscribe("s", "eph", "client-individual")
	p0.pub("eph", 1, false, "new")
	if m := d.expect(frame.MESSAGE); string(m.Body) != "new" {
		t.Errorf("session_expiry 0: got %q, want only the new message", m.Body)
	}
}

// TestSharedRedistributedOnDrop: a client without client-id that drops
// its connection hands its unacknowledged shared-subscription messages
// ($share and $queue) to another member.
func TestSharedRedistributedOnDrop(t *testing.T) {
	t.Parallel()
	e := startEnv(t, nil)
	p := connectPaho(t, e.mqtt)
	for _, tc := range []struct{ dest, topicName string }{{"$share/g/sq", "sq"}, {"$queue/qq", "qq"}} {
		dest, topicName := tc.dest, tc.topicName
		a := dialRaw(t, e.stomp)
		a.connect()
		a.subscribe("a", dest, "client-individual")
		for i := 0; i < 3; i++ {
			p.pub(topicName, 1, false, fmt.Sprint(i))
		}
		for i := 0; i < 3; i++ {
			a.expect(frame.MESSAGE) // never acknowledged
		}
		b := dialRaw(t, e.stomp)
		b.connect()
		b.subscribe("b", dest, "client-individual")
		a.nc.Close()
		var got []string
		for i := 0; i < 3; i++ {
			m := b.expect(frame.MESSAGE)
			got = append(got, string(m.Body))
			b.write("ACK\nid:" + m.Header.Get(frame.Ack) + "\n\n\x00")
		}
		sort.Strings(got)
		if fmt.Sprint(got) != "[0 1 2]" {
			t.Errorf("%s: the other member got %v", dest, got)
		}
		b.write("DISCONNECT\n\n\x00")
		b.expectClosed("DISCONNECT")
	}
}

// TestUnknownIDs: ACK/NACK of a message-id awaiting no acknowledgement and
// UNSUBSCRIBE of an unknown id get an ERROR frame; unknown_id: ignore lets
// them pass.
func TestUnknownIDs(t *testing.T) {
	t.Parallel()
	e := startEnv(t, nil)
	p := connectPaho(t, e.mqtt)
	cases := []struct{ frames, message, receipt string }{
		{"ACK\nid:77\nreceipt:r1\n\n\x00", "unknown message-id", "r1"},
		{"NACK\nid:not-a-number\n\n\x00", "unknown message-id", ""},
		{"UNSUBSCRIBE\nid:nope\nreceipt:r2\n\n\x00", "unknown subscription", "r2"},
		{"BEGIN\ntransaction:t\n\n\x00ACK\nid:5\ntransaction:t\n\n\x00", "unknown message-id", ""},
	}
	for _, tc := range cases {
		r := dialRaw(t, e.stomp)
		r.connect()
		r.write(tc.frames)
		if f := r.expectError(tc.message); f.Header.Get(frame.ReceiptId) != tc.receipt {
			t.Errorf("%q: receipt-id %q", tc.frames, f.Header.Get(frame.ReceiptId))
		}
	}
	// A second ACK of the same message.
	r := dialRaw(t, e.stomp)
	r.connect()
	r.subscribe("s", "uk", "client-individual")
	p.pub("uk", 1, false, "x")
	m := r.expect(frame.MESSAGE)
	r.sync("ACK\nid:" + m.Header.Get(frame.Ack) + "\nreceipt:1\n\n\x00")
	r.write("ACK\nid:" + m.Header.Get(frame.Ack) + "\n\n\x00")
	r.expectError("unknown message-id")

	ei := startEnv(t, func(c *stomp.Config) { c.UnknownID = stomp.UnknownIDIgnore })
	r = dialRaw(t, ei.stomp)
	r.connect()
	r.sync("ACK\nid:77\nreceipt:r1\n\n\x00")
	r.sync("UNSUBSCRIBE\nid:nope\nreceipt:r2\n\n\x00")
}

// TestPersistentTakeover: a second connection with the client-id takes
// the session over while the first is still connected; what the first
// left unacknowledged goes to the second, and the first's late ACK
// cannot complete it.
func TestPersistentTakeover(t *testing.T) {
	t.Parallel()
	e := startEnv(t, nil)
	p := connectPaho(t, e.mqtt)
	a := dialRaw(t, e.stomp)
	a.connect("client-id:to")
	a.subscribe("a", "to/#", "client-individual")
	p.pub("to/1", 1, false, "one")
	m := a.expect(frame.MESSAGE)
	b := dialRaw(t, e.stomp)
	b.connect("client-id:to")
	a.write("ACK\nid:" + m.Header.Get(frame.Ack) + "\n\n\x00") // too late
	a.expectError("session taken over")
	b.subscribe("b", "to/#", "client-individual")
	r := b.expect(frame.MESSAGE)
	if string(r.Body) != "one" || r.Header.Get("redelivered") != "true" || r.Header.Get(frame.Subscription) != "b" {
		t.Errorf("after takeover %q %v", r.Body, r.Header)
	}
	b.sync("ACK\nid:" + r.Header.Get(frame.Ack) + "\nreceipt:x\n\n\x00")
}
