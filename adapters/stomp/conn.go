package stomp

import (
	"bufio"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/go-stomp/stomp/v3/frame"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/iotgw/iotgw/core"
	"github.com/iotgw/iotgw/internal/streamconn"
)

// conn is one STOMP connection on the shared stream engine
// (internal/streamconn: reader and writer goroutines, idle hand-over,
// queue, graceful close); this type is its STOMP side, the frame codec
// and the handlers, and the core.Sink of its session. Heart-beats are
// sent by a timer, not a goroutine: docs/design.md "STOMP adapter".
//
// Locks, in order: sessState.subMu → Session.mu → the engine's lock →
// sessState.mu. The engine's lock guards the write queue and is taken
// inside Session.mu (by Deliver), so nothing holding it calls the
// session. sessState.mu guards the routing state (subscriptions,
// unacknowledged frames); Deliver takes it inside the engine's lock, so
// nothing holding it takes that lock or calls the session.
type conn struct {
	eng      streamconn.Conn[outItem]
	srv      *Server
	listener string
	remote   string

	// Reader-goroutine state. version is written under the engine's lock
	// before CONNECTED is queued; the writer reads it only after taking an
	// item from the queue under the same lock, which orders the two.
	fr        *frameReader // borrowed from frameReaderPool while input arrives
	version   int          // 10, 11 or 12; 0 before CONNECT
	clientID  string
	logID     atomic.Pointer[string] // clientID, for logging from any goroutine
	limit     *core.ClientLimit      // limits.client_* budget; nil without one
	sess      *core.Session
	connected bool
	txs       map[string]*transaction
	hbIn      time.Duration // client heart-beat timeout (grace included); 0 none
	acks      *streamconn.Pipe[outItem]

	// st is the routing state of the session, set (under the engine's
	// lock) when the session is bound, before it starts delivering.
	st *sessState

	hbOut   time.Duration // server-to-client heart-beat interval; 0 none; set before hbTimer
	hbTimer *time.Timer   // sends heart-beats; guarded by the engine's lock
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

var (
	_ core.Sink  = (*conn)(nil)
	_ core.Pacer = (*conn)(nil)
)

func newConn(s *Server, nc net.Conn, listener string, perFrame bool) *conn {
	c := &conn{
		srv:      s,
		listener: listener,
		remote:   nc.RemoteAddr().String(),
		limit:    s.b.NewClientLimit(),
	}
	c.eng.Init(s.g, c, nc, streamconn.Options{PerMessage: perFrame})
	return c
}

// LogAt logs with the connection's fields. They are attached per call
// rather than kept in a derived logger: a logger per connection costs
// kilobytes of idle memory, and logging is rare.
func (c *conn) LogAt(level zapcore.Level, msg string, fields ...zap.Field) {
	if ce := c.srv.log.Check(level, msg); ce != nil {
		fields = append(fields, zap.String("remote", c.remote), zap.String("listener", c.listener))
		if id := c.logID.Load(); id != nil {
			fields = append(fields, zap.String("client_id", *id))
		}
		ce.Write(fields...)
	}
}

func (c *conn) logAt(level zapcore.Level, msg string, fields ...zap.Field) {
	c.LogAt(level, msg, fields...)
}

// Deliver routes a delivery to the subscriptions it names and queues
// their MESSAGE frames for the writer (or writes them at once to an idle
// connection); it never blocks. Routing here, not in the writer, applies
// the subscriptions as they are when the core delivers: an UNSUBSCRIBE
// handled after this still lets the message out. QoS 0 beyond the
// pending bound is refused (the core counts the drop).
func (c *conn) Deliver(d core.Delivery) bool {
	c.eng.Lock()
	if !c.eng.AdmitLocked(d.QoS == 0) {
		c.eng.Unlock()
		return false
	}
	st := c.st
	if st == nil {
		c.eng.Unlock()
		return false // not bound yet: QoS 1/2 stay inflight in the session
	}
	st.mu.Lock()
	if st.owner != c {
		st.mu.Unlock()
		c.eng.Unlock()
		return false
	}
	res := st.rt.route(&d)
	st.mu.Unlock()
	if len(res.frames) == 0 && !res.done {
		c.eng.Unlock()
		c.noteDropped(&d, res.dropped)
		return true // held for a subscription to come, or for nobody
	}
	// A delivery completed on write calls the session: never inline,
	// since Deliver runs inside the session's lock.
	inline := c.eng.PushLocked(outItem{msgs: res.frames, ack: res.ack, done: res.done}, !res.done)
	c.eng.Unlock()
	c.noteDropped(&d, res.dropped)
	if inline {
		c.eng.WriteInline()
	}
	return true
}

func (c *conn) noteDropped(d *core.Delivery, dropped bool) {
	if dropped {
		c.srv.dropped.Add(1)
		c.logAt(zap.InfoLevel, "message dropped after too many redeliveries",
			zap.String("topic", d.Msg.Topic), zap.Int("max_redeliveries", c.srv.cfg.MaxRedeliveries))
	}
}

// Room implements core.Pacer.
func (c *conn) Room() <-chan struct{} { return c.eng.Room() }

// queueLocked appends items for the writer (held deliveries a SUBSCRIBE
// releases); it must hold the engine's lock.
func (c *conn) queueLocked(items []outItem) {
	if c.eng.ClosingLocked() {
		return
	}
	for _, it := range items {
		c.eng.PushLocked(it, false)
	}
}

// reply queues a control frame from the reader goroutine, which writes
// it when its burst of input ends.
func (c *conn) reply(f *frame.Frame) { c.eng.Reply(outItem{f: f}) }

// Close implements core.Sink: the client gets an ERROR frame naming the
// reason (takeover, shutdown), then the connection closes.
func (c *conn) Close(reason error) {
	c.closeWith(errorFrame(errorMessage(reason), "", ""), reason)
}

// closeWith queues an optional last frame and starts the graceful close
// (streamconn.Conn.CloseWith).
func (c *conn) closeWith(last *frame.Frame, reason error) {
	c.eng.Lock()
	if c.hbTimer != nil {
		c.hbTimer.Stop()
	}
	c.eng.Unlock()
	if reason != nil {
		c.logAt(zap.DebugLevel, "closing", zap.Error(reason))
	}
	if last == nil {
		c.eng.CloseWith(nil)
		return
	}
	c.eng.CloseWith(&outItem{f: last})
}

func (c *conn) isClosing() bool { return c.eng.Closing() }

// Next implements streamconn.Proto: one frame read and handled (or, at
// heart-beats that use up the buffered input, none).
func (c *conn) Next(r *bufio.Reader) error {
	if c.fr == nil || c.fr.br != r {
		if c.fr != nil {
			c.fr.release()
		}
		cfg := &c.srv.cfg
		c.fr = borrowFrameReader(r, cfg.MaxFrameSize, cfg.MaxHeaders, cfg.MaxHeaderLength)
	}
	f, err := c.fr.read(c.version >= 11)
	if r.Buffered() == 0 || err != nil {
		// The burst may be over: an idle connection keeps no scratch.
		c.fr.release()
		c.fr = nil
	}
	if err != nil {
		c.readFailed(err)
		return err
	}
	if f == nil || c.isClosing() {
		return nil // heart-beats only (or closing: the engine drains)
	}
	c.srv.countIn(f.Command)
	if herr := c.handle(f); herr != nil {
		if !errors.Is(herr, errClientDisconnected) {
			c.logAt(zap.InfoLevel, "closing connection", zap.Error(herr))
		}
		return herr
	}
	return nil
}

// IdleDeadline implements streamconn.Proto: data from the client within
// the heart-beat timeout after the last input (any data shows it is
// alive [STOMP 1.2 "Heart-beating"]); none without client heart-beats.
func (c *conn) IdleDeadline(last time.Time) time.Time {
	if c.hbIn > 0 {
		return last.Add(c.hbIn)
	}
	return time.Time{}
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

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Ended implements streamconn.Proto: the session is detached. A session
// with zero expiry ends here; a persistent one keeps its subscriptions
// and unacknowledged messages for the next connection with the client-id.
func (c *conn) Ended() {
	if c.fr != nil {
		c.fr.release()
		c.fr = nil
	}
	if c.sess != nil {
		c.sess.Disconnect(c, core.DisconnectOptions{})
		if c.st != nil {
			c.st.unbind(c)
		}
	}
	c.srv.forget(c)
}
