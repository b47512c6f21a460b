package stomp

import (
	"strconv"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/iotgw/iotgw/core"
)

// Ack modes of a subscription [STOMP 1.2 "SUBSCRIBE", "ack header"].
const (
	ackAuto = iota
	ackClient
	ackClientIndividual
)

// subscription is one STOMP subscription of a connection.
type subscription struct {
	id     string
	dest   string
	ack    int
	qos    byte
	g      *group
	active bool
	// outstanding are the frames sent to this subscription and not yet
	// acknowledged, in the order sent (cumulative ACK in client mode).
	outstanding []*sentFrame
	qos0        int // outstanding frames without a core delivery id
}

// group is one core subscription: the STOMP subscriptions of a connection
// to the same destination. The core keeps one subscription per filter
// and session, so two STOMP subscriptions to one destination share a core
// subscription, and each gets its own copy of every message.
//
// Every further join re-subscribes in the core under a fresh identifier
// (num), so the retained messages that the join sends can be told apart
// from those of earlier joins still queued: they go to the joining
// subscription only.
//
// A group outlives its connection's subscriptions in a persistent
// session: STOMP subscription ids belong to a connection, the core
// subscription to the session. Until a SUBSCRIBE to the same destination
// on the next connection binds it again (or the resubscribe timeout
// drops it), it is holding: what the session delivers for it waits in
// held, unacknowledged in the core.
type group struct {
	filter  string
	num     uint32   // the current core.SubOptions.ID
	nums    []uint32 // every identifier the group has had
	members []*subscription
	holding bool
	held    []core.Delivery
	held0   int // QoS 0 deliveries in held
	// restored: rebuilt from the core session after a restart (see
	// routes.restore).
	restored bool
}

// subNum is what a core subscription identifier stands for.
type subNum struct {
	g      *group
	joiner *subscription // the subscription whose join took this identifier; nil when restored
}

func (g *group) maxQoS() byte {
	var q byte
	for _, s := range g.members {
		q = max(q, s.qos)
	}
	return q
}

// sentFrame is one MESSAGE frame awaiting ACK or NACK.
type sentFrame struct {
	n   uint64 // its message-id
	sub *subscription
	did uint16 // core delivery id; 0 for a QoS 0 delivery
}

// pendingDelivery is a core delivery (QoS 1/2) that must be acknowledged
// before the core may forget it: owe maps each subscription that still
// owes an ACK to whether a frame of it is outstanding (false after a
// NACK, until the redelivery); held counts the holding groups it waits in.
type pendingDelivery struct {
	msg  *core.Message
	owe  map[*subscription]bool
	held int
}

func (p *pendingDelivery) complete() bool { return len(p.owe) == 0 && p.held == 0 }

// redelivery counts how often a message went out again under one core
// delivery id; msg tells a reused id from the same delivery.
type redelivery struct {
	msg *core.Message
	n   int
}

// routes is a session's routing and acknowledgement state, under
// sessState.mu. groups, byNum, nextNum, msgSeq and redel last as long as
// the session; the rest belongs to the connection bound to it and is
// reset by rebind.
type routes struct {
	groups  map[string]*group // by destination
	byNum   map[uint32]subNum
	nextNum uint32
	msgSeq  uint64 // message-ids are unique over the session
	redel   map[uint16]*redelivery

	subs    map[string]*subscription // by STOMP id
	frames  map[uint64]*sentFrame
	pending map[uint16]*pendingDelivery
	// stale: message-ids up to it were sent on an earlier connection, or
	// forgotten (QoS 0 beyond maxQoS0); an ACK naming one is ignored
	// rather than refused as unknown.
	stale    uint64
	v12      bool
	maxQoS0  int
	maxRedel int
}

func (r *routes) init() {
	r.groups = make(map[string]*group)
	r.byNum = make(map[uint32]subNum)
	r.redel = make(map[uint16]*redelivery)
	r.rebind(false, 0, 0)
}

// rebind forgets the connection-scoped state of the previous connection:
// its subscriptions, frames and pending acknowledgements. The core resends
// every unacknowledged delivery to the new connection, so what remains
// are the groups, now holding until subscribed again. It reports whether
// any group is holding.
func (r *routes) rebind(v12 bool, maxQoS0, maxRedel int) bool {
	for _, s := range r.subs {
		s.active = false
	}
	r.subs = make(map[string]*subscription)
	r.frames = make(map[uint64]*sentFrame)
	r.pending = make(map[uint16]*pendingDelivery)
	r.stale = r.msgSeq
	r.v12, r.maxQoS0, r.maxRedel = v12, maxQoS0, maxRedel
	for _, g := range r.groups {
		g.members = nil
		g.holding = true
		g.held = nil
		g.held0 = 0
	}
	return len(r.groups) > 0
}

// restore rebuilds the groups of a persistent session that the gateway
// recovered from its store after a restart: the adapter's state did not
// survive, the core's subscriptions (filter and identifier) did. Each
// becomes a group holding from the start, so the messages the session
// resends wait for the client to subscribe to the destination again,
// exactly as after a reconnect without restart.
func (r *routes) restore(subs map[string]uint32) {
	for filter, num := range subs {
		g := &group{filter: filter, num: num, nums: []uint32{num}, holding: true, restored: true}
		r.groups[filter] = g
		r.byNum[num] = subNum{g: g}
		r.nextNum = max(r.nextNum, num)
	}
}

// routeNums returns the identifiers to route d by: its own, or, when it
// knows none of them and its filter names a restored group, that group's.
// A message queued before the restart may carry an identifier of an
// earlier join of the group, which only the adapter's lost state knew.
func (r *routes) routeNums(d *core.Delivery) []uint32 {
	for _, num := range d.SubIDs {
		if _, ok := r.byNum[num]; ok {
			return d.SubIDs
		}
	}
	if g := r.groups[d.Filter]; g != nil && g.restored {
		return []uint32{g.num}
	}
	return d.SubIDs
}

// add registers a subscription and returns its group, with the identifier
// to subscribe in the core under. rebound reports that it binds a group
// kept from an earlier connection: the group keeps its identifier (the
// session's queued messages carry it) and release must follow the core
// subscribe.
func (r *routes) add(s *subscription) (g *group, rebound bool) {
	g = r.groups[s.dest]
	if g == nil {
		g = &group{filter: s.dest}
		r.groups[s.dest] = g
	}
	rebound = g.holding && len(g.members) == 0 && g.num != 0
	if !rebound {
		r.nextNum++
		g.num = r.nextNum
		g.nums = append(g.nums, g.num)
	}
	r.byNum[g.num] = subNum{g: g, joiner: s}
	s.g = g
	s.active = true
	g.members = append(g.members, s)
	r.subs[s.id] = s
	return g, rebound
}

// remove unregisters a subscription; its unacknowledged frames are given
// up (returned as core deliveries now complete). empty reports that its
// group had no members left and is gone.
func (r *routes) remove(s *subscription) (acks []uint16, empty bool) {
	s.active = false
	delete(r.subs, s.id)
	for _, sf := range s.outstanding {
		delete(r.frames, sf.n)
	}
	s.outstanding = nil
	for id, p := range r.pending {
		if _, ok := p.owe[s]; ok {
			delete(p.owe, s)
			if p.complete() {
				acks = r.done(acks, id)
			}
		}
	}
	g := s.g
	for i, m := range g.members {
		if m == s {
			g.members = append(g.members[:i:i], g.members[i+1:]...)
			break
		}
	}
	if len(g.members) > 0 {
		return acks, false
	}
	return r.drop(g, acks), true
}

// drop removes a group, completing the deliveries it held.
func (r *routes) drop(g *group, acks []uint16) []uint16 {
	delete(r.groups, g.filter)
	for _, n := range g.nums {
		delete(r.byNum, n)
	}
	for i := range g.held {
		h := &g.held[i]
		if p := r.pending[h.ID]; h.QoS > 0 && p != nil && p.msg == h.Msg {
			p.held--
			if p.complete() {
				acks = r.done(acks, h.ID)
			}
		}
	}
	g.held = nil
	return acks
}

// holdingGroups returns the groups no subscription has bound again.
func (r *routes) holdingGroups() []*group {
	var out []*group
	for _, g := range r.groups {
		if len(g.members) == 0 {
			out = append(out, g)
		}
	}
	return out
}

// done records that delivery id is complete and appends it to acks.
func (r *routes) done(acks []uint16, id uint16) []uint16 {
	delete(r.pending, id)
	delete(r.redel, id)
	return append(acks, id)
}

// routeResult is what one delivery becomes: MESSAGE frames, and the
// delivery id to complete once they are written (ack, when done) because
// nobody must acknowledge it. dropped reports a delivery given up after
// too many redeliveries.
type routeResult struct {
	frames  []*frame.Frame
	ack     uint16
	done    bool
	dropped bool
}

// route builds the MESSAGE frames of one delivery, routed by its
// subscription identifiers (never by matching the topic again), and
// records what must be acknowledged.
func (r *routes) route(d *core.Delivery) routeResult {
	var res routeResult
	if d.Release || d.Msg == nil {
		// STOMP has no release step; a QoS 2 delivery resumed at PUBREL
		// is complete.
		res.ack, res.done = d.ID, d.ID != 0
		return res
	}
	if d.QoS > 0 && d.Dup {
		if p := r.pending[d.ID]; p != nil && p.msg == d.Msg {
			return r.redeliverNacked(d, p)
		}
		// Resent by the session after a reconnect: it counts as a
		// redelivery as much as one after a NACK.
		if r.bump(d.ID, d.Msg) > r.maxRedel {
			res.ack, res.done, res.dropped = d.ID, true, true
			delete(r.redel, d.ID)
			return res
		}
	}
	var p *pendingDelivery
	owe := func() *pendingDelivery {
		if p == nil {
			p = &pendingDelivery{msg: d.Msg, owe: make(map[*subscription]bool, 1)}
		}
		return p
	}
	for _, num := range r.routeNums(d) {
		sn, ok := r.byNum[num]
		if !ok {
			continue // unsubscribed meanwhile
		}
		g := sn.g
		members := g.members
		if d.Retain {
			// Retained messages are sent on subscribe: to the member whose
			// join sent them, not again to the others. A restored group
			// has no joiner: the client's SUBSCRIBE sends them again.
			if sn.joiner == nil || !sn.joiner.active {
				continue
			}
			members = []*subscription{sn.joiner}
		} else if g.holding {
			if d.QoS > 0 {
				owe().held++
				g.held = append(g.held, *d)
			} else if g.held0 < r.maxQoS0 {
				g.held0++
				g.held = append(g.held, *d)
			}
			continue
		}
		for _, s := range members {
			res.frames = append(res.frames, r.emit(d, s, d.Dup))
			if s.ack != ackAuto && d.QoS > 0 {
				owe().owe[s] = true
			}
		}
	}
	if d.QoS == 0 {
		return res
	}
	if p == nil {
		delete(r.redel, d.ID)
		res.ack, res.done = d.ID, true
		return res
	}
	r.pending[d.ID] = p
	return res
}

// redeliverNacked resends a NACKed delivery to the subscriptions that
// NACKed it and are still there.
func (r *routes) redeliverNacked(d *core.Delivery, p *pendingDelivery) routeResult {
	var res routeResult
	for s, outstanding := range p.owe {
		if !s.active {
			delete(p.owe, s)
			continue
		}
		if !outstanding {
			res.frames = append(res.frames, r.emit(d, s, true))
			p.owe[s] = true
		}
	}
	if p.complete() {
		r.done(nil, d.ID)
		res.ack, res.done = d.ID, true
	}
	return res
}

// bump counts one redelivery of delivery id and returns the count.
func (r *routes) bump(id uint16, msg *core.Message) int {
	rd := r.redel[id]
	if rd == nil || rd.msg != msg {
		rd = &redelivery{msg: msg}
		r.redel[id] = rd
	}
	rd.n++
	return rd.n
}

// release hands the deliveries a rebound group held to its members, in
// the order the session delivered them.
func (r *routes) release(g *group) (items []outItem) {
	g.holding = false
	held := g.held
	g.held, g.held0 = nil, 0
	for i := range held {
		d := &held[i]
		var p *pendingDelivery
		if d.QoS > 0 {
			if p = r.pending[d.ID]; p == nil || p.msg != d.Msg {
				continue // completed meanwhile
			}
			p.held--
		}
		var it outItem
		for _, s := range g.members {
			it.msgs = append(it.msgs, r.emit(d, s, d.Dup))
			if p != nil && s.ack != ackAuto {
				p.owe[s] = true
			}
		}
		if p != nil && p.complete() {
			r.done(nil, d.ID)
			it.ack, it.done = d.ID, true
		}
		items = append(items, it)
	}
	return items
}

// emit builds one MESSAGE frame and, for a subscription that
// acknowledges, records it as outstanding.
func (r *routes) emit(d *core.Delivery, s *subscription, redelivered bool) *frame.Frame {
	r.msgSeq++
	n := r.msgSeq
	f := messageFrame(d, s, strconv.FormatUint(n, 10), r.v12, redelivered)
	if s.ack == ackAuto {
		return f
	}
	sf := &sentFrame{n: n, sub: s, did: d.ID}
	if d.QoS == 0 {
		sf.did = 0
		s.qos0++
		if s.qos0 > r.maxQoS0 {
			r.forgetOldestQoS0(s)
		}
	}
	r.frames[n] = sf
	s.outstanding = append(s.outstanding, sf)
	return f
}

// removeFrame removes element i without allocating: the oldest frame (the
// usual case, acknowledgements arriving in order) by reslicing, others by
// shifting the tail down.
func removeFrame(fs []*sentFrame, i int) []*sentFrame {
	if i == 0 {
		fs[0] = nil // do not keep the frame reachable from the array
		return fs[1:]
	}
	copy(fs[i:], fs[i+1:])
	fs[len(fs)-1] = nil
	return fs[:len(fs)-1]
}

// forgetOldestQoS0 bounds the QoS 0 frames remembered for a client that
// never acknowledges them; they are only kept so that a cumulative ACK
// naming one of them finds its place. An ACK naming a forgotten one is
// ignored (it lies below stale).
func (r *routes) forgetOldestQoS0(s *subscription) {
	for i, sf := range s.outstanding {
		if sf.did == 0 {
			delete(r.frames, sf.n)
			r.stale = max(r.stale, sf.n)
			s.outstanding = removeFrame(s.outstanding, i)
			s.qos0--
			return
		}
	}
}

// lookup classifies the message-id an ACK or NACK names: awaiting
// acknowledgement (known), sent on an earlier connection or forgotten
// (stale), or neither.
func (r *routes) lookup(id string) (sf *sentFrame, stale bool) {
	n, err := strconv.ParseUint(id, 10, 64)
	if err != nil {
		return nil, false
	}
	if sf = r.frames[n]; sf != nil {
		return sf, false
	}
	return nil, n > 0 && n <= r.stale
}

// settleResult is what an ACK or NACK asks of the core.
type settleResult struct {
	found     bool
	stale     bool
	acks      []uint16 // deliveries complete
	redeliver []uint16 // deliveries to send again
	dropped   int      // deliveries given up after too many redeliveries
}

// settle applies an ACK (nack false) or NACK to the frame with message-id
// id: in client mode to it and every earlier frame of its subscription
// (cumulative [STOMP 1.2 "SUBSCRIBE" ack header]; a NACK too, as RabbitMQ
// does), otherwise to that frame alone.
func (r *routes) settle(id string, nack bool) settleResult {
	var res settleResult
	sf, stale := r.lookup(id)
	if sf == nil {
		res.stale = stale
		return res
	}
	res.found = true
	s := sf.sub
	var sel []*sentFrame
	if s.ack == ackClient {
		i := 0
		for i < len(s.outstanding) && s.outstanding[i].n <= sf.n {
			i++
		}
		// Reslicing leaves sel's elements untouched: appends to the
		// remainder only write past them.
		sel = s.outstanding[:i:i]
		s.outstanding = s.outstanding[i:]
	} else {
		for i, o := range s.outstanding {
			if o == sf {
				s.outstanding = removeFrame(s.outstanding, i)
				break
			}
		}
		sel = []*sentFrame{sf}
	}
	var nacked []uint16
	for _, f := range sel {
		delete(r.frames, f.n)
		if f.did == 0 {
			s.qos0--
			continue
		}
		p := r.pending[f.did]
		if p == nil {
			continue
		}
		if !nack {
			delete(p.owe, s)
			if p.complete() {
				res.acks = r.done(res.acks, f.did)
			}
			continue
		}
		if p.owe[s] {
			p.owe[s] = false
			nacked = append(nacked, f.did)
		}
	}
	for _, did := range nacked {
		p := r.pending[did]
		if p == nil {
			continue
		}
		if r.bump(did, p.msg) <= r.maxRedel {
			res.redeliver = append(res.redeliver, did)
			continue
		}
		// Given up: subscriptions that NACKed it no longer owe an ACK.
		for sub, outstanding := range p.owe {
			if !outstanding {
				delete(p.owe, sub)
			}
		}
		res.dropped++
		if p.complete() {
			res.acks = r.done(res.acks, did)
		}
	}
	return res
}
