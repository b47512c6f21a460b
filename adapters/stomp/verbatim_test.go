package stomp_test

// STOMP 1.0 has no header escapes, and CONNECT/CONNECTED never use them
// [STOMP 1.2 "Value Encoding"]; an oversize WebSocket message gets an
// ERROR frame before the close, as on TCP.

import (
	"bufio"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/iotgw/iotgw/adapters/mqtt/codec"
	"github.com/iotgw/iotgw/adapters/stomp"
	"github.com/iotgw/iotgw/core"
)

// credentials records what the Authenticator saw.
type credentials chan [2]string

func (c credentials) Authenticate(_ context.Context, ci *core.ClientInfo) error {
	c <- [2]string{ci.Username, string(ci.Password)}
	return nil
}

// verbatimConn reads frames as raw text, with no unescaping.
type verbatimConn struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func dialVerbatim(t *testing.T, addr string) *verbatimConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &verbatimConn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (v *verbatimConn) write(s string) {
	v.t.Helper()
	if _, err := v.nc.Write([]byte(s)); err != nil {
		v.t.Fatal(err)
	}
}

// next returns the next frame's text up to its NUL, without leading EOLs.
func (v *verbatimConn) next() string {
	v.t.Helper()
	_ = v.nc.SetReadDeadline(time.Now().Add(waitTimeout))
	s, err := v.br.ReadString(0)
	if err != nil {
		v.t.Fatalf("read: %v (after %q)", err, s)
	}
	return strings.TrimLeft(strings.TrimSuffix(s, "\x00"), "\r\n")
}

func TestVerbatimHeaders(t *testing.T) {
	t.Parallel()
	creds := make(credentials, 4)
	e := startEnv(t, nil, core.WithAuthenticator(creds))
	m5 := dialMQTT5(t, e.mqtt)
	<-creds // the MQTT client's
	m5.send(&codec.Subscribe{PacketID: 1, Subscriptions: []codec.Subscription{{Filter: "v/in", QoS: 0}}})
	m5.read() // SUBACK

	// STOMP 1.0: CONNECT and CONNECTED verbatim.
	c := dialVerbatim(t, e.stomp)
	c.write("CONNECT\nlogin:a\\cb\npasscode:p:w\\\\\nclient-id:id:with:colons\n\n\x00")
	if got := <-creds; got != [2]string{`a\cb`, `p:w\\`} {
		t.Errorf("1.0 login/passcode %q, want them verbatim", got)
	}
	connected := c.next()
	if !strings.HasPrefix(connected, "CONNECTED\n") || !strings.Contains(connected, "\nsession:id:with:colons\n") ||
		!strings.Contains(connected, "\nversion:1.0\n") {
		t.Errorf("CONNECTED %q", connected)
	}
	// SEND headers are not unescaped either.
	c.write("SEND\ndestination:v/in\nx-raw:a\\cb:c\\t\n\nbody\x00")
	p := m5.publish()
	if len(p.Props.User) != 1 || p.Props.User[0] != (codec.UserProperty{Key: "x-raw", Value: `a\cb:c\t`}) {
		t.Errorf("user properties %+v", p.Props.User)
	}
	// MESSAGE headers are written verbatim; those that cannot be (a line
	// break, a colon in the name) are left out rather than injected.
	c.write("SUBSCRIBE\ndestination:v/out\nreceipt:s\n\n\x00")
	if f := c.next(); !strings.HasPrefix(f, "RECEIPT\n") {
		t.Fatalf("got %q", f)
	}
	pub := &codec.Publish{Topic: "v/out", Payload: []byte("x")}
	pub.Props.User = []codec.UserProperty{{Key: "k", Value: `a:b\c`}, {Key: "inject", Value: "x\ncontent-length:0"},
		{Key: "co:lon", Value: "v"}}
	m5.send(pub)
	msg := c.next()
	if !strings.HasPrefix(msg, "MESSAGE\n") || !strings.Contains(msg, "\nk:a:b\\c\n") ||
		strings.Contains(msg, "inject") || strings.Contains(msg, "co:lon") || !strings.HasSuffix(msg, "\n\nx") {
		t.Errorf("1.0 MESSAGE %q", msg)
	}

	// STOMP 1.2: CONNECT and CONNECTED stay verbatim, other frames escape.
	c12 := dialVerbatim(t, e.stomp)
	c12.write("CONNECT\naccept-version:1.2\nlogin:a\\cb\npasscode:x\nclient-id:c:12\n\n\x00")
	if got := <-creds; got[0] != `a\cb` {
		t.Errorf("1.2 CONNECT login %q, want it verbatim", got[0])
	}
	if f := c12.next(); !strings.Contains(f, "\nsession:c:12\n") {
		t.Errorf("1.2 CONNECTED %q", f)
	}
	c12.write("SUBSCRIBE\nid:0\ndestination:v/out\nreceipt:s\n\n\x00")
	c12.next()
	m5.send(pub)
	if f := c12.next(); !strings.Contains(f, "\nk:a\\cb\\\\c\n") || !strings.Contains(f, "\ninject:x\\ncontent-length\\c0\n") {
		t.Errorf("1.2 MESSAGE %q", f)
	}
}

// TestWebSocketOversize: a WebSocket message beyond the limit, or a frame
// in it beyond max_frame_size, gets an ERROR frame, then the close.
func TestWebSocketOversize(t *testing.T) {
	t.Parallel()
	e := startEnv(t, func(c *stomp.Config) { c.MaxFrameSize = 4096 })
	for _, msg := range []string{
		"SEND\ndestination:a\n\n" + strings.Repeat("x", 20000) + "\x00", // one frame too large
		strings.Repeat("\n", 6000),                                      // heart-beats only, but one message too large
	} {
		d := websocket.Dialer{Subprotocols: []string{"v12.stomp"}, HandshakeTimeout: waitTimeout}
		ws, _, err := d.Dial(e.ws, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		_ = ws.SetReadDeadline(time.Now().Add(waitTimeout))
		if err := ws.WriteMessage(websocket.TextMessage, []byte("CONNECT\naccept-version:1.2\nhost:x\n\n\x00")); err != nil {
			t.Fatal(err)
		}
		if _, b, err := ws.ReadMessage(); err != nil || !strings.HasPrefix(string(b), "CONNECTED\n") {
			t.Fatalf("CONNECTED: %q %v", b, err)
		}
		if err := ws.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		_, b, err := ws.ReadMessage()
		if err != nil || !strings.HasPrefix(string(b), "ERROR\n") || !strings.Contains(string(b), "message:frame too large") {
			t.Fatalf("after %d bytes: %q %v, want an ERROR frame", len(msg), b, err)
		}
		if _, b, err = ws.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
			t.Errorf("after ERROR: %q %v, want the close", b, err)
		}
	}
}
