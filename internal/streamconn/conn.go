// Package streamconn is the connection engine of the stream protocols:
// MQTT and STOMP over TCP and WebSocket run their connections on it and
// supply only their codec and handlers (Proto). What it does once for
// both:
//
//   - Goroutines: one per idle connection, two at most while busy. The
//     reader decodes and handles input; after a burst it lingers briefly,
//     then hands the connection to a fresh goroutine that only waits for
//     the next bytes (a handled burst grows a goroutine's stack, which the
//     runtime gives back only at garbage collections; a fresh one starts
//     small).
//   - Replies without hops: what the reader queues while handling a burst
//     (CONNACK, SUBACK, PINGRESP, RECEIPT...) it writes itself when the
//     burst ends, unless a writer is already running. A delivery to an
//     idle subscriber is written by the delivering goroutine at once, when
//     the socket takes it without waiting; otherwise a writer goroutine,
//     started on demand, drains the queue in batches (one system call per
//     batch) and exits after writerLinger without work.
//   - Input without a buffer while idle: the wait reads into a small
//     buffer inside the connection, which for the short packets of a quiet
//     connection is the whole packet (one system call); the 4 KiB read
//     buffer is borrowed from a pool only while more input is arriving.
//   - The receive time of input (Arrived), from the kernel where the
//     transport has it (internal/tcpconn), for ordering across clients.
//   - QoS 0 pacing: past Config.MaxPendingQoS0 queued QoS 0 deliveries the
//     connection tells its publishers to wait (Room) instead of dropping,
//     up to twice the bound (Config.Backpressure).
//   - Ordered acknowledgements that wait for the store (Pipe).
//   - Graceful close: the last unit (a DISCONNECT, an ERROR frame, a
//     refusing CONNACK) is written, the sending side is shut down, and
//     input is read and discarded until the peer closes or
//     Config.CloseDrain passes (longer while the peer is still taking
//     what was sent); only then is the socket closed. Closing a
//     socket with unread input makes the kernel reset the connection,
//     which can destroy the last unit in the peer's receive buffer.
//
// Lock order: an adapter's core.Session.mu (the core calls Sink methods
// under it) → Conn's mutex → Pipe's mutex. Nothing holding Conn's mutex
// calls into a session; Proto.Encode runs without it.
package streamconn

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/iotgw/iotgw/core"
	"github.com/iotgw/iotgw/internal/pace"
)

// Config is what a family of connections (one adapter's) shares.
type Config struct {
	// ConnectTimeout bounds the wait for the first input and for the
	// protocol's opening (until Established).
	ConnectTimeout time.Duration
	// WriteTimeout bounds one blocking write: a peer that stops reading
	// for this long is closed.
	WriteTimeout time.Duration
	// MaxPendingQoS0 bounds the QoS 0 deliveries queued for the writer.
	MaxPendingQoS0 int
	// Backpressure keeps QoS 0 deliveries past MaxPendingQoS0, up to twice
	// it, and has their publishers wait for room (Room) instead; without
	// it they are refused (dropped and counted by the core).
	Backpressure bool
	// CloseDrain bounds how long a closing connection reads and discards
	// input after its last unit (default 2 s), unless the peer is still
	// taking what was sent (drainInput).
	CloseDrain time.Duration
	// Stats receives the wire byte counts (may be nil).
	Stats *core.Stats
}

// Group is a family of connections: their settings, pools and goroutines.
type Group struct {
	cfg     Config
	wg      sync.WaitGroup
	readers sync.Pool // *bufio.Reader, 4 KiB
	batches sync.Pool // *Batch
	stats   *core.Stats
}

// NewGroup returns a group with cfg.
func NewGroup(cfg Config) *Group {
	if cfg.CloseDrain <= 0 {
		cfg.CloseDrain = 2 * time.Second
	}
	st := cfg.Stats
	if st == nil {
		st = new(core.Stats)
	}
	g := &Group{cfg: cfg, stats: st}
	g.readers.New = func() any { return bufio.NewReaderSize(nil, readBufSize) }
	g.batches.New = func() any { return &Batch{Buf: make([]byte, 0, 4096)} }
	return g
}

// Wait waits for every connection goroutine of the group, or for ctx.
func (g *Group) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() { g.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Proto is a protocol's side of a connection. Next runs on the reader
// goroutine; Encode and Written on whichever goroutine writes (one at a
// time); Ended once, on the reader, when the connection ends.
type Proto[T any] interface {
	// Next reads one protocol unit from r and handles it. Read errors
	// (end of input, a deadline, a malformed unit) surface here too; the
	// adapter answers them as its protocol says (CloseWith) and returns an
	// error, which ends the connection. r must not be kept.
	Next(r *bufio.Reader) error
	// Encode appends the wire form of it to b.
	Encode(b *Batch, it *T)
	// Written runs after a batch whose Encode calls added Acks was
	// written, outside the engine's lock and never inside a Sink call.
	Written(acks []uint16)
	// Ended runs on the reader once input has ended, before the socket
	// closes (the adapter detaches its session).
	Ended()
	// IdleDeadline is the input deadline of an established connection
	// whose last input was at last (keep alive, heart-beats); zero for
	// none.
	IdleDeadline(last time.Time) time.Time
	// LogAt logs with the connection's fields.
	LogAt(level zapcore.Level, msg string, fields ...zap.Field)
}

// Quicker is a Proto that answers its commonest quiet-connection unit
// (MQTT's PINGREQ) straight from the connection's own input buffer.
// Quick is given the unread input of a wake-up; it returns how many bytes
// it consumed (0: none, the unit reader takes over) and the reply to
// write, which must not be retained by the engine past the call's write.
type Quicker interface {
	Quick(in []byte) (n int, reply []byte)
}

// Batch is the bytes of a write being encoded.
type Batch struct {
	// Buf receives the encoded units.
	Buf []byte
	// Acks are delivery ids complete once the batch is written
	// (Proto.Written).
	Acks []uint16
	// Scratch is the adapter's encoding state, kept with the batch between
	// uses (the batch is pooled per Group, so it always has one type).
	Scratch any
	ends    []int
	perMsg  bool
}

// End marks the end of one message on transports that carry each unit as
// a message of its own (Options.PerMessage); elsewhere it does nothing.
func (b *Batch) End() {
	if b.perMsg {
		b.ends = append(b.ends, len(b.Buf))
	}
}

// Options are one connection's transport properties.
type Options struct {
	// PerMessage sends each unit as a message of its own (STOMP over
	// WebSocket, whose browser clients expect one frame a message).
	PerMessage bool
	// NoLinger keeps the reader's goroutine (no idle hand-over) for
	// transports where a timed-out read is fatal.
	NoLinger bool
}

// Conn is one connection's engine. The adapter embeds it by value and
// calls Init before Start.
type Conn[T any] struct {
	g    *Group
	p    Proto[T]
	nc   net.Conn
	tw   tryWriter // nil: no inline writes
	opts Options

	// Reader goroutine state.
	br          *bufio.Reader // borrowed while input is buffered
	in          inputState
	established bool
	lingering   bool  // the read deadline is the linger, not IdleDeadline
	lastInput   int64 // when the reader last ran out of input, Unix ns
	lingerSet   int64 // when the linger deadline was last set, Unix ns

	// Writing side; guarded by mu unless noted.
	mu         sync.Mutex
	out        []T
	spare      []T
	qos0       pace.Bound // QoS 0 deliveries queued since the writer last took the queue
	closing    bool
	writing    bool          // someone writes: a writer goroutine, the reader, or an inline writer
	rest       *Batch        // bytes an inline write left for the writer goroutine
	wake       chan struct{} // wakes the writer goroutine; made when one starts
	writerDone chan struct{} // closed once the sending side is over; made by CloseWith
	paused     chan struct{} // closed by CloseWith: ends a Pause; made by the first Pause
	closed     atomic.Bool   // closing, readable without mu
	drainBy    atomic.Int64  // read deadline of a closing connection (Unix ns)
	lastWrite  atomic.Int64  // Unix ns of the last write to the socket
}

// tryWriter writes without waiting (internal/tcpconn).
type tryWriter interface {
	TryWrite(b []byte) (int, error)
}

// arrivalSource reports the kernel receive time of the last read
// (internal/tcpconn, internal/wsconn over it).
type arrivalSource interface {
	Arrived() int64
}

// readBufSize is the pooled read buffer's size.
const readBufSize = 4096

// Init binds the engine to its group, protocol and socket.
func (c *Conn[T]) Init(g *Group, p Proto[T], nc net.Conn, opts Options) {
	c.g, c.p, c.nc, c.opts = g, p, nc, opts
	c.tw, _ = nc.(tryWriter)
	c.qos0.Init(g.cfg.MaxPendingQoS0, g.cfg.Backpressure)
	c.lastWrite.Store(time.Now().UnixNano())
}

// Start starts the reader goroutine. Call it where the adapter registers
// the connection (it counts the goroutine in the group first).
func (c *Conn[T]) Start() {
	c.g.wg.Add(1)
	go c.readLoop()
}

// Established ends the opening phase (CONNECT accepted): from now on the
// reader lingers between bursts and the input deadline is IdleDeadline.
// Reader goroutine only.
func (c *Conn[T]) Established() { c.established = true }

// Arrived returns the receive time (Unix ns) of the input being handled:
// the kernel's where the transport has it, else zero. Reader only.
func (c *Conn[T]) Arrived() int64 {
	if a, ok := c.nc.(arrivalSource); ok {
		return a.Arrived()
	}
	return 0
}

// NetConn returns the connection's socket.
func (c *Conn[T]) NetConn() net.Conn { return c.nc }

// Closing reports whether the connection is closing (safe anywhere).
func (c *Conn[T]) Closing() bool { return c.closed.Load() }

func (c *Conn[T]) readLoop() {
	c.setReadDeadline(time.Now().Add(c.g.cfg.ConnectTimeout))
	c.readBursts(nil)
}

// readBursts reads and handles input; err is a read error that ended the
// wait before it. It returns when the connection ends (after finish), or
// when the input paused for readerLinger, having handed the connection to
// a fresh goroutine (idleRead).
func (c *Conn[T]) readBursts(err error) {
	defer c.g.wg.Done()
	for {
		if c.closed.Load() {
			c.finish()
			return
		}
		if err == nil && !c.in.pending() && (c.br == nil || c.br.Buffered() == 0) {
			c.flushReplies()
			var idle bool
			idle, err = c.awaitData()
			if idle {
				c.dropQueues()
				c.g.wg.Add(1)
				go c.idleRead()
				return
			}
			continue // closing may have come meanwhile
		}
		if err != nil {
			c.in.fail(err) // the unit reader meets it, and the protocol answers it
			err = nil
		}
		if c.br == nil {
			if c.quick() {
				continue
			}
			c.borrowReader()
		}
		if herr := c.p.Next(c.br); herr != nil {
			c.finish()
			return
		}
	}
}

// quick lets a Quicker answer what the wait read, without the read
// buffer, the queue or a batch: an idle device's keep-alive ping then
// touches little more than the connection and its socket, which is what
// its latency after a long quiet is made of (cold caches and TLBs). Only
// when nothing else is queued or being written, so order holds.
func (c *Conn[T]) quick() bool {
	q, ok := c.p.(Quicker)
	s := &c.in
	if !ok || !c.established || c.tw == nil || s.off >= s.n || s.err != nil {
		return false
	}
	n, reply := q.Quick(s.buf[s.off:s.n])
	if n == 0 {
		return false
	}
	s.off += uint8(n)
	if len(reply) == 0 {
		return true
	}
	c.mu.Lock()
	if c.writing || len(c.out) > 0 || c.closing {
		c.mu.Unlock()
		s.off -= uint8(n) // the unit reader takes it after all, in order
		c.borrowReader()
		return false
	}
	c.writing = true
	c.mu.Unlock()
	w, err := c.tw.TryWrite(reply)
	c.g.stats.WireBytesSent.Add(uint64(w))
	c.lastWrite.Store(time.Now().UnixNano())
	if err != nil {
		c.writeFailed(err)
		return true
	}
	c.mu.Lock()
	if w < len(reply) || len(c.out) > 0 {
		b := c.batch()
		b.Buf = append(b.Buf, reply[w:]...)
		c.rest = b
		c.spawnWriterLocked()
	} else {
		c.writing = false
	}
	c.mu.Unlock()
	return true
}

// idleRead is the goroutine of an idle connection: it holds no buffer and
// a minimal stack while it waits for input, then carries on as the
// reader. It must stay shallow: its frame and those of the read it calls
// are all the stack an idle connection has.
func (c *Conn[T]) idleRead() {
	c.idleDeadline(c.lastInput)
	c.readBursts(c.readFirst())
}

// readerLinger is how long the reader waits for more input after a burst
// before it hands the connection to a fresh goroutine. Short enough that
// idle connections soon shed their stacks, long enough that a busy one
// rarely pays for a new goroutine.
const readerLinger = 100 * time.Millisecond

// awaitData gives the read buffer back and waits for input; once
// established it waits only readerLinger and reports idle when that
// passes (the idle deadline is then the idle goroutine's to enforce).
func (c *Conn[T]) awaitData() (idle bool, err error) {
	if !c.in.hot {
		c.releaseReader()
	}
	if c.established {
		// The reader has just run out of input: idle deadlines count from here.
		now := time.Now().UnixNano()
		c.lastInput = now
		switch {
		case c.opts.NoLinger:
			if now-c.lingerSet >= int64(readerLinger/2) {
				c.lingerSet = now
				c.idleDeadline(now)
			}
		case !c.lingering || now-c.lingerSet >= int64(readerLinger/2):
			// Re-arming costs a timer update; skip it while the linger
			// set last is at least half a linger away.
			c.lingering = true
			c.lingerSet = now
			c.setReadDeadline(time.Unix(0, now+int64(readerLinger)))
		}
	}
	if c.br != nil {
		err = c.waitBuffered()
	} else {
		err = c.readFirst()
	}
	if err != nil {
		if c.lingering && isTimeout(err) && !c.closed.Load() {
			c.dropReader()
			return true, nil
		}
		return false, err
	}
	return false, nil
}

// waitBuffered is the wait of a busy connection (its last wait filled the
// small buffer: more is arriving than a quiet connection sends): it keeps
// its read buffer and waits in it, so one system call takes up to 4 KiB,
// not 64 bytes. It turns quiet again when a wait brings no more than the
// small buffer holds.
func (c *Conn[T]) waitBuffered() error {
	c.in.waiting = true
	_, err := c.br.Peek(1)
	c.in.waiting = false
	if err != nil {
		return err
	}
	c.in.hot = c.br.Buffered() >= firstBufSize
	return nil
}

// idleDeadline sets the established connection's input deadline counted
// from the input at from (Unix ns), and ends the linger.
func (c *Conn[T]) idleDeadline(from int64) {
	c.lingering = false
	c.setReadDeadline(c.p.IdleDeadline(time.Unix(0, from)))
}

// setReadDeadline sets the read deadline unless the connection is
// closing, whose drain deadline stands.
func (c *Conn[T]) setReadDeadline(t time.Time) {
	if c.closed.Load() {
		t = time.Unix(0, c.drainBy.Load())
	}
	_ = c.nc.SetReadDeadline(t)
	if c.closed.Load() { // closing began meanwhile
		_ = c.nc.SetReadDeadline(time.Unix(0, c.drainBy.Load()))
	}
}

// borrowReader takes a read buffer from the pool, reading the input.
func (c *Conn[T]) borrowReader() {
	c.br = c.g.readers.Get().(*bufio.Reader)
	c.br.Reset((*input[T])(c))
}

func (c *Conn[T]) releaseReader() {
	if c.br != nil && c.br.Buffered() == 0 {
		c.dropReader()
	}
}

func (c *Conn[T]) dropReader() {
	if c.br != nil {
		c.br.Reset(nil)
		c.g.readers.Put(c.br)
		c.br = nil
	}
}

// finish runs when the reader stops: detach (Proto.Ended), let the writer
// flush and end the sending side, drain what the peer still sends, and
// close.
func (c *Conn[T]) finish() {
	c.dropReader()
	c.CloseWith(nil)
	c.p.Ended()
	<-c.writerDone
	if !c.in.end {
		c.drainInput()
	}
	c.nc.Close()
}

// drainInput reads and discards input until the peer closes, an error, or
// the drain deadline set by CloseWith. Only time bounds it: a peer that
// keeps writing after it reads the last unit would otherwise be reset
// before it could (a bound on bytes is met in milliseconds on a fast
// link).
//
// The deadline may pass while the kernel still holds bytes the peer has
// not acknowledged, the last unit among them: a flush behind a long queue
// ends late, and a slow peer is still reading. Closing then, with input
// unread, would reset the connection and discard them; so the drain goes
// on while the peer keeps taking them (closeWriteTimeout at a time, at
// most WriteTimeout in all).
func (c *Conn[T]) drainInput() {
	var buf [2048]byte
	unsent, _ := c.nc.(interface{ Unsent() int })
	outq, until := -1, time.Now().Add(c.g.cfg.WriteTimeout)
	for errs := 0; ; {
		_, err := c.nc.Read(buf[:])
		if err == nil {
			continue
		}
		if isTimeout(err) && unsent != nil && time.Now().Before(until) {
			if q := unsent.Unsent(); q > 0 && (outq < 0 || q < outq) {
				outq = q
				_ = c.nc.SetReadDeadline(time.Now().Add(closeWriteTimeout))
				continue
			}
		}
		// A transport's own refusal (a WebSocket message over its size
		// limit trips once more while the rest of it is drained) is not
		// the end of the input; a deadline, the end or a failure is.
		if errs++; isTimeout(err) || isEnd(err) || errs > 2 {
			return
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// isEnd reports an error after which the socket has no more input.
func isEnd(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, errConnReset)
}
