//go:build !linux

package tcpconn

// Unsent returns -1: the platform does not tell (see the Linux version).
func (c *Conn) Unsent() int { return -1 }
