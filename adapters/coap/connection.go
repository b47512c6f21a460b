package coap

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"net"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/net/responsewriter"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"
	"go.uber.org/zap"

	"github.com/iotgw/iotgw/core"
)

// handleConnection serves /mqtt/connection, EMQX's connection mode: POST
// connects (2.01 Created, the token as payload), PUT is the heartbeat
// (2.04 Changed), DELETE closes (2.02 Deleted). Later requests carry
// clientid and token in their query.
func (s *Server) handleConnection(w *responsewriter.ResponseWriter[*udpClient.Conn], req *request, peer *net.UDPAddr) {
	q := &req.q
	switch req.method {
	case codes.POST:
		s.connect(w, req, peer)
	case codes.PUT, codes.DELETE:
		if q.clientID == "" || q.token == "" {
			replyError(w, badRequest("clientid and token are required"))
			return
		}
		ep := s.connection(q.clientID, q.token)
		if ep == nil {
			replyError(w, &reqError{code: codes.Unauthorized, msg: "unknown clientid or invalid token"})
			return
		}
		if req.method == codes.PUT {
			ep.touch(peer, req.local)
			_ = w.SetResponse(codes.Changed, message.TextPlain, nil)
			return
		}
		ep.close(nil)
		_ = w.SetResponse(codes.Deleted, message.TextPlain, nil)
	default:
		replyError(w, &reqError{code: codes.MethodNotAllowed, msg: "/mqtt/connection supports POST, PUT and DELETE"})
	}
}

// connect creates a connection-mode session (clean start, ending with the
// connection, as in EMQX) after the core's Authenticator accepted the
// credentials.
func (s *Server) connect(w *responsewriter.ResponseWriter[*udpClient.Conn], req *request, peer *net.UDPAddr) {
	q := &req.q
	if q.clientID == "" {
		replyError(w, badRequest("clientid is required"))
		return
	}
	if err := s.b.AdmitConnection(core.ProtoCoAP, req.listener(), peer); err != nil {
		replyError(w, coreError(err, true))
		return
	}
	ep := newEndpoint(s, q.clientID, true, peer, req.local)
	ep.token = newToken()
	ep.lastSeen.Store(time.Now().UnixNano())
	sess, _, err := s.b.Connect(noWait, core.ConnectRequest{
		ClientID: q.clientID, Username: q.username, Password: q.password,
		Protocol: core.ProtoCoAP, Listener: req.listener(), Remote: peer.String(),
		Identity: req.identity, CleanStart: true, Sink: ep, KeepAlive: s.cfg.Heartbeat,
	})
	if err != nil {
		ep.cancel()
		ep.log.Info("connect refused", zap.Error(err))
		replyError(w, coreError(err, true))
		return
	}
	ep.sess = sess
	ep.mu.Lock()
	ep.hbTimer = time.AfterFunc(s.cfg.Heartbeat*3/2, ep.checkHeartbeat)
	ep.mu.Unlock()
	if !s.register(ep) {
		ep.hbTimer.Stop()
		ep.cancel()
		sess.Disconnect(ep, core.DisconnectOptions{})
		replyError(w, coreError(core.ErrServerShuttingDown, false))
		return
	}
	sess.Start()
	ep.log.Debug("connected")
	_ = w.SetResponse(codes.Created, message.TextPlain, bytes.NewReader([]byte(ep.token)))
}

// newToken returns the connection token: 64 random bits in hex.
func newToken() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// connection returns the live connection-mode endpoint of clientID if
// token is its token.
func (s *Server) connection(clientID, token string) *endpoint {
	s.mu.Lock()
	ep := s.conns[clientID]
	s.mu.Unlock()
	if ep == nil || ep.isClosed() || subtle.ConstantTimeCompare([]byte(ep.token), []byte(token)) != 1 {
		return nil
	}
	return ep
}

// observer returns the connectionless endpoint of a UDP peer, creating it
// (a clean core session that ends with its last observation) if needed.
func (s *Server) observer(c caller, peer, local *net.UDPAddr) (*endpoint, *reqError) {
	info := c.info
	s.mu.Lock()
	ep := s.peers[peer.String()]
	s.mu.Unlock()
	if ep != nil && !ep.isClosed() {
		if !c.verified {
			if err := s.b.Authenticate(noWait, info); err != nil {
				return nil, coreError(err, true)
			}
		}
		return ep, nil
	}
	if err := s.b.AdmitConnection(core.ProtoCoAP, info.Listener, peer); err != nil {
		return nil, coreError(err, true)
	}
	ep = newEndpoint(s, info.ClientID, false, peer, local)
	req := core.ConnectRequest{
		ClientID: info.ClientID, Username: info.Username, Password: info.Password,
		Protocol: core.ProtoCoAP, Listener: info.Listener, Remote: info.Remote,
		CleanStart: true, Sink: ep,
	}
	if c.verified {
		req.Identity = info.Username
	}
	sess, _, err := s.b.Connect(noWait, req)
	if err != nil {
		ep.cancel()
		return nil, coreError(err, true)
	}
	ep.sess = sess
	if !s.register(ep) {
		ep.cancel()
		sess.Disconnect(ep, core.DisconnectOptions{})
		return nil, coreError(core.ErrServerShuttingDown, false)
	}
	sess.Start()
	return ep, nil
}

// register adds a new endpoint to the tables and starts its writer; it
// returns false once the server is stopping.
func (s *Server) register(ep *endpoint) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return false
	}
	key := ep.addr.String()
	if ep.connMode {
		s.conns[ep.clientID] = ep
	} else {
		s.peers[key] = ep
		s.lessByID[ep.clientID] = ep
	}
	s.byAddr[key] = append(s.byAddr[key], ep)
	s.wg.Add(1)
	go ep.run()
	return true
}

// forget removes an ended endpoint from the tables (entries that a newer
// endpoint took over stay).
func (s *Server) forget(ep *endpoint) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ep.mu.Lock()
	key := ep.addr.String()
	ep.mu.Unlock()
	if ep.connMode {
		if s.conns[ep.clientID] == ep {
			delete(s.conns, ep.clientID)
		}
	} else {
		if s.peers[key] == ep {
			delete(s.peers, key)
		}
		if s.lessByID[ep.clientID] == ep {
			delete(s.lessByID, ep.clientID)
		}
	}
	s.dropAddrLocked(key, ep)
}

func (s *Server) dropAddrLocked(key string, ep *endpoint) {
	list := s.byAddr[key]
	for i, x := range list {
		if x == ep {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(s.byAddr, key)
	} else {
		s.byAddr[key] = list
	}
}

// moveAddr points a connection-mode endpoint at a new client address.
func (s *Server) moveAddr(ep *endpoint, addr, laddr *net.UDPAddr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ep.mu.Lock()
	old := ep.addr.String()
	if ep.closed {
		ep.mu.Unlock()
		return
	}
	ep.addr, ep.laddr = addr, laddr
	ep.mu.Unlock()
	if old == addr.String() {
		return
	}
	ep.log.Debug("client address changed", zap.String("old", old), zap.Stringer("new", addr))
	s.dropAddrLocked(old, ep)
	key := addr.String()
	s.byAddr[key] = append(s.byAddr[key], ep)
}

// hasEndpointAt reports whether an endpoint sends notifications to addr.
func (s *Server) hasEndpointAt(addr string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byAddr[addr]) > 0
}
