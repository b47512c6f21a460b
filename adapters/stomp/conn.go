package stomp

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-stomp/stomp/v3/frame"
	"go.uber.org/zap"

	"github.com/iotgw/iotgw/core"
)

// conn is one STOMP connection: a reader goroutine that splits and handles
// frames, calling the core, and a writer goroutine that turns queued
// control frames and deliveries into bytes and sends heart-beats. It is
// the core.Sink of its session.
//
// Locks, in order: sessState.subMu → Session.mu → mu → sessState.mu. mu
// guards the write queue and is taken inside Session.mu (by Deliver), so
// nothing holding mu calls the session. sessState.mu guards the routing
// state (subscriptions, unacknowledged frames); Deliver takes it inside
// mu, so nothing holding it takes mu or calls the session.
type conn struct {
	srv      *Server
	nc       net.Conn
	mr       *meteredReader
	fr       *frameReader
	perFrame bool // WebSocket: one message per frame
	log      *zap.Logger
	listener string
	remote   string

	// Reader-goroutine state. version is written before CONNECTED is
	// queued; the writer reads it only after taking an item from the
	// queue under mu, which orders the two.
	version   int // 10, 11 or 12; 0 before CONNECT
	clientID  string
	sess      *core.Session
	connected bool
	txs       map[string]*transaction

	// st is the routing state of the session, set (under mu) when the
	// session is bound, before it starts delivering.
	st *sessState

	hbOut      atomic.Int64 // server-to-client heart-beat interval, ns; 0 none
	mu         sync.Mutex
	out        []outItem
	spare      []outItem
	pending0   int
	closing    bool
	closed     atomic.Bool
	wake       chan struct{}
	writerDone chan struct{}
}

// outItem is a control frame, or the MESSAGE frames of one delivery,
// waiting for the writer. done asks the writer to complete core delivery
// ack once written (no subscription must acknowledge it).
//
// Frames are encoded with STOMP 1.1+ header escapes, except on a 1.0
// connection and for CONNECTED, which never escapes [STOMP 1.2 "Value
// Encoding"].
type outItem struct {
	f    *frame.Frame
	msgs []*frame.Frame
	ack  uint16
	done bool
}

var _ core.Sink = (*conn)(nil)

func newConn(s *Server, nc net.Conn, listener string, perFrame bool) *conn {
	remote := nc.RemoteAddr().String()
	c := &conn{
		srv:        s,
		nc:         nc,
		perFrame:   perFrame,
		listener:   listener,
		remote:     remote,
		log:        s.log.With(zap.String("remote", remote), zap.String("listener", listener)),
		wake:       make(chan struct{}, 1),
		writerDone: make(chan struct{}),
	}
	c.mr = &meteredReader{nc: nc, stats: s.b.Stats(), closed: &c.closed}
	c.fr = newFrameReader(c.mr, s.cfg.MaxFrameSize, s.cfg.MaxHeaders, s.cfg.MaxHeaderLength)
	return c
}

// Deliver routes a delivery to the subscriptions it names and queues
// their MESSAGE frames for the writer; it never blocks. Routing here, not
// in the writer, applies the subscriptions as they are when the core
// delivers: an UNSUBSCRIBE handled after this still lets the message
// out. QoS 0 beyond MaxPendingQoS0 is refused (the core counts the drop).
func (c *conn) Deliver(d core.Delivery) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return false
	}
	if d.QoS == 0 {
		if c.pending0 >= c.srv.cfg.MaxPendingQoS0 {
			return false
		}
		c.pending0++
	}
	st := c.st
	if st == nil {
		return false // not bound yet: QoS 1/2 stay inflight in the session
	}
	st.mu.Lock()
	if st.owner != c {
		st.mu.Unlock()
		return false
	}
	res := st.rt.route(&d)
	st.mu.Unlock()
	if res.dropped {
		c.srv.dropped.Add(1)
		if ce := c.log.Check(zap.InfoLevel, "message dropped after too many redeliveries"); ce != nil {
			ce.Write(zap.String("topic", d.Msg.Topic), zap.Int("max_redeliveries", c.srv.cfg.MaxRedeliveries))
		}
	}
	if len(res.frames) == 0 && !res.done {
		return true // held for a subscription to come, or for nobody
	}
	c.out = append(c.out, outItem{msgs: res.frames, ack: res.ack, done: res.done})
	if len(c.out) == 1 {
		c.signal()
	}
	return true
}

// queueLocked appends items for the writer (held deliveries a SUBSCRIBE
// releases); it must hold mu.
func (c *conn) queueLocked(items []outItem) {
	if len(items) == 0 || c.closing {
		return
	}
	first := len(c.out) == 0
	c.out = append(c.out, items...)
	if first {
		c.signal()
	}
}

// send queues a control frame.
func (c *conn) send(f *frame.Frame) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	c.out = append(c.out, outItem{f: f})
	first := len(c.out) == 1
	c.mu.Unlock()
	if first {
		c.signal()
	}
}

func (c *conn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Close implements core.Sink: the client gets an ERROR frame naming the
// reason (takeover, shutdown), then the connection closes.
func (c *conn) Close(reason error) {
	c.closeWith(errorFrame(errorMessage(reason), "", ""), reason)
}

// closeWith queues an optional last frame and marks the connection
// closing; the writer flushes what is queued and closes the socket.
func (c *conn) closeWith(last *frame.Frame, reason error) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	if last != nil {
		c.out = append(c.out, outItem{f: last})
	}
	c.closing = true
	c.mu.Unlock()
	c.closed.Store(true)
	if reason != nil {
		c.log.Debug("closing", zap.Error(reason))
	}
	// A peer that stops reading, or never closes its side, must not hold
	// the shutdown up for long.
	now := time.Now()
	_ = c.nc.SetWriteDeadline(now.Add(time.Second))
	_ = c.nc.SetReadDeadline(now.Add(2 * time.Second))
	c.signal()
}

func (c *conn) isClosing() bool { return c.closed.Load() }

// writeLoop encodes everything queued into one buffer. On TCP the buffer
// goes out in one write; on WebSocket each frame is one message, as
// browser clients expect. With nothing to send for the negotiated
// interval it sends a heart-beat EOL [STOMP 1.2 "Heart-beating"].
func (c *conn) writeLoop() {
	defer c.srv.wg.Done()
	defer close(c.writerDone)
	var buf bytes.Buffer
	fw := frame.NewWriterSize(&buf, 4096)
	var ends []int
	var acks []uint16
	stats := c.srv.b.Stats()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	last := time.Now()
	for {
		c.mu.Lock()
		items := c.out
		c.out = c.spare[:0]
		c.spare = nil
		c.pending0 = 0
		closing := c.closing
		escape := c.version >= 11
		c.mu.Unlock()
		buf.Reset()
		ends = ends[:0]
		acks = acks[:0]
		if len(items) == 0 {
			if closing {
				c.shutdownWrite()
				return
			}
			if cap(buf.Bytes()) > 64<<10 {
				buf = bytes.Buffer{} // an idle connection keeps no large buffer
			}
			hb := time.Duration(c.hbOut.Load())
			if hb <= 0 {
				<-c.wake
				continue
			}
			if wait := hb - time.Since(last); wait > 0 {
				timer.Reset(wait)
				select {
				case <-c.wake:
					timer.Stop()
					continue
				case <-timer.C:
				}
			}
			_ = fw.Write(nil) // an EOL
			ends = append(ends, buf.Len())
		}
		for i := range items {
			acks = c.encode(fw, escape, &items[i], &buf, &ends, acks)
			items[i] = outItem{}
		}
		c.mu.Lock()
		c.spare = items[:0]
		c.mu.Unlock()
		if buf.Len() > 0 {
			if !closing {
				_ = c.nc.SetWriteDeadline(time.Now().Add(c.srv.cfg.WriteTimeout))
			}
			if err := c.write(buf.Bytes(), ends, stats); err != nil {
				c.log.Debug("write failed", zap.Error(err))
				c.mu.Lock()
				c.closing = true
				c.out = nil
				c.mu.Unlock()
				c.closed.Store(true)
				c.nc.Close()
				return
			}
			last = time.Now()
		}
		// Deliveries that need no acknowledgement from the client are
		// complete once written (and the writer holds no lock now).
		for _, id := range acks {
			c.sess.AckedBy(c, id)
		}
	}
}

// encode appends one queued item to buf, recording frame ends.
func (c *conn) encode(fw *frame.Writer, escape bool, it *outItem, buf *bytes.Buffer, ends *[]int, acks []uint16) []uint16 {
	if it.f != nil {
		c.srv.countOut(it.f.Command)
		if escape && it.f.Command != frame.CONNECTED {
			_ = fw.Write(it.f) // writes into buf: cannot fail
		} else {
			writeUnescaped(buf, it.f)
		}
		*ends = append(*ends, buf.Len())
		return acks
	}
	for _, f := range it.msgs {
		c.srv.countOut(frame.MESSAGE)
		if escape {
			_ = fw.Write(f)
		} else {
			writeUnescaped(buf, f)
		}
		*ends = append(*ends, buf.Len())
	}
	if it.done {
		acks = append(acks, it.ack)
	}
	return acks
}

func (c *conn) write(b []byte, ends []int, stats *core.Stats) error {
	if !c.perFrame {
		n, err := c.nc.Write(b)
		stats.WireBytesSent.Add(uint64(n))
		return err
	}
	start := 0
	for _, end := range ends {
		n, err := c.nc.Write(b[start:end])
		stats.WireBytesSent.Add(uint64(n))
		if err != nil {
			return err
		}
		start = end
	}
	return nil
}

// shutdownWrite ends the writer: a TCP connection is half-closed so that
// the reader can drain what the client still sends before the socket
// closes (closing with unread input would reset the connection and could
// destroy the ERROR frame just sent).
func (c *conn) shutdownWrite() {
	if cw, ok := c.nc.(closeWriter); ok && cw.CloseWrite() == nil {
		return
	}
	c.nc.Close()
}

// closeWriter is a connection that can end its sending side alone (TCP,
// and WebSocket through its close handshake).
type closeWriter interface{ CloseWrite() error }

// readLoop reads and handles frames until the connection ends.
func (c *conn) readLoop() {
	defer c.srv.wg.Done()
	defer c.finish()
	_ = c.nc.SetReadDeadline(time.Now().Add(c.srv.cfg.ConnectTimeout))
	for {
		f, err := c.fr.read(c.version >= 11)
		if c.isClosing() {
			return
		}
		if err != nil {
			c.readFailed(err)
			return
		}
		c.srv.countIn(f.Command)
		if err := c.handle(f); err != nil {
			if !errors.Is(err, errClientDisconnected) {
				c.log.Info("closing connection", zap.Error(err))
			}
			return
		}
	}
}

// readFailed reports why reading stopped: EOF, a deadline (heart-beat or
// connect timeout), or a bad frame, which gets an ERROR frame.
func (c *conn) readFailed(err error) {
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed):
		c.log.Debug("connection closed by peer")
		c.closeWith(nil, err)
	case errors.As(err, &ne) && ne.Timeout():
		if !c.connected {
			c.log.Info("no CONNECT within the connect timeout", zap.Duration("timeout", c.srv.cfg.ConnectTimeout))
		} else {
			c.log.Info("heart-beat timeout: no data from client", zap.Duration("timeout", c.mr.timeout))
		}
		c.closeWith(nil, err)
	case isFrameError(err):
		c.log.Info("bad frame", zap.Error(err))
		c.closeWith(errorFrame(errorMessage(err), err.Error(), ""), err)
	default:
		c.log.Debug("read failed", zap.Error(err))
		c.closeWith(nil, err)
	}
}

// finish runs when the reader stops: detach the session, let the writer
// flush, drain what the client still sends for a moment, and close.
func (c *conn) finish() {
	c.closeWith(nil, nil)
	if c.sess != nil {
		// A session with zero expiry ends here; a persistent one keeps
		// its subscriptions and unacknowledged messages for the next
		// connection with the client-id.
		c.sess.Disconnect(c, core.DisconnectOptions{})
		if c.st != nil {
			c.st.unbind(c)
		}
	}
	<-c.writerDone
	if _, ok := c.nc.(closeWriter); ok {
		// The WebSocket size limit may trip once more while draining the
		// oversize message that caused the close: keep draining past it.
		for i := 0; i < 2; i++ {
			if _, err := io.Copy(io.Discard, io.LimitReader(c.nc, 1<<20)); !errors.Is(err, errFrameTooLarge) {
				break
			}
		}
	}
	c.nc.Close()
	c.srv.forget(c)
}

// meteredReader counts the bytes read from the socket and, once a client
// heart-beat interval is agreed, re-arms the read deadline on every read:
// any data from the client shows it is alive [STOMP 1.2 "Heart-beating"].
type meteredReader struct {
	nc      net.Conn
	stats   *core.Stats
	closed  *atomic.Bool
	timeout time.Duration // reader goroutine only
}

func (m *meteredReader) Read(p []byte) (int, error) {
	if m.timeout > 0 && !m.closed.Load() {
		_ = m.nc.SetReadDeadline(time.Now().Add(m.timeout))
	}
	n, err := m.nc.Read(p)
	m.stats.WireBytesReceived.Add(uint64(n))
	return n, err
}
