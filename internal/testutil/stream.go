package testutil

// Client-side helpers of the close tests of the stream protocols (MQTT and
// STOMP over TCP and WebSocket): a WebSocket seen as a byte stream, so a
// raw client serves both transports, and a writer that keeps sending while
// the gateway closes the connection.

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// wsStream is a client WebSocket as a net.Conn: reads run across message
// boundaries, each Write is one message. One goroutine may read while
// others write (gorilla allows one writer at a time: mu).
type wsStream struct {
	ws   *websocket.Conn
	op   int // websocket.BinaryMessage or TextMessage
	cur  io.Reader
	mu   sync.Mutex
	addr net.Addr
}

// DialWS opens a WebSocket to url offering subprotocol and returns it as
// a byte stream whose writes go out as text messages if text, else binary.
// It is closed when the test ends. A read that meets the server's close
// frame returns a *websocket.CloseError (see GracefulEnd); gorilla answers
// the close frame by itself.
func DialWS(t testing.TB, url, subprotocol string, text bool) net.Conn {
	t.Helper()
	return DialWSS(t, url, subprotocol, text, nil)
}

// DialWSS is DialWS for a wss:// URL: the TLS handshake uses cfg (a
// PKI's ClientConfig, say). A nil cfg is Go's default, enough for ws://.
func DialWSS(t testing.TB, url, subprotocol string, text bool, cfg *tls.Config) net.Conn {
	t.Helper()
	d := websocket.Dialer{Subprotocols: []string{subprotocol}, HandshakeTimeout: 10 * time.Second, TLSClientConfig: cfg}
	ws, resp, err := d.Dial(url, http.Header{})
	if err != nil {
		t.Fatalf("websocket dial %s: %v", url, err)
	}
	if resp.Body != nil {
		resp.Body.Close()
	}
	t.Cleanup(func() { ws.Close() })
	s := &wsStream{ws: ws, op: websocket.BinaryMessage, addr: ws.NetConn().LocalAddr()}
	if text {
		s.op = websocket.TextMessage
	}
	return s
}

func (s *wsStream) Read(p []byte) (int, error) {
	for {
		if s.cur == nil {
			_, r, err := s.ws.NextReader()
			if err != nil {
				return 0, err
			}
			s.cur = r
		}
		n, err := s.cur.Read(p)
		if errors.Is(err, io.EOF) {
			s.cur = nil
			err = nil
		}
		if n > 0 || err != nil {
			return n, err
		}
	}
}

func (s *wsStream) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.ws.WriteMessage(s.op, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (s *wsStream) Close() error                      { return s.ws.Close() }
func (s *wsStream) LocalAddr() net.Addr               { return s.addr }
func (s *wsStream) RemoteAddr() net.Addr              { return s.ws.RemoteAddr() }
func (s *wsStream) SetReadDeadline(t time.Time) error { return s.ws.SetReadDeadline(t) }

func (s *wsStream) SetWriteDeadline(t time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ws.SetWriteDeadline(t)
}

func (s *wsStream) SetDeadline(t time.Time) error {
	_ = s.SetReadDeadline(t)
	return s.SetWriteDeadline(t)
}

// GracefulEnd reports whether err is how a gracefully closed connection
// ends: the end of a TCP stream (the gateway's FIN), or a WebSocket close
// frame with normal closure. A reset (ECONNRESET) is not.
func GracefulEnd(err error) bool {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Code == websocket.CloseNormalClosure
	}
	return errors.Is(err, io.EOF)
}

// Writer sends one unit again and again from its own goroutine until
// stopped: the client that does not stop writing while the gateway closes
// its connection (it answers acks, pings, trickles a long packet).
type Writer struct {
	nc     net.Conn
	unit   []byte
	writes atomic.Int64
	stop   chan struct{}
	done   chan struct{}
	err    error // the write that failed; read after done
}

// writerPause spaces the writer's units: a steady stream that keeps input
// arriving through the close, without spinning a core of a small machine.
const writerPause = 500 * time.Microsecond

// KeepWriting starts a Writer sending unit over nc.
func KeepWriting(nc net.Conn, unit []byte) *Writer {
	w := &Writer{nc: nc, unit: unit, stop: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	return w
}

func (w *Writer) run() {
	defer close(w.done)
	for {
		select {
		case <-w.stop:
			return
		default:
		}
		_ = w.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := w.nc.Write(w.unit); err != nil {
			w.err = err
			return
		}
		w.writes.Add(1)
		time.Sleep(writerPause)
	}
}

// More waits until k more units have been written than when it was called,
// or the writer has failed (Stop reports it).
func (w *Writer) More(t testing.TB, k int, what string) {
	t.Helper()
	target := w.writes.Load() + int64(k)
	Eventually(t, 10*time.Second, func() bool {
		select {
		case <-w.done:
			return true
		default:
			return w.writes.Load() >= target
		}
	}, what+": the client's writes")
}

// Stop stops the writer and fails the test if one of its writes failed:
// until the client has closed, a gateway that closes gracefully reads and
// discards what it sends, so the writes succeed; a failed one (EPIPE,
// ECONNRESET) means the gateway reset the connection.
func (w *Writer) Stop(t testing.TB, what string) {
	t.Helper()
	close(w.stop)
	<-w.done
	if w.err != nil {
		t.Errorf("%s: the client's write failed after %d units: %v (the gateway reset the connection instead of draining it)",
			what, w.writes.Load(), w.err)
	}
}
