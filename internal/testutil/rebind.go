package testutil

import (
	"net"
	"sync"
	"testing"
	"time"
)

// RebindConn is a client UDP socket on 127.0.0.1 that can move to a new
// local port while a DTLS session runs over it: a NAT rebinding, as the
// server sees it. Pass it as the net.PacketConn of a pion/dtls client.
type RebindConn struct {
	mu  sync.Mutex
	cur *net.UDPConn
}

// NewRebindConn opens the first socket; every socket it opens is closed
// when the test ends.
func NewRebindConn(t testing.TB) *RebindConn {
	t.Helper()
	return &RebindConn{cur: ListenLoopbackUDP(t)}
}

// ListenLoopbackUDP opens a UDP socket on a free 127.0.0.1 port, closed
// when the test ends (if nothing closed it before).
func ListenLoopbackUDP(t testing.TB) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (r *RebindConn) get() *net.UDPConn {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur
}

// Rebind moves to a fresh socket (a new source port) and closes the old.
func (r *RebindConn) Rebind(t testing.TB) {
	t.Helper()
	n := ListenLoopbackUDP(t)
	r.mu.Lock()
	old := r.cur
	r.cur = n
	r.mu.Unlock()
	old.Close()
}

// ReadFrom reads from the current socket; a read that fails because the
// socket was replaced goes on on the new one.
func (r *RebindConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		c := r.get()
		n, a, err := c.ReadFrom(b)
		if err != nil && r.get() != c {
			continue
		}
		return n, a, err
	}
}

func (r *RebindConn) WriteTo(b []byte, a net.Addr) (int, error) { return r.get().WriteTo(b, a) }
func (r *RebindConn) Close() error                              { return r.get().Close() }
func (r *RebindConn) LocalAddr() net.Addr                       { return r.get().LocalAddr() }
func (r *RebindConn) SetDeadline(t time.Time) error             { return r.get().SetDeadline(t) }
func (r *RebindConn) SetReadDeadline(t time.Time) error         { return r.get().SetReadDeadline(t) }
func (r *RebindConn) SetWriteDeadline(t time.Time) error        { return r.get().SetWriteDeadline(t) }
