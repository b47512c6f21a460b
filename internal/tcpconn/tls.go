package tcpconn

import "crypto/tls"

// TLS is a server-side TLS connection as the stream connection engine
// wants it: the receive times and unsent count of the socket under it (a
// *Conn, when the listener wrapped the accepted socket before TLS), a
// graceful close that ends both the TLS stream and the TCP one, and a
// Close that never waits.
//
// It has no TryWrite: a TLS record is written whole or the stream is
// broken, so every write goes through tls.Conn.Write under the engine's
// write timeout.
type TLS struct {
	*tls.Conn
}

// WrapTLS returns tc with the methods above; its handshake must be
// complete (CloseWrite needs it).
func WrapTLS(tc *tls.Conn) *TLS { return &TLS{Conn: tc} }

// Arrived returns the receive time (Unix ns) of the last bytes read from
// the socket (see Conn.Arrived). tls.Conn reads whole records, so this is
// the time the last record's end arrived; zero when the socket does not
// record times.
func (c *TLS) Arrived() int64 {
	if a, ok := c.NetConn().(interface{ Arrived() int64 }); ok {
		return a.Arrived()
	}
	return 0
}

// Unsent returns the socket's bytes the peer has not acknowledged, or -1
// when it does not tell (see Conn.Unsent).
func (c *TLS) Unsent() int {
	if u, ok := c.NetConn().(interface{ Unsent() int }); ok {
		return u.Unsent()
	}
	return -1
}

// CloseWrite sends close_notify and then half-closes the TCP connection:
// a peer reading to the end sees the TLS stream end cleanly, and the
// socket can still be drained of what the peer keeps sending.
func (c *TLS) CloseWrite() error {
	if err := c.Conn.CloseWrite(); err != nil {
		return err
	}
	if cw, ok := c.NetConn().(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// Close closes the socket at once. tls.Conn.Close would first try to send
// close_notify for up to 5 s, and a peer that stopped reading would hold
// the closing goroutine that long; the graceful path has sent it already
// (CloseWrite).
func (c *TLS) Close() error { return c.NetConn().Close() }
