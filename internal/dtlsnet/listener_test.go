package dtlsnet

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

const waitTimeout = 10 * time.Second

var testKey = []byte("fuzz-key")

// listen starts a PSK listener on loopback whose sessions echo what they
// read.
func listen(t testing.TB, perAddr int, timeout time.Duration) *Listener {
	t.Helper()
	sec := &Secure{
		Options: []dtls.ServerOption{
			dtls.WithPSK(func([]byte) ([]byte, error) { return testKey, nil }),
			dtls.WithCipherSuites(dtls.TLS_PSK_WITH_AES_128_CCM_8),
			dtls.WithExtendedMasterSecret(dtls.RequireExtendedMasterSecret),
			dtls.WithConnectionIDGenerator(dtls.RandomCIDGenerator(8)),
		},
		HandshakeTimeout:     timeout,
		MaxHandshakesPerAddr: perAddr,
		Identity:             func(st *dtls.State) (string, bool) { return string(st.IdentityHint), len(st.IdentityHint) > 0 },
	}
	// A fuzz target's F must not be logged to from other goroutines.
	log := zap.NewNop()
	if _, isF := t.(*testing.F); !isF {
		log = zaptest.NewLogger(t)
	}
	l, err := Listen("test.dtls", "127.0.0.1:0", sec, log, func(c *Conn) {
		defer c.Close()
		buf := make([]byte, 8192)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			if _, err := c.Write(buf[:n]); err != nil {
				return
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func clientOptions(key []byte) []dtls.ClientOption {
	return []dtls.ClientOption{
		dtls.WithPSK(func([]byte) ([]byte, error) { return key, nil }),
		dtls.WithPSKIdentityHint([]byte("dev")),
		dtls.WithCipherSuites(dtls.TLS_PSK_WITH_AES_128_CCM_8),
	}
}

// echo checks that a real client gets a session and an answer.
func echo(t testing.TB, l *Listener) {
	t.Helper()
	c, err := dtls.DialWithOptions("udp", l.Addr().(*net.UDPAddr), clientOptions(testKey)...)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := c.HandshakeContext(ctx); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(waitTimeout))
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "ping" {
		t.Fatalf("echo: %q %v", buf[:n], err)
	}
}

var (
	helloOnce sync.Once
	hello     []byte
)

// clientHello returns the first datagram a pion client sends: a
// ClientHello without a cookie.
func clientHello(t testing.TB) []byte {
	t.Helper()
	helloOnce.Do(func() {
		sink, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer sink.Close()
		go func() {
			c, err := dtls.DialWithOptions("udp", sink.LocalAddr().(*net.UDPAddr), clientOptions(testKey)...)
			if err == nil {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				_ = c.HandshakeContext(ctx)
				cancel()
				c.Close()
			}
		}()
		buf := make([]byte, 2048)
		_ = sink.SetReadDeadline(time.Now().Add(waitTimeout))
		n, _, err := sink.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		hello = append([]byte(nil), buf[:n]...)
	})
	return hello
}

// TestHandshakeFloodFromOneAddress: ClientHellos from many ports of one
// address hold at most max_handshakes_per_addr handshakes in flight, the
// others are refused unheard, and the held ones are dropped at the
// timeout, leaving nothing behind; a real client is served meanwhile.
func TestHandshakeFloodFromOneAddress(t *testing.T) {
	const perAddr, senders = 4, 32
	l := listen(t, perAddr, 300*time.Millisecond)
	ch := clientHello(t)
	socks := make([]*net.UDPConn, senders)
	for i := range socks {
		s, err := net.DialUDP("udp", nil, l.Addr().(*net.UDPAddr))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		socks[i] = s
	}
	for round := 0; round < 3; round++ {
		for _, s := range socks {
			_, _ = s.Write(ch)
		}
		if n := l.Stats().InFlight.Load(); n > perAddr {
			t.Fatalf("%d handshakes in flight from one address, bound %d", n, perAddr)
		}
	}
	st := l.Stats()
	waitFor(t, "refusals counted", func() bool { return st.HandshakesRefused.Load() >= senders-perAddr })
	waitFor(t, "held handshakes dropped at the timeout", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.inFlight == 0 && len(l.perAddr) == 0 && len(l.pending) == 0
	})
	if st.HandshakeTimeouts.Load() < perAddr || st.Sessions.Load() != 0 {
		t.Fatalf("timeouts %d, sessions %d", st.HandshakeTimeouts.Load(), st.Sessions.Load())
	}
	echo(t, l)
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// FuzzListener feeds datagrams — random bytes, ClientHellos cut short,
// altered — to a listener from fresh source ports. The listener must
// stay up, bounded (no session from garbage, handshakes in flight within
// the per-address and total bounds), and serve a real client afterwards.
// Without -fuzz it runs the seeds.
func FuzzListener(f *testing.F) {
	ch := clientHello(f)
	f.Add([]byte{})
	f.Add([]byte{0x16, 0xfe, 0xfd}) // a record header cut short
	f.Add(append([]byte(nil), ch...))
	f.Add(append([]byte(nil), ch[:len(ch)/2]...))
	f.Add(append([]byte(nil), ch[:13]...))           // the record header alone
	f.Add(append(append([]byte(nil), ch...), ch...)) // two records in one datagram
	flipped := append([]byte(nil), ch...)
	flipped[len(flipped)/3] ^= 0xff
	f.Add(flipped)
	f.Add([]byte("\x17\xfe\xfd\x00\x01\x00\x00\x00\x00\x00\x01\x00\x04data")) // application data, no session
	const perAddr = 4
	l := listen(f, perAddr, 200*time.Millisecond)
	f.Cleanup(func() {
		st := l.Stats()
		if st.Sessions.Load() != 0 {
			f.Errorf("%d sessions from garbage", st.Sessions.Load())
		}
		echo(f, l)
	})
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := net.DialUDP("udp", nil, l.Addr().(*net.UDPAddr))
		if err != nil {
			t.Skip(err) // out of ports: not the listener's fault
		}
		defer s.Close()
		// The input is split into datagrams at each 0xff 0x00 pair, so
		// the fuzzer can make a handshake of several flights.
		start := 0
		for i := 0; i+1 < len(in); i++ {
			if in[i] == 0xff && in[i+1] == 0x00 {
				_, _ = s.Write(in[start:i])
				start = i + 2
			}
		}
		_, _ = s.Write(in[start:])
		if n := l.Stats().InFlight.Load(); n > MaxInFlight {
			t.Fatalf("%d handshakes in flight, bound %d", n, MaxInFlight)
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		for ip, n := range l.perAddr {
			if n > perAddr {
				t.Fatalf("%d handshakes in flight from %v, bound %d", n, ip, perAddr)
			}
		}
	})
}
