package tcpconn

import (
	"encoding/binary"
	"io"
	"syscall"
	"unsafe"
)

// oobSize holds one SCM_TIMESTAMPNS message: a cmsghdr and a timespec.
const oobSize = 32

func enableStamps(rc syscall.RawConn) bool {
	ok := false
	_ = rc.Control(func(fd uintptr) {
		ok = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1) == nil
	})
	return ok
}

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
		case err != nil:
			c.rerr = err
		case n == 0 && len(c.rp) > 0:
			c.rerr = io.EOF
		default:
			raceAcquire()
			c.rn = n
			if ts := stampOf(c.oob[:oobn]); ts != 0 {
				c.last = ts
			}
		}
		return true
	}
}

// recvmsg is syscall.Recvmsg without the source address (a connected
// socket has none) and without allocating.
func recvmsg(fd int, p, oob []byte) (n, oobn int, err error) {
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
	return int(r), int(msg.Controllen), nil
}

// stampOf finds the SCM_TIMESTAMPNS time in a control buffer (0 if none).
func stampOf(oob []byte) int64 {
	for len(oob) >= syscall.SizeofCmsghdr {
		h := (*syscall.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < syscall.SizeofCmsghdr || l > len(oob) {
			return 0
		}
		if h.Level == syscall.SOL_SOCKET && h.Type == syscall.SO_TIMESTAMPNS && l >= syscall.SizeofCmsghdr+16 {
			d := oob[syscall.SizeofCmsghdr:]
			sec := int64(binary.NativeEndian.Uint64(d[0:8]))
			nsec := int64(binary.NativeEndian.Uint64(d[8:16]))
			return sec*1e9 + nsec
		}
		// Next message: lengths are aligned to the native word.
		a := (l + 7) &^ 7
		if a >= len(oob) {
			return 0
		}
		oob = oob[a:]
	}
	return 0
}
