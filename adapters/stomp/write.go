package stomp

import (
	"bytes"
	"sync"
	"time"

	"github.com/go-stomp/stomp/v3/frame"
	"go.uber.org/zap"

	"github.com/iotgw/iotgw/core"
	"github.com/iotgw/iotgw/internal/linger"
)

// The writing side of a connection. Nobody writes while nothing is
// queued: a writer goroutine is started when something is queued from
// outside the reader (a delivery, a heart-beat, a close) and exits after
// writerLinger without work; the reader writes the replies of a burst
// itself (flushReplies). c.writing names whoever writes, so there is
// never more than one writer.

// writerLinger is how long an idle writer goroutine waits for more work
// before it exits; the next frame starts a new one. The same figure as
// MQTT's: idle connections soon cost one goroutine, not two, while a busy
// one is spared the restarts.
const writerLinger = 100 * time.Millisecond

// writeScratch is a writer's reusable state, from writeScratchPool: a
// connection holds one only while it writes.
type writeScratch struct {
	buf  bytes.Buffer
	ends []int    // where each frame ends in buf (WebSocket: one message each)
	acks []uint16 // deliveries complete once written
}

var writeScratchPool = sync.Pool{New: func() any { return new(writeScratch) }}

func getScratch() *writeScratch { return writeScratchPool.Get().(*writeScratch) }

func (w *writeScratch) release() {
	if w.buf.Cap() > 64<<10 {
		w.buf = bytes.Buffer{} // a large one is left to the GC
	}
	w.buf.Reset()
	w.ends, w.acks = w.ends[:0], w.acks[:0]
	writeScratchPool.Put(w)
}

// startWriterLocked makes sure what is queued gets written: it starts a
// writer goroutine when nobody is writing, else wakes the running writer
// when the queue has just become non-empty (with more, it was woken
// already). c.mu must be held.
func (c *conn) startWriterLocked() {
	if !c.writing {
		c.writing = true
		c.srv.wg.Add(1)
		go c.writeLoop()
		return
	}
	if len(c.out) == 1 {
		c.wakeWriterLocked()
	}
}

// wakeWriterLocked wakes a running writer goroutine. c.mu must be held.
func (c *conn) wakeWriterLocked() { linger.Wake(c.wake) }

// writeLoop is the writer goroutine: it drains the queue, then lingers
// briefly for more work before it exits.
func (c *conn) writeLoop() {
	defer c.srv.wg.Done()
	w := getScratch()
	defer w.release()
	var idle *time.Timer
	for c.drain(false, w) {
		if !c.waitForWork(&idle) {
			return
		}
	}
}

// waitForWork blocks until the writer is woken, or retires the writer
// after writerLinger without work (returning false).
func (c *conn) waitForWork(idle **time.Timer) bool {
	if linger.Wait(c.wake, idle, writerLinger) {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.out) > 0 || c.closing {
		return true
	}
	c.writing = false
	c.out, c.spare = nil, nil
	return false
}

// flushReplies is the reader's end of a burst: unless a writer goroutine
// is running (which then writes them), the reader writes the frames it
// queued itself.
func (c *conn) flushReplies() {
	c.mu.Lock()
	if c.writing || len(c.out) == 0 {
		c.mu.Unlock()
		return
	}
	c.writing = true
	c.mu.Unlock()
	w := getScratch()
	c.drain(true, w)
	w.release()
}

// drain encodes what is queued into one buffer and writes it (one system
// call on TCP, one message per frame on WebSocket), until the queue is
// empty; the caller has set c.writing. It reports false when writing is
// over: the connection was closing (its sending side is now ended) or a
// write failed (the socket is closed). The reader (reader true) writes
// one batch and then stops being the writer, under the same lock that
// saw the queue empty; what came meanwhile gets a writer goroutine.
func (c *conn) drain(reader bool, w *writeScratch) bool {
	stats := c.srv.b.Stats()
	for {
		c.mu.Lock()
		items := c.out
		c.out = c.spare[:0]
		c.spare = nil
		c.pending0 = 0
		closing := c.closing
		escape := c.version >= 11
		if len(items) == 0 {
			if closing {
				c.mu.Unlock()
				c.shutdownWrite()
				close(c.writerDone)
				return false
			}
			if reader {
				c.writing = false
			}
			c.mu.Unlock()
			return true
		}
		c.mu.Unlock()
		w.buf.Reset()
		w.ends, w.acks = w.ends[:0], w.acks[:0]
		for i := range items {
			c.encode(w, escape, &items[i])
			items[i] = outItem{}
		}
		if !closing {
			_ = c.nc.SetWriteDeadline(time.Now().Add(c.srv.cfg.WriteTimeout))
		}
		if err := c.write(w.buf.Bytes(), w.ends, stats); err != nil {
			c.logAt(zap.DebugLevel, "write failed", zap.Error(err))
			c.mu.Lock()
			c.closing = true
			c.out = nil
			if c.hbTimer != nil {
				c.hbTimer.Stop()
			}
			c.mu.Unlock()
			c.closed.Store(true)
			c.nc.Close()
			close(c.writerDone)
			return false
		}
		c.lastWrite.Store(time.Now().UnixNano())
		// Deliveries that need no acknowledgement from the client are
		// complete once written (and the writer holds no lock now).
		for _, id := range w.acks {
			c.sess.AckedBy(c, id)
		}
		c.mu.Lock()
		if reader {
			// One batch only: deliveries may keep coming, and the reader
			// must get back to reading.
			if len(c.out) == 0 && !c.closing {
				// The queues are kept for the next burst; the hand-over
				// to the idle goroutine drops them (dropQueues).
				c.writing = false
				c.spare = items[:0]
			} else {
				c.srv.wg.Add(1)
				go c.writeLoop()
			}
			c.mu.Unlock()
			return true
		}
		c.spare = items[:0]
		c.mu.Unlock()
	}
}

// dropQueues lets an idle connection's empty queue slices go.
func (c *conn) dropQueues() {
	c.mu.Lock()
	if len(c.out) == 0 {
		c.out = nil
	}
	c.spare = nil
	c.mu.Unlock()
}

// encode appends one queued item to w.buf, recording frame ends.
func (c *conn) encode(w *writeScratch, escape bool, it *outItem) {
	switch {
	case it.eol:
		w.buf.WriteByte('\n')
		w.ends = append(w.ends, w.buf.Len())
	case it.f != nil:
		c.srv.countOut(it.f.Command)
		if escape && it.f.Command != frame.CONNECTED {
			writeEscaped(&w.buf, it.f)
		} else {
			writeUnescaped(&w.buf, it.f)
		}
		w.ends = append(w.ends, w.buf.Len())
	default:
		for _, f := range it.msgs {
			c.srv.countOut(frame.MESSAGE)
			if escape {
				writeEscaped(&w.buf, f)
			} else {
				writeUnescaped(&w.buf, f)
			}
			w.ends = append(w.ends, w.buf.Len())
		}
		if it.done {
			w.acks = append(w.acks, it.ack)
		}
	}
}

func (c *conn) write(b []byte, ends []int, stats *core.Stats) error {
	if !c.perFrame {
		n, err := c.nc.Write(b)
		stats.WireBytesSent.Add(uint64(n))
		return err
	}
	if mw, ok := c.nc.(messagesWriter); ok {
		// One system call for the batch, still one message a frame.
		n, err := mw.WriteMessages(b, ends)
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

// messagesWriter sends each frame of a batch as a message of its own
// (internal/wsconn).
type messagesWriter interface {
	WriteMessages(b []byte, ends []int) (int, error)
}

// shutdownWrite ends the sending side: a TCP connection is half-closed so
// that the reader can drain what the client still sends before the socket
// closes (closing with unread input would reset the connection and could
// destroy the ERROR frame just sent).
func (c *conn) shutdownWrite() {
	if cw, ok := c.nc.(closeWriter); ok && cw.CloseWrite() == nil {
		return
	}
	c.nc.Close()
}

// startHeartBeats sends the client a heart-beat every interval in which
// nothing else was written [STOMP 1.2 "Heart-beating"]. A timer does it,
// not a goroutine per connection: idle connections then need none.
func (c *conn) startHeartBeats(interval time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return
	}
	c.hbOut = interval
	c.lastWrite.Store(time.Now().UnixNano())
	c.hbTimer = time.AfterFunc(interval, c.heartBeat)
}

// heartBeat runs on the heart-beat timer: unless something was written
// within the interval, or is queued to be, it queues an EOL; then it
// re-arms for the end of the next interval.
func (c *conn) heartBeat() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return
	}
	wait := c.hbOut - time.Since(time.Unix(0, c.lastWrite.Load()))
	if wait <= 0 {
		wait = c.hbOut
		if len(c.out) == 0 {
			c.out = append(c.out, outItem{eol: true})
			c.startWriterLocked()
		}
		// Otherwise a write is under way or about to be: that serves.
	}
	c.hbTimer.Reset(wait)
}
