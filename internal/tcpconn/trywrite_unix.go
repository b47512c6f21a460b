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
	werr := c.rc.Write(func(fd uintptr) bool {
		for n < len(b) {
			m, e := syscall.Write(int(fd), b[n:])
			if m > 0 {
				n += m
			}
			if e == syscall.EINTR {
				continue
			}
			if e == syscall.EAGAIN {
				return true // full: the rest is a writer goroutine's
			}
			if e != nil {
				err = e
				return true
			}
		}
		return true
	})
	if werr != nil {
		return n, wrapErr(c, werr)
	}
	if err != nil {
		return n, &net.OpError{Op: "write", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
	}
	return n, nil
}
