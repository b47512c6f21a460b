package tcpconn

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

func pair(t *testing.T) (*Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	nc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c, ok := Wrap(nc).(*Conn)
	if !ok {
		t.Fatal("a TCP connection was not wrapped")
	}
	t.Cleanup(func() { c.Close(); peer.Close() })
	return c, peer
}

// Reads return the data and its receive time; deadlines, the end of input
// and a closed connection look as they do on net.TCPConn.
func TestReadLikeTCPConn(t *testing.T) {
	c, peer := pair(t)
	before := time.Now().UnixNano()
	if _, err := peer.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	n, err := c.Read(buf)
	after := time.Now().UnixNano()
	if err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	if at := c.Arrived(); at < before-int64(time.Second) || at > after {
		t.Fatalf("arrival %d outside [%d, %d]", at, before, after)
	}
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	var ne net.Error
	if _, err := c.Read(buf); !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v, want a timeout", err)
	}
	_ = c.SetReadDeadline(time.Time{})
	// A timed-out read leaves the connection usable.
	peer.Write([]byte("again"))
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "again" {
		t.Fatalf("read after a timeout: %q, %v", buf[:n], err)
	}
	peer.Close()
	if _, err := c.Read(buf); !errors.Is(err, io.EOF) {
		t.Fatalf("read after the peer closed: %v, want EOF", err)
	}
	c.Close()
	if _, err := c.Read(buf); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after Close: %v, want net.ErrClosed", err)
	}
}

// TryWrite writes what the socket takes, never waits, and says when the
// connection has failed.
func TestTryWrite(t *testing.T) {
	c, peer := pair(t)
	if n, err := c.TryWrite([]byte("ping")); n != 4 || err != nil {
		t.Fatalf("TryWrite: %d, %v", n, err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(peer, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("peer read %q, %v", buf, err)
	}
	// Nobody reads: the socket fills and TryWrite takes less, without
	// blocking and without an error.
	big := make([]byte, 1<<20)
	total := 0
	for i := 0; i < 64; i++ {
		n, err := c.TryWrite(big)
		if err != nil {
			t.Fatal(err)
		}
		total += n
		if n < len(big) {
			break
		}
	}
	if total >= 64<<20 {
		t.Fatal("the socket never filled")
	}
	c.Close()
	if _, err := c.TryWrite([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("TryWrite after Close: %v, want net.ErrClosed", err)
	}
}
