// Package listen runs the TCP and WebSocket listeners of a stream
// protocol adapter (MQTT, STOMP): binding with errors that name the
// configuration key, an accept loop that backs off on resource errors,
// and an HTTP server for the WebSocket upgrade. The adapter only supplies
// what to do with each connection.
package listen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Config describes one adapter's listeners.
type Config struct {
	// Section is the configuration section ("mqtt", "stomp"); errors name
	// the keys Section.tcp and Section.ws.
	Section string
	TCP     string // "" disables
	WS      string // "" disables
	WSPath  string
	// ReadHeaderTimeout bounds the WebSocket upgrade request.
	ReadHeaderTimeout time.Duration
	Log               *zap.Logger
	// ServeTCP takes over an accepted TCP connection; it must not block.
	ServeTCP func(net.Conn)
	// ServeWS handles the upgrade request on WSPath.
	ServeWS http.HandlerFunc
}

// Listeners are an adapter's running listeners.
type Listeners struct {
	tcp     net.Listener
	ws      net.Listener
	httpSrv *http.Server
	wg      sync.WaitGroup
}

// Start binds the configured listeners and serves them in the background.
// On error nothing is left listening.
func Start(ctx context.Context, cfg Config) (*Listeners, error) {
	l := &Listeners{}
	if cfg.TCP != "" {
		ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", cfg.TCP)
		if err != nil {
			return nil, fmt.Errorf("%s.tcp: %w", cfg.Section, err)
		}
		l.tcp = ln
		cfg.Log.Info("listening", zap.String("transport", "tcp"), zap.Stringer("addr", ln.Addr()))
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			acceptLoop(ln, cfg.Log, cfg.ServeTCP)
		}()
	}
	if cfg.WS != "" {
		ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", cfg.WS)
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("%s.ws: %w", cfg.Section, err)
		}
		l.ws = ln
		mux := http.NewServeMux()
		mux.HandleFunc(cfg.WSPath, cfg.ServeWS)
		l.httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: cfg.ReadHeaderTimeout,
			ErrorLog: zap.NewStdLog(cfg.Log.Named("http"))}
		cfg.Log.Info("listening", zap.String("transport", "ws"), zap.Stringer("addr", ln.Addr()), zap.String("path", cfg.WSPath))
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			if err := l.httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				cfg.Log.Error("websocket listener failed", zap.Error(err))
			}
		}()
	}
	return l, nil
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

// Close stops accepting and waits for the accept loops (not for the
// connections, which the adapter owns).
func (l *Listeners) Close() {
	if l == nil {
		return
	}
	if l.tcp != nil {
		l.tcp.Close()
	}
	if l.httpSrv != nil {
		l.httpSrv.Close()
	} else if l.ws != nil {
		l.ws.Close()
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
