// Package wsconn presents a gorilla WebSocket connection as a byte stream
// (net.Conn), so protocol adapters serve TCP and WebSocket with one code
// path. A protocol unit may span WebSocket messages and one message may
// hold several units, so reads run across message boundaries; each Write
// becomes one message.
package wsconn

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

// Options select how messages map onto the stream.
type Options struct {
	// AcceptText lets text messages carry stream data; otherwise a text
	// message is an error (MQTT allows binary frames only [MQTT-6.0.0-1]).
	AcceptText bool
	// TextWhenUTF8 sends a Write as a text message when it is valid UTF-8
	// (what browser STOMP clients expect), else as binary.
	TextWhenUTF8 bool
	// MaxMessage, when > 0, fails the read that crosses it with TooLarge
	// (ErrMessageTooLarge if nil), once; the adapter can then answer with
	// its protocol's error before closing, which gorilla's own read limit
	// would not allow.
	MaxMessage int64
	TooLarge   error
}

// ErrMessageTooLarge is the default error for a message over MaxMessage.
var ErrMessageTooLarge = errors.New("websocket message too large")

// Conn is a WebSocket as a net.Conn. Read and Write may be called from
// different goroutines; so may the deadline setters.
type Conn struct {
	ws   *websocket.Conn
	opts Options
	r    io.Reader
	n    int64 // bytes of the current message read so far
	wm   sync.Mutex
	// writeDeadline is applied by Write under wm: gorilla's own setter is
	// not safe beside a concurrent write.
	writeDeadline atomic.Int64
}

// New wraps ws.
func New(ws *websocket.Conn, opts Options) *Conn {
	if opts.TooLarge == nil {
		opts.TooLarge = ErrMessageTooLarge
	}
	return &Conn{ws: ws, opts: opts}
}

// ErrTextFrame reports a text message where only binary is allowed.
var ErrTextFrame = errors.New("websocket: text message not allowed")

// Read reads stream data across message boundaries.
func (c *Conn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			mt, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if mt != websocket.BinaryMessage && !c.opts.AcceptText {
				return 0, ErrTextFrame
			}
			c.r = r
			c.n = 0
		}
		limit := c.opts.MaxMessage
		if limit > 0 && int64(len(p)) > limit-c.n+1 {
			p = p[:limit-c.n+1] // just enough to see the limit crossed
		}
		n, err := c.r.Read(p)
		c.n += int64(n)
		if limit > 0 && c.n > limit {
			c.opts.MaxMessage = 0 // once: what follows is only drained before the close
			return 0, fmt.Errorf("%w: websocket message over %d bytes", c.opts.TooLarge, limit)
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

// Write sends p as one message.
func (c *Conn) Write(p []byte) (int, error) {
	c.wm.Lock()
	defer c.wm.Unlock()
	mt := websocket.BinaryMessage
	if c.opts.TextWhenUTF8 && utf8.Valid(p) {
		mt = websocket.TextMessage
	}
	var deadline time.Time
	if d := c.writeDeadline.Load(); d != 0 {
		deadline = time.Unix(0, d)
	}
	_ = c.ws.SetWriteDeadline(deadline)
	if err := c.ws.WriteMessage(mt, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// CloseWrite sends a normal-closure close message; a well-behaved peer
// answers with its own, which ends the reader.
func (c *Conn) CloseWrite() error {
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
	return c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
}

// Close closes the underlying connection.
func (c *Conn) Close() error { return c.ws.Close() }

// LocalAddr returns the local address.
func (c *Conn) LocalAddr() net.Addr { return c.ws.LocalAddr() }

// RemoteAddr returns the peer's address.
func (c *Conn) RemoteAddr() net.Addr { return c.ws.RemoteAddr() }

// SetReadDeadline sets the read deadline (safe beside a blocked Read).
func (c *Conn) SetReadDeadline(t time.Time) error { return c.ws.SetReadDeadline(t) }

// SetWriteDeadline records the deadline for the next Write and applies it
// to the socket at once, so that a Write blocked right now also ends.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	if t.IsZero() {
		c.writeDeadline.Store(0)
	} else {
		c.writeDeadline.Store(t.UnixNano())
	}
	return c.ws.UnderlyingConn().SetWriteDeadline(t)
}

// SetDeadline sets both deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

var _ net.Conn = (*Conn)(nil)
