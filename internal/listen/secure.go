package listen

import (
	"crypto/tls"
	"net"
	"runtime"
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
	// HandshakeTimeout bounds a TLS handshake (the wss listener is bounded
	// by the HTTP server's ReadHeaderTimeout instead).
	HandshakeTimeout time.Duration
	// Identity names a client by its verified certificate (the identity
	// key); nil when the listener takes no identity. false: the client has
	// no such name, and the adapter refuses it rather than trust the name
	// it claims.
	Identity func(tls.ConnectionState) (string, bool)
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

// handshakesInFlight bounds one listener's concurrent TLS handshakes per
// CPU: a burst of connections (a fleet reconnecting after an outage) then
// waits in the kernel's accept queue instead of costing a goroutine and
// a half-built TLS state each, and the handshakes under way finish
// rather than all timing out together.
const handshakesInFlight = 64

// handshaker runs a TLS listener's handshakes off the accept loop.
type handshaker struct {
	sec   *Secure
	log   *zap.Logger
	serve func(*tcpconn.TLS)
	slots chan struct{}
}

func newHandshaker(sec *Secure, log *zap.Logger, serve func(*tcpconn.TLS)) *handshaker {
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
		h.log.Debug("TLS handshake failed", zap.String("remote", nc.RemoteAddr().String()), zap.Error(err))
		nc.Close()
		return
	}
	h.serve(tcpconn.WrapTLS(tc))
}

// wrapListener gives the sockets it accepts receive times (internal/
// tcpconn) before net/http puts TLS over them.
type wrapListener struct{ net.Listener }

func (l wrapListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return tcpconn.Wrap(nc), nil
}
