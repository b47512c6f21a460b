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
	HandshakeTimeout time.Duration
	// Identity names a client by its verified certificate (the identity
	// key); nil when the listener takes no identity. false: the client has
	// no such name, and the adapter refuses it rather than trust the name
	// it claims.
	Identity func(tls.ConnectionState) (string, bool)
	// HandshakeFailures counts handshakes that failed or timed out (for
	// $SYS and metrics): scanners, clients that do not trust the server,
	// clients refused for their certificate.
	HandshakeFailures atomic.Uint64
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

// CommonName returns the common name of the verified client certificate
// of nc (a *tcpconn.TLS, or a WebSocket over one), "" without one: for
// hooks that want it (core.ConnectRequest.CertCommonName), whatever the
// listener's identity setting.
func CommonName(nc net.Conn) string {
	st, isTLS := nc.(interface{ ConnectionState() tls.ConnectionState })
	if !isTLS {
		return ""
	}
	if chains := st.ConnectionState().VerifiedChains; len(chains) > 0 && len(chains[0]) > 0 {
		return chains[0][0].Subject.CommonName
	}
	return ""
}

// handshakesInFlight bounds one listener's concurrent TLS handshakes per
// CPU: a burst of connections (a fleet reconnecting after an outage) then
// waits in the kernel's accept queue instead of costing a goroutine and
// a half-built TLS state each, and the handshakes under way finish
// rather than all timing out together.
const handshakesInFlight = 64

// handshaker runs a secured listener's handshakes off the accept loop,
// for TLS and wss alike: serve takes each connection whose handshake
// succeeded.
type handshaker struct {
	sec   *Secure
	log   *zap.Logger
	serve func(*tls.Conn)
	slots chan struct{}
}

func newHandshaker(sec *Secure, log *zap.Logger, serve func(*tls.Conn)) *handshaker {
	return &handshaker{sec: sec, log: log, serve: serve,
		slots: make(chan struct{}, handshakesInFlight*runtime.GOMAXPROCS(0))}
}

// start takes an accepted socket: it waits for a handshake slot (holding
// the accept loop, by design) and handshakes on a goroutine of its own.
func (h *handshaker) start(nc net.Conn) {
	h.slots <- struct{}{}
	go func() {
		defer func() { <-h.slots }()
		h.handshake(nc)
	}()
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
