package mqtt

import (
	"context"
	"errors"
	"net"
	"net/http"

	"github.com/gorilla/websocket"
	"go.uber.org/zap"

	"github.com/iotgw/iotgw/adapters/mqtt/codec"
	"github.com/iotgw/iotgw/core"
	"github.com/iotgw/iotgw/internal/listen"
	"github.com/iotgw/iotgw/internal/streamconn"
	"github.com/iotgw/iotgw/internal/tcpconn"
	"github.com/iotgw/iotgw/internal/wsconn"
)

// Server is the MQTT adapter: a TCP listener and a WebSocket listener
// feeding connections that speak to the core.
type Server struct {
	cfg Config
	log *zap.Logger
	b   *core.Broker
	pc  *core.PacketCounters

	lc    listen.Config // the listeners' configuration, set before they start
	ls    *listen.Listeners
	conns listen.Conns[*conn]
	g     *streamconn.Group
}

var _ core.Adapter = (*Server)(nil)

// New returns an MQTT adapter; cfg must be valid.
func New(cfg Config, log *zap.Logger) *Server {
	if log == nil {
		log = zap.NewNop()
	}
	return &Server{cfg: cfg, log: log.Named("mqtt")}
}

// Name returns "mqtt".
func (s *Server) Name() string { return "mqtt" }

// packetNames indexes $SYS packet counters by codec packet type.
var packetNames = []string{"", "connect", "connack", "publish", "puback", "pubrec", "pubrel",
	"pubcomp", "subscribe", "suback", "unsubscribe", "unsuback", "pingreq", "pingresp", "disconnect", "auth"}

// Start binds the configured listeners and serves them in the background.
func (s *Server) Start(ctx context.Context, b *core.Broker) error {
	s.b = b
	s.pc = b.Stats().Packets(core.ProtoMQTT, packetNames)
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
		Section: "mqtt", TCP: s.cfg.TCP, WS: s.cfg.WS, WSPath: s.cfg.WSPath,
		TLS: s.cfg.TLS, WSS: s.cfg.WSS, TLSSecure: s.cfg.TLSSecure, WSSSecure: s.cfg.WSSSecure,
		ReadHeaderTimeout: s.cfg.ConnectTimeout, Log: s.log,
		ServeTCP: func(nc net.Conn) { s.serve(tcpconn.Wrap(nc), "tcp") },
		ServeTLS: func(tc *tcpconn.TLS) { s.serve(tc, "tls") },
		ServeWS:  s.serveWS,
		Admit:    listen.Admitter(b, core.ProtoMQTT, s.log),
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

var upgraderProtocols = []string{"mqtt", "mqttv3.1", "mqttv3.1.1", "mqtt-v5", "mqtt-v3.1.1"}

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	up := websocket.Upgrader{
		Subprotocols: upgraderProtocols,
		// MQTT clients in browsers connect from any origin; access control
		// is the broker's authentication, not the Origin header.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	wc, err := wsconn.Upgrade(w, r, up, wsconn.Options{})
	if err != nil {
		s.log.Debug("websocket upgrade failed", zap.String("remote", r.RemoteAddr), zap.Error(err))
		return
	}
	listener := "ws"
	if r.TLS != nil {
		listener = "wss"
	}
	s.serve(wc, listener)
}

// serve registers a connection and starts its reader; a writer starts
// with the first outbound packet that the reader does not write itself.
func (s *Server) serve(nc net.Conn, listener string) {
	c := newConn(s, nc, listener, streamconn.Options{})
	if !s.conns.Add(c, c.eng.Start) {
		nc.Close()
	}
}

func (s *Server) forget(c *conn) { s.conns.Remove(c) }

// Stop closes the listeners and every connection, then waits for their
// goroutines (or ctx).
func (s *Server) Stop(ctx context.Context) error {
	s.ls.Close()
	s.conns.CloseAll(core.ErrServerShuttingDown)
	if s.g == nil {
		return nil
	}
	return s.g.Wait(ctx)
}

// reasonFor maps a core sentinel error onto an MQTT 5 reason code; the one
// place where core errors become MQTT codes.
func reasonFor(err error) codec.ReasonCode {
	switch {
	case err == nil:
		return codec.Success
	case errors.Is(err, core.ErrNotAuthorized):
		return codec.NotAuthorized
	case errors.Is(err, core.ErrBadCredentials):
		return codec.BadUsernameOrPassword
	case errors.Is(err, core.ErrClientIDInvalid):
		return codec.ClientIDNotValid
	case errors.Is(err, core.ErrSessionTakenOver):
		return codec.SessionTakenOver
	case errors.Is(err, core.ErrServerShuttingDown):
		return codec.ServerShuttingDown
	case errors.Is(err, core.ErrAdministrative):
		return codec.AdministrativeAction
	case errors.Is(err, core.ErrInvalidTopic), errors.Is(err, core.ErrTopicTooLong):
		return codec.TopicNameInvalid
	case errors.Is(err, core.ErrInvalidFilter):
		return codec.TopicFilterInvalid
	case errors.Is(err, core.ErrSharedNotSupported):
		return codec.SharedSubNotSupported
	case errors.Is(err, core.ErrWildcardUnsupported):
		return codec.WildcardSubNotSupported
	case errors.Is(err, core.ErrQuotaExceeded):
		return codec.QuotaExceeded
	case errors.Is(err, core.ErrPacketIDNotFound):
		return codec.PacketIDNotFound
	case errors.Is(err, core.ErrServerUnavailable):
		return codec.ServerUnavailable
	case errors.Is(err, core.ErrServerBusy):
		return codec.ServerBusy
	case errors.Is(err, core.ErrAuthExpired):
		return codec.MaximumConnectTime
	case errors.Is(err, core.ErrBanned):
		return codec.Banned
	case errors.Is(err, core.ErrRateLimited):
		// A login of a throttled source refused while another of its
		// attempts is being checked.
		return codec.ConnectionRateExceeded
	}
	return codec.UnspecifiedError
}

// v3ConnackCode maps a CONNACK reason onto the MQTT 3.1.1 return codes.
func v3ConnackCode(rc codec.ReasonCode) codec.ReasonCode {
	switch rc {
	case codec.Success:
		return 0
	case codec.UnsupportedProtocolVersion:
		return codec.ConnRefusedProtocolVersion
	case codec.ClientIDNotValid:
		return codec.ConnRefusedIdentifier
	case codec.BadUsernameOrPassword:
		return codec.ConnRefusedBadCredentials
	case codec.NotAuthorized, codec.Banned:
		return codec.ConnRefusedNotAuthorized
	}
	return codec.ConnRefusedServerUnavailable
}
