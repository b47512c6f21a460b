package streamconn

import (
	"time"

	"go.uber.org/zap"

	"github.com/iotgw/iotgw/internal/linger"
)

// The writing side. c.writing names whoever writes, so there is never
// more than one writer: a writer goroutine (started when something is
// queued from outside the reader, exiting after writerLinger without
// work), the reader at the end of its burst (flushReplies), or a
// goroutine delivering to an idle connection (inline).

// writerLinger is how long an idle writer goroutine waits for more work
// before it exits; the next unit starts a new one. Idle connections then
// cost one goroutine, not two, while a busy one is spared the restarts.
const writerLinger = 100 * time.Millisecond

// inlineQuiet is how long a connection must have written nothing for a
// delivery to be written inline by the delivering goroutine. A busy
// subscriber's deliveries go to its writer goroutine instead, which
// batches them (one system call for many) and spreads the encoding of a
// fan-out over the subscribers' goroutines.
const inlineQuiet = time.Millisecond

// writeChunk is the size at which a batch is written mid-way: a long
// queue goes out in a few large writes, not one huge buffer.
const writeChunk = 64 << 10

// closeWriteTimeout bounds each write of a closing connection: a peer
// that stops reading for this long is cut off, while one that reads
// through a long queue still gets the last unit. (One deadline for the
// whole flush reset a peer that needed longer than that to read what was
// queued before its DISCONNECT or ERROR frame, and the reset destroyed
// the frame.) Three seconds, not one: a peer on a slow or busy link may
// take a second over one write of a long queue, and cutting it off
// resets it and loses the reason it was about to read.
const closeWriteTimeout = 3 * time.Second

// Reply queues a unit from the reader goroutine: unless a writer is
// running, the reader writes it itself when its burst of input ends.
func (c *Conn[T]) Reply(it T) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	c.out = append(c.out, it)
	if c.writing {
		c.startWriterLocked()
	}
	c.mu.Unlock()
}

// Send queues a unit from any goroutine; a writer goroutine writes it.
func (c *Conn[T]) Send(it T) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	c.out = append(c.out, it)
	c.startWriterLocked()
	c.mu.Unlock()
}

// Deliver queues a delivery; qos0 counts it against MaxPendingQoS0. It
// never blocks, and reports false when the delivery is refused (closing,
// or a QoS 0 over the bound). An idle connection's delivery is written at
// once on the caller's goroutine (see WriteInline).
func (c *Conn[T]) Deliver(it T, qos0 bool) bool {
	c.mu.Lock()
	if !c.AdmitLocked(qos0) {
		c.mu.Unlock()
		return false
	}
	inline := c.PushLocked(it, true)
	c.mu.Unlock()
	if inline {
		c.WriteInline()
	}
	return true
}

// Lock takes the engine's lock, for an adapter that must route under it
// (AdmitLocked, PushLocked, QueuedLocked, ClosingLocked).
func (c *Conn[T]) Lock() { c.mu.Lock() }

// Unlock releases the engine's lock.
func (c *Conn[T]) Unlock() { c.mu.Unlock() }

// ClosingLocked reports whether the connection is closing.
func (c *Conn[T]) ClosingLocked() bool { return c.closing }

// QueuedLocked returns how many units are queued for the writer.
func (c *Conn[T]) QueuedLocked() int { return len(c.out) }

// AdmitLocked decides whether a delivery may be queued: not while
// closing, and a QoS 0 one only within MaxPendingQoS0 (twice it under
// Backpressure, with Room telling publishers to wait from the bound on).
func (c *Conn[T]) AdmitLocked(qos0 bool) bool {
	if c.closing {
		return false
	}
	return !qos0 || c.qos0.Admit()
}

// Room implements core.Pacer (internal/pace's rule): past
// MaxPendingQoS0 queued QoS 0 deliveries it returns a channel closed when
// the writer takes the queue, for publishers to wait on; otherwise nil,
// without the lock.
func (c *Conn[T]) Room() <-chan struct{} {
	if !c.qos0.Over() {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return nil
	}
	return c.qos0.Room()
}

// PushLocked queues it for the writer. With inlineOK, a quiet connection
// with nobody writing is claimed for an inline write: the caller must
// then call WriteInline once it has released the lock (and any other lock
// the write must not be under, where it can).
func (c *Conn[T]) PushLocked(it T, inlineOK bool) (inline bool) {
	c.out = append(c.out, it)
	if !c.writing && inlineOK && c.tw != nil && c.rest == nil &&
		time.Now().UnixNano()-c.lastWrite.Load() >= int64(inlineQuiet) {
		c.writing = true
		return true
	}
	c.startWriterLocked()
	return false
}

// startWriterLocked makes sure what is queued gets written: it starts a
// writer goroutine when nobody is writing, else wakes the running writer
// when the queue has just become non-empty (with more, it was woken
// already). c.mu must be held.
func (c *Conn[T]) startWriterLocked() {
	if !c.writing {
		c.writing = true
		c.spawnWriterLocked()
		return
	}
	if len(c.out) == 1 && c.wake != nil {
		linger.Wake(c.wake)
	}
}

// spawnWriterLocked starts a writer goroutine for a connection whose
// writing role its caller holds. The wake channel exists only while a
// writer goroutine may wait on it (an idle connection holds none).
func (c *Conn[T]) spawnWriterLocked() {
	if c.wake == nil {
		c.wake = make(chan struct{}, 1)
	}
	c.g.wg.Add(1)
	go c.writeLoop(c.wake)
}

// Kick hands the reader's pending replies to a writer goroutine; the
// reader calls it before it may block (a full ack pipe, a congested
// subscriber, the store), so that earlier replies do not wait for the end
// of its burst.
func (c *Conn[T]) Kick() {
	c.mu.Lock()
	if len(c.out) > 0 && !c.closing {
		c.startWriterLocked()
	}
	c.mu.Unlock()
}

// Pause holds the reader for d before it handles what it has just read
// (the client's message rate, core.ClientLimit): meanwhile nothing more
// is read from the socket, so the kernel's buffers fill and TCP flow
// control slows the sender, and nothing is dropped. Replies already
// queued go out first (Kick). It returns false, early, when the
// connection closes meanwhile. Reader goroutine only.
func (c *Conn[T]) Pause(d time.Duration) bool {
	c.Kick()
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return false
	}
	if c.paused == nil {
		c.paused = make(chan struct{})
	}
	stop := c.paused
	c.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-stop:
		return false
	}
}

// CloseWith queues last (when not nil) as the connection's final unit
// and starts the graceful close: the writer flushes the queue, ends the
// sending side, and the reader discards input until the peer closes or
// CloseDrain passes. Later calls do nothing.
func (c *Conn[T]) CloseWith(last *T) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	if last != nil {
		c.out = append(c.out, *last)
	}
	c.closing = true
	if c.paused != nil {
		close(c.paused) // a paused reader wakes to close
	}
	c.qos0.Reset() // publishers must not wait for a closing subscriber
	now := time.Now()
	c.drainBy.Store(now.Add(c.g.cfg.CloseDrain).UnixNano())
	c.closed.Store(true)
	if c.writerDone == nil {
		c.writerDone = make(chan struct{})
	}
	if c.writing {
		if c.wake != nil {
			linger.Wake(c.wake)
		}
	} else {
		c.startWriterLocked()
	}
	c.mu.Unlock()
	// A peer that stops reading must not hold the shutdown up for long
	// (each later write gets closeWriteTimeout afresh: flush), and the
	// reader stops waiting for input within the drain window.
	_ = c.nc.SetWriteDeadline(now.Add(closeWriteTimeout))
	_ = c.nc.SetReadDeadline(time.Unix(0, c.drainBy.Load()))
}

// writeLoop is the writer goroutine: it drains the queue, then lingers
// briefly for more work before it exits.
func (c *Conn[T]) writeLoop(wake chan struct{}) {
	defer c.g.wg.Done()
	b := c.batch()
	defer c.putBatch(b)
	var idle *time.Timer
	if !c.writeRest() {
		return
	}
	for c.drain(false, b) {
		if !c.waitForWork(wake, &idle) {
			return
		}
	}
}

// flushReplies is the reader's end of a burst: unless a writer is
// running (which then writes them), the reader writes what it queued.
func (c *Conn[T]) flushReplies() {
	c.mu.Lock()
	if c.writing || len(c.out) == 0 {
		c.mu.Unlock()
		return
	}
	c.writing = true
	c.mu.Unlock()
	b := c.batch()
	c.drain(true, b)
	c.putBatch(b)
}

// WriteInline writes what PushLocked claimed, on the caller's goroutine,
// without waiting for the socket: whatever it does not take, and whatever
// was queued meanwhile, goes to a writer goroutine.
func (c *Conn[T]) WriteInline() {
	b := c.batch()
	c.mu.Lock()
	items := c.takeLocked()
	closing := c.closing
	c.mu.Unlock()
	c.encode(b, items)
	c.recycle(items)
	n, err := 0, error(nil)
	if len(b.Buf) > 0 {
		n, err = c.tw.TryWrite(b.Buf)
		c.g.stats.WireBytesSent.Add(uint64(n))
		c.lastWrite.Store(time.Now().UnixNano())
	}
	if err != nil {
		c.putBatch(b)
		c.writeFailed(err)
		return
	}
	acks := len(b.Acks) > 0
	c.mu.Lock()
	if n < len(b.Buf) || acks || len(c.out) > 0 || closing || c.closing {
		// The writer goroutine finishes: the rest of these bytes first,
		// then the acks (never run inside a Sink call), then the queue.
		b.Buf = b.Buf[n:]
		c.rest = b
		c.spawnWriterLocked()
		c.mu.Unlock()
		return
	}
	c.writing = false
	c.mu.Unlock()
	c.putBatch(b)
}

// writeRest writes what an inline write left, and runs its acks.
func (c *Conn[T]) writeRest() bool {
	c.mu.Lock()
	b := c.rest
	c.rest = nil
	closing := c.closing
	c.mu.Unlock()
	if b == nil {
		return true
	}
	defer c.putBatch(b)
	if len(b.Buf) > 0 && !c.flush(b, closing) {
		return false
	}
	if len(b.Acks) > 0 {
		c.p.Written(b.Acks)
	}
	return true
}

// takeLocked takes the whole queue for writing; QoS 0 room opens again.
func (c *Conn[T]) takeLocked() []T {
	items := c.out
	c.out = c.spare[:0]
	c.spare = nil
	c.qos0.Reset()
	return items
}

// recycle keeps an emptied queue slice for the next swap.
func (c *Conn[T]) recycle(items []T) {
	var zero T
	for i := range items {
		items[i] = zero
	}
	c.mu.Lock()
	if c.spare == nil && cap(items) <= 1024 {
		c.spare = items[:0]
	}
	c.mu.Unlock()
}

// encode appends items to b.
func (c *Conn[T]) encode(b *Batch, items []T) {
	for i := range items {
		c.p.Encode(b, &items[i])
	}
}

// drain encodes everything queued and writes it, until the queue is
// empty; the caller has set c.writing. It reports false when the
// connection's writing is over (closed or failed). The reader (reader
// true) writes one batch and then stops being the writer: writing is
// cleared under the same lock that saw the queue empty, so a unit queued
// later starts a writer goroutine, and one already queued gets one.
func (c *Conn[T]) drain(reader bool, b *Batch) bool {
	for {
		c.mu.Lock()
		if len(c.out) == 0 {
			if c.closing {
				c.mu.Unlock()
				c.endSending()
				return false
			}
			if reader {
				c.writing = false
			}
			c.mu.Unlock()
			return true
		}
		items := c.takeLocked()
		closing := c.closing
		c.mu.Unlock()
		for i := range items {
			c.p.Encode(b, &items[i])
			if len(b.Buf) >= writeChunk && i < len(items)-1 {
				if !c.flush(b, closing) {
					return false
				}
			}
		}
		c.recycle(items)
		if len(b.Buf) > 0 && !c.flush(b, closing) {
			return false
		}
		if len(b.Acks) > 0 {
			c.p.Written(b.Acks)
			b.Acks = b.Acks[:0]
		}
		if reader {
			// One batch only: deliveries may keep coming, and the reader
			// must get back to reading. Whatever came meanwhile goes to a
			// writer goroutine.
			c.mu.Lock()
			if len(c.out) == 0 && !c.closing {
				c.writing = false
			} else {
				c.spawnWriterLocked()
			}
			c.mu.Unlock()
			return true
		}
	}
}

// flush writes b's bytes and empties it; on failure it closes the
// connection and reports false (the writer then exits).
func (c *Conn[T]) flush(b *Batch, closing bool) bool {
	var n int
	var err error
	// Once closing (also in the middle of a batch taken before), each
	// write has closeWriteTimeout afresh: per write, not per flush, so a
	// peer still reading keeps its time.
	if closing = closing || c.closed.Load(); closing {
		_ = c.nc.SetWriteDeadline(time.Now().Add(closeWriteTimeout))
	}
	if mw, ok := c.nc.(messagesWriter); ok && b.perMsg {
		// One system call for the batch, still one message a unit.
		if !closing {
			_ = c.nc.SetWriteDeadline(time.Now().Add(c.g.cfg.WriteTimeout))
		}
		n, err = mw.WriteMessages(b.Buf, b.ends)
	} else {
		n, err = c.write(b.Buf, closing)
	}
	c.g.stats.WireBytesSent.Add(uint64(n))
	c.lastWrite.Store(time.Now().UnixNano())
	b.Buf, b.ends = b.Buf[:0], b.ends[:0]
	if err != nil {
		c.writeFailed(err)
		return false
	}
	return true
}

// write writes buf: first without waiting, where the socket allows it
// (the common case, which then costs no deadline timer), then what is
// left under the write timeout.
func (c *Conn[T]) write(buf []byte, closing bool) (int, error) {
	n := 0
	if c.tw != nil {
		m, err := c.tw.TryWrite(buf)
		if err != nil || m == len(buf) {
			return m, err
		}
		n = m
	}
	if !closing {
		_ = c.nc.SetWriteDeadline(time.Now().Add(c.g.cfg.WriteTimeout))
	}
	m, err := c.nc.Write(buf[n:])
	if err == nil && !closing && c.tw != nil && !c.closed.Load() {
		// A deadline stays set after the write: once it passes, the next
		// TryWrite (which sets none) would fail at once, and a quiet
		// connection that had to wait once would be closed at its next
		// delivery.
		_ = c.nc.SetWriteDeadline(time.Time{})
	}
	return n + m, err
}

// writeFailed ends a connection whose socket write failed: nothing more
// can be sent, so it closes at once.
func (c *Conn[T]) writeFailed(err error) {
	c.p.LogAt(zap.DebugLevel, "write failed", zap.Error(err))
	c.mu.Lock()
	c.closing = true
	c.closed.Store(true)
	c.out = nil
	c.writing = false
	c.qos0.Reset()
	if c.writerDone == nil {
		c.writerDone = make(chan struct{})
	}
	done := c.writerDone
	c.mu.Unlock()
	c.nc.Close()
	close(done)
}

// endSending ends the sending side once the final unit is written: a TCP
// connection is half-closed (FIN after the data), a WebSocket sends its
// close frame. The socket itself closes when the reader is done.
func (c *Conn[T]) endSending() {
	if cw, ok := c.nc.(closeWriter); !ok || cw.CloseWrite() != nil {
		c.nc.Close()
	}
	c.mu.Lock()
	done := c.writerDone // made by CloseWith, which set closing
	c.mu.Unlock()
	close(done)
}

// waitForWork blocks until the writer is woken, or retires the writer
// after writerLinger without work (returning false).
func (c *Conn[T]) waitForWork(wake chan struct{}, idle **time.Timer) bool {
	if linger.Wait(wake, idle, writerLinger) {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.out) > 0 || c.closing {
		return true
	}
	c.writing = false
	c.out, c.spare = nil, nil
	c.wake = nil // a stale signal in it must not wake the next writer early
	return false
}

// dropQueues lets an idle connection's empty queue slices go (the
// reader's hand-over).
func (c *Conn[T]) dropQueues() {
	c.mu.Lock()
	if len(c.out) == 0 {
		c.out = nil
	}
	c.spare = nil
	c.mu.Unlock()
}

// batch takes a write buffer from the group's pool.
func (c *Conn[T]) batch() *Batch {
	b := c.g.batches.Get().(*Batch)
	b.perMsg = c.opts.PerMessage
	return b
}

// putBatch returns a batch to the pool; a huge buffer is left to the GC.
func (c *Conn[T]) putBatch(b *Batch) {
	if cap(b.Buf) > 2*writeChunk {
		b.Buf = make([]byte, 0, 4096)
	}
	b.Buf, b.ends, b.Acks = b.Buf[:0], b.ends[:0], b.Acks[:0]
	c.g.batches.Put(b)
}

// messagesWriter sends each unit of a batch as a message of its own
// (internal/wsconn).
type messagesWriter interface {
	WriteMessages(b []byte, ends []int) (int, error)
}

// closeWriter ends its sending side alone (TCP; WebSocket through its
// close handshake).
type closeWriter interface{ CloseWrite() error }

// LastWrite returns when the connection last wrote to its socket (the
// connection's start before its first write).
func (c *Conn[T]) LastWrite() time.Time { return time.Unix(0, c.lastWrite.Load()) }
