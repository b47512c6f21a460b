package streamconn

import (
	"syscall"
	"time"
)

// firstBufSize is the connection's own input buffer: the wait for input
// reads into it, so that a short packet (PINGREQ, an ack, a small SUBSCRIBE
// or PUBLISH) is read whole with one system call and decoded without a
// second read.
const firstBufSize = 64

// errConnReset is the peer resetting the connection.
var errConnReset = syscall.ECONNRESET

// input is the reader's source, the connection seen as an io.Reader: it
// hands out what the wait read into the connection's own buffer first,
// then reads the socket; the pooled bufio.Reader reads from it. A type of
// its own, so that Read is not a method of Conn (and of every adapter's
// connection, which embeds it).
type input[T any] Conn[T]

// inputState is the wait's buffer and what it met.
type inputState struct {
	buf     [firstBufSize]byte
	off, n  uint8
	end     bool  // input has ended
	hot     bool  // the last wait read as much as buf holds: wait in the read buffer (waitBuffered)
	waiting bool  // the reader waits in the read buffer: a timeout is the linger's, not a slow unit's
	err     error // a wait's error, for the unit reader to meet
}

// pending reports whether buf holds input not yet handed out, or an error.
func (s *inputState) pending() bool { return s.off < s.n || s.err != nil }

// fail makes err the unit reader's next result.
func (s *inputState) fail(err error) {
	s.err = err
	if isEnd(err) {
		s.end = true
	}
}

// readFirst waits for input, reading it into the connection's own
// buffer.
func (c *Conn[T]) readFirst() error {
	s := &c.in
	for {
		n, err := c.nc.Read(s.buf[:])
		if n > 0 {
			c.g.stats.WireBytesReceived.Add(uint64(n))
			s.off, s.n = 0, uint8(n)
			s.hot = n == len(s.buf) // likely more behind it
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
func (in *input[T]) Read(p []byte) (int, error) {
	c := (*Conn[T])(in)
	s := &c.in
	if len(p) == 0 {
		return 0, nil
	}
	if s.off < s.n {
		k := copy(p, s.buf[s.off:s.n])
		s.off += uint8(k)
		return k, nil // do not block for more: bufio asks again when it needs it
	}
	if s.err != nil {
		err := s.err
		s.err = nil // once: a unit reader that asks again reads on
		return 0, err
	}
	n, err := c.nc.Read(p)
	if n == 0 && c.lingering && !s.waiting && isTimeout(err) && !c.closed.Load() {
		// The linger ran out in the middle of a unit: that is a slow
		// peer, not an idle one, and it has the idle deadline to finish.
		c.idleDeadline(time.Now().UnixNano())
		n, err = c.nc.Read(p)
	}
	if n > 0 {
		c.g.stats.WireBytesReceived.Add(uint64(n))
	}
	if err != nil && isEnd(err) {
		s.end = true
	}
	return n, err
}
