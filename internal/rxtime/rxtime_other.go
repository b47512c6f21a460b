//go:build !linux

package rxtime

import (
	"errors"
	"syscall"
)

// OOBSize is 0: no receive times here.
var OOBSize = 0

// Enable reports errors.ErrUnsupported: only Linux is supported.
func Enable(syscall.RawConn) error { return errors.ErrUnsupported }

// Parse returns 0 (unknown).
func Parse([]byte) int64 { return 0 }
