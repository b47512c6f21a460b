package stomp

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// wsConn presents a WebSocket as a byte stream (net.Conn), so TCP and
// WebSocket connections share one code path. Browser clients send one
// frame (or one heart-beat EOL) per message, text or binary; reading
// across message boundaries also serves clients that split or batch
// frames. Each Write is one message: text when it is valid UTF-8 (what
// browser libraries expect), binary otherwise (a binary body).
//
// A message over limit bytes fails the read with errFrameTooLarge, which
// the connection answers with an ERROR frame before closing, as on TCP.
//
// gorilla allows one concurrent writer and its SetWriteDeadline is not
// safe to call during a write, so the deadline is kept here: the writer
// applies it before each message, and a deadline set while a write is
// under way reaches that write through the network connection.
type wsConn struct {
	ws       *websocket.Conn
	r        io.Reader
	limit    int64 // reader goroutine only; 0 after the limit was hit
	n        int64 // bytes of the current message read so far
	wm       sync.Mutex
	deadline atomic.Int64 // write deadline, Unix ns; 0 none
}

func newWSConn(ws *websocket.Conn, limit int64) *wsConn { return &wsConn{ws: ws, limit: limit} }

func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			_, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			c.r = r
			c.n = 0
		}
		if c.limit > 0 && int64(len(p)) > c.limit-c.n+1 {
			p = p[:c.limit-c.n+1] // just enough to see the limit crossed
		}
		n, err := c.r.Read(p)
		c.n += int64(n)
		if c.limit > 0 && c.n > c.limit {
			// Once: what follows is only drained before the close.
			limit := c.limit
			c.limit = 0
			return 0, fmt.Errorf("%w: websocket message over %d bytes", errFrameTooLarge, limit)
		}
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

func (c *wsConn) Write(p []byte) (int, error) {
	c.wm.Lock()
	defer c.wm.Unlock()
	mt := websocket.TextMessage
	if !utf8.Valid(p) {
		mt = websocket.BinaryMessage
	}
	var dl time.Time
	if ns := c.deadline.Load(); ns != 0 {
		dl = time.Unix(0, ns)
	}
	_ = c.ws.SetWriteDeadline(dl)
	if err := c.ws.WriteMessage(mt, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// CloseWrite sends a normal-closure close message; the client answers
// with its own, which ends the reader.
func (c *wsConn) CloseWrite() error {
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
	return c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
}

func (c *wsConn) Close() error                      { return c.ws.Close() }
func (c *wsConn) LocalAddr() net.Addr               { return c.ws.LocalAddr() }
func (c *wsConn) RemoteAddr() net.Addr              { return c.ws.RemoteAddr() }
func (c *wsConn) SetReadDeadline(t time.Time) error { return c.ws.SetReadDeadline(t) }

// SetWriteDeadline applies to the next message and, through the network
// connection, to one being written now.
func (c *wsConn) SetWriteDeadline(t time.Time) error {
	var ns int64
	if !t.IsZero() {
		ns = t.UnixNano()
	}
	c.deadline.Store(ns)
	return c.ws.NetConn().SetWriteDeadline(t)
}

func (c *wsConn) SetDeadline(t time.Time) error {
	if err := c.ws.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}
