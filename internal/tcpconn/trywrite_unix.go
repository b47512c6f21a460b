//go:build unix

package tcpconn

import (
	"net"
	"syscall"
)

// TryWrite writes as much of b as the socket takes without waiting and
// returns how much that was; err is set only when the connection failed
// (not when the socket buffer is full).
func (c *Conn) TryWrite(b []byte) (n int, err error) {
	if c.writeFn == nil {
		c.writeFn = c.rawWrite // bound once: a write allocates no closure
	}
	c.wp, c.wn, c.werr = b, 0, 0
	werr := c.rc.Write(c.writeFn)
	n, errno := int(c.wn), c.werr
	c.wp = nil
	if werr != nil {
		return n, wrapErr(c, werr)
	}
	if errno != 0 {
		return n, &net.OpError{Op: "write", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: errno}
	}
	return n, nil
}

// rawWrite is TryWrite's attempt: it never asks the runtime to wait.
func (c *Conn) rawWrite(fd uintptr) bool {
	for int(c.wn) < len(c.wp) {
		m, e := syscall.Write(int(fd), c.wp[c.wn:])
		if m > 0 {
			c.wn += int32(m)
		}
		if e == nil {
			continue
		}
		errno, _ := e.(syscall.Errno)
		switch errno {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return true // full: the rest is a writer goroutine's
		}
		if errno == 0 {
			errno = syscall.EIO
		}
		c.werr = errno
		return true
	}
	return true
}
