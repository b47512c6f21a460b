// Package listen runs the TCP and WebSocket listeners of a stream
// protocol adapter (MQTT, STOMP): binding with errors that name the
// configuration key, an accept loop that backs off on resource errors,
// and an HTTP server for the WebSocket upgrade. The adapter only supplies
// what to do with each connection.
package listen

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/iotgw/iotgw/internal/tcpconn"
)

// Config describes one adapter's listeners.
type Config struct {
	// Section is the configuration section ("mqtt", "stomp"); errors name
	// the keys Section.tcp, Section.ws, Section.tls and Section.wss.
	Section string
	TCP     string // "" disables
	WS      string // "" disables
	WSPath  string
	// TLS and WSS are the secured twins of TCP and WS, on only with their
	// Secure set (a certificate is configured).
	TLS       string
	WSS       string
	TLSSecure *Secure
	WSSSecure *Secure
	// ReadHeaderTimeout bounds the WebSocket upgrade request.
	ReadHeaderTimeout time.Duration
	Log               *zap.Logger
	// ServeTCP takes over an accepted TCP connection; it must not block.
	ServeTCP func(net.Conn)
	// ServeTLS takes over a TLS connection whose handshake is done; it
	// must not block.
	ServeTLS func(*tcpconn.TLS)
	// ServeWS handles the upgrade request on WSPath, for ws and wss
	// (r.TLS is set on wss).
	ServeWS http.HandlerFunc
	// Admit, when set, decides on each accepted connection of a listener
	// ("tcp", "ws", "tls", "wss") before anything is read from it or a
	// handshake begins (core.Broker.AdmitConnection: bans, connection
	// rates); a refused connection is closed at once.
	Admit func(listener string, nc net.Conn) bool
}

// Listeners are an adapter's running listeners.
type Listeners struct {
	tcp     net.Listener
	ws      net.Listener
	tls     net.Listener
	wss     net.Listener
	httpSrv *http.Server
	wssSrv  *http.Server
	wg      sync.WaitGroup
}

// Start binds the configured listeners and serves them in the background.
// On error nothing is left listening.
func Start(ctx context.Context, cfg Config) (*Listeners, error) {
	l := &Listeners{}
	if err := l.start(ctx, cfg); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

func (l *Listeners) start(ctx context.Context, cfg Config) error {
	bind := func(key, addr string) (net.Listener, error) {
		ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("%s.%s: %w", cfg.Section, key, err)
		}
		if cfg.Admit != nil {
			ln = admitting{Listener: ln, name: key, admit: cfg.Admit}
		}
		return ln, nil
	}
	var err error
	if cfg.WS != "" {
		if l.ws, err = bind("ws", cfg.WS); err != nil {
			return err
		}
		l.httpSrv = wsServer(cfg)
		cfg.Log.Info("listening", zap.String("transport", "ws"), zap.Stringer("addr", l.ws.Addr()), zap.String("path", cfg.WSPath))
		l.serve(func() { serveHTTP(cfg.Log, l.httpSrv.Serve(l.ws)) })
	}
	if cfg.TLS != "" && cfg.TLSSecure != nil {
		if l.tls, err = bind("tls", cfg.TLS); err != nil {
			return err
		}
		cfg.Log.Info("listening", zap.String("transport", "tls"), zap.Stringer("addr", l.tls.Addr()))
		hs := newHandshaker(cfg.TLSSecure, cfg.Log, func(tc *tls.Conn) { cfg.ServeTLS(tcpconn.WrapTLS(tc)) })
		l.serve(func() { acceptLoop(l.tls, cfg.Log, hs.start) })
	}
	if cfg.WSS != "" && cfg.WSSSecure != nil {
		if l.wss, err = bind("wss", cfg.WSS); err != nil {
			return err
		}
		l.wssSrv = wsServer(cfg)
		// WebSocket needs HTTP/1.1; an empty map turns HTTP/2 off.
		l.wssSrv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
		cfg.Log.Info("listening", zap.String("transport", "wss"), zap.Stringer("addr", l.wss.Addr()), zap.String("path", cfg.WSPath))
		hl := newHandshaken(l.wss)
		hs := newHandshaker(cfg.WSSSecure, cfg.Log, hl.offer)
		l.serve(func() { acceptLoop(l.wss, cfg.Log, hs.start) })
		l.serve(func() { serveHTTP(cfg.Log, l.wssSrv.Serve(hl)) })
	}
	// Plain TCP opens last: a client that reaches it knows the others
	// are up (cmd/iotgw opens MQTT's listeners after every other adapter's,
	// so README's quick starts wait on mqtt.tcp alone).
	if cfg.TCP != "" {
		if l.tcp, err = bind("tcp", cfg.TCP); err != nil {
			return err
		}
		cfg.Log.Info("listening", zap.String("transport", "tcp"), zap.Stringer("addr", l.tcp.Addr()))
		l.serve(func() { acceptLoop(l.tcp, cfg.Log, cfg.ServeTCP) })
	}
	return nil
}

// serve runs f on a goroutine that Close waits for.
func (l *Listeners) serve(f func()) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		f()
	}()
}

// wsServer is the HTTP server of a WebSocket listener.
func wsServer(cfg Config) *http.Server {
	mux := http.NewServeMux()
	mux.HandleFunc(cfg.WSPath, cfg.ServeWS)
	// Over wss the handshake is done before net/http sees the connection
	// (handshaken), bounded by the listener's handshake timeout.
	return &http.Server{Handler: mux, ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ErrorLog: zap.NewStdLog(cfg.Log.Named("http"))}
}

func serveHTTP(log *zap.Logger, err error) {
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("websocket listener failed", zap.Error(err))
	}
}

// admitting is a listener whose Accept returns only the connections its
// admit function lets in, closing the others: the refusal costs no
// goroutine, no read and no TLS handshake. It wraps the listener itself,
// so the WebSocket listeners' HTTP servers are covered too.
type admitting struct {
	net.Listener
	name  string
	admit func(string, net.Conn) bool
}

func (a admitting) Accept() (net.Conn, error) {
	for {
		nc, err := a.Listener.Accept()
		if err != nil || a.admit(a.name, nc) {
			return nc, err
		}
		nc.Close()
	}
}

// acceptLoop hands each accepted connection to serve until the listener
// closes. Out of file descriptors and similar errors back off rather than
// spin.
func acceptLoop(ln net.Listener, log *zap.Logger, serve func(net.Conn)) {
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if backoff == 0 {
				backoff = 5 * time.Millisecond
			} else if backoff < time.Second {
				backoff *= 2
			}
			log.Warn("accept failed", zap.Error(err), zap.Duration("retry_in", backoff))
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		serve(nc)
	}
}

// TCPAddr returns the TCP listener's address, nil when disabled (tests
// listening on port 0 read the real port here).
func (l *Listeners) TCPAddr() net.Addr {
	if l == nil || l.tcp == nil {
		return nil
	}
	return l.tcp.Addr()
}

// WSAddr returns the WebSocket listener's address, nil when disabled.
func (l *Listeners) WSAddr() net.Addr {
	if l == nil || l.ws == nil {
		return nil
	}
	return l.ws.Addr()
}

// Addr returns a listener's address by name ("tcp", "ws", "tls",
// "wss"), nil when it is off.
func (l *Listeners) Addr(name string) net.Addr {
	if l == nil {
		return nil
	}
	ln := map[string]net.Listener{"tcp": l.tcp, "ws": l.ws, "tls": l.tls, "wss": l.wss}[name]
	if ln == nil {
		return nil
	}
	return ln.Addr()
}

// Secure returns the TLS side of a listener by name ("tls", "wss"); nil
// for a plaintext one ("tcp", "ws"). It is the configuration's, not the
// running Listeners': connections are served before Start returns (and
// before its caller has stored what it returns), and a connection that
// found no Listeners yet must not be taken for a plaintext one, which
// would skip tls.identity.
func (c *Config) Secure(listener string) *Secure {
	switch listener {
	case "tls":
		return c.TLSSecure
	case "wss":
		return c.WSSSecure
	}
	return nil
}

// Close stops accepting and waits for the accept loops (not for the
// connections, which the adapter owns; handshakes in progress end with
// their timeout).
func (l *Listeners) Close() {
	if l == nil {
		return
	}
	for _, ln := range []net.Listener{l.tcp, l.tls} {
		if ln != nil {
			ln.Close()
		}
	}
	for _, p := range []struct {
		srv *http.Server
		ln  net.Listener
	}{{l.httpSrv, l.ws}, {l.wssSrv, l.wss}} {
		if p.srv != nil {
			p.srv.Close()
		} else if p.ln != nil {
			p.ln.Close()
		}
	}
	l.wg.Wait()
}

// CheckAddr accepts "host:port" with a numeric port in 0..65535 (0 picks
// a free port, as tests do), for adapters' Config.Validate.
func CheckAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("port %q is not a number within 0..65535", port)
	}
	return nil
}
