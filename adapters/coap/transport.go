package coap

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	coapNet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"
	udpServer "github.com/plgd-dev/go-coap/v3/udp/server"
	"go.uber.org/zap"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/iotgw/iotgw/internal/rxtime"
)

// transport owns the adapter's UDP socket in place of go-coap's udp
// server. go-coap's server reads one datagram per system call, looks its
// peer up under a freshly formatted string key, and hands every request to
// the peer's goroutine; at 10,000 requests a second that machinery cost
// more than the work. Here one goroutine reads datagrams in batches
// (recvmmsg where the system has it), the fast path (fastpath.go) answers
// the common simple requests in place, and everything else goes to the
// peer's go-coap connection exactly as go-coap's server would hand it
// (Conn.Process), so block-wise transfer, observe registration,
// discovery, pings, errors and retransmissions keep go-coap's handling.
//
// The peer table is the one go-coap's server keeps: a go-coap connection
// per (remote, local) address pair, created on its first datagram or
// notification and dropped once its inactivity monitor closes it.
type transport struct {
	s        *Server
	uc       *net.UDPConn
	ln       *coapNet.UDPConn // go-coap's view of the socket, for its connections' writes
	bc       batchConn
	laddr    *net.UDPAddr // the listener's address
	wildcard bool         // bound to an unspecified IP: each datagram says where it went
	v6       bool
	ccfg     udpClient.Config
	pool     *pool.Pool

	mu     sync.Mutex
	peers  map[connKey]*peerState
	closed bool

	// Replies of the read batch in progress, sent together (sendmmsg).
	// Only the read goroutine touches them.
	out    []ipv4.Message
	outBuf [][]byte
	// at is the kernel receive time of the datagram go-coap is being
	// handed (Unix ns, 0 unknown): read goroutine only, and read by the
	// request monitor, which Conn.Process calls synchronously.
	at int64
}

// batchConn is the batch I/O of x/net's ipv4 and ipv6 PacketConn (their
// Message types are one type).
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// connKey identifies a peer: its address and the gateway address it talks
// to (a wildcard listener answers from the address it was sent to).
type connKey struct{ remote, local netip.AddrPort }

func keyOf(raddr, laddr *net.UDPAddr) connKey {
	r, l := raddr.AddrPort(), laddr.AddrPort()
	return connKey{
		remote: netip.AddrPortFrom(r.Addr().Unmap(), r.Port()),
		local:  netip.AddrPortFrom(l.Addr().Unmap(), l.Port()),
	}
}

// maxDatagram is the largest datagram read (go-coap's MaxMessageSize);
// readBatch is how many datagrams one read may return.
const (
	maxDatagram = 64 * 1024
	readBatch   = 16
)

var errTransportClosed = errors.New("coap transport closed")

func newTransport(s *Server, uc *net.UDPConn, handler udpServer.HandlerFunc) *transport {
	la, _ := uc.LocalAddr().(*net.UDPAddr)
	t := &transport{
		s: s, uc: uc, laddr: la, pool: pool.New(0, 0),
		wildcard: la.IP.IsUnspecified(),
		v6:       la.IP.To4() == nil,
		peers:    make(map[connKey]*peerState),
	}
	// NewUDPConn also asks the kernel for each datagram's destination
	// (IP_PKTINFO), which a wildcard listener needs.
	t.ln = coapNet.NewUDPConn("udp", uc)
	// Each datagram's receive time orders its publish or observation
	// against other clients' packets in the core (core/order.go).
	if rc, err := uc.SyscallConn(); err == nil {
		if err := rxtime.Enable(rc); err != nil {
			s.log.Debug("no receive timestamps", zap.Error(err))
		}
	}
	if t.v6 {
		t.bc = ipv6.NewPacketConn(uc)
	} else {
		t.bc = ipv4.NewPacketConn(uc)
	}
	t.ccfg = s.connConfig(handler, t.pool)
	return t
}

// connConfig is the configuration of every peer's go-coap connection, on
// the UDP socket and over DTLS alike.
func (s *Server) connConfig(handler udpServer.HandlerFunc, mp *pool.Pool) udpClient.Config {
	szx, _ := szxOf(s.cfg.BlockSize)
	c := udpClient.DefaultConfig
	c.Ctx = s.ctx
	c.Errors = func(err error) {
		if !coapNet.IsCancelOrCloseError(err) {
			s.onError(err)
		}
	}
	c.Handler = handler
	c.ProcessReceivedMessage = s.processReceived
	c.BlockwiseEnable = true
	c.BlockwiseSZX = szx
	c.BlockwiseTransferTimeout = s.cfg.ExchangeLifetime
	c.MaxMessageSize = maxDatagram
	c.MessagePool = mp
	c.GetMID = message.GetMID
	c.GetToken = message.GetToken
	c.TransmissionNStart = 1
	c.TransmissionAcknowledgeTimeout = s.cfg.AckTimeout
	c.TransmissionMaxRetransmit = uint32(s.cfg.MaxRetransmit)
	return c
}

// peer returns the state of the peer at raddr talking to laddr, creating
// it (and its go-coap connection) if need be; a connection closed by its
// inactivity monitor or an error is replaced.
func (t *transport) peer(raddr, laddr *net.UDPAddr) (*peerState, error) {
	key := keyOf(raddr, laddr)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, errTransportClosed
	}
	if p := t.peers[key]; p != nil {
		if p.cc.Context().Err() == nil {
			return p, nil
		}
		t.dropLocked(key, p)
	}
	p := t.newPeer(raddr, laddr)
	t.peers[key] = p
	return p, nil
}

// conn returns the go-coap connection to raddr from laddr (nil: the
// listener's address), for notifications.
func (t *transport) conn(raddr, laddr *net.UDPAddr) (*udpClient.Conn, error) {
	if laddr == nil {
		laddr = t.laddr
	}
	p, err := t.peer(raddr, laddr)
	if err != nil {
		return nil, err
	}
	return p.cc, nil
}

// newPeer builds a peer's go-coap connection as go-coap's server does,
// with the adapter's peerState in its context. The session gets a done
// context of its own, cancelled when the peer is dropped: it ends the
// connection's request goroutine.
func (t *transport) newPeer(raddr, laddr *net.UDPAddr) *peerState {
	dctx, stop := context.WithCancel(context.Background())
	sess := udpServer.NewSession(t.s.ctx, dctx, t.ln, raddr, maxDatagram, udpClient.DefaultMTU, false)
	ps := t.s.newPeerState(sess, &t.ccfg, t.s.monitor, raddr, laddr)
	ps.via, ps.stop = t, stop
	return ps
}

// newPeerState builds the go-coap connection of a peer over sess and the
// adapter's state of it (in the connection's context). monitor sees
// each decoded message first.
func (s *Server) newPeerState(sess udpClient.Session, ccfg *udpClient.Config, monitor func(*udpClient.Conn, *pool.Message) (bool, error), raddr, laddr *net.UDPAddr) *peerState {
	mon := newIdleMonitor(s)
	cfg := *ccfg
	cc := udpClient.NewConnWithOpts(sess, &cfg,
		udpClient.WithInactivityMonitor(mon),
		udpClient.WithRequestMonitor(monitor),
		udpClient.WithBlockWise(func(c *udpClient.Conn) *blockwise.BlockWise[*udpClient.Conn] {
			// A closure: c's observation client is set after this runs.
			return blockwise.New(c, s.cfg.ExchangeLifetime, cfg.Errors, func(tok message.Token) (*pool.Message, bool) {
				return c.GetObservationRequest(tok)
			})
		}))
	ps := &peerState{
		dd: newDedup(s.cfg.ExchangeLifetime), addr: raddr.String(),
		cc: cc, mon: mon, raddr: raddr, laddr: laddr, stop: func() {},
		limit: s.b.NewClientLimit(),
	}
	ps.clientID = s.generatedClientIDOf(ps.addr)
	cc.SetContextValue(peerKey{}, ps)
	return ps
}

func (t *transport) dropLocked(key connKey, p *peerState) {
	if t.peers[key] == p {
		delete(t.peers, key)
	}
	_ = p.cc.Close()
	p.stop()
}

// expire is the periodic work of go-coap's server: closed connections
// leave the table, the others run their retransmissions, block-wise and
// inactivity timers.
func (t *transport) expire(now time.Time) bool {
	t.mu.Lock()
	live := make([]*peerState, 0, len(t.peers))
	for k, p := range t.peers {
		if p.cc.Context().Err() != nil {
			t.dropLocked(k, p)
			continue
		}
		live = append(live, p)
	}
	t.mu.Unlock()
	for _, p := range live {
		p.cc.CheckExpirations(now)
	}
	return t.s.ctx.Err() == nil
}

// close ends every peer's connection and the socket, which ends serve.
func (t *transport) close() {
	t.mu.Lock()
	t.closed = true
	for k, p := range t.peers {
		t.dropLocked(k, p)
	}
	t.mu.Unlock()
	_ = t.uc.Close()
}

// serve is the read loop: it runs until the socket is closed.
func (t *transport) serve() {
	ms := make([]ipv4.Message, readBatch)
	for i := range ms {
		ms[i].Buffers = [][]byte{make([]byte, maxDatagram)}
		ms[i].OOB = t.newOOB()
	}
	for {
		n, err := t.bc.ReadBatch(ms, 0)
		if err != nil {
			if t.s.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			if ce := t.s.log.Check(zap.DebugLevel, "udp read"); ce != nil {
				ce.Write(zap.Error(err))
			}
			continue
		}
		for i := range ms[:n] {
			m := &ms[i]
			raddr, ok := m.Addr.(*net.UDPAddr)
			if !ok {
				continue
			}
			t.dispatch(m.Buffers[0][:m.N], raddr, m.OOB[:m.NN])
		}
		t.flush()
	}
}

// dispatch handles one datagram: the fast path answers it, or the peer's
// go-coap connection processes it (decoding, deduplication and the
// handlers of server.go). oob holds its receive time and, for a wildcard
// listener, its destination.
func (t *transport) dispatch(b []byte, raddr *net.UDPAddr, oob []byte) {
	at := rxtime.Parse(oob)
	laddr := t.laddr
	var cm *coapNet.ControlMessage
	if t.wildcard && len(oob) > 0 {
		cm = t.parseOOB(oob)
		if cm != nil && len(cm.Dst) > 0 && !cm.Dst.IsMulticast() {
			l := *t.laddr
			l.IP = cm.Dst
			laddr = &l
		}
	}
	p, err := t.peer(raddr, laddr)
	if err != nil {
		return
	}
	if t.s.fastRequest(p, b, cm, at) {
		return
	}
	t.at = at
	err = p.cc.Process(cm, b)
	t.at = 0
	if err != nil {
		t.s.onError(fmt.Errorf("%v: cannot process packet: %w", raddr, err))
		t.mu.Lock()
		t.dropLocked(keyOf(raddr, laddr), p)
		t.mu.Unlock()
	}
}

// newOOB returns a datagram's out-of-band buffer: room for its receive
// time and, on a wildcard listener, its destination.
func (t *transport) newOOB() []byte {
	n := rxtime.OOBSize
	switch {
	case !t.wildcard:
	case t.v6:
		n += len(ipv6.NewControlMessage(ipv6.FlagDst | ipv6.FlagInterface))
	default:
		n += len(ipv4.NewControlMessage(ipv4.FlagDst | ipv4.FlagInterface))
	}
	return make([]byte, n)
}

func (t *transport) parseOOB(oob []byte) *coapNet.ControlMessage {
	if t.v6 {
		var c ipv6.ControlMessage
		if c.Parse(oob) != nil {
			return nil
		}
		return &coapNet.ControlMessage{Dst: c.Dst, Src: c.Src, IfIndex: c.IfIndex}
	}
	var c ipv4.ControlMessage
	if c.Parse(oob) != nil {
		return nil
	}
	return &coapNet.ControlMessage{Dst: c.Dst, Src: c.Src, IfIndex: c.IfIndex}
}

// replyOOB is the control message that makes a reply to raddr leave from the
// address the request was sent to, as go-coap does (nil when bound to
// one address).
func replyOOB(raddr *net.UDPAddr, cm *coapNet.ControlMessage) []byte {
	if cm == nil || (len(cm.Dst) == 0 && cm.IfIndex == 0) {
		return nil
	}
	var src net.IP
	if !cm.Dst.IsMulticast() {
		src = cm.Dst
	}
	// By the peer's family, as go-coap does: an IPv4 peer of a dual-stack
	// socket takes IP_PKTINFO.
	if coapNet.IsIPv6(raddr.IP) {
		return (&ipv6.ControlMessage{Src: src, IfIndex: cm.IfIndex}).Marshal()
	}
	return (&ipv4.ControlMessage{Src: src, IfIndex: cm.IfIndex}).Marshal()
}

// queue adds a reply to the batch sent when the current reads are
// handled (read goroutine only); b is copied.
func (t *transport) queue(b []byte, raddr *net.UDPAddr, cm *coapNet.ControlMessage) {
	i := len(t.out)
	if i == len(t.outBuf) {
		t.outBuf = append(t.outBuf, make([]byte, 0, 64))
	}
	t.outBuf[i] = append(t.outBuf[i][:0], b...)
	t.out = append(t.out, ipv4.Message{Buffers: [][]byte{t.outBuf[i]}, Addr: raddr, OOB: replyOOB(raddr, cm)})
}

// flush sends the queued replies, in as few system calls as the kernel
// takes them.
func (t *transport) flush() {
	if t.v6 {
		// x/net encodes an IPv4 peer's address as AF_INET, which a
		// dual-stack IPv6 socket refuses (EINVAL): one write each, by
		// the net package, which maps it.
		for i := range t.out {
			m := &t.out[i]
			if _, _, err := t.uc.WriteMsgUDP(m.Buffers[0], m.OOB, m.Addr.(*net.UDPAddr)); err != nil {
				if ce := t.s.log.Check(zap.DebugLevel, "udp write"); ce != nil {
					ce.Write(zap.Error(err))
				}
			}
		}
		t.out = t.out[:0]
		return
	}
	for sent := 0; sent < len(t.out); {
		n, err := t.bc.WriteBatch(t.out[sent:], 0)
		if err != nil || n == 0 {
			if ce := t.s.log.Check(zap.DebugLevel, "udp write"); ce != nil {
				ce.Write(zap.Error(err))
			}
			sent++ // drop the one that failed: UDP may lose it anyway
			continue
		}
		sent += n
	}
	for i := range t.out {
		t.out[i] = ipv4.Message{}
	}
	t.out = t.out[:0]
}

// send writes one datagram now (from any goroutine).
func (t *transport) send(b []byte, raddr *net.UDPAddr, cm *coapNet.ControlMessage) error {
	_, _, err := t.uc.WriteMsgUDP(b, replyOOB(raddr, cm), raddr)
	return err
}
