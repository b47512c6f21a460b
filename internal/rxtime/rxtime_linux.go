//go:build linux

package rxtime

import (
	"encoding/binary"
	"syscall"
	"unsafe"
)

// Sizes of this platform's struct cmsghdr and struct timespec fields, as
// the kernel writes them: the header's length is a size_t, and
// SCM_TIMESTAMPNS carries the platform's (old) timespec.
const (
	lenSize  = int(unsafe.Sizeof(syscall.Cmsghdr{}.Len))
	levelOff = int(unsafe.Offsetof(syscall.Cmsghdr{}.Level))
	typeOff  = int(unsafe.Offsetof(syscall.Cmsghdr{}.Type))
	secSize  = int(unsafe.Sizeof(syscall.Timespec{}.Sec))
	nsecOff  = int(unsafe.Offsetof(syscall.Timespec{}.Nsec))
	nsecSize = int(unsafe.Sizeof(syscall.Timespec{}.Nsec))
	tsSize   = int(unsafe.Sizeof(syscall.Timespec{}))
)

// OOBSize is the out-of-band space one receive time takes; add it to
// what other control messages need.
var OOBSize = syscall.CmsgSpace(tsSize)

// Enable asks the kernel to record the receive time of every packet on
// the socket behind rc (setsockopt SO_TIMESTAMPNS).
func Enable(rc syscall.RawConn) error {
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1)
	}); err != nil {
		return err
	}
	return serr
}

// Parse returns the receive time carried by the control messages oob, in
// Unix nanoseconds, or 0 if there is none. It does not allocate, and reads
// the fields byte-wise, so oob need not be aligned.
func Parse(oob []byte) int64 {
	hdr := syscall.CmsgLen(0) // the header, padded: where the data starts
	for len(oob) >= hdr {
		n := int(uword(oob, lenSize))
		if n < hdr || n > len(oob) {
			return 0 // malformed or truncated (MSG_CTRUNC)
		}
		level := int32(binary.NativeEndian.Uint32(oob[levelOff:]))
		typ := int32(binary.NativeEndian.Uint32(oob[typeOff:]))
		if level == syscall.SOL_SOCKET && typ == syscall.SCM_TIMESTAMPNS && n-hdr >= tsSize {
			data := oob[hdr:]
			return sword(data, secSize)*1e9 + sword(data[nsecOff:], nsecSize)
		}
		step := syscall.CmsgSpace(n - hdr)
		if step >= len(oob) {
			return 0
		}
		oob = oob[step:]
	}
	return 0
}

// uword reads an unsigned native-endian word of size 4 or 8.
func uword(b []byte, size int) uint64 {
	if size == 8 {
		return binary.NativeEndian.Uint64(b)
	}
	return uint64(binary.NativeEndian.Uint32(b))
}

// sword reads a signed native-endian word of size 4 or 8.
func sword(b []byte, size int) int64 {
	if size == 8 {
		return int64(binary.NativeEndian.Uint64(b))
	}
	return int64(int32(binary.NativeEndian.Uint32(b)))
}
