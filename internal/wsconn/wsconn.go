// Package wsconn presents a server-side WebSocket connection as a byte
// stream (net.Conn), so protocol adapters serve TCP and WebSocket with one
// code path. A protocol unit may span WebSocket messages and one message
// may hold several units, so reads run across message boundaries; each
// Write becomes one message.
//
// gorilla/websocket does the opening handshake; the frames are this
// package's own (RFC 6455, server side, no extensions). Why not gorilla's
// frames: its connection keeps a read buffer (and, without a pool, a write
// buffer) for its whole life, and a read that times out breaks it for
// good. Here a connection holds a buffer only while a frame is partly
// read, writes borrow one from a pool, and a timed-out read can be retried:
// an idle connection costs a few hundred bytes, and its reader may wait
// with a short deadline and hand over to a smaller goroutine.
package wsconn

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/iotgw/iotgw/internal/tcpconn"
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
	// its protocol's error before closing, which a plain read limit would
	// not allow.
	MaxMessage int64
	TooLarge   error
}

// ErrMessageTooLarge is the default error for a message over MaxMessage.
var ErrMessageTooLarge = errors.New("websocket message too large")

// ErrTextFrame reports a text message where only binary is allowed.
var ErrTextFrame = errors.New("websocket: text message not allowed")

// Conn is a WebSocket as a net.Conn. Read must be called from one
// goroutine at a time; Write, Close and the deadline setters from any.
type Conn struct {
	nc   net.Conn
	opts Options
	rd   reader // used by Read only

	wm sync.Mutex
	// writeDeadline is the adapter's write deadline, restored after a
	// control frame the reader sends with its own.
	writeDeadline atomic.Int64
	// closeSent: a close frame has gone out. A close handshake has one
	// close frame each way [RFC 6455, 5.5.1]: the peer's answer to ours
	// (CloseWrite) is not answered again, and the frame a peer would
	// leave unread makes its kernel reset the connection when it closes.
	closeSent atomic.Bool
}

// Upgrade completes the opening handshake with up (its buffer settings
// are overridden: the handshake borrows and the connection keeps none)
// and returns the connection.
func Upgrade(w http.ResponseWriter, r *http.Request, up websocket.Upgrader, opts Options) (*Conn, error) {
	up.ReadBufferSize = 0 // reuse the HTTP server's hijacked reader for the handshake
	up.WriteBufferSize = 0
	up.WriteBufferPool = handshakePool
	up.EnableCompression = false // frames are ours, and we do no extensions
	ws, err := up.Upgrade(w, r, nil)
	if err != nil {
		return nil, err
	}
	return New(ws, opts), nil
}

// handshakePool keeps gorilla from allocating a write buffer per
// connection: the connection never writes through gorilla.
var handshakePool = &sync.Pool{}

// New takes over the socket of ws, fresh from the handshake: ws must not
// be read, written or closed afterwards (nothing has read past the
// handshake, so no frame is buffered in it).
func New(ws *websocket.Conn, opts Options) *Conn {
	// The socket records its receive times (internal/tcpconn), which
	// Arrived passes on. Over TLS (wss) the TLS stream is the socket: the
	// listener wrapped the TCP one under it.
	if tc, ok := ws.UnderlyingConn().(*tls.Conn); ok {
		return newConn(tcpconn.WrapTLS(tc), opts)
	}
	return newConn(tcpconn.Wrap(ws.UnderlyingConn()), opts)
}

func newConn(nc net.Conn, opts Options) *Conn {
	if opts.TooLarge == nil {
		opts.TooLarge = ErrMessageTooLarge
	}
	c := &Conn{nc: nc, opts: opts}
	c.rd.c = c
	return c
}

// Read reads stream data across message boundaries. A timeout leaves the
// connection usable; any other error is final.
func (c *Conn) Read(p []byte) (int, error) { return c.rd.read(p) }

// Close codes used here (RFC 6455, 7.4.1).
const (
	closeNormal        = 1000
	closeProtocolError = 1002
	closeInvalidData   = 1007
	closeNoStatus      = 1005
)

// Frame opcodes.
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

// writePool holds frame buffers: a connection has one only while writing.
var writePool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// Write sends p as one message.
func (c *Conn) Write(p []byte) (int, error) {
	op := byte(opBinary)
	if c.opts.TextWhenUTF8 && utf8.Valid(p) {
		op = opText
	}
	c.wm.Lock()
	defer c.wm.Unlock()
	if err := c.writeFrameLocked(op, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// WriteMessages sends b[0:ends[0]], b[ends[0]:ends[1]], ... as one
// message each, framed into one buffer and written with one call (a
// chunk at a time when large): protocols whose peers expect one frame a
// message (STOMP) then pay one system call per batch, not per message.
// It returns the payload bytes sent.
func (c *Conn) WriteMessages(b []byte, ends []int) (int, error) {
	c.wm.Lock()
	defer c.wm.Unlock()
	bp := writePool.Get().(*[]byte)
	out := (*bp)[:0]
	sent, start := 0, 0
	for i, end := range ends {
		p := b[start:end]
		op := byte(opBinary)
		if c.opts.TextWhenUTF8 && utf8.Valid(p) {
			op = opText
		}
		out = appendHeader(out, op, len(p))
		out = append(out, p...)
		start = end
		if len(out) >= writeChunk || i == len(ends)-1 {
			if _, err := c.nc.Write(out); err != nil {
				return sent, err
			}
			sent = end
			out = out[:0]
		}
	}
	if cap(out) <= 128<<10 {
		*bp = out[:0]
		writePool.Put(bp) // a huge one is left to the GC
	}
	return sent, nil
}

// writeChunk is the size at which WriteMessages writes mid-batch.
const writeChunk = 64 << 10

// writeFrameLocked writes one unmasked final frame. c.wm must be held.
func (c *Conn) writeFrameLocked(op byte, p []byte) error {
	bp := writePool.Get().(*[]byte)
	b := appendHeader((*bp)[:0], op, len(p))
	b = append(b, p...)
	_, err := c.nc.Write(b)
	if cap(b) <= 128<<10 {
		*bp = b[:0]
		writePool.Put(bp) // a huge one is left to the GC
	}
	return err
}

func appendHeader(b []byte, op byte, n int) []byte {
	b = append(b, 0x80|op)
	switch {
	case n <= 125:
		b = append(b, byte(n))
	case n <= 0xFFFF:
		b = append(b, 126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return b
}

// writeControl sends a control frame from the reader (pong, close reply)
// with a deadline of its own, so a peer that does not read cannot hold the
// reader; the adapter's deadline is restored afterwards.
func (c *Conn) writeControl(op byte, p []byte) error {
	c.wm.Lock()
	defer c.wm.Unlock()
	_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	err := c.writeFrameLocked(op, p)
	_ = c.nc.SetWriteDeadline(c.adapterDeadline())
	return err
}

func (c *Conn) adapterDeadline() time.Time {
	if d := c.writeDeadline.Load(); d != 0 {
		return time.Unix(0, d)
	}
	return time.Time{}
}

// closePayload is a close frame's body: the status code, no reason.
func closePayload(code int) []byte {
	if code == closeNoStatus {
		return nil // 1005 must not be sent; an empty close answers one
	}
	return binary.BigEndian.AppendUint16(nil, uint16(code))
}

// CloseWrite sends a normal-closure close message; a well-behaved peer
// answers with its own, which ends the reader.
func (c *Conn) CloseWrite() error { return c.sendClose(closeNormal) }

// sendClose sends a close frame with code, unless one has gone out
// already (closeSent).
func (c *Conn) sendClose(code int) error {
	if c.closeSent.Swap(true) {
		return nil
	}
	return c.writeControl(opClose, closePayload(code))
}

// Arrived returns the receive time (Unix ns) of the last bytes read from
// the socket, when the socket records it (internal/tcpconn), else zero.
func (c *Conn) Arrived() int64 {
	if a, ok := c.nc.(interface{ Arrived() int64 }); ok {
		return a.Arrived()
	}
	return 0
}

// ConnectionState returns the TLS state of a connection over wss (the
// zero state over plain ws), for the client certificate's name.
func (c *Conn) ConnectionState() tls.ConnectionState {
	if t, ok := c.nc.(interface{ ConnectionState() tls.ConnectionState }); ok {
		return t.ConnectionState()
	}
	return tls.ConnectionState{}
}

// Unsent returns the underlying socket's bytes not yet acknowledged by
// the peer (internal/tcpconn), or -1 when it does not tell.
func (c *Conn) Unsent() int {
	if u, ok := c.nc.(interface{ Unsent() int }); ok {
		return u.Unsent()
	}
	return -1
}

// Close closes the underlying connection.
func (c *Conn) Close() error { return c.nc.Close() }

// LocalAddr returns the local address.
func (c *Conn) LocalAddr() net.Addr { return c.nc.LocalAddr() }

// RemoteAddr returns the peer's address.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// SetReadDeadline sets the read deadline (safe beside a blocked Read).
func (c *Conn) SetReadDeadline(t time.Time) error { return c.nc.SetReadDeadline(t) }

// SetWriteDeadline sets the write deadline, also for a Write blocked
// right now.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	if t.IsZero() {
		c.writeDeadline.Store(0)
	} else {
		c.writeDeadline.Store(t.UnixNano())
	}
	return c.nc.SetWriteDeadline(t)
}

// SetDeadline sets both deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

var _ net.Conn = (*Conn)(nil)
