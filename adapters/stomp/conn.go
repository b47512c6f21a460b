package stomp

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-stomp/stomp/v3/frame"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/iotgw/iotgw/core"
)

// conn is one STOMP connection and the core.Sink of its session. Its
// reader goroutine splits and handles frames, calling the core, and
// writes the replies of a burst itself; a writer goroutine runs only
// while deliveries (or replies queued from elsewhere) are to be written,
// and exits when idle; a timer sends heart-beats. An idle connection is
// one small goroutine waiting for a byte (see readBursts), with no
// buffers: docs/design.md "The connection model".
//
// Locks, in order: sessState.subMu → Session.mu → mu → sessState.mu. mu
// guards the write queue and is taken inside Session.mu (by Deliver), so
// nothing holding mu calls the session. sessState.mu guards the routing
// state (subscriptions, unacknowledged frames); Deliver takes it inside
// mu, so nothing holding it takes mu or calls the session.
type conn struct {
	srv      *Server
	nc       net.Conn
	perFrame bool // WebSocket: one message per frame
	listener string
	remote   string

	// Reader-goroutine state. version is written before CONNECTED is
	// queued; the writer reads it only after taking an item from the
	// queue under mu, which orders the two.
	fr        *frameReader // borrowed from frameReaderPool while input arrives
	first     firstByte
	version   int // 10, 11 or 12; 0 before CONNECT
	clientID  string
	logID     atomic.Pointer[string] // clientID, for logging from any goroutine
	sess      *core.Session
	connected bool
	txs       map[string]*transaction
	hbIn      time.Duration // client heart-beat timeout (grace included); 0 none
	lastInput time.Time     // when the reader last ran out of input
	lingerSet time.Time     // when the linger deadline was last set
	lingering bool          // the read deadline is the linger, not the heart-beat

	// st is the routing state of the session, set (under mu) when the
	// session is bound, before it starts delivering.
	st *sessState

	hbOut     time.Duration // server-to-client heart-beat interval; 0 none; set before hbTimer
	hbTimer   *time.Timer   // sends heart-beats; guarded by mu
	lastWrite atomic.Int64  // unix ns of the last write to the socket

	mu         sync.Mutex
	out        []outItem
	spare      []outItem
	pending0   int
	closing    bool
	writing    bool // someone writes the queue: a writer goroutine, or the reader at the end of a burst
	closed     atomic.Bool
	wake       chan struct{} // wakes a running writer goroutine
	writerDone chan struct{} // closed by the writer that ends the sending side
}

// outItem is a control frame, the MESSAGE frames of one delivery, or a
// heart-beat, waiting for the writer. done asks the writer to complete
// core delivery ack once written (no subscription must acknowledge it).
//
// Frames are encoded with STOMP 1.1+ header escapes, except on a 1.0
// connection and for CONNECTED, which never escapes [STOMP 1.2 "Value
// Encoding"].
type outItem struct {
	f    *frame.Frame
	msgs []*frame.Frame
	ack  uint16
	done bool
	eol  bool // a heart-beat
}

var _ core.Sink = (*conn)(nil)

func newConn(s *Server, nc net.Conn, listener string, perFrame bool) *conn {
	c := &conn{
		srv:        s,
		nc:         nc,
		perFrame:   perFrame,
		listener:   listener,
		remote:     nc.RemoteAddr().String(),
		wake:       make(chan struct{}, 1),
		writerDone: make(chan struct{}),
	}
	c.first.c = c
	return c
}

// logAt logs with the connection's fields. They are attached per call
// rather than kept in a derived logger: a logger per connection costs
// kilobytes of idle memory, and logging is rare.
func (c *conn) logAt(level zapcore.Level, msg string, fields ...zap.Field) {
	if ce := c.srv.log.Check(level, msg); ce != nil {
		fields = append(fields, zap.String("remote", c.remote), zap.String("listener", c.listener))
		if id := c.logID.Load(); id != nil {
			fields = append(fields, zap.String("client_id", *id))
		}
		ce.Write(fields...)
	}
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
		c.logAt(zap.InfoLevel, "message dropped after too many redeliveries",
			zap.String("topic", d.Msg.Topic), zap.Int("max_redeliveries", c.srv.cfg.MaxRedeliveries))
	}
	if len(res.frames) == 0 && !res.done {
		return true // held for a subscription to come, or for nobody
	}
	c.out = append(c.out, outItem{msgs: res.frames, ack: res.ack, done: res.done})
	c.startWriterLocked()
	return true
}

// queueLocked appends items for the writer (held deliveries a SUBSCRIBE
// releases); it must hold mu.
func (c *conn) queueLocked(items []outItem) {
	if len(items) == 0 || c.closing {
		return
	}
	c.out = append(c.out, items...)
	c.startWriterLocked()
}

// reply queues a control frame from the reader goroutine. Unless a writer
// is running, the reader writes it itself when its burst of input ends
// (flushReplies): a connection that only connects and subscribes never
// needs a second goroutine.
func (c *conn) reply(f *frame.Frame) { c.enqueue(outItem{f: f}, true) }

func (c *conn) enqueue(it outItem, fromReader bool) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	c.out = append(c.out, it)
	if !fromReader || c.writing {
		c.startWriterLocked()
	}
	c.mu.Unlock()
}

// kickWriter hands the reader's pending replies to a writer goroutine;
// the reader calls it before it may block in a handler (backpressure), so
// that earlier RECEIPTs do not wait for the end of its burst.
func (c *conn) kickWriter() {
	c.mu.Lock()
	if len(c.out) > 0 && !c.closing {
		c.startWriterLocked()
	}
	c.mu.Unlock()
}

// Close implements core.Sink: the client gets an ERROR frame naming the
// reason (takeover, shutdown), then the connection closes.
func (c *conn) Close(reason error) {
	c.closeWith(errorFrame(errorMessage(reason), "", ""), reason)
}

// closeWith queues an optional last frame and marks the connection
// closing; the writer flushes what is queued and ends the sending side.
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
	if c.hbTimer != nil {
		c.hbTimer.Stop()
	}
	if c.writing {
		c.wakeWriterLocked()
	} else {
		c.startWriterLocked()
	}
	c.mu.Unlock()
	c.closed.Store(true)
	if reason != nil {
		c.logAt(zap.DebugLevel, "closing", zap.Error(reason))
	}
	// A peer that stops reading, or never closes its side, must not hold
	// the shutdown up for long.
	now := time.Now()
	_ = c.nc.SetWriteDeadline(now.Add(time.Second))
	_ = c.nc.SetReadDeadline(now.Add(closeDrain))
}

func (c *conn) isClosing() bool { return c.closed.Load() }

// closeWriter is a connection that can end its sending side alone (TCP,
// and WebSocket through its close handshake).
type closeWriter interface{ CloseWrite() error }

// readLoop is the connection's first reader goroutine.
func (c *conn) readLoop() {
	_ = c.nc.SetReadDeadline(time.Now().Add(c.srv.cfg.ConnectTimeout))
	c.readBursts(nil)
}

// readBursts reads and handles frames; err is a read error that ended the
// wait before it. It returns when the connection ends (after finish), or
// when the input paused for readerLinger, having handed the connection
// to a fresh goroutine (idleRead).
//
// Why the hand-over: handling frames (CONNECT, SUBSCRIBE, routing a SEND)
// grows a goroutine's stack to several KiB, and the runtime shrinks it
// only by halves at garbage collections, which are rare when nothing
// happens. An idle connection's goroutine would keep that stack for its
// whole life; a new one that only waits for a byte starts small.
func (c *conn) readBursts(err error) {
	defer c.srv.wg.Done()
	for {
		if err == nil && !c.first.has && (c.fr == nil || c.fr.br.Buffered() == 0) {
			c.flushReplies()
			var idle bool
			idle, err = c.awaitData()
			if idle {
				c.dropQueues()
				c.srv.wg.Add(1)
				go c.idleRead()
				return
			}
		}
		if c.isClosing() {
			c.finish()
			return
		}
		if err != nil {
			c.readFailed(err)
			c.finish()
			return
		}
		if c.fr == nil {
			cfg := &c.srv.cfg
			c.fr = borrowFrameReader(&c.first, cfg.MaxFrameSize, cfg.MaxHeaders, cfg.MaxHeaderLength)
		}
		f, rerr := c.fr.read(c.version >= 11)
		if c.isClosing() {
			c.finish()
			return
		}
		if rerr != nil {
			c.readFailed(rerr)
			c.finish()
			return
		}
		if f == nil {
			continue // heart-beats only, and nothing more buffered
		}
		c.srv.countIn(f.Command)
		if herr := c.handle(f); herr != nil {
			if !errors.Is(herr, errClientDisconnected) {
				c.logAt(zap.InfoLevel, "closing connection", zap.Error(herr))
			}
			c.finish()
			return
		}
	}
}

// idleRead is the goroutine of an idle connection: it holds no buffer and
// a minimal stack while it waits for the next byte, then carries on as
// the reader. It must stay shallow: its frame and those of the read it
// calls are all the stack an idle connection has.
func (c *conn) idleRead() {
	c.heartBeatDeadline(c.lastInput)
	c.readBursts(c.readFirst())
}

// readerLinger is how long the reader waits for more input after a burst
// before it hands the connection to a fresh goroutine (readBursts); the
// same figure as MQTT's.
const readerLinger = 100 * time.Millisecond

// heartBeatDeadline expects data from the client within the heart-beat
// timeout after from (any data shows it is alive [STOMP 1.2
// "Heart-beating"]; no deadline without client heart-beats) and ends the
// linger.
func (c *conn) heartBeatDeadline(from time.Time) {
	c.lingering = false
	if c.hbIn > 0 {
		c.setReadDeadline(from.Add(c.hbIn))
	} else {
		c.setReadDeadline(time.Time{})
	}
}

// setReadDeadline sets the reader's deadline unless the connection is
// closing: closeWith's short deadline (which bounds the wait for the
// peer) must not be replaced by a later one set by the reader.
func (c *conn) setReadDeadline(t time.Time) {
	_ = c.nc.SetReadDeadline(t)
	if c.closed.Load() {
		_ = c.nc.SetReadDeadline(time.Now().Add(closeDrain))
	}
}

// closeDrain is how long a closing connection still reads what the
// client sends (so that closing does not reset the connection under the
// ERROR frame just sent).
const closeDrain = 2 * time.Second

// awaitData gives the frame reader back and blocks on a one-byte read;
// once connected it waits only readerLinger, and reports idle when that
// passes without input (the heart-beat timeout is then the idle
// goroutine's to enforce). Before CONNECT the connect timeout stands.
func (c *conn) awaitData() (idle bool, err error) {
	if c.fr != nil {
		c.fr.release()
		c.fr = nil
	}
	if c.connected {
		// The reader has just run out of input: the client heart-beat
		// timeout counts from here.
		now := time.Now()
		c.lastInput = now
		// Re-arming costs a timer update; skip it while the linger set
		// last is at least half a linger away.
		if !c.lingering || now.Sub(c.lingerSet) >= readerLinger/2 {
			c.lingering = true
			c.lingerSet = now
			c.setReadDeadline(now.Add(readerLinger))
		}
	}
	if err := c.readFirst(); err != nil {
		if c.lingering && isTimeout(err) && !c.isClosing() {
			return true, nil
		}
		return false, err
	}
	return false, nil
}

// readFirst blocks until one byte arrives and keeps it in c.first.
func (c *conn) readFirst() error {
	for {
		n, err := c.nc.Read(c.first.b[:])
		if n == 1 {
			c.srv.b.Stats().WireBytesReceived.Add(1)
			c.first.has = true
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// firstByte is the frame reader's source: it replays the byte awaitData
// read, then reads the socket, counting the bytes.
type firstByte struct {
	c   *conn
	b   [1]byte
	has bool
}

func (f *firstByte) Read(p []byte) (int, error) {
	if f.has && len(p) > 0 {
		p[0] = f.b[0]
		f.has = false
		return 1, nil // do not block for more: bufio asks again when it needs it
	}
	c := f.c
	n, err := c.nc.Read(p)
	if n == 0 && c.lingering && isTimeout(err) && !c.isClosing() {
		// The linger ran out in the middle of a frame: that is a slow
		// client, not an idle one, and it has the heart-beat timeout.
		c.heartBeatDeadline(time.Now())
		n, err = c.nc.Read(p)
	}
	c.srv.b.Stats().WireBytesReceived.Add(uint64(n))
	return n, err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// readFailed reports why reading stopped: EOF, a deadline (heart-beat or
// connect timeout), or a bad frame, which gets an ERROR frame.
func (c *conn) readFailed(err error) {
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed):
		c.logAt(zap.DebugLevel, "connection closed by peer")
		c.closeWith(nil, err)
	case isTimeout(err):
		if !c.connected {
			c.logAt(zap.InfoLevel, "no CONNECT within the connect timeout", zap.Duration("timeout", c.srv.cfg.ConnectTimeout))
		} else {
			c.logAt(zap.InfoLevel, "heart-beat timeout: no data from client", zap.Duration("timeout", c.hbIn))
		}
		c.closeWith(nil, err)
	case isFrameError(err):
		c.logAt(zap.InfoLevel, "bad frame", zap.Error(err))
		c.closeWith(errorFrame(errorMessage(err), err.Error(), ""), err)
	default:
		c.logAt(zap.DebugLevel, "read failed", zap.Error(err))
		c.closeWith(nil, err)
	}
}

// finish runs when the reader stops: detach the session, let the writer
// flush, drain what the client still sends for a moment, and close.
func (c *conn) finish() {
	if c.fr != nil {
		c.fr.release()
		c.fr = nil
	}
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
