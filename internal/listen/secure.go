package listen

import (
	"crypto/tls"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/iotgw/iotgw/internal/tcpconn"
)

// Secure is what a secured listener (TLS, WSS) takes from its TLS
// material (internal/tlsconf.Source makes the parts).
type Secure struct {
	// Config is the listener's *tls.Config; each handshake takes the
	// material current at its ClientHello, so renewals need no restart.
	Config *tls.Config
	// HandshakeTimeout bounds a TLS handshake (10 s when zero).
	// MaxPerAddr bounds the handshakes in flight from one source IP
	// address (0: no bound); a connection beyond it is closed at once and
	// counted in HandshakesRefused. Without it a few hundred silent
	// sockets from one host would hold every handshake slot.
	HandshakeTimeout time.Duration
	MaxPerAddr       int
	// Identity names a client by its verified certificate (the identity
	// key); nil when the listener takes no identity. false: the client has
	// no such name, and the adapter refuses it rather than trust the name
	// it claims.
	Identity func(tls.ConnectionState) (string, bool)
	// HandshakeFailures counts handshakes that failed or timed out (for
	// $SYS and metrics): scanners, clients that do not trust the server,
	// clients refused for their certificate.
	HandshakeFailures atomic.Uint64
	// HandshakesRefused counts connections closed before their handshake
	// because their address had MaxPerAddr handshakes in flight.
	HandshakesRefused atomic.Uint64
}

// ClientName returns the user name the certificate of a connection
// accepted by this listener gives it (nc is a *tcpconn.TLS, or a
// WebSocket over one). required reports whether the listener takes names
// from certificates (Identity set); ok whether this client has one. A nil
// Secure (a plaintext listener) requires nothing.
func (s *Secure) ClientName(nc net.Conn) (name string, required, ok bool) {
	if s == nil || s.Identity == nil {
		return "", false, false
	}
	st, isTLS := nc.(interface{ ConnectionState() tls.ConnectionState })
	if !isTLS {
		return "", true, false
	}
	name, ok = s.Identity(st.ConnectionState())
	return name, true, ok
}

// CertCN returns the common name of a secured connection's verified
// client certificate ("" for a plaintext connection or none).
func CertCN(nc net.Conn) string {
	st, ok := nc.(interface{ ConnectionState() tls.ConnectionState })
	if !ok {
		return ""
	}
	cs := st.ConnectionState()
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return ""
	}
	return cs.VerifiedChains[0][0].Subject.CommonName
}

// handshakesInFlight bounds one listener's concurrent TLS handshakes per
// CPU: a burst of connections (a fleet reconnecting after an outage) then
// waits in the kernel's accept queue instead of costing a goroutine and
// a half-built TLS state each, and the handshakes under way finish
// rather than all timing out together.
const handshakesInFlight = 256

// handshaker runs a secured listener's handshakes off the accept loop,
// for TLS and wss alike: serve takes each connection whose handshake
// succeeded.
type handshaker struct {
	sec   *Secure
	log   *zap.Logger
	serve func(*tls.Conn)
	slots chan struct{}

	mu     sync.Mutex
	byAddr map[string]int // handshakes in flight per source IP
}

func newHandshaker(sec *Secure, log *zap.Logger, serve func(*tls.Conn)) *handshaker {
	return &handshaker{sec: sec, log: log, serve: serve,
		slots: make(chan struct{}, handshakesInFlight*runtime.GOMAXPROCS(0))}
}

// start takes an accepted socket: it waits for a handshake slot (holding
// the accept loop, by design) and handshakes on a goroutine of its own.
func (h *handshaker) start(nc net.Conn) {
	ip := sourceIP(nc)
	if !h.admit(ip) {
		h.sec.HandshakesRefused.Add(1)
		h.log.Debug("TLS handshake refused: too many in flight from this address", zap.String("remote", nc.RemoteAddr().String()))
		nc.Close()
		return
	}
	h.slots <- struct{}{}
	go func() {
		defer func() {
			<-h.slots
			h.release(ip)
		}()
		h.handshake(nc)
	}()
}

// admit counts a handshake from ip, unless ip has MaxPerAddr in flight.
func (h *handshaker) admit(ip string) bool {
	if h.sec.MaxPerAddr <= 0 {
		return true
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.byAddr[ip] >= h.sec.MaxPerAddr {
		return false
	}
	if h.byAddr == nil {
		h.byAddr = make(map[string]int)
	}
	h.byAddr[ip]++
	return true
}

func (h *handshaker) release(ip string) {
	if h.sec.MaxPerAddr <= 0 {
		return
	}
	h.mu.Lock()
	if h.byAddr[ip]--; h.byAddr[ip] <= 0 {
		delete(h.byAddr, ip) // the map holds only addresses in flight
	}
	h.mu.Unlock()
}

func sourceIP(nc net.Conn) string {
	if a, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	host, _, _ := net.SplitHostPort(nc.RemoteAddr().String())
	return host
}

func (h *handshaker) handshake(nc net.Conn) {
	tc := tls.Server(tcpconn.Wrap(nc), h.sec.Config)
	timeout := h.sec.HandshakeTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	// A deadline rather than HandshakeContext's context, which costs a
	// watching goroutine per handshake.
	_ = nc.SetDeadline(time.Now().Add(timeout))
	err := tc.Handshake()
	_ = nc.SetDeadline(time.Time{})
	if err != nil {
		// A scanner, a client that does not trust our certificate, one
		// refused for its own: the client sees the TLS alert.
		h.sec.HandshakeFailures.Add(1)
		h.log.Debug("TLS handshake failed", zap.String("remote", nc.RemoteAddr().String()), zap.Error(err))
		nc.Close()
		return
	}
	h.serve(tc)
}

// handshaken is the listener net/http serves wss on: the connections it
// accepts are TLS connections whose handshake the handshaker has done
// (net/http sees a *tls.Conn and takes its state for r.TLS), so TLS and
// wss share one handshake path with the same bound, timeout and
// counters.
type handshaken struct {
	raw   net.Listener
	conns chan *tls.Conn
	done  chan struct{}
	once  sync.Once
}

func newHandshaken(raw net.Listener) *handshaken {
	return &handshaken{raw: raw, conns: make(chan *tls.Conn), done: make(chan struct{})}
}

// offer hands a connection to the HTTP server, or closes it once the
// listener has closed.
func (l *handshaken) offer(tc *tls.Conn) {
	select {
	case l.conns <- tc:
	case <-l.done:
		tc.NetConn().Close()
	}
}

// Accept returns the next connection whose handshake is done.
func (l *handshaken) Accept() (net.Conn, error) {
	select {
	case tc := <-l.conns:
		return tc, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close closes the socket listener (which ends its accept loop).
func (l *handshaken) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.raw.Close()
}

// Addr returns the socket listener's address.
func (l *handshaken) Addr() net.Addr { return l.raw.Addr() }
