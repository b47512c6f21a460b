// Package dtlsnet runs the DTLS listeners of the datagram adapters (CoAP,
// MQTT-SN): a pion/dtls listener on one UDP port, with the handshakes run
// off the accept loop, bounded per source address and in time, counted,
// and each finished session handed to the adapter as a Conn that carries
// its verified identity. The adapter reads and writes plaintext datagrams
// on the Conn exactly as it would on its own UDP socket for that peer.
//
// pion keeps one session per peer: its listener routes a datagram by the
// RFC 9146 connection ID it carries when the session has one, otherwise
// by the source address. It answers a first ClientHello with a stateless
// HelloVerifyRequest cookie (RFC 6347 §4.2.1), which is no larger than
// the ClientHello, so the port cannot be used to amplify.
package dtlsnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/dtls/v3"
	"go.uber.org/zap"
)

// Secure is what a DTLS listener takes from its TLS material
// (internal/tlsconf.Source makes the parts).
type Secure struct {
	// Options are the pion server options (Source.DTLSServerOptions):
	// certificate and pre-shared keys read at each handshake, so renewals
	// need no restart.
	Options []dtls.ServerOption
	// HandshakeTimeout drops a peer whose handshake has not finished.
	HandshakeTimeout time.Duration
	// MaxHandshakesPerAddr bounds handshakes in flight from one source IP
	// address; 0 is unlimited (the listener's total bound still holds).
	MaxHandshakesPerAddr int
	// Identity names a session by its PSK identity or verified
	// certificate (Source.DTLSIdentity); nil: sessions carry no name.
	Identity func(*dtls.State) (string, bool)
	// RequireIdentity refuses a session with a client certificate from
	// which Identity takes no name (tls.identity is set), rather than let
	// the client claim a user name of its own.
	RequireIdentity bool
}

// MaxInFlight bounds one listener's handshakes in flight, whatever their
// source addresses: each costs a pion connection and two goroutines until
// it finishes or times out, so a flood of ClientHellos from spoofed
// addresses is bounded to MaxInFlight × handshake_timeout of that.
const MaxInFlight = 1024

// MaxDatagram is the largest plaintext datagram a session carries: pion
// reads records into 8 KiB buffers, less a record header, a connection ID
// and an AEAD nonce and tag.
const MaxDatagram = 8192 - 64

// Stats are a listener's counters, for $SYS.
type Stats struct {
	// Handshakes counts finished handshakes; HandshakeFailures failed ones
	// (bad key, untrusted certificate, garbage, timeouts), of which
	// HandshakeTimeouts ran out of time; HandshakesRefused counts peers
	// dropped unheard because their address (or the listener) had too
	// many handshakes in flight.
	Handshakes        atomic.Uint64
	HandshakeFailures atomic.Uint64
	HandshakeTimeouts atomic.Uint64
	HandshakesRefused atomic.Uint64
	// RecordErrors counts sessions ended by a record-layer error (a fatal
	// alert, a record that does not decrypt after the handshake).
	RecordErrors atomic.Uint64
	// InFlight and Sessions are the handshakes and the sessions now open.
	InFlight atomic.Int64
	Sessions atomic.Int64
}

// Conn is one DTLS session whose handshake is done.
type Conn struct {
	*dtls.Conn
	// ID is unique among the listener's sessions (a counter), stable for
	// the session's life even when its peer's address changes.
	ID uint64
	// Identity is the verified user name (PSK identity or certificate
	// name); HasIdentity false when there is none.
	Identity    string
	HasIdentity bool
	// Addr is the peer's address at the handshake.
	Addr *net.UDPAddr

	l      *Listener
	closed atomic.Bool
}

// Read reads one plaintext datagram. An error other than the session
// being closed or a deadline is counted as a record error and logged.
func (c *Conn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if err != nil && !c.closed.Load() && !isQuiet(err) {
		c.l.stats.RecordErrors.Add(1)
		if ce := c.l.log.Check(zap.DebugLevel, "DTLS record error"); ce != nil {
			ce.Write(zap.Stringer("remote", c.RemoteAddr()), zap.Uint64("session", c.ID), zap.Error(err))
		}
	}
	return n, err
}

// Close ends the session (sending close_notify).
func (c *Conn) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	c.l.stats.Sessions.Add(-1)
	c.l.forget(c)
	return c.Conn.Close()
}

// isQuiet tells the errors of a session ending normally or of a read
// deadline.
func isQuiet(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return errors.Is(err, net.ErrClosed) || errors.Is(err, dtls.ErrConnClosed) || errors.Is(err, context.Canceled) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.EOF)
}

// Listener is a running DTLS listener.
type Listener struct {
	ln    net.Listener
	sec   *Secure
	log   *zap.Logger
	serve func(*Conn)
	stats Stats

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	perAddr  map[netip.Addr]int
	inFlight int
	pending  map[*dtls.Conn]struct{} // handshakes under way, closed by Close
	sessions map[*Conn]struct{}
	nextID   uint64
}

// Listen binds addr (host:port; errors name key) and serves it in the
// background: each session whose handshake succeeds goes to serve, on a
// goroutine of its own, which must read it until it fails and close it.
func Listen(key, addr string, sec *Secure, log *zap.Logger, serve func(*Conn)) (*Listener, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	ln, err := dtls.ListenWithOptions("udp", ua, sec.Options...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &Listener{ln: ln, sec: sec, log: log, serve: serve, ctx: ctx, cancel: cancel,
		perAddr: map[netip.Addr]int{}, pending: map[*dtls.Conn]struct{}{}, sessions: map[*Conn]struct{}{}}
	l.wg.Add(1)
	go l.acceptLoop()
	return l, nil
}

// Addr returns the listener's UDP address.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Stats returns the listener's counters.
func (l *Listener) Stats() *Stats { return &l.stats }

// Close stops accepting, ends the handshakes in flight and every session,
// and waits for the listener's goroutines (not for serve's).
func (l *Listener) Close() error {
	l.cancel()
	err := l.ln.Close()
	l.mu.Lock()
	var open []*Conn
	for c := range l.sessions {
		open = append(open, c)
	}
	for dc := range l.pending {
		_ = dc.Close()
	}
	l.mu.Unlock()
	for _, c := range open {
		_ = c.Close()
	}
	l.wg.Wait()
	return err
}

func (l *Listener) acceptLoop() {
	defer l.wg.Done()
	for {
		nc, err := l.ln.Accept()
		if err != nil {
			if l.ctx.Err() != nil {
				return
			}
			// pion's accept fails for one peer (a refused connection
			// attempt); the listener goes on.
			if ce := l.log.Check(zap.DebugLevel, "DTLS accept"); ce != nil {
				ce.Write(zap.Error(err))
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		dc, ok := nc.(*dtls.Conn)
		if !ok {
			_ = nc.Close()
			continue
		}
		ip := addrIP(dc.RemoteAddr())
		if !l.admit(ip, dc) {
			l.stats.HandshakesRefused.Add(1)
			if ce := l.log.Check(zap.DebugLevel, "DTLS handshake refused: too many in flight"); ce != nil {
				ce.Write(zap.Stringer("remote", dc.RemoteAddr()))
			}
			// Nothing was read from the peer yet: closing costs no alert.
			_ = dc.Close()
			continue
		}
		l.wg.Add(1)
		go l.handshake(dc, ip)
	}
}

// admit takes a handshake slot for ip, within the per-address and total
// bounds.
func (l *Listener) admit(ip netip.Addr, dc *dtls.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ctx.Err() != nil || l.inFlight >= MaxInFlight {
		return false
	}
	if max := l.sec.MaxHandshakesPerAddr; max > 0 && l.perAddr[ip] >= max {
		return false
	}
	l.perAddr[ip]++
	l.inFlight++
	l.pending[dc] = struct{}{}
	l.stats.InFlight.Store(int64(l.inFlight))
	return true
}

func (l *Listener) release(ip netip.Addr, dc *dtls.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.perAddr[ip]--; l.perAddr[ip] <= 0 {
		delete(l.perAddr, ip) // the map holds only addresses with handshakes in flight
	}
	l.inFlight--
	delete(l.pending, dc)
	l.stats.InFlight.Store(int64(l.inFlight))
}

// handshake runs one peer's handshake within handshake_timeout and hands
// the session on.
func (l *Listener) handshake(dc *dtls.Conn, ip netip.Addr) {
	defer l.wg.Done()
	timeout := l.sec.HandshakeTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(l.ctx, timeout)
	err := dc.HandshakeContext(ctx)
	timedOut := ctx.Err() == context.DeadlineExceeded
	cancel()
	l.release(ip, dc)
	if err != nil {
		l.stats.HandshakeFailures.Add(1)
		if timedOut {
			l.stats.HandshakeTimeouts.Add(1)
		}
		if ce := l.log.Check(zap.DebugLevel, "DTLS handshake failed"); ce != nil {
			ce.Write(zap.Stringer("remote", dc.RemoteAddr()), zap.Bool("timeout", timedOut), zap.Error(err))
		}
		_ = dc.Close()
		return
	}
	c := &Conn{Conn: dc, l: l}
	c.Addr, _ = dc.RemoteAddr().(*net.UDPAddr)
	if st, ok := dc.ConnectionState(); ok && l.sec.Identity != nil {
		c.Identity, c.HasIdentity = l.sec.Identity(&st)
		if !c.HasIdentity && l.sec.RequireIdentity && len(st.PeerCertificates) > 0 {
			l.stats.HandshakeFailures.Add(1)
			l.log.Debug("DTLS client certificate has no name for the user name (tls.identity); refused",
				zap.Stringer("remote", dc.RemoteAddr()))
			_ = dc.Close()
			return
		}
	}
	l.mu.Lock()
	if l.ctx.Err() != nil {
		l.mu.Unlock()
		_ = dc.Close()
		return
	}
	l.nextID++
	c.ID = l.nextID
	l.sessions[c] = struct{}{}
	l.mu.Unlock()
	l.stats.Handshakes.Add(1)
	l.stats.Sessions.Add(1)
	if ce := l.log.Check(zap.DebugLevel, "DTLS session"); ce != nil {
		ce.Write(zap.Stringer("remote", dc.RemoteAddr()), zap.Uint64("session", c.ID), zap.String("identity", c.Identity))
	}
	go l.serve(c)
}

func (l *Listener) forget(c *Conn) {
	l.mu.Lock()
	delete(l.sessions, c)
	l.mu.Unlock()
}

// addrIP is the source IP a handshake is counted against (IPv4-mapped
// addresses as IPv4).
func addrIP(a net.Addr) netip.Addr {
	if ua, ok := a.(*net.UDPAddr); ok {
		return ua.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}
