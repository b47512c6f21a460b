//go:build !linux

package tcpconn

import "syscall"

const oobSize = 1

// enableStamps reports false: without kernel receive times, Read records
// the time it returned.
func enableStamps(syscall.RawConn) bool { return false }

func (c *Conn) rawRead(uintptr) bool { return true }
