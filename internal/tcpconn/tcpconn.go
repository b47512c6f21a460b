// Package tcpconn wraps an accepted TCP connection for the stream
// connection engine (internal/streamconn) with two things net.TCPConn does
// not offer: the kernel's receive time of the bytes just read, and a write
// that never blocks.
//
// Why the receive time: which of two clients' packets came first is a
// question the Go scheduler cannot answer. When the process is idle, two
// sockets that become readable together are handed to their goroutines in
// an order of the runtime's choosing (its poller returns them last-in
// first-out), so a SUBSCRIBE read from the network before another
// client's PUBLISH may be handled after it. The kernel stamps every
// packet on arrival (SO_TIMESTAMPNS); the core uses those stamps to
// deliver to a new subscription what arrived after it (docs/design.md,
// "Ordering across clients").
//
// Why a non-blocking write: a delivery to an idle subscriber can then be
// written by the publisher's goroutine straight away, with no goroutine
// hand-off, and whatever the socket does not take goes to a writer
// goroutine (streamconn).
package tcpconn

import (
	"io"
	"net"
	"syscall"
	"time"

	"github.com/iotgw/iotgw/internal/rxtime"
)

// Conn is a TCP connection whose reads record the kernel's receive time.
// Read must be called from one goroutine at a time (a connection's
// reader); everything else is as safe as net.TCPConn's.
type Conn struct {
	*net.TCPConn
	rc   syscall.RawConn
	last int64 // receive time of the last read, Unix ns (reader only)

	// The arguments and results of the read in progress: rawRead is bound
	// once (readFn) so that a read allocates no closure. The same for
	// TryWrite (one writer at a time: the engine's writing role), bound
	// on first use. Packed tightly: every connection has one, idle ones
	// included.
	rp      []byte
	wp      []byte
	readFn  func(fd uintptr) bool
	writeFn func(fd uintptr) bool
	rerr    syscall.Errno // 0: none
	werr    syscall.Errno
	rn, wn  int32
	stamps  bool // SO_TIMESTAMPNS is on: reads use recvmsg
	reof    bool
	oob     [oobSize]byte
}

// Wrap returns nc as a *Conn when it is a TCP connection (receive times
// enabled where the platform has them), else nc unchanged.
func Wrap(nc net.Conn) net.Conn {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return nc
	}
	c := &Conn{TCPConn: tc}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nc
	}
	c.rc = rc
	c.stamps = rxtime.Enable(rc) == nil // elsewhere Read records when it returned
	c.readFn = c.rawRead
	return c
}

// Read reads like net.TCPConn.Read and records when the data arrived.
func (c *Conn) Read(p []byte) (int, error) {
	if !c.stamps {
		n, err := c.TCPConn.Read(p)
		if n > 0 {
			c.last = time.Now().UnixNano()
		}
		return n, err
	}
	c.rp, c.rn, c.rerr, c.reof = p, 0, 0, false
	if err := c.rc.Read(c.readFn); err != nil {
		c.rp = nil
		return 0, wrapErr(c, err)
	}
	c.rp = nil
	switch {
	case c.reof:
		return 0, io.EOF
	case c.rerr != 0:
		return 0, wrapErr(c, c.rerr)
	}
	return int(c.rn), nil
}

// Arrived returns the kernel's receive time (Unix ns) of the data the last
// Read returned; where the platform has no receive times, the time that
// Read returned it. Zero before the first byte.
func (c *Conn) Arrived() int64 { return c.last }

// wrapErr gives the errors of raw reads and writes the shape net.TCPConn's
// have: closed is net.ErrClosed, a deadline a net.Error that times out.
func wrapErr(c *Conn, err error) error {
	return &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}
