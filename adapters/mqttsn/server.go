package mqttsn

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/iotgw/iotgw/adapters/mqttsn/codec"
	"github.com/iotgw/iotgw/core"
	"github.com/iotgw/iotgw/internal/dtlsnet"
	"github.com/iotgw/iotgw/internal/ratelimit"
	"github.com/iotgw/iotgw/internal/rxtime"
)

// listenerName is the Listener of MQTT-SN clients in core.ClientInfo.
const listenerName = "udp"

// Server is the MQTT-SN adapter: one UDP socket whose read loop feeds
// per-client virtual connections.
type Server struct {
	cfg Config
	log *zap.Logger
	b   *core.Broker
	pc  *core.PacketCounters
	pre *predefined
	uc  *net.UDPConn
	// dtls is the mqttsn.dtls listener (nil when off); its sessions are
	// read by goroutines of their own (dtls.go).
	dtls *dtlsnet.Listener
	// dispatchMu serialises datagram dispatch between the UDP read loop
	// and the DTLS sessions' readers, so that the maps dispatch changes
	// still change one datagram at a time.
	dispatchMu sync.Mutex
	// backpressure: session.queue_full_policy is backpressure, so QoS 0
	// deliveries pace their publishers (link.Room).
	backpressure bool

	mu       sync.Mutex
	byAddr   map[string]*vconn          // by peer key (address, plus node id when forwarded)
	byClient map[string]*vconn          // by client id, once CONNECT named one
	sessions map[*dtlsnet.Conn]struct{} // DTLS sessions being read
	// limiter is mqttsn.new_session_rate, per source address, on top of
	// the broker's limits.connect_rate_per_addr.
	limiter  *ratelimit.Keyed[netip.Addr]
	stopping bool

	workers sync.WaitGroup // vconn workers
	loops   sync.WaitGroup // read loop, advertise
	stop    chan struct{}
}

var _ core.Adapter = (*Server)(nil)

// New returns an MQTT-SN adapter; cfg must be valid.
func New(cfg Config, log *zap.Logger) *Server {
	if log == nil {
		log = zap.NewNop()
	}
	return &Server{cfg: cfg, log: log.Named("mqttsn"), pre: newPredefined(cfg.Predefined),
		byAddr: make(map[string]*vconn), byClient: make(map[string]*vconn),
		sessions: make(map[*dtlsnet.Conn]struct{}), limiter: ratelimit.NewKeyed[netip.Addr](cfg.NewSessionRate, cfg.NewSessionBurst, 1<<16),
		stop: make(chan struct{})}
}

// Name returns "mqttsn".
func (s *Server) Name() string { return "mqttsn" }

// noWait is the context of every authentication: the read loop and the
// clients' workers must not sleep out a throttled login (a client's
// retransmitted CONNECTs would pile up behind it); it is refused as
// congestion instead, and the client retries after T_WAIT.
var noWait = core.NoWait(context.Background())

// Counter indexes beyond the message types, for $SYS.
const (
	idxInvalid = 256 // undecodable datagrams and unknown message types
	idxDropped = 257 // valid messages dropped (wrong state, rate limit, ...)
)

func packetNames() []string {
	names := make([]string, 258)
	for t := 0; t < 256; t++ {
		if codec.Type(t).Known() {
			names[t] = strings.ToLower(codec.Type(t).String())
		}
	}
	names[idxInvalid] = "invalid"
	names[idxDropped] = "dropped"
	return names
}

// udpReadBuffer is the socket receive buffer asked of the kernel.
const udpReadBuffer = 4 << 20

// Start binds the UDP socket and serves it in the background.
func (s *Server) Start(ctx context.Context, b *core.Broker) error {
	s.b = b
	s.pc = b.Stats().Packets(core.ProtoMQTTSN, packetNames())
	s.backpressure = b.Config().QueueFullPolicy == core.Backpressure
	if err := s.startDTLS(); err != nil {
		return err
	}
	if s.cfg.UDP == "" {
		return nil
	}
	lc := net.ListenConfig{}
	if s.cfg.AdvertiseInterval > 0 {
		lc.Control = enableBroadcast
	}
	pc, err := lc.ListenPacket(ctx, "udp", s.cfg.UDP)
	if err != nil {
		s.closeDTLS()
		return fmt.Errorf("mqttsn.udp: %w", err)
	}
	s.uc = pc.(*net.UDPConn)
	// One socket serves every client: a kernel buffer bigger than the
	// default (~208 KiB) absorbs bursts from many senders instead of
	// dropping datagrams. The kernel caps it at net.core.rmem_max.
	if err := s.uc.SetReadBuffer(udpReadBuffer); err != nil {
		s.log.Debug("socket read buffer not raised", zap.Error(err))
	}
	// Each datagram's kernel receive time orders its PUBLISH or SUBSCRIBE
	// against other clients' packets in the core (core/order.go).
	if rc, err := s.uc.SyscallConn(); err == nil {
		if err := rxtime.Enable(rc); err != nil {
			s.log.Debug("no receive timestamps", zap.Error(err))
		}
	}
	s.log.Info("listening", zap.String("transport", "udp"), zap.Stringer("addr", s.uc.LocalAddr()),
		zap.Int("predefined_topics", len(s.cfg.Predefined)))
	s.loops.Add(1)
	go s.readLoop()
	if s.cfg.AdvertiseInterval > 0 {
		dst, err := net.ResolveUDPAddr("udp", s.cfg.AdvertiseAddress)
		if err != nil {
			s.uc.Close()
			s.closeDTLS()
			return fmt.Errorf("mqttsn.advertise_address: %w", err)
		}
		s.loops.Add(1)
		go s.advertiseLoop(dst)
	}
	return nil
}

// UDPAddr returns the socket's address (nil when disabled); tests
// listening on port 0 read the real port here.
func (s *Server) UDPAddr() net.Addr {
	if s.uc == nil {
		return nil
	}
	return s.uc.LocalAddr()
}

// Stop closes the socket, disconnects every client (publishing wills, as
// for any connection that did not end cleanly) and waits for goroutines.
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		return nil
	}
	s.stopping = true
	s.mu.Unlock()
	close(s.stop)
	if s.uc == nil && s.dtls == nil {
		return nil
	}
	// Unblock the readers but keep the socket and the DTLS sessions for
	// the DISCONNECTs.
	if s.uc != nil {
		_ = s.uc.SetReadDeadline(time.Now())
	}
	s.stopDTLSReaders()
	done := make(chan struct{})
	go func() {
		s.loops.Wait()
		// The readers are gone, so no new virtual connection appears.
		for _, vc := range s.allConns() {
			vc.post(event{kind: evShutdown})
		}
		s.workers.Wait()
		if s.uc != nil {
			s.uc.Close()
		}
		s.closeDTLS()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Server) allConns() []*vconn {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := make(map[*vconn]bool, len(s.byAddr))
	out := make([]*vconn, 0, len(s.byAddr))
	for _, m := range []map[string]*vconn{s.byAddr, s.byClient} {
		for _, vc := range m {
			if !seen[vc] {
				seen[vc] = true
				out = append(out, vc)
			}
		}
	}
	return out
}

// peer is where a datagram came from: a UDP address, and for a message
// relayed by a forwarder (§5.5) the wireless node id behind it. A peer of
// the DTLS listener has its session (dc), keyed by the session rather
// than by the address, which RFC 9146 connection IDs let change.
type peer struct {
	addr *net.UDPAddr
	fwd  bool
	ctrl byte
	node []byte
	key  string
	dc   *dtlsnet.Conn // nil: the UDP socket
}

// listener is the Listener of the peer's clients in core.ClientInfo.
func (p *peer) listener() string {
	if p != nil && p.dc != nil {
		return dtlsListenerName
	}
	return listenerName
}

// identity is the user name the peer's DTLS session verified, "" none.
func (p *peer) identity() string {
	if p != nil && p.dc != nil && p.dc.HasIdentity {
		return p.dc.Identity
	}
	return ""
}

func (p *peer) String() string { return p.key }

// readLoop is the socket's only reader: it decodes each datagram and
// hands it, with its kernel receive time, to the virtual connection of
// its sender.
func (s *Server) readLoop() {
	defer s.loops.Done()
	buf, oob := make([]byte, 65536), make([]byte, rxtime.OOBSize)
	stats := s.b.Stats()
	for {
		n, oobn, _, addr, err := s.uc.ReadMsgUDP(buf, oob)
		if err != nil {
			select {
			case <-s.stop:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Warn("read failed", zap.Error(err))
			time.Sleep(10 * time.Millisecond) // do not spin on a persistent error
			continue
		}
		stats.WireBytesReceived.Add(uint64(n))
		// Decoded messages alias their datagram, so each gets its own copy.
		s.dispatchMu.Lock()
		s.datagram(append([]byte(nil), buf[:n]...), peer{addr: addr}, rxtime.Parse(oob[:oobn]))
		s.dispatchMu.Unlock()
	}
}

// datagram decodes one datagram from src (its address and, over DTLS,
// session and key), received at at (Unix ns, 0 unknown), unwrapping a
// forwarder's encapsulation. The caller holds dispatchMu.
func (s *Server) datagram(data []byte, src peer, at int64) {
	p := &src
	base := p.key
	if base == "" {
		base = p.addr.String()
	}
	m, err := codec.Decode(data)
	if err == nil {
		if e, ok := m.(*codec.Encapsulated); ok {
			s.pc.In(int(codec.TypeEncapsulated))
			p.fwd, p.ctrl, p.node = true, e.Ctrl&0x03, append([]byte(nil), e.NodeID...)
			m, err = codec.Decode(e.Inner)
			if err == nil && m.Type() == codec.TypeEncapsulated {
				err = fmt.Errorf("%w: nested encapsulation", codec.ErrMalformed)
			}
		}
	}
	if p.fwd {
		p.key = base + "/" + hex.EncodeToString(p.node)
	} else {
		p.key = base
	}
	if err != nil {
		s.pc.In(idxInvalid)
		if ce := s.log.Check(zap.DebugLevel, "invalid datagram"); ce != nil {
			ce.Write(zap.String("remote", p.key), zap.Int("bytes", len(data)), zap.Error(err))
		}
		return
	}
	s.pc.In(int(m.Type()))
	s.dispatch(p, m, at)
}

// dispatch routes a message to its virtual connection, creating or
// rebinding one for CONNECT, AUTH and a waking PINGREQ. Only the readers
// call it, holding dispatchMu, so map changes here never race with each
// other. A
// virtual connection may finish between lookup and hand-over; the
// message is then dispatched again, without it.
func (s *Server) dispatch(p *peer, m codec.Message, at int64) {
	if !s.dispatchOnce(p, m, at) {
		s.dispatchOnce(p, m, at)
	}
}

// handOver posts a client message, received at at, to vc. It returns
// false (having removed vc from the maps) only when vc has just finished.
func (s *Server) handOver(vc *vconn, m codec.Message, at int64) bool {
	if vc.post(event{kind: evMsg, msg: m, at: at}) {
		return true
	}
	if vc.isDead() {
		s.forget(vc)
		return false
	}
	s.pc.In(idxDropped) // inbox full
	return true
}

func (s *Server) dispatchOnce(p *peer, m codec.Message, at int64) bool {
	switch m := m.(type) {
	case *codec.SearchGW:
		// Any gateway may answer; the answer names this one (§6.1).
		s.reply(p, &codec.GWInfo{GatewayID: byte(s.cfg.GatewayID)})
		return true
	case *codec.Advertise, *codec.GWInfo:
		return true // other gateways' announcements; this gateway needs none
	case *codec.Connect:
		return s.dispatchConnect(p, m, at)
	case *codec.Pingreq:
		if m.ClientID != "" {
			if vc := s.rebind(p, m.ClientID); vc != nil {
				return s.handOver(vc, m, at)
			}
		}
	}
	s.mu.Lock()
	vc := s.byAddr[p.key]
	s.mu.Unlock()
	if vc != nil {
		if a, ok := m.(*codec.Auth); ok {
			// Stored at once, so a CONNECT right behind it finds it even
			// if it moves the client to another virtual connection.
			vc.setCreds(a)
		}
		return s.handOver(vc, m, at)
	}
	switch m := m.(type) {
	case *codec.Publish:
		if m.Flags.QoS == codec.QoSMinus1 {
			s.publishMinus1(p, m, at)
			return true
		}
	case *codec.Auth:
		if vc, _ := s.newConn(p); vc != nil {
			vc.setCreds(m)
			vc.post(event{kind: evMsg, msg: m, at: at})
		}
		return true
	case *codec.Disconnect, *codec.Pingreq, *codec.Register, *codec.Subscribe:
	default:
		s.dropped(p, m, "message from an unknown client")
		return true
	}
	// A client the gateway does not know (restarted gateway, expired
	// sleep, changed address) learns it must connect again.
	s.dropped(p, m, "message from an unknown client, answered with DISCONNECT")
	s.reply(p, &codec.Disconnect{})
	return true
}

func (s *Server) dropped(p *peer, m codec.Message, why string) {
	s.pc.In(idxDropped)
	if ce := s.log.Check(zap.DebugLevel, why); ce != nil {
		ce.Write(zap.String("remote", p.key), zap.Stringer("type", m.Type()))
	}
}

// dispatchConnect finds the virtual connection of a CONNECT: the client
// id's own (rebinding it to this address), the address's, or a new one.
func (s *Server) dispatchConnect(p *peer, m *codec.Connect, at int64) bool {
	var vc *vconn
	if m.ClientID != "" {
		vc = s.rebind(p, m.ClientID)
	}
	if vc == nil {
		s.mu.Lock()
		if cur := s.byAddr[p.key]; cur != nil && (cur.cid == "" || cur.cid == m.ClientID) {
			vc = cur
		}
		s.mu.Unlock()
	}
	if vc == nil {
		var rc codec.ReturnCode
		if vc, rc = s.newConn(p); vc == nil {
			s.reply(p, &codec.ReturnOnly{Kind: codec.TypeConnack, Code: rc})
			return true
		}
	}
	if m.ClientID != "" {
		s.mu.Lock()
		if old := s.byClient[m.ClientID]; old == nil {
			s.byClient[m.ClientID] = vc
			vc.cid = m.ClientID
		}
		s.mu.Unlock()
	}
	return s.handOver(vc, m, at)
}

// rebind returns the virtual connection of clientID bound to p's address,
// moving it there from its old address (NAT rebinding, a new port after
// sleep) and retiring whatever else held this address. nil if the client
// id is unknown.
func (s *Server) rebind(p *peer, clientID string) *vconn {
	s.mu.Lock()
	vc := s.byClient[clientID]
	if vc == nil {
		s.mu.Unlock()
		return nil
	}
	if vc.key == p.key {
		s.mu.Unlock()
		return vc
	}
	var retired *vconn
	if cur := s.byAddr[p.key]; cur != nil && cur != vc {
		// Another client held this address (a reused port): it can no
		// longer be reached here. Credentials it collected before CONNECT
		// are this client's.
		delete(s.byAddr, p.key)
		cur.key = ""
		retired = cur
	}
	if s.byAddr[vc.key] == vc {
		delete(s.byAddr, vc.key)
	}
	vc.key = p.key
	s.byAddr[p.key] = vc
	s.mu.Unlock()
	vc.setPeer(p)
	if retired != nil {
		vc.adoptCreds(retired)
		retired.post(event{kind: evUnbound})
	}
	s.log.Debug("client rebound to a new address", zap.String("client_id", clientID), zap.String("remote", p.key))
	return vc
}

// newConn creates a virtual connection for a new peer, within the ban
// list, the connection rates and the client limit; when refused it
// returns nil and the CONNACK code that says why: congestion for what a
// retry may pass later, "not supported" for a banned address.
func (s *Server) newConn(p *peer) (*vconn, codec.ReturnCode) {
	if err := s.b.AdmitConnection(core.ProtoMQTTSN, p.listener(), p.addr); err != nil {
		s.pc.In(idxDropped)
		s.log.Debug("new client refused", zap.String("remote", p.key), zap.Error(err))
		return nil, returnCodeFor(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return nil, codec.Congestion
	}
	if s.cfg.MaxClients > 0 && len(s.byAddr) >= s.cfg.MaxClients {
		s.pc.In(idxDropped)
		s.log.Debug("client limit reached", zap.String("remote", p.key))
		return nil, codec.Congestion
	}
	if s.limiter != nil {
		if a, ok := ratelimit.AddrOf(p.addr); ok {
			if ok, _ := s.limiter.Allow(ratelimit.AddrKey(a), ratelimit.Now()); !ok {
				s.pc.In(idxDropped)
				s.log.Debug("new session rate exceeded", zap.String("remote", p.key))
				return nil, codec.Congestion
			}
		}
	}
	if old := s.byAddr[p.key]; old != nil {
		old.key = ""
		old.post(event{kind: evUnbound})
	}
	vc := newVconn(s, p)
	s.byAddr[p.key] = vc
	return vc, codec.Accepted
}

// forget removes a finished virtual connection from the maps.
func (s *Server) forget(vc *vconn) {
	s.mu.Lock()
	if vc.key != "" && s.byAddr[vc.key] == vc {
		delete(s.byAddr, vc.key)
	}
	if vc.cid != "" && s.byClient[vc.cid] == vc {
		delete(s.byClient, vc.cid)
	}
	s.mu.Unlock()
}

// reply sends a message to a peer that has no virtual connection.
func (s *Server) reply(p *peer, m codec.Message) {
	raw, err := codec.Encode(m)
	if err != nil {
		s.log.Warn("encode failed", zap.Stringer("type", m.Type()), zap.Error(err))
		return
	}
	s.write(p, raw, m.Type())
}

// maxDatagram is the largest MQTT-SN message one UDP datagram can carry
// to this peer: the IPv4 or IPv6 payload limit, less a forwarder's
// encapsulation.
func (p *peer) maxDatagram() int {
	if p != nil && p.dc != nil {
		n := dtlsnet.MaxDatagram
		if p.fwd {
			n -= 3 + len(p.node)
		}
		return n
	}
	n := 65527 // IPv6: 65535 - 8-byte UDP header
	if p != nil && p.addr != nil && p.addr.IP.To4() != nil {
		n = 65507 // IPv4: 65535 - 20-byte IP header - 8-byte UDP header
	}
	if p != nil && p.fwd {
		n -= 3 + len(p.node)
	}
	return n
}

// write sends one encoded message, wrapping it for a forwarder.
func (s *Server) write(p *peer, raw []byte, t codec.Type) {
	if p == nil || p.addr == nil {
		return
	}
	if p.fwd {
		var err error
		raw, err = codec.Encode(&codec.Encapsulated{Ctrl: p.ctrl, NodeID: p.node, Inner: raw})
		if err != nil {
			return
		}
	}
	var n int
	var err error
	if p.dc != nil {
		n, err = p.dc.Write(raw)
	} else {
		n, err = s.uc.WriteToUDP(raw, p.addr)
	}
	s.b.Stats().WireBytesSent.Add(uint64(n))
	if err != nil {
		if ce := s.log.Check(zap.DebugLevel, "write failed"); ce != nil {
			ce.Write(zap.String("remote", p.key), zap.Error(err))
		}
		return
	}
	s.pc.Out(int(t))
}

// advertiseLoop broadcasts ADVERTISE every interval; Duration is the
// interval in seconds (§5.4.1, §6.1).
func (s *Server) advertiseLoop(dst *net.UDPAddr) {
	defer s.loops.Done()
	d := time.Duration(s.cfg.AdvertiseInterval) * time.Second
	t := time.NewTicker(d)
	defer t.Stop()
	p := &peer{addr: dst, key: dst.String()}
	msg := &codec.Advertise{GatewayID: byte(s.cfg.GatewayID), Duration: uint16(s.cfg.AdvertiseInterval)}
	for {
		s.reply(p, msg)
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
	}
}

// returnCodeFor maps a core sentinel error onto an MQTT-SN return code;
// the one place where core errors become MQTT-SN codes. MQTT-SN 1.2 has
// only three rejection codes, so refusals that are not about the topic or
// load become "not supported".
func returnCodeFor(err error) codec.ReturnCode {
	switch {
	case err == nil:
		return codec.Accepted
	case errors.Is(err, core.ErrQuotaExceeded), errors.Is(err, core.ErrServerUnavailable),
		errors.Is(err, core.ErrServerShuttingDown), errors.Is(err, core.ErrStore),
		errors.Is(err, core.ErrRateLimited), errors.Is(err, core.ErrServerBusy):
		// A retry after T_WAIT may pass (§5.4.7: "rejected: congestion").
		return codec.Congestion
	case errors.Is(err, core.ErrInvalidTopic), errors.Is(err, core.ErrTopicTooLong):
		return codec.InvalidTopicID
	}
	return codec.NotSupported
}

// stateKey names the MQTT-SN topic registry among a session's adapter
// states (core.Session.SetAdapterState).
const stateKey = "mqttsn"

// restoreRegistry returns the registry a persistent session saved before
// a gateway restart, or an empty one.
func (s *Server) restoreRegistry(clientID string, sess *core.Session) *registry {
	if data := sess.AdapterState(stateKey); data != nil {
		reg, err := decodeRegistry(data, s.cfg.MaxTopics, s.pre)
		if err == nil {
			return reg
		}
		s.log.Warn("stored topic registry unreadable; starting empty", zap.String("client_id", clientID), zap.Error(err))
	}
	return newRegistry(s.cfg.MaxTopics, s.pre)
}

// saveRegistry makes a changed registry of a persistent session durable,
// before the reply that tells the client about the change.
func (vc *vconn) saveRegistry() {
	if vc.reg == nil || !vc.reg.dirty {
		return
	}
	vc.reg.dirty = false
	if vc.sess == nil || vc.connect == nil || vc.connect.Flags.CleanSession {
		return
	}
	if err := vc.sess.SetAdapterState(stateKey, vc.reg.encode()); err != nil {
		vc.log.Warn("topic registry not stored", zap.Error(err))
	}
}
