package stomp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/go-stomp/stomp/v3/frame"
	"github.com/gorilla/websocket"
	"go.uber.org/zap"

	"github.com/iotgw/iotgw/core"
	"github.com/iotgw/iotgw/internal/listen"
	"github.com/iotgw/iotgw/internal/streamconn"
	"github.com/iotgw/iotgw/internal/tcpconn"
	"github.com/iotgw/iotgw/internal/wsconn"
)

// Server is the STOMP adapter: a TCP listener and a WebSocket listener
// feeding connections that speak to the core.
type Server struct {
	cfg     Config
	log     *zap.Logger
	b       *core.Broker
	pc      *core.PacketCounters
	dropped atomic.Uint64

	lc    listen.Config // the listeners' configuration, set before they start
	ls    *listen.Listeners
	conns listen.Conns[*conn]
	g     *streamconn.Group

	// smu guards states, the persistent sessions by client id. It is
	// never held while taking another lock but a sessState's mu.
	smu    sync.Mutex
	states map[string]*sessState
}

var _ core.Adapter = (*Server)(nil)

// New returns a STOMP adapter; cfg must be valid.
func New(cfg Config, log *zap.Logger) *Server {
	if log == nil {
		log = zap.NewNop()
	}
	return &Server{cfg: cfg, log: log.Named("stomp"),
		states: make(map[string]*sessState)}
}

// Name returns "stomp".
func (s *Server) Name() string { return "stomp" }

// commandNames indexes the $SYS frame counters.
var commandNames = []string{"", "connect", "stomp", "connected", "send", "subscribe", "unsubscribe",
	"ack", "nack", "begin", "commit", "abort", "disconnect", "message", "receipt", "error"}

var commandIndex = func() map[string]int {
	m := make(map[string]int, len(commandNames))
	for i, n := range commandNames {
		if n != "" {
			m[strings.ToUpper(n)] = i
		}
	}
	return m
}()

func (s *Server) countIn(cmd string)  { s.pc.In(commandIndex[cmd]) }
func (s *Server) countOut(cmd string) { s.pc.Out(commandIndex[cmd]) }

// DroppedRedeliveries returns how many messages were given up after
// max_redeliveries redeliveries (NACKs and resends on reconnect), over all
// connections.
func (s *Server) DroppedRedeliveries() uint64 { return s.dropped.Load() }

// serverName is CONNECTED's server header, name/version [STOMP 1.2
// "CONNECTED"].
func (s *Server) serverName() string {
	v := strings.TrimSpace(strings.TrimPrefix(s.b.Config().Version, "iotgw"))
	if v == "" {
		v = "dev"
	}
	return "iotgw/" + strings.ReplaceAll(v, " ", "-")
}

// Start binds the configured listeners and serves them in the background.
func (s *Server) Start(ctx context.Context, b *core.Broker) error {
	s.b = b
	s.pc = b.Stats().Packets(core.ProtoSTOMP, commandNames)
	b.OnSessionEnd(s.sessionEnded)
	s.g = streamconn.NewGroup(streamconn.Config{
		ConnectTimeout: s.cfg.ConnectTimeout,
		WriteTimeout:   s.cfg.WriteTimeout,
		MaxPendingQoS0: s.cfg.MaxPendingQoS0,
		Backpressure:   b.Config().QueueFullPolicy == core.Backpressure,
		Stats:          b.Stats(),
	})
	// Set before listening: connections take their listener's TLS side
	// from it (lc.Secure) as soon as the listeners accept.
	s.lc = listen.Config{
		Section: "stomp", TCP: s.cfg.TCP, WS: s.cfg.WS, WSPath: s.cfg.WSPath,
		TLS: s.cfg.TLS, WSS: s.cfg.WSS, TLSSecure: s.cfg.TLSSecure, WSSSecure: s.cfg.WSSSecure,
		ReadHeaderTimeout: s.cfg.ConnectTimeout, Log: s.log,
		ServeTCP: func(nc net.Conn) { s.serve(tcpconn.Wrap(nc), "tcp", false) },
		ServeTLS: func(tc *tcpconn.TLS) { s.serve(tc, "tls", false) },
		ServeWS:  s.serveWS,
		Admit:    listen.Admitter(b, core.ProtoSTOMP, s.log),
	}
	ls, err := listen.Start(ctx, s.lc)
	if err != nil {
		return err
	}
	s.ls = ls
	return nil
}

// TCPAddr returns the TCP listener's address (nil when disabled); tests
// listening on port 0 read the real port here.
func (s *Server) TCPAddr() net.Addr { return s.ls.TCPAddr() }

// WSAddr returns the WebSocket listener's address (nil when disabled).
func (s *Server) WSAddr() net.Addr { return s.ls.WSAddr() }

// ListenerAddr returns a listener's address by name ("tcp", "ws", "tls",
// "wss"); nil when it is off.
func (s *Server) ListenerAddr(name string) net.Addr { return s.ls.Addr(name) }

// wsProtocols are the STOMP WebSocket subprotocols, best first (gorilla
// picks the first of ours the client offers).
var wsProtocols = []string{"v12.stomp", "v11.stomp", "v10.stomp"}

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	up := websocket.Upgrader{
		Subprotocols: wsProtocols,
		// Browser clients connect from any origin; access control is the
		// broker's authentication, not the Origin header.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	// The message size limit is enforced by wsconn rather than by a read
	// limit that would close the connection before an ERROR frame could
	// tell the client why. A message may batch several frames and
	// heart-beats, hence the slack.
	wc, err := wsconn.Upgrade(w, r, up, wsconn.Options{AcceptText: true, TextWhenUTF8: true,
		MaxMessage: int64(s.cfg.MaxFrameSize) + 1024, TooLarge: errFrameTooLarge})
	if err != nil {
		s.log.Debug("websocket upgrade failed", zap.String("remote", r.RemoteAddr), zap.Error(err))
		return
	}
	listener := "ws"
	if r.TLS != nil {
		listener = "wss"
	}
	s.serve(wc, listener, true)
}

// serve registers a connection and starts its reader.
func (s *Server) serve(nc net.Conn, listener string, perFrame bool) {
	c := newConn(s, nc, listener, perFrame)
	// One goroutine to start with: the writer comes when needed.
	if !s.conns.Add(c, c.eng.Start) {
		nc.Close()
	}
}

func (s *Server) forget(c *conn) { s.conns.Remove(c) }

// Stop closes the listeners and every connection (each gets an ERROR
// frame), then waits for their goroutines (or ctx).
func (s *Server) Stop(ctx context.Context) error {
	s.ls.Close()
	s.conns.CloseAll(core.ErrServerShuttingDown)
	if s.g != nil {
		if err := s.g.Wait(ctx); err != nil {
			return err
		}
	}
	s.stopStateTimers()
	return nil
}

// stopStateTimers stops the resubscribe and expiry timers of the
// persistent sessions' states once no connection is left to re-arm them.
func (s *Server) stopStateTimers() {
	s.smu.Lock()
	defer s.smu.Unlock()
	for _, st := range s.states {
		st.mu.Lock()
		st.stopTimerLocked()
		st.mu.Unlock()
	}
}

// errorFrame builds an ERROR frame [STOMP 1.2 "ERROR"]: a short message
// header, the details in a text body, and receipt-id when the offending
// frame asked for a receipt.
func errorFrame(message, detail, receiptID string) *frame.Frame {
	f := frame.New(frame.ERROR, frame.Message, message)
	if receiptID != "" {
		f.Header.Add(frame.ReceiptId, receiptID)
	}
	if detail != "" {
		f.Header.Add(frame.ContentType, "text/plain")
		f.Header.Add(frame.ContentLength, fmt.Sprint(len(detail)))
		f.Body = []byte(detail)
	}
	return f
}

// isFrameError reports whether err is a bad frame (as opposed to a
// transport failure).
func isFrameError(err error) bool {
	for _, e := range []error{errFrameTooLarge, errHeaderTooLong, errTooManyHeaders,
		errUnknownCommand, errBadHeader, errMalformed} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// errorMessage maps an error onto the message header of an ERROR frame:
// the one place where core sentinels become STOMP errors.
func errorMessage(err error) string {
	switch {
	case err == nil:
		return "error"
	case errors.Is(err, core.ErrBadCredentials):
		return "login failed"
	case errors.Is(err, core.ErrNotAuthorized):
		return "not authorized"
	case errors.Is(err, core.ErrClientIDInvalid):
		return "client-id not valid"
	case errors.Is(err, core.ErrSessionTakenOver):
		return "session taken over"
	case errors.Is(err, core.ErrAuthExpired):
		return "authentication expired"
	case errors.Is(err, core.ErrServerShuttingDown):
		return "server shutting down"
	case errors.Is(err, core.ErrAdministrative):
		return "disconnected by an administrator"
	case errors.Is(err, core.ErrInvalidTopic), errors.Is(err, core.ErrTopicTooLong):
		return "invalid destination"
	case errors.Is(err, core.ErrInvalidFilter):
		return "invalid subscription destination"
	case errors.Is(err, core.ErrSharedNotSupported), errors.Is(err, core.ErrWildcardUnsupported):
		return "subscription not supported"
	case errors.Is(err, core.ErrQuotaExceeded):
		return "quota exceeded"
	case errors.Is(err, core.ErrServerUnavailable), errors.Is(err, core.ErrSessionClosed), errors.Is(err, core.ErrStore):
		return "server unavailable"
	case errors.Is(err, core.ErrBanned):
		return "banned"
	case errors.Is(err, core.ErrRateLimited):
		return "rate limited"
	}
	for _, e := range []error{errFrameTooLarge, errHeaderTooLong, errTooManyHeaders, errUnknownCommand,
		errBadHeader, errMalformed, errNotConnected, errProtocol, errMissingHeader, errVersion,
		errTooManySubs, errTransaction, errUnknownAck, errUnknownSub} {
		if errors.Is(err, e) {
			return e.Error()
		}
	}
	return "error"
}
