package streamconn

import (
	"net"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/iotgw/iotgw/core"
)

// firstBufSize is the connection's own input buffer: the wait for input
// reads into it, so that a short packet (PINGREQ, an ack, a small SUBSCRIBE
// or PUBLISH) is read whole with one system call and decoded without a
// second read.
const firstBufSize = 64

// errConnReset is the peer resetting the connection.
var errConnReset = syscall.ECONNRESET

// source is the reader's input: it hands out what the wait read into buf
// first, then reads the socket; the pooled bufio.Reader reads from it.
type source struct {
	nc        net.Conn
	stats     *core.Stats
	lingering *bool        // the read deadline is the linger
	closed    *atomic.Bool // the connection is closing
	slow      func()       // the linger ran out mid-unit (Conn.slowUnit)
	buf       [firstBufSize]byte
	off, n    int
	err       error // a wait's error, for the unit reader to meet
	end       bool  // input has ended
}

// pending reports whether buf holds input not yet handed out.
func (s *source) pending() bool { return s.off < s.n || s.err != nil }

// ended reports whether the input has ended (no need to drain it).
func (s *source) ended() bool { return s.end }

// fail makes err the next Read's result.
func (s *source) fail(err error) {
	s.err = err
	if isEnd(err) {
		s.end = true
	}
}

// first waits for input into buf.
func (s *source) first() error {
	for {
		n, err := s.nc.Read(s.buf[:])
		if n > 0 {
			s.stats.WireBytesReceived.Add(uint64(n))
			s.off, s.n = 0, n
			return nil
		}
		if err != nil {
			if isEnd(err) {
				s.end = true
			}
			return err
		}
	}
}

// Read implements io.Reader for the unit reader's buffer.
func (s *source) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if s.off < s.n {
		k := copy(p, s.buf[s.off:s.n])
		s.off += k
		return k, nil // do not block for more: bufio asks again when it needs it
	}
	if s.err != nil {
		err := s.err
		s.err = nil // once: a unit reader that asks again reads on
		return 0, err
	}
	n, err := s.nc.Read(p)
	if n == 0 && *s.lingering && isTimeout(err) && !s.closed.Load() {
		// The linger ran out in the middle of a unit: that is a slow
		// peer, not an idle one, and it has the idle deadline to finish.
		s.slow()
		n, err = s.nc.Read(p)
	}
	if n > 0 {
		s.stats.WireBytesReceived.Add(uint64(n))
	}
	if err != nil && isEnd(err) {
		s.end = true
	}
	return n, err
}

// slowUnit replaces the linger by the idle deadline for a unit that is
// arriving slowly.
func (c *Conn[T]) slowUnit() { c.idleDeadline(time.Now()) }
