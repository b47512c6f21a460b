package stomp

import (
	"time"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/iotgw/iotgw/internal/streamconn"
)

// The writing side of a connection runs on the engine
// (internal/streamconn); this file encodes STOMP's queued items and sends
// the server's heart-beats.

// Encode implements streamconn.Proto: one queued item, each frame a
// message of its own over WebSocket.
func (c *conn) Encode(b *streamconn.Batch, it *outItem) {
	escape := c.version >= 11
	switch {
	case it.eol:
		b.Buf = append(b.Buf, '\n')
		b.End()
	case it.f != nil:
		c.srv.countOut(it.f.Command)
		if escape && it.f.Command != frame.CONNECTED {
			b.Buf = appendEscaped(b.Buf, it.f)
		} else {
			b.Buf = appendUnescaped(b.Buf, it.f)
		}
		b.End()
	default:
		for _, f := range it.msgs {
			c.srv.countOut(frame.MESSAGE)
			if escape {
				b.Buf = appendEscaped(b.Buf, f)
			} else {
				b.Buf = appendUnescaped(b.Buf, f)
			}
			b.End()
		}
		if it.done {
			b.Acks = append(b.Acks, it.ack)
		}
	}
}

// Written implements streamconn.Proto: deliveries that need no
// acknowledgement from the client are complete once written.
func (c *conn) Written(acks []uint16) {
	for _, id := range acks {
		c.sess.AckedBy(c, id)
	}
}

// startHeartBeats sends the client a heart-beat every interval in which
// nothing else was written [STOMP 1.2 "Heart-beating"]. A timer does it,
// not a goroutine per connection: idle connections then need none.
func (c *conn) startHeartBeats(interval time.Duration) {
	c.eng.Lock()
	defer c.eng.Unlock()
	if c.eng.ClosingLocked() {
		return
	}
	c.hbOut = interval
	c.hbTimer = time.AfterFunc(interval, c.heartBeat)
}

// heartBeat runs on the heart-beat timer: unless something was written
// within the interval, or is queued to be, it queues an EOL; then it
// re-arms for the end of the next interval.
func (c *conn) heartBeat() {
	c.eng.Lock()
	defer c.eng.Unlock()
	if c.eng.ClosingLocked() {
		return
	}
	wait := c.hbOut - time.Since(c.eng.LastWrite())
	if wait <= 0 {
		wait = c.hbOut
		if c.eng.QueuedLocked() == 0 {
			c.eng.PushLocked(outItem{eol: true}, false)
		}
		// Otherwise a write is under way or about to be: that serves.
	}
	c.hbTimer.Reset(wait)
}
