package stomp

import (
	"errors"
	"io"
	"net"
	"sync"
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
type wsConn struct {
	ws *websocket.Conn
	r  io.Reader
	wm sync.Mutex
}

func newWSConn(ws *websocket.Conn) *wsConn { return &wsConn{ws: ws} }

func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			_, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			c.r = r
		}
		n, err := c.r.Read(p)
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

func (c *wsConn) Close() error                       { return c.ws.Close() }
func (c *wsConn) LocalAddr() net.Addr                { return c.ws.LocalAddr() }
func (c *wsConn) RemoteAddr() net.Addr               { return c.ws.RemoteAddr() }
func (c *wsConn) SetReadDeadline(t time.Time) error  { return c.ws.SetReadDeadline(t) }
func (c *wsConn) SetWriteDeadline(t time.Time) error { return c.ws.SetWriteDeadline(t) }
func (c *wsConn) SetDeadline(t time.Time) error {
	if err := c.ws.SetReadDeadline(t); err != nil {
		return err
	}
	return c.ws.SetWriteDeadline(t)
}
