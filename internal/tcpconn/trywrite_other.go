//go:build !unix

package tcpconn

// TryWrite writes nothing here: the caller's blocking write does it all.
func (c *Conn) TryWrite(b []byte) (int, error) { return 0, nil }
