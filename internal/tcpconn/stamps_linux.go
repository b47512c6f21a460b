package tcpconn

import (
	"syscall"
	"time"
	"unsafe"

	"github.com/iotgw/iotgw/internal/rxtime"
)

// oobSize holds one SCM_TIMESTAMPNS message, the only control message
// enabled (rxtime.OOBSize: 32 on 64-bit Linux, 28 on 32-bit).
const oobSize = 32

// rawRead is one recvmsg attempt on the reader's behalf (see Read); it
// reports false to have the runtime wait until the socket is readable.
func (c *Conn) rawRead(fd uintptr) bool {
	for {
		n, oobn, err := recvmsg(int(fd), c.rp, c.oob[:])
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return false
		case err != 0:
			c.rerr = err
		case n == 0 && len(c.rp) > 0:
			c.reof = true
		default:
			raceAcquire()
			c.rn = int32(n)
			ts := rxtime.Parse(c.oob[:oobn])
			if ts == 0 {
				// Data that arrived before the first socket of the
				// process turned stamping on carries none.
				ts = time.Now().UnixNano()
			}
			c.last = ts
		}
		return true
	}
}

// recvmsg is syscall.Recvmsg without the source address (a connected
// socket has none) and without allocating.
func recvmsg(fd int, p, oob []byte) (n, oobn int, err syscall.Errno) {
	var iov syscall.Iovec
	if len(p) > 0 {
		iov.Base = &p[0]
		iov.SetLen(len(p))
	}
	var msg syscall.Msghdr
	msg.Iov = &iov
	msg.Iovlen = 1
	if len(oob) > 0 {
		msg.Control = &oob[0]
		msg.SetControllen(len(oob))
	}
	r, _, e := syscall.Syscall(syscall.SYS_RECVMSG, uintptr(fd), uintptr(unsafe.Pointer(&msg)), 0)
	if e != 0 {
		return 0, 0, e
	}
	return int(r), int(msg.Controllen), 0
}
