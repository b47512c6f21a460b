package stomp_test

// Idle connections: after a burst a connection settles to one goroutine
// (its reader hands over to a small idle one, no writer stays, heart-beats
// come from a timer), and an idle connection still gets everything:
// MESSAGEs, RECEIPTs, heart-beats both ways. And no goroutine outlives the
// adapter. These tests count goroutines, so they are not parallel.

import (
	"bytes"
	"fmt"
	"net/http"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3/frame"
	"github.com/gorilla/websocket"

	"github.com/iotgw/iotgw/adapters/stomp"
	"github.com/iotgw/iotgw/internal/testutil"
)

// wsStomp is a raw STOMP client over WebSocket, one frame a message.
type wsStomp struct {
	t  *testing.T
	ws *websocket.Conn
}

func dialWSStomp(t *testing.T, url string) *wsStomp {
	t.Helper()
	d := websocket.Dialer{Subprotocols: []string{"v12.stomp"}, HandshakeTimeout: waitTimeout}
	ws, resp, err := d.Dial(url, http.Header{})
	if err != nil {
		t.Fatalf("websocket dial: %v", err)
	}
	resp.Body.Close()
	t.Cleanup(func() { ws.Close() })
	return &wsStomp{t: t, ws: ws}
}

func (w *wsStomp) write(s string) {
	w.t.Helper()
	if err := w.ws.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		w.t.Fatalf("websocket write: %v", err)
	}
}

// read returns the next message's frame, nil for a heart-beat.
func (w *wsStomp) read() *frame.Frame {
	w.t.Helper()
	_ = w.ws.SetReadDeadline(time.Now().Add(waitTimeout))
	_, msg, err := w.ws.ReadMessage()
	if err != nil {
		w.t.Fatalf("websocket read: %v", err)
	}
	if len(bytes.Trim(msg, "\r\n")) == 0 {
		return nil
	}
	f, err := frame.NewReader(bytes.NewReader(msg)).Read()
	if err != nil || f == nil {
		w.t.Fatalf("websocket frame %q: %v", msg, err)
	}
	return f
}

func (w *wsStomp) expect(cmd string) *frame.Frame {
	w.t.Helper()
	for {
		if f := w.read(); f != nil {
			if f.Command != cmd {
				w.t.Fatalf("got %s %v, want %s", f.Command, f.Header, cmd)
			}
			return f
		}
	}
}

// settled waits until the goroutines are at most base+want (plus a small
// slack for the runtime) and each connection waits on the small idle
// goroutine, not on the reader that handled its burst.
func settled(t *testing.T, base, want int, when string) {
	t.Helper()
	const slack = 3
	testutil.Eventually(t, waitTimeout, func() bool {
		if runtime.NumGoroutine() > base+want+slack {
			return false
		}
		var sb strings.Builder
		_ = pprof.Lookup("goroutine").WriteTo(&sb, 2)
		return strings.Count(sb.String(), "streamconn.(*Conn[...]).idleRead(") >= want
	}, fmt.Sprintf("%s: %d idle connections settled to one idleRead goroutine each", when, want))
}

func TestIdleConnectionsOneGoroutineAndStillServed(t *testing.T) {
	e := startEnv(t, func(c *stomp.Config) { c.HeartBeatMin = 50 * time.Millisecond })
	runtime.GC()
	base := runtime.NumGoroutine()

	const n = 8
	tcp := make([]*rawStomp, n)
	for i := range tcp {
		r := dialRaw(t, e.stomp)
		r.connect()
		r.write(fmt.Sprintf("SUBSCRIBE\nid:s\ndestination:/topic/idle.%d\nack:client-individual\nreceipt:sub\n\n\x00", i))
		r.expect(frame.RECEIPT)
		tcp[i] = r
	}
	// One client wants heart-beats from the server, one promises them.
	hbOut := dialRaw(t, e.stomp)
	hbOut.connect("heart-beat:0,200")
	hbIn := dialRaw(t, e.stomp)
	hbIn.connect("heart-beat:300,0")
	ws := dialWSStomp(t, e.ws)
	ws.write("CONNECT\naccept-version:1.2\nhost:test\n\n\x00")
	ws.expect(frame.CONNECTED)
	ws.write("SUBSCRIBE\nid:w\ndestination:/topic/idle.ws\nreceipt:sub\n\n\x00")
	ws.expect(frame.RECEIPT)
	conns := n + 3
	settled(t, base, conns, "after connecting")

	for round := range 2 {
		pub := tcp[0]
		for i := range tcp {
			pub.write(fmt.Sprintf("SEND\ndestination:/topic/idle.%d\nreceipt:p%d\n\nm%d\x00", i, i, i))
			// The publisher's RECEIPT and, on its own destination, the
			// MESSAGE come in either order.
			frames := 1
			if i == 0 {
				frames = 2
			}
			for range frames {
				f, err := pub.read()
				if err != nil {
					t.Fatalf("round %d: publisher: %v", round, err)
				}
				if f != nil && f.Command == frame.MESSAGE {
					pub.write("ACK\nid:" + f.Header.Get(frame.Ack) + "\n\n\x00")
				}
			}
			if i > 0 {
				m := tcp[i].expect(frame.MESSAGE)
				if string(m.Body) != fmt.Sprintf("m%d", i) {
					t.Fatalf("round %d: client %d got %q", round, i, m.Body)
				}
				tcp[i].write("ACK\nid:" + m.Header.Get(frame.Ack) + "\nreceipt:a\n\n\x00")
				tcp[i].expect(frame.RECEIPT)
			}
		}
		pub.write("SEND\ndestination:/topic/idle.ws\n\nw\x00")
		if m := ws.expect(frame.MESSAGE); string(m.Body) != "w" {
			t.Fatalf("websocket delivery %q", m.Body)
		}
		ws.write("SEND\ndestination:/topic/none\nreceipt:r\n\n\x00")
		ws.expect(frame.RECEIPT)

		// Server heart-beats reach an idle connection.
		for beats := 0; beats < 2; {
			f, err := hbOut.read()
			if err != nil {
				t.Fatalf("round %d: waiting for heart-beats: %v", round, err)
			}
			if f != nil {
				t.Fatalf("round %d: got %s, want heart-beats", round, f.Command)
			}
			beats++
		}
		// A client heart-beating within its interval stays connected and
		// idle between beats (each beat is a burst of its own).
		for range 4 {
			hbIn.write("\n")
			time.Sleep(100 * time.Millisecond)
		}
		hbIn.write("SEND\ndestination:/topic/none\nreceipt:alive\n\n\x00")
		hbIn.expect(frame.RECEIPT)
		settled(t, base, conns, fmt.Sprintf("after round %d", round))
	}
}

// TestNoGoroutineLeak runs connections through their endings (DISCONNECT,
// ERROR, peer close, heart-beat timeout, server stop, over TCP and
// WebSocket), and checks that every goroutine is gone once the adapter
// has stopped.
func TestNoGoroutineLeak(t *testing.T) {
	runtime.GC()
	base := runtime.NumGoroutine()
	t.Run("traffic", func(t *testing.T) {
		e := startEnv(t, func(c *stomp.Config) { c.HeartBeatMin = 50 * time.Millisecond })
		sub := dialRaw(t, e.stomp)
		sub.connect("heart-beat:0,100")
		sub.write("SUBSCRIBE\nid:s\ndestination:/topic/leak\nreceipt:s\n\n\x00")
		sub.expect(frame.RECEIPT)
		pub := dialRaw(t, e.stomp)
		pub.connect()
		pub.write("SEND\ndestination:/topic/leak\nreceipt:1\n\nx\x00")
		pub.expect(frame.RECEIPT)
		sub.expect(frame.MESSAGE)

		bye := dialRaw(t, e.stomp)
		bye.connect()
		bye.write("DISCONNECT\nreceipt:bye\n\n\x00")
		bye.expect(frame.RECEIPT)
		bye.expectClosed("after DISCONNECT")

		bad := dialRaw(t, e.stomp)
		bad.connect()
		bad.write("NOPE\n\n\x00")
		bad.expectError("unknown command")

		gone := dialRaw(t, e.stomp)
		gone.connect()
		gone.nc.Close()

		quiet := dialRaw(t, e.stomp)
		quiet.connect("heart-beat:100,0")
		quiet.expectClosed("silent client")

		ws := dialWSStomp(t, e.ws)
		ws.write("CONNECT\naccept-version:1.2\nhost:test\n\n\x00")
		ws.expect(frame.CONNECTED)
		ws.write("SUBSCRIBE\nid:w\ndestination:/topic/leak\nreceipt:w\n\n\x00")
		ws.expect(frame.RECEIPT)
		pub.write("SEND\ndestination:/topic/leak\nreceipt:2\n\ny\x00")
		pub.expect(frame.RECEIPT)
		ws.expect(frame.MESSAGE)
		// sub, pub and ws are still open: the adapter's Stop ends them.
	})
	testutil.Eventually(t, waitTimeout, func() bool { return runtime.NumGoroutine() <= base+2 },
		"goroutines back to where they were before the adapter started")
	if n := runtime.NumGoroutine(); n > base+2 {
		var sb strings.Builder
		_ = pprof.Lookup("goroutine").WriteTo(&sb, 1)
		t.Fatalf("%d goroutines, %d before:\n%s", n, base, sb.String())
	}
}
