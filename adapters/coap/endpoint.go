package coap

import (
	"bytes"
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/iotgw/iotgw/core"
	"github.com/iotgw/iotgw/internal/pace"
)

// endpoint is one CoAP client as the core sees it: a core session and the
// sink that turns its deliveries into notifications. A connection-mode
// endpoint is created by POST /mqtt/connection and keyed by client id; a
// connectionless one is created by the first observation from a UDP peer
// and ends with its last observation.
//
// One writer goroutine per endpoint sends notifications in order, one CON
// at a time (RFC 7641 §4.5.1: at most one confirmable notification
// outstanding per client), so Deliver never blocks.
type endpoint struct {
	srv      *Server
	clientID string
	connMode bool
	token    string // connection mode: the token handed out at POST
	log      *zap.Logger
	sess     *core.Session // set before the endpoint is registered or started
	// ctx ends with the endpoint, cutting short a CON notification's
	// wait for its ACK.
	ctx    context.Context
	cancel context.CancelFunc

	lastSeen atomic.Int64 // unix nanoseconds of the last request (connection mode)
	hbTimer  *time.Timer

	mu       sync.Mutex
	addr     *net.UDPAddr // where notifications go
	laddr    *net.UDPAddr // the gateway address the client talks to
	obs      map[uint32]*observation
	filters  map[string]*observation // the current observation per filter
	queue    []outItem
	qos0     pace.Bound // QoS 0 deliveries in queue (coap.max_pending_qos0)
	closed   bool
	closeWhy error
	// busy: a notification is being sent, by the writer or inline by
	// Deliver; the other waits, so notifications keep their order.
	busy     bool
	seq      uint32   // last Observe sequence number used
	wait     *conWait // the CON notification awaiting its ACK
	nonMIDs  map[uint16]*observation
	nonOrder []uint16
	wake     chan struct{}
	done     chan struct{}
}

// observation is one Observe registration: a core subscription with its
// own subscription identifier, to which deliveries are routed by
// Delivery.SubIDs (never by matching the topic again).
type observation struct {
	id       uint32
	token    []byte
	filter   string
	wildcard bool
	qos      byte
	// Guarded by endpoint.mu:
	ready   bool       // the registration response has been sent
	removed bool       // deregistered; deliveries for it are dropped
	last    *lastLarge // the last notification too large for one block
	lastCON time.Time  // when a CON notification was last acknowledged
}

// lastLarge is a notification that was sent block-wise: only its first
// block travels with the notification, and the client fetches the rest
// with GET and Block2 [RFC 7959 §2.6], which is answered from here.
type lastLarge struct {
	msg  *core.Message
	etag []byte
}

// outItem is a delivery or, when remove is set, the removal of an
// observation whose NON notification the client reset.
type outItem struct {
	d      core.Delivery
	remove *observation
}

// conWait records the ACK or RST seen for the CON notification in flight.
// go-coap assigns the message id inside WriteMessage, so the writer
// predicts it (mid); an ACK or RST with another id while waiting is kept
// as a hint in case the prediction was wrong.
type conWait struct {
	mid                uint16
	ack, rst           bool
	otherACK, otherRST bool
}

// nonMIDLimit bounds the remembered message ids of NON notifications
// (for RST handling, RFC 7641 §3.6).
const nonMIDLimit = 64

// livenessInterval is how often a QoS 0 observer gets a CON notification
// anyway, so that a vanished client is noticed [RFC 7641 §4.5].
const livenessInterval = 24 * time.Hour

var (
	_ core.Sink  = (*endpoint)(nil)
	_ core.Pacer = (*endpoint)(nil)
)

func newEndpoint(s *Server, clientID string, connMode bool, addr, laddr *net.UDPAddr) *endpoint {
	ctx, cancel := context.WithCancel(s.ctx)
	ep := &endpoint{
		ctx:      ctx,
		cancel:   cancel,
		srv:      s,
		clientID: clientID,
		connMode: connMode,
		addr:     addr,
		laddr:    laddr,
		log:      s.log.With(zap.String("client_id", clientID), zap.Stringer("remote", addr)),
		obs:      make(map[uint32]*observation),
		filters:  make(map[string]*observation),
		nonMIDs:  make(map[uint16]*observation),
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
	ep.qos0.Init(s.cfg.MaxPendingQoS0, s.backpressure)
	return ep
}

// Deliver sends a QoS 0 delivery at once when nothing is ahead of it
// (deliverInline) and otherwise queues it for the writer; it never blocks.
// Queued QoS 0 deliveries are bounded by coap.max_pending_qos0, twice it
// under backpressure (see Room); beyond, they are refused and the core
// counts the drop. The core calls it with the subscriber's session
// locked: ep.mu is taken after that lock, and is never held while the
// endpoint calls into its session.
func (ep *endpoint) Deliver(d core.Delivery) bool {
	if ep.deliverInline(d) {
		return true
	}
	ep.mu.Lock()
	if ep.closed {
		ep.mu.Unlock()
		return false
	}
	if d.QoS == 0 && !d.Release && !ep.qos0.Admit() {
		ep.mu.Unlock()
		return false
	}
	ep.queue = append(ep.queue, outItem{d: d})
	ep.mu.Unlock()
	ep.signal()
	return true
}

// Room implements core.Pacer: while coap.max_pending_qos0 or more QoS 0
// notifications wait for the writer, publishers that can be slowed (MQTT,
// STOMP) wait on the returned channel, closed once the writer has sent
// half of them (next). A notification sent inline never waited, so that
// path costs one atomic load here.
func (ep *endpoint) Room() <-chan struct{} {
	if !ep.qos0.Over() {
		return nil
	}
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if ep.closed {
		return nil
	}
	return ep.qos0.Room()
}

// Close implements core.Sink (takeover, kick, shutdown): the writer ends
// the observations and detaches the session. It does not call back into
// the session synchronously.
func (ep *endpoint) Close(reason error) { ep.close(reason) }

func (ep *endpoint) close(reason error) {
	ep.mu.Lock()
	if !ep.closed {
		ep.closed = true
		ep.closeWhy = reason
	}
	ep.qos0.Release() // nobody waits for a closing endpoint
	ep.mu.Unlock()
	ep.cancel()
	ep.signal()
}

func (ep *endpoint) signal() {
	select {
	case ep.wake <- struct{}{}:
	default:
	}
}

// currentAddr returns where notifications go now, and from where.
func (ep *endpoint) currentAddr() (remote, local *net.UDPAddr) {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	return ep.addr, ep.laddr
}

func (ep *endpoint) isClosed() bool {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	return ep.closed
}

// nextSeqLocked returns the next Observe value. One counter per endpoint
// keeps values increasing even when a client re-registers with a token it
// used before [RFC 7641 §3.4, §4.4]; 24 bits are sent.
func (ep *endpoint) nextSeqLocked() uint32 {
	ep.seq = (ep.seq + 1) & 0xFFFFFF
	return ep.seq
}

// observe registers (or replaces, RFC 7641 §4.1) the observation of
// filter with token, whose request arrived at arrived (Unix ns, 0
// unknown; see core.Session.SubscribeAt). The observation is not ready
// until markReady, so no notification, replayed ones included, can
// overtake the registration response.
func (ep *endpoint) observe(filter string, token []byte, qos byte, arrived int64) (*observation, core.SubResult, uint32) {
	o := &observation{id: ep.srv.nextSubID(), token: token, filter: filter, wildcard: hasWildcard(filter), qos: qos}
	ep.mu.Lock()
	if ep.closed {
		ep.mu.Unlock()
		return nil, core.SubResult{Err: core.ErrSessionClosed}, 0
	}
	old := ep.filters[filter]
	ep.obs[o.id] = o
	ep.mu.Unlock()

	// A refresh (same token) must not resend retained messages; a new
	// registration gets them, as its first representation.
	var rh byte
	if old != nil && bytes.Equal(old.token, token) {
		rh = 1
	}
	res := ep.sess.SubscribeAt(filter, core.SubOptions{QoS: qos, RetainHandling: rh, ID: o.id}, arrived)

	ep.mu.Lock()
	if res.Err != nil {
		delete(ep.obs, o.id)
		ep.mu.Unlock()
		return nil, res, 0
	}
	ep.filters[filter] = o
	if old != nil {
		old.removed = true
		delete(ep.obs, old.id)
	}
	// A token now names this observation only; one still bound to another
	// filter is stale (the client gave up on it).
	var stale *observation
	for _, x := range ep.filters {
		if x != o && bytes.Equal(x.token, token) {
			stale = x
		}
	}
	seq := ep.nextSeqLocked()
	ep.mu.Unlock()
	if stale != nil {
		ep.removeObservation(stale, "token reused")
	}
	return o, res, seq
}

// markReady lets notifications for o flow once its registration response
// is on the wire.
func (ep *endpoint) markReady(o *observation) {
	ep.mu.Lock()
	o.ready = true
	ep.mu.Unlock()
	ep.signal()
}

// findByToken and findByFilter look up a live observation.
func (ep *endpoint) findByToken(token []byte) *observation {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	for _, o := range ep.filters {
		if bytes.Equal(o.token, token) {
			return o
		}
	}
	return nil
}

func (ep *endpoint) findByFilter(filter string) *observation {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	return ep.filters[filter]
}

// largeFor returns the last block-wise notification of the observation of
// filter, for a Block2 follow-up GET.
func (ep *endpoint) largeFor(filter string) *lastLarge {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if o := ep.filters[filter]; o != nil {
		return o.last
	}
	return nil
}

// removeObservation ends an observation: its core subscription goes (unless
// a newer observation of the same filter owns it), and a connectionless
// endpoint without observations ends.
func (ep *endpoint) removeObservation(o *observation, why string) {
	ep.mu.Lock()
	if o.removed {
		ep.mu.Unlock()
		return
	}
	o.removed = true
	delete(ep.obs, o.id)
	current := ep.filters[o.filter] == o
	if current {
		delete(ep.filters, o.filter)
	}
	empty := len(ep.filters) == 0
	ep.mu.Unlock()
	if current {
		ep.sess.Unsubscribe(o.filter)
	}
	if ce := ep.log.Check(zap.DebugLevel, "observation removed"); ce != nil {
		ce.Write(zap.String("filter", o.filter), zap.String("reason", why))
	}
	if empty && !ep.connMode {
		ep.close(nil)
	}
}

// onReset handles an RST from the endpoint's address (called from the UDP
// read loop, before go-coap matches it to the CON it answers).
func (ep *endpoint) onReset(mid uint16) {
	ep.mu.Lock()
	w := ep.wait
	if w != nil && w.mid == mid {
		w.rst = true
		ep.mu.Unlock()
		return
	}
	if o := ep.nonMIDs[mid]; o != nil {
		if !o.removed && !ep.closed {
			// A client rejecting a NON notification deregisters
			// [RFC 7641 §3.6]; the writer removes the observation, in
			// order with the deliveries.
			ep.queue = append(ep.queue, outItem{remove: o})
		}
		ep.mu.Unlock()
		ep.signal()
		return
	}
	if w != nil {
		w.otherRST = true
	}
	ep.mu.Unlock()
}

// onAck records an ACK from the endpoint's address.
func (ep *endpoint) onAck(mid uint16) {
	ep.mu.Lock()
	if w := ep.wait; w != nil {
		if w.mid == mid {
			w.ack = true
		} else {
			w.otherACK = true
		}
	}
	ep.mu.Unlock()
}

// recordNONLocked remembers which observation a NON notification's message
// id belongs to, dropping the oldest beyond nonMIDLimit.
func (ep *endpoint) recordNONLocked(mid uint16, o *observation) {
	if _, ok := ep.nonMIDs[mid]; !ok {
		ep.nonOrder = append(ep.nonOrder, mid)
	}
	ep.nonMIDs[mid] = o
	if len(ep.nonOrder) > nonMIDLimit {
		delete(ep.nonMIDs, ep.nonOrder[0])
		ep.nonOrder = ep.nonOrder[1:]
	}
}

// touch records a request from a connection-mode client; a client whose
// address changed (NAT rebinding) gets its notifications at the new one.
func (ep *endpoint) touch(addr, laddr *net.UDPAddr) {
	ep.lastSeen.Store(time.Now().UnixNano())
	if cur, curLocal := ep.currentAddr(); cur.String() != addr.String() || curLocal.String() != laddr.String() {
		ep.srv.moveAddr(ep, addr, laddr)
	}
}

// checkHeartbeat ends a connection whose client has been silent for
// 1.5 × coap.heartbeat, re-arming itself otherwise.
func (ep *endpoint) checkHeartbeat() {
	limit := ep.srv.cfg.Heartbeat * 3 / 2
	idle := time.Since(time.Unix(0, ep.lastSeen.Load()))
	if idle >= limit {
		ep.log.Info("connection heartbeat expired", zap.Duration("heartbeat", ep.srv.cfg.Heartbeat))
		ep.close(errHeartbeatTimeout)
		return
	}
	ep.mu.Lock()
	if !ep.closed {
		ep.hbTimer.Reset(limit - idle)
	}
	ep.mu.Unlock()
}

func hasWildcard(filter string) bool {
	for i := 0; i < len(filter); i++ {
		if filter[i] == '+' || filter[i] == '#' {
			return true
		}
	}
	return false
}
