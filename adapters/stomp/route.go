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
// Every join re-subscribes in the core under a fresh identifier (num), so
// the retained messages that the join sends can be told apart from those
// of earlier joins still queued: they go to the joining subscription only.
type group struct {
	filter  string
	num     uint32   // the current core.SubOptions.ID
	nums    []uint32 // every identifier the group has had
	members []*subscription
}

// subNum is what a core subscription identifier stands for.
type subNum struct {
	g      *group
	joiner *subscription // the subscription whose join took this identifier
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

// pendingDelivery is a core delivery (QoS 1/2) that subscriptions must
// acknowledge before the core may forget it. owe maps each subscription
// that still owes an ACK to whether a frame of it is outstanding (false
// after a NACK, until the redelivery).
type pendingDelivery struct {
	owe          map[*subscription]bool
	redeliveries int
}

// routes is a connection's routing and acknowledgement state, under
// conn.rmu.
type routes struct {
	subs     map[string]*subscription // by STOMP id
	groups   map[string]*group        // by destination
	byNum    map[uint32]subNum
	nextNum  uint32
	frames   map[uint64]*sentFrame
	pending  map[uint16]*pendingDelivery
	msgSeq   uint64
	v12      bool
	maxQoS0  int
	maxRedel int
	dropped  uint64 // deliveries given up after too many NACKs
}

func (r *routes) init() {
	r.subs = make(map[string]*subscription)
	r.groups = make(map[string]*group)
	r.byNum = make(map[uint32]subNum)
	r.frames = make(map[uint64]*sentFrame)
	r.pending = make(map[uint16]*pendingDelivery)
}

// add registers a subscription and returns its group, with the fresh
// identifier to subscribe in the core under.
func (r *routes) add(s *subscription) *group {
	g := r.groups[s.dest]
	if g == nil {
		g = &group{filter: s.dest}
		r.groups[s.dest] = g
	}
	r.nextNum++
	g.num = r.nextNum
	g.nums = append(g.nums, g.num)
	r.byNum[g.num] = subNum{g: g, joiner: s}
	s.g = g
	s.active = true
	g.members = append(g.members, s)
	r.subs[s.id] = s
	return g
}

// remove unregisters a subscription; its unacknowledged frames are given
// up (returned as core deliveries now complete). empty reports that its
// group has no members left.
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
			if len(p.owe) == 0 {
				delete(r.pending, id)
				acks = append(acks, id)
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
	if len(g.members) == 0 {
		delete(r.groups, g.filter)
		for _, n := range g.nums {
			delete(r.byNum, n)
		}
		return acks, true
	}
	return acks, false
}

// frames builds the MESSAGE frames of one delivery, routed by its
// subscription identifiers (never by matching the topic again), and
// records what must be acknowledged. ack/ok name a core delivery that is
// complete once written: one nobody must acknowledge.
func (r *routes) route(d *core.Delivery) (out []*frame.Frame, ack uint16, ok bool) {
	if d.Release || d.Msg == nil {
		// STOMP has no release step; a QoS 2 delivery resumed at PUBREL
		// is complete.
		return nil, d.ID, d.ID != 0
	}
	if d.QoS > 0 {
		if p := r.pending[d.ID]; p != nil && d.Dup {
			// A redelivery after NACK: only to the subscriptions that
			// NACKed it and are still there.
			for s, outstanding := range p.owe {
				if !s.active {
					delete(p.owe, s)
					continue
				}
				if !outstanding {
					out = append(out, r.emit(d, s, true))
					p.owe[s] = true
				}
			}
			if len(p.owe) == 0 {
				delete(r.pending, d.ID)
				return out, d.ID, true
			}
			return out, 0, false
		}
	}
	var p *pendingDelivery
	for _, num := range d.SubIDs {
		sn, ok := r.byNum[num]
		if !ok {
			continue // unsubscribed meanwhile
		}
		members := sn.g.members
		if d.Retain {
			// Retained messages are sent on subscribe: to the member whose
			// join sent them, not again to the others.
			if !sn.joiner.active {
				continue
			}
			members = []*subscription{sn.joiner}
		}
		for _, s := range members {
			out = append(out, r.emit(d, s, d.Dup))
			if s.ack == ackAuto || d.QoS == 0 {
				continue
			}
			if p == nil {
				p = &pendingDelivery{owe: make(map[*subscription]bool, 1)}
			}
			p.owe[s] = true
		}
	}
	if d.QoS == 0 {
		return out, 0, false
	}
	if p == nil {
		return out, d.ID, true
	}
	r.pending[d.ID] = p
	return out, 0, false
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

// forgetOldestQoS0 bounds the QoS 0 frames remembered for a client that
// never acknowledges them; they are only kept so that a cumulative ACK
// naming one of them finds its place.
func (r *routes) forgetOldestQoS0(s *subscription) {
	for i, sf := range s.outstanding {
		if sf.did == 0 {
			delete(r.frames, sf.n)
			s.outstanding = append(s.outstanding[:i:i], s.outstanding[i+1:]...)
			s.qos0--
			return
		}
	}
}

// settleResult is what an ACK or NACK asks of the core.
type settleResult struct {
	found     bool
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
	n, err := strconv.ParseUint(id, 10, 64)
	if err != nil {
		return res
	}
	sf := r.frames[n]
	if sf == nil {
		return res
	}
	res.found = true
	s := sf.sub
	var sel []*sentFrame
	if s.ack == ackClient {
		i := 0
		for i < len(s.outstanding) && s.outstanding[i].n <= n {
			i++
		}
		sel = s.outstanding[:i:i]
		s.outstanding = append([]*sentFrame(nil), s.outstanding[i:]...)
	} else {
		for i, o := range s.outstanding {
			if o == sf {
				s.outstanding = append(s.outstanding[:i:i], s.outstanding[i+1:]...)
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
			if len(p.owe) == 0 {
				delete(r.pending, f.did)
				res.acks = append(res.acks, f.did)
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
		p.redeliveries++
		if p.redeliveries <= r.maxRedel {
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
		r.dropped++
		if len(p.owe) == 0 {
			delete(r.pending, did)
			res.acks = append(res.acks, did)
		}
	}
	return res
}
