package coap

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/pool"
	coapNet "github.com/plgd-dev/go-coap/v3/net"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"
	"github.com/plgd-dev/go-coap/v3/udp/coder"
	"go.uber.org/zap"

	"github.com/iotgw/iotgw/internal/dtlsnet"
)

// CoAP over DTLS [RFC 7252 §9] runs under the adapter's own path rather
// than go-coap's dtls server: each DTLS session (internal/dtlsnet, one per
// peer) is read by a goroutine of its own, and every plaintext datagram
// goes through the fast path and then to the peer's go-coap connection
// exactly as a datagram of the UDP socket does (transport.dispatch). So
// deduplication, observe, block-wise transfer, pacing and the fast paths
// are the UDP ones; only the bytes under them are encrypted. go-coap's
// dtls server would have bypassed the fast path, the dedup layer and the
// request monitor, all of which hang off the adapter's transport.

// path is one listener under the adapter, as the endpoints and the fast
// path see it: the UDP socket (*transport) or the DTLS listener.
type path interface {
	// conn returns the go-coap connection to raddr (talking to laddr).
	conn(raddr, laddr *net.UDPAddr) (*udpClient.Conn, error)
	// send writes one datagram now, from any goroutine.
	send(b []byte, raddr *net.UDPAddr, cm *coapNet.ControlMessage) error
	// queue writes one datagram from the goroutine reading raddr's
	// datagrams (the UDP socket batches them).
	queue(b []byte, raddr *net.UDPAddr, cm *coapNet.ControlMessage)
}

// pathOf returns the listener whose clients talk to laddr: the DTLS
// listener when laddr is its address (requests over DTLS carry that very
// pointer as their local address), else the UDP socket. nil when off.
func (s *Server) pathOf(laddr *net.UDPAddr) path {
	if s.dt != nil && laddr == s.dt.laddr {
		return s.dt
	}
	if s.tr != nil {
		return s.tr
	}
	return nil
}

// connTo returns the go-coap connection to a client, on its listener.
func (s *Server) connTo(raddr, laddr *net.UDPAddr) (*udpClient.Conn, error) {
	p := s.pathOf(laddr)
	if p == nil {
		return nil, errTransportClosed
	}
	return p.conn(raddr, laddr)
}

// errNoSession: a DTLS client's session is gone, and a server cannot open
// one towards it.
var errNoSession = errors.New("no DTLS session with the client")

// dtlsTransport is the coap.dtls listener under the adapter. A peer is
// keyed by its address at the handshake for the session's whole life:
// with RFC 9146 connection IDs pion follows the client to a new address,
// while the endpoints above keep naming it by the first one (its
// sessions' RemoteAddr says so), so observations survive a NAT rebinding.
type dtlsTransport struct {
	s     *Server
	ln    *dtlsnet.Listener
	laddr *net.UDPAddr
	ccfg  udpClient.Config
	// ready is closed once the fields above and Server.dt are set: the
	// listener may hand over a session before Listen returns.
	ready chan struct{}

	mu     sync.Mutex
	peers  map[netip.AddrPort]*dtlsPeer
	closed bool
	wg     sync.WaitGroup // readers
}

// dtlsPeer is one DTLS session's peer.
type dtlsPeer struct {
	ps   *peerState
	sess *dtlsSession
	at   int64 // receive time of the datagram being processed (its reader only)
}

// startDTLS binds coap.dtls when it is on.
func (s *Server) startDTLS() error {
	if s.cfg.DTLS == "" || s.cfg.DTLSSecure == nil {
		return nil
	}
	t := &dtlsTransport{s: s, peers: make(map[netip.AddrPort]*dtlsPeer), ready: make(chan struct{})}
	t.ccfg = s.connConfig(s.handle, pool.New(0, 0))
	ln, err := dtlsnet.Listen("coap.dtls", s.cfg.DTLS, s.cfg.DTLSSecure, s.log.Named("dtls"), t.serve)
	if err != nil {
		return err
	}
	t.ln = ln
	t.laddr, _ = ln.Addr().(*net.UDPAddr)
	s.dt = t
	close(t.ready)
	s.periodic(t.expire)
	s.log.Info("listening", zap.String("transport", "dtls"), zap.Stringer("addr", ln.Addr()))
	return nil
}

// DTLSAddr returns the DTLS listener's address (nil when off).
func (s *Server) DTLSAddr() net.Addr {
	if s.dt == nil {
		return nil
	}
	return s.dt.ln.Addr()
}

// DTLSStats returns the DTLS listener's counters (nil when off).
func (s *Server) DTLSStats() *dtlsnet.Stats {
	if s.dt == nil {
		return nil
	}
	return s.dt.ln.Stats()
}

func keyOfAddr(a *net.UDPAddr) netip.AddrPort {
	ap := a.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// serve reads one DTLS session until it ends.
func (t *dtlsTransport) serve(c *dtlsnet.Conn) {
	<-t.ready
	key := keyOfAddr(c.Addr)
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		_ = c.Close()
		return
	}
	if old := t.peers[key]; old != nil {
		// A new handshake from the address of a live session: the client
		// restarted (or a connection-ID session moved away and another
		// client took its old address). The newer one is the one that
		// can be answered there.
		t.dropLocked(key, old)
	}
	dp := &dtlsPeer{}
	raddr := net.UDPAddrFromAddrPort(key)
	dp.sess = newDTLSSession(t.s.ctx, c, raddr)
	dp.ps = t.s.newPeerState(dp.sess, &t.ccfg, func(cc *udpClient.Conn, req *pool.Message) (bool, error) {
		return t.s.monitorAt(cc, req, dp.at)
	}, raddr, t.laddr)
	dp.ps.via, dp.ps.stop = t, func() {}
	dp.ps.secure, dp.ps.identity, dp.ps.hasIdentity = true, c.Identity, c.HasIdentity
	t.peers[key] = dp
	t.wg.Add(1)
	t.mu.Unlock()
	defer t.wg.Done()

	buf := make([]byte, 8192) // pion refuses a read into a buffer smaller than a record
	for {
		n, err := c.Read(buf)
		if err != nil {
			break
		}
		dp.at = time.Now().UnixNano()
		b := buf[:n]
		if !t.s.fastRequest(dp.ps, b, nil, dp.at) {
			err = dp.ps.cc.Process(nil, b)
		}
		dp.at = 0
		if err != nil {
			t.s.onError(fmt.Errorf("%v: cannot process packet: %w", c.RemoteAddr(), err))
			break
		}
	}
	t.mu.Lock()
	t.dropLocked(key, dp)
	t.mu.Unlock()
}

func (t *dtlsTransport) dropLocked(key netip.AddrPort, dp *dtlsPeer) {
	if t.peers[key] == dp {
		delete(t.peers, key)
	}
	_ = dp.ps.cc.Close() // closes the session, which ends its reader
}

func (t *dtlsTransport) peer(raddr *net.UDPAddr) (*dtlsPeer, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	dp := t.peers[keyOfAddr(raddr)]
	if dp == nil || dp.ps.cc.Context().Err() != nil {
		return nil, errNoSession
	}
	return dp, nil
}

func (t *dtlsTransport) conn(raddr, _ *net.UDPAddr) (*udpClient.Conn, error) {
	dp, err := t.peer(raddr)
	if err != nil {
		return nil, err
	}
	return dp.ps.cc, nil
}

func (t *dtlsTransport) send(b []byte, raddr *net.UDPAddr, _ *coapNet.ControlMessage) error {
	dp, err := t.peer(raddr)
	if err != nil {
		return err
	}
	_, err = dp.sess.c.Write(b)
	return err
}

// queue writes at once: a DTLS record is sealed per datagram anyway, so
// there is nothing to batch.
func (t *dtlsTransport) queue(b []byte, raddr *net.UDPAddr, cm *coapNet.ControlMessage) {
	if err := t.send(b, raddr, cm); err != nil {
		if ce := t.s.log.Check(zap.DebugLevel, "dtls write"); ce != nil {
			ce.Write(zap.Error(err))
		}
	}
}

// expire runs the peers' retransmissions, block-wise and inactivity
// timers, as transport.expire does for the UDP socket.
func (t *dtlsTransport) expire(now time.Time) bool {
	t.mu.Lock()
	live := make([]*dtlsPeer, 0, len(t.peers))
	for _, dp := range t.peers {
		live = append(live, dp)
	}
	t.mu.Unlock()
	for _, dp := range live {
		if dp.ps.cc.Context().Err() == nil {
			dp.ps.cc.CheckExpirations(now)
		}
	}
	return t.s.ctx.Err() == nil
}

// close ends every session and the listener, and waits for the readers.
func (t *dtlsTransport) close() {
	t.mu.Lock()
	t.closed = true
	for k, dp := range t.peers {
		t.dropLocked(k, dp)
	}
	t.mu.Unlock()
	_ = t.ln.Close()
	t.wg.Wait()
}

// dtlsSession is the go-coap session (udp/client.Session) of one DTLS
// peer. go-coap's own dtls/server session closes its Done channel only
// from its Run loop, which the adapter replaces with its reader, so it
// would leak the connection's request goroutine.
type dtlsSession struct {
	c     *dtlsnet.Conn
	raddr *net.UDPAddr // the peer's address at the handshake (see dtlsTransport)
	conn  *coapNet.Conn

	mu      sync.Mutex
	ctx     context.Context
	cancel  context.CancelFunc
	onClose []func()
	done    chan struct{}
	once    sync.Once
}

var _ udpClient.Session = (*dtlsSession)(nil)

func newDTLSSession(ctx context.Context, c *dtlsnet.Conn, raddr *net.UDPAddr) *dtlsSession {
	ctx, cancel := context.WithCancel(ctx)
	return &dtlsSession{c: c, raddr: raddr, conn: coapNet.NewConn(c), ctx: ctx, cancel: cancel, done: make(chan struct{})}
}

func (d *dtlsSession) Context() context.Context {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ctx
}

func (d *dtlsSession) SetContextValue(key, val interface{}) {
	d.mu.Lock()
	d.ctx = context.WithValue(d.ctx, key, val)
	d.mu.Unlock()
}

// Close ends the session: the DTLS connection (its reader's Read fails)
// and, once, the close hooks.
func (d *dtlsSession) Close() error {
	var err error
	d.once.Do(func() {
		d.cancel()
		err = d.c.Close()
		d.mu.Lock()
		hooks := d.onClose
		d.onClose = nil
		d.mu.Unlock()
		for _, f := range hooks {
			f()
		}
		close(d.done)
	})
	return err
}

func (d *dtlsSession) Done() <-chan struct{} { return d.done }

func (d *dtlsSession) AddOnClose(f udpClient.EventFunc) {
	d.mu.Lock()
	d.onClose = append(d.onClose, f)
	d.mu.Unlock()
}

func (d *dtlsSession) MaxMessageSize() uint32 { return dtlsnet.MaxDatagram }
func (d *dtlsSession) RemoteAddr() net.Addr   { return d.raddr }
func (d *dtlsSession) LocalAddr() net.Addr    { return d.c.LocalAddr() }
func (d *dtlsSession) NetConn() net.Conn      { return d.c }

func (d *dtlsSession) WriteMessage(req *pool.Message) error {
	data, err := req.MarshalWithEncoder(coder.DefaultCoder)
	if err != nil {
		return fmt.Errorf("cannot marshal: %w", err)
	}
	return d.conn.WriteWithContext(req.Context(), data)
}

func (d *dtlsSession) WriteMulticastMessage(*pool.Message, *net.UDPAddr, ...coapNet.MulticastOption) error {
	return errors.New("coap: no multicast over DTLS")
}

// Run is not used: the transport's reader feeds the connection.
func (d *dtlsSession) Run(*udpClient.Conn) error {
	return errors.New("coap: dtlsSession.Run is not used")
}
