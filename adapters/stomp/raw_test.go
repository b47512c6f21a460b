package stomp_test

// Frames written by hand: every error case, heart-beats, receipts and the
// corners no client library would produce.

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/iotgw/iotgw/adapters/stomp"
	"github.com/iotgw/iotgw/core"
)

// TestErrors: each bad input gets an ERROR frame with a message header
// (and receipt-id when asked) and the connection closes, while another
// client carries on undisturbed.
func TestErrors(t *testing.T) {
	t.Parallel()
	e := startEnv(t, func(c *stomp.Config) {
		c.MaxFrameSize = 4096
		c.MaxHeaders = 8
		c.MaxHeaderLength = 256
		c.MaxSubscriptions = 2
	})
	bystander := dialRaw(t, e.stomp)
	bystander.connect()
	bystander.write("SUBSCRIBE\nid:0\ndestination:ok/#\n\n\x00")
	big := strings.Repeat("x", 5000)
	cases := []struct {
		name      string
		connect   bool
		frames    string
		message   string
		receiptID string
	}{
		{"frame before CONNECT", false, "SEND\ndestination:a\n\nx\x00", "not connected", ""},
		{"unknown command", true, "FLY\nreceipt:r\n\n\x00", "unknown command", ""},
		{"SEND without destination", true, "SEND\nreceipt:r1\n\nx\x00", "missing header", "r1"},
		{"SEND to a wildcard", true, "SEND\ndestination:a/+\nreceipt:r2\n\nx\x00", "invalid destination", "r2"},
		{"SUBSCRIBE without destination", true, "SUBSCRIBE\nid:1\n\n\x00", "missing header", ""},
		{"SUBSCRIBE without id", true, "SUBSCRIBE\ndestination:a\n\n\x00", "missing header", ""},
		{"SUBSCRIBE bad filter", true, "SUBSCRIBE\nid:1\ndestination:a/#/b\n\n\x00", "invalid subscription destination", ""},
		{"duplicate subscription id", true, "SUBSCRIBE\nid:1\ndestination:a\n\n\x00SUBSCRIBE\nid:1\ndestination:b\n\n\x00", "protocol violation", ""},
		{"too many subscriptions", true, "SUBSCRIBE\nid:1\ndestination:a\n\n\x00SUBSCRIBE\nid:2\ndestination:b\n\n\x00SUBSCRIBE\nid:3\ndestination:c\n\n\x00", "too many subscriptions", ""},
		{"bad ack mode", true, "SUBSCRIBE\nid:1\ndestination:a\nack:never\n\n\x00", "bad header", ""},
		{"bad qos", true, "SEND\ndestination:a\nqos:7\n\nx\x00", "bad header", ""},
		{"bad escape", true, "SEND\ndestination:a\nx:\\t\n\nx\x00", "bad header", ""},
		{"header without colon", true, "SEND\ndestination:a\nnocolon\n\nx\x00", "bad header", ""},
		{"bad content-length", true, "SEND\ndestination:a\ncontent-length:x1\n\nx\x00", "bad header", ""},
		{"content-length too large", true, "SEND\ndestination:a\ncontent-length:999999999999\n\nx\x00", "frame too large", ""},
		{"body too large", true, "SEND\ndestination:a\n\n" + big + "\x00", "frame too large", ""},
		{"no NUL after content-length", true, "SEND\ndestination:a\ncontent-length:1\n\nxy\x00", "malformed frame", ""},
		{"too many headers", true, "SEND\ndestination:a\na:1\nb:1\nc:1\nd:1\ne:1\nf:1\ng:1\nh:1\n\nx\x00", "too many headers", ""},
		{"header too long", true, "SEND\ndestination:a\nlong:" + strings.Repeat("y", 300) + "\n\nx\x00", "header too long", ""},
		{"ACK without id", true, "ACK\n\n\x00", "missing header", ""},
		{"COMMIT of no transaction", true, "COMMIT\ntransaction:none\n\n\x00", "bad transaction", ""},
		{"BEGIN twice", true, "BEGIN\ntransaction:t\n\n\x00BEGIN\ntransaction:t\n\n\x00", "bad transaction", ""},
		{"server frame from a client", true, "MESSAGE\ndestination:a\n\n\x00", "protocol violation", ""},
		{"second CONNECT", true, "CONNECT\naccept-version:1.2\n\n\x00", "protocol violation", ""},
		{"SEND to $SYS", true, "SEND\ndestination:$SYS/x\n\nx\x00", "not authorized", ""},
	}
	for _, tc := range cases {
		r := dialRaw(t, e.stomp)
		if tc.connect {
			r.connect()
		}
		r.write(tc.frames)
		f := r.expectError(tc.message)
		if got := f.Header.Get(frame.ReceiptId); got != tc.receiptID {
			t.Errorf("%s: receipt-id %q, want %q", tc.name, got, tc.receiptID)
		}
		if t.Failed() {
			t.Fatalf("case %q failed", tc.name)
		}
	}
	// Version negotiation failure names the versions the server speaks.
	r := dialRaw(t, e.stomp)
	r.write("CONNECT\naccept-version:2.0\n\n\x00")
	if f := r.expectError("unsupported protocol version"); f.Header.Get(frame.Version) != "1.0,1.1,1.2" {
		t.Errorf("version header %q", f.Header.Get(frame.Version))
	}
	r = dialRaw(t, e.stomp)
	r.write("CONNECT\naccept-version:1.2\nheart-beat:x\n\n\x00")
	r.expectError("bad header")

	// The bystander was not disturbed.
	p := connectPaho(t, e.mqtt)
	p.pub("ok/1", 0, false, "still here")
	if m := bystander.expect(frame.MESSAGE); string(m.Body) != "still here" {
		t.Errorf("bystander got %q", m.Body)
	}
}

// denyUser refuses one user name.
type denyUser struct{}

func (denyUser) Authenticate(_ context.Context, c *core.ClientInfo) error {
	if c.Username == "bad" {
		return core.ErrBadCredentials
	}
	return nil
}

// TestLoginAndTakeover: login/passcode go to the Authenticator; a second
// connection with the same client-id takes the session over.
func TestLoginAndTakeover(t *testing.T) {
	t.Parallel()
	e := startEnv(t, nil, core.WithAuthenticator(denyUser{}))
	r := dialRaw(t, e.stomp)
	r.write("CONNECT\naccept-version:1.2\nlogin:bad\npasscode:x\n\n\x00")
	r.expectError("login failed")

	a := dialRaw(t, e.stomp)
	ca := a.connect("login:good", "passcode:pw", "client-id:same")
	if ca.Header.Get(frame.Session) != "same" || ca.Header.Get(frame.Version) != "1.2" ||
		!strings.HasPrefix(ca.Header.Get(frame.Server), "iotgw/") {
		t.Errorf("CONNECTED %v", ca.Header)
	}
	b := dialRaw(t, e.stomp)
	b.connect("client-id:same")
	a.expectError("session taken over")
}

// TestReceiptsAndDisconnect: receipts follow the frames they name; the
// RECEIPT of DISCONNECT comes last, then the connection closes.
func TestReceiptsAndDisconnect(t *testing.T) {
	t.Parallel()
	e := startEnv(t, nil)
	r := dialRaw(t, e.stomp)
	r.connect()
	r.write("SUBSCRIBE\nid:0\ndestination:rc\nreceipt:s\n\n\x00" +
		"SEND\ndestination:rc\nreceipt:p\ncontent-length:3\n\na\x00b\x00\n\n" +
		"UNSUBSCRIBE\nid:0\nreceipt:u\n\n\x00BEGIN\ntransaction:t\nreceipt:b\n\n\x00ABORT\ntransaction:t\nreceipt:a\n\n\x00")
	if f := r.expect(frame.RECEIPT); f.Header.Get(frame.ReceiptId) != "s" {
		t.Errorf("first receipt %v", f.Header)
	}
	var got []string
	for len(got) < 5 {
		f, err := r.read()
		if err != nil {
			t.Fatalf("after %v: %v", got, err)
		}
		if f == nil {
			continue
		}
		switch f.Command {
		case frame.RECEIPT:
			got = append(got, f.Header.Get(frame.ReceiptId))
		case frame.MESSAGE:
			if string(f.Body) != "a\x00b" || f.Header.Get(frame.ContentLength) != "3" {
				t.Errorf("binary body %q headers %v", f.Body, f.Header)
			}
			got = append(got, "message")
		}
	}
	// The MESSAGE may precede the SEND's receipt or follow it (the
	// routing is done when the receipt is queued), but the rest is ordered.
	if s := strings.Join(got, " "); s != "message p u b a" && s != "p message u b a" {
		t.Errorf("order %q", s)
	}
	r.write("DISCONNECT\nreceipt:bye\n\n\x00")
	if f := r.expect(frame.RECEIPT); f.Header.Get(frame.ReceiptId) != "bye" {
		t.Errorf("DISCONNECT receipt %v", f.Header)
	}
	r.expectClosed("after DISCONNECT")
}

// TestHeartBeats: the server sends heart-beats at the agreed interval and
// drops a client that stops sending its own.
func TestHeartBeats(t *testing.T) {
	t.Parallel()
	e := startEnv(t, func(c *stomp.Config) { c.HeartBeatMin = 50 * time.Millisecond })
	// The client wants a beat every 100 ms and sends none itself.
	r := dialRaw(t, e.stomp)
	if hb := r.connect("heart-beat:0,100").Header.Get(frame.HeartBeat); hb != "100,0" {
		t.Errorf("CONNECTED heart-beat %q, want 100,0", hb)
	}
	beats := 0
	for beats < 3 {
		f, err := r.read()
		if err != nil {
			t.Fatalf("after %d heart-beats: %v", beats, err)
		}
		if f != nil {
			t.Fatalf("unexpected %s", f.Command)
		}
		beats++
	}
	// A client below the minimum is held to it.
	r2 := dialRaw(t, e.stomp)
	if hb := r2.connect("heart-beat:10,10").Header.Get(frame.HeartBeat); hb != "50,50" {
		t.Errorf("CONNECTED heart-beat %q, want 50,50", hb)
	}
	// A client that promises beats every 300 ms and then goes quiet is
	// dropped, while one that keeps beating stays.
	quiet := dialRaw(t, e.stomp)
	quiet.connect("heart-beat:300,0")
	alive := dialRaw(t, e.stomp)
	alive.connect("heart-beat:300,0")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 10; i++ {
			time.Sleep(50 * time.Millisecond)
			if _, err := alive.nc.Write([]byte("\n")); err != nil {
				return
			}
		}
	}()
	quiet.expectClosed("silent client")
	<-done
	alive.write("SEND\ndestination:hb\nreceipt:x\n\n\x00")
	alive.expect(frame.RECEIPT)
}
