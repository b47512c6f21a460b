//go:build unix

package mqttsn

import "syscall"

// enableBroadcast sets SO_BROADCAST so ADVERTISE may go to a broadcast
// address.
func enableBroadcast(_, _ string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_BROADCAST, 1)
	}); err != nil {
		return err
	}
	return serr
}
