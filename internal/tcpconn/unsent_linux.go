package tcpconn

import (
	"syscall"
	"unsafe"
)

// Unsent returns how many bytes written to the socket the peer has not
// acknowledged yet (SIOCOUTQ, which is TIOCOUTQ), or -1 when that cannot
// be told. A closing connection keeps reading while this shrinks: closing
// the socket with input unread resets the connection, which discards
// these bytes (streamconn's drain).
func (c *Conn) Unsent() int {
	n := -1
	_ = c.rc.Control(func(fd uintptr) {
		var v int32
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCOUTQ, uintptr(unsafe.Pointer(&v))); e == 0 {
			n = int(v)
		}
	})
	return n
}
