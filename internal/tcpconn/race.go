//go:build race && linux

package tcpconn

import "syscall"

// devNull is read from, with no bytes, to tell the race detector what
// syscall.Read tells it after every read: input from a socket happens
// after the output that produced it (its ioSync). recvmsg by raw system
// call says nothing, and tests that pass state to a server over a socket
// would report races that are none.
var devNull, _ = syscall.Open("/dev/null", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)

func raceAcquire() { _, _ = syscall.Read(devNull, nil) }
