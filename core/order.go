package core

// Arrival order across connections: the order replay.
//
// Client B sends SUBSCRIBE t and, a few microseconds later, client A
// publishes to t on its own connection. The kernel has B's packet first,
// but the two connections are read by different goroutines, and which of
// them the Go scheduler runs first is not the order the packets came in
// (when the process is idle, both sockets turn readable in one netpoll
// batch and the last readied goroutine runs first). A's publication is
// then routed before B's subscription is in the trie, and B misses a
// message that reached the gateway after its SUBSCRIBE.
//
// Adapters record each packet's kernel receive time (SO_TIMESTAMPNS):
// Message.Arrived, and the arrival passed to Session.SubscribeAt. The
// core keeps a small log of recent publications that have one — the
// message, its arrival and the trie generation its routing matched
// against — and a new subscription whose SUBSCRIBE arrived at T is given,
// once it is in the trie, every logged publication that arrived after T
// and was routed against a generation without it (topic.Trie.MatchGen,
// AddGen): exactly those it would have had, had the two packets been
// handled in arrival order. Publications routed against a generation
// with it already reached it; nothing goes twice.
//
// The race to close: a publication that matched before the subscription
// was added but entered the log after the subscriber scanned it would be
// missed. So route records the entry before matching and fills in the
// generation right after (routed); a scan that meets an entry still
// unfilled waits for it (briefly: only a trie match lies between the two
// steps). If the scan does not see an entry, the entry was recorded after
// the scan began, so after the trie add, and its match, later still, saw
// the subscription (the trie and the log shards are each linearizable).
//
// Per-publisher order [MQTT-4.6.0-6]: the subscriber holds its
// Session.mu from before the trie add until its replays are enqueued, so
// a delivery routed after the add (enqueue takes that mutex) lands behind
// them; replays themselves go out in arrival order, each session's in the
// order it published them (keepPublisherOrder). Replays may reach the
// client before the subscription's acknowledgement: "The Server is
// permitted to start sending PUBLISH packets matching the Subscription
// before the Server sends the SUBACK Packet" (MQTT 3.1.1 and 5.0 §3.8.4).
//
// Bounds: orderShards × orderShardSize (1024) publications, each for
// session.order_window (Config.OrderWindow, 50 ms by default; 0 disables
// the log). A subscription added later than the window after its
// SUBSCRIBE arrived, or behind more than 1024 publications, may still
// miss what fell out of the log. Payloads above orderMaxPayload are not
// logged, so the log pins at most about 4 MiB of messages; a sweep
// releases them once they are older than the window.
//
// Not replayed, by design: a publication to a subscription that replaced
// one of the same filter (the old one had it), or to a session with
// another subscription matching it (the session had it through that one,
// or that subscription's own replay gave it: one session's SUBSCRIBEs are
// handled in packet order); a retained message the subscription gets as
// retained (SendRetained) anyway; to a shared group that existed before
// (a member had it); an expired message; the subscriber's own publication
// under No Local [MQTT-3.8.3-3].

import (
	"cmp"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/iotgw/iotgw/core/topic"
)

// DefaultOrderWindow is the default of Config.OrderWindow
// (session.order_window).
const DefaultOrderWindow = 50 * time.Millisecond

const (
	// orderShards spreads the log's lock: each publication goes to a
	// random shard, so one publisher has the whole log's history.
	orderShards = 16
	// orderShardSize entries per shard: 1024 in all.
	orderShardSize = 64
	// orderMaxPayload: larger publications are not logged, bounding
	// the memory the log keeps alive.
	orderMaxPayload = 4 << 10
	// orderPendingWait bounds a scan's wait for an entry whose routing
	// is still matching; an entry unresolved by then is left out
	// (counted in Stats.ReplaysUnresolved).
	orderPendingWait = 5 * time.Millisecond
)

// orderLog is the log of recent publications.
type orderLog struct {
	window int64 // nanoseconds
	shards [orderShards]orderShard
	// armed is set while the sweep timer runs.
	armed   atomic.Bool
	sweeper *time.Timer
}

// orderShard is a ring of the last orderShardSize entries recorded in it.
type orderShard struct {
	mu   sync.Mutex
	n    uint64 // entries ever recorded; entry k (1-based) is at ring[(k-1)%size]
	ring [orderShardSize]orderEntry
}

// orderEntry is one logged publication. Its fields are written under the
// shard's mutex, except state, which routed sets without it.
type orderEntry struct {
	msg     *Message
	arrived int64
	seq     uint64 // its k in the shard; 0 for an empty slot
	pub     uint64 // its number among its session's publications (Session.pubSeq); 0 without one
	// state is pendingState(seq) while the publication is being
	// matched, then routedState(gen): gen is the trie generation it was
	// routed against. routed sets it by compare-and-swap from the
	// pending value, which names the entry, so a publisher whose entry
	// was overwritten meanwhile cannot mark its successor.
	state atomic.Uint64
}

func pendingState(seq uint64) uint64 { return seq<<1 | 1 }
func routedState(gen uint64) uint64  { return gen << 1 }

// routedGen returns the generation of a routed state, ok false while
// pending.
func routedGen(state uint64) (gen uint64, ok bool) { return state >> 1, state&1 == 0 }

// orderRef names an entry for routed.
type orderRef struct {
	e   *orderEntry
	seq uint64
}

// replayCand is an entry a scan found, copied out of its shard.
type replayCand struct {
	msg     *Message
	arrived int64
	seq     uint64
	pub     uint64
	shard   int
	state   uint64 // orderEntry.state as last read
}

func newOrderLog(window time.Duration) *orderLog {
	if window <= 0 {
		return nil
	}
	l := &orderLog{window: int64(window)}
	l.sweeper = time.AfterFunc(time.Hour, l.sweep)
	l.sweeper.Stop()
	return l
}

// record logs msg (which has Arrived set) before route matches it; routed
// completes the entry. A zero orderRef means not logged (payload too
// large).
func (l *orderLog) record(msg *Message, from *Session) orderRef {
	if len(msg.Payload) > orderMaxPayload {
		return orderRef{}
	}
	var pub uint64
	if from != nil {
		pub = from.pubSeq.Add(1)
	}
	sh := &l.shards[rand.Uint32()%orderShards]
	sh.mu.Lock()
	sh.n++
	seq := sh.n
	e := &sh.ring[(seq-1)%orderShardSize]
	e.msg, e.arrived, e.seq, e.pub = msg, msg.Arrived, seq, pub
	e.state.Store(pendingState(seq))
	sh.mu.Unlock()
	if !l.armed.Load() && l.armed.CompareAndSwap(false, true) {
		l.sweeper.Reset(time.Duration(l.window))
	}
	return orderRef{e: e, seq: seq}
}

// routed records the trie generation the entry's routing matched against
// (unless the ring has moved past the entry meanwhile). It takes no lock.
func (l *orderLog) routed(r orderRef, gen uint64) {
	r.e.state.CompareAndSwap(pendingState(r.seq), routedState(gen))
}

// owed returns, in arrival order, the logged publications matching filter
// that arrived after `after` (and within the window) and were routed
// against a trie generation older than gen, the one the subscription
// entered. It waits (up to orderPendingWait) for entries still routing.
func (l *orderLog) owed(filter string, after int64, gen uint64, st *Stats) []replayCand {
	if oldest := time.Now().UnixNano() - l.window; after < oldest {
		after = oldest
	}
	var out []replayCand
	pending := 0
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		for k := range sh.ring {
			e := &sh.ring[k]
			if e.seq == 0 || e.arrived <= after {
				continue
			}
			st := e.state.Load()
			if g, ok := routedGen(st); (ok && g >= gen) || !topic.Matches(filter, e.msg.Topic) {
				continue // it saw the subscription, or is not for it
			}
			out = append(out, replayCand{msg: e.msg, arrived: e.arrived, seq: e.seq, pub: e.pub, shard: i, state: st})
			if st&1 != 0 {
				pending++
			}
		}
		sh.mu.Unlock()
	}
	if pending > 0 {
		l.resolve(out, pending, st)
	}
	out = slices.DeleteFunc(out, func(c replayCand) bool {
		g, ok := routedGen(c.state)
		return !ok || g >= gen
	})
	slices.SortFunc(out, func(a, b replayCand) int {
		return cmp.Or(cmp.Compare(a.arrived, b.arrived), cmp.Compare(a.msg.Origin.sessionKey, b.msg.Origin.sessionKey),
			cmp.Compare(a.pub, b.pub), cmp.Compare(a.shard, b.shard), cmp.Compare(a.seq, b.seq))
	})
	keepPublisherOrder(out)
	return out
}

// keepPublisherOrder makes each session's publications among cands
// (sorted by arrival) follow in the order they were published: the
// places its entries hold are given to them in Session.pubSeq order.
// Arrival order already is that order, unless an adapter's receive times
// were not monotonic on one connection.
func keepPublisherOrder(cands []replayCand) {
	if len(cands) < 2 {
		return
	}
	var done []string
	var at []int
	var group []replayCand
	for i, c := range cands {
		key := c.msg.Origin.sessionKey
		if c.pub == 0 || slices.Contains(done, key) {
			continue
		}
		done = append(done, key)
		at, group = at[:0], group[:0]
		for j := i; j < len(cands); j++ {
			if cands[j].pub != 0 && cands[j].msg.Origin.sessionKey == key {
				at = append(at, j)
				group = append(group, cands[j])
			}
		}
		slices.SortFunc(group, func(a, b replayCand) int { return cmp.Compare(a.pub, b.pub) })
		for k, j := range at {
			cands[j] = group[k]
		}
	}
}

// resolve waits for the candidates still routing to get their
// generation. Their publishers hold no lock a subscriber holds (between
// record and routed they only match), so the wait ends unless a
// publisher is descheduled for long; what is unresolved after
// orderPendingWait keeps gen 0 and is left out.
func (l *orderLog) resolve(cands []replayCand, pending int, st *Stats) {
	deadline := time.Now().Add(orderPendingWait)
	for try := 0; pending > 0; try++ {
		if try < 16 {
			runtime.Gosched()
		} else if time.Now().After(deadline) {
			break
		} else {
			time.Sleep(20 * time.Microsecond)
		}
		pending = 0
		for k := range cands {
			c := &cands[k]
			if c.state&1 == 0 || c.seq == 0 {
				continue
			}
			// The state moves from pending for this seq only to this
			// entry's routed state; any other value means overwritten.
			switch s := l.shards[c.shard].ring[(c.seq-1)%orderShardSize].state.Load(); {
			case s == c.state:
				pending++
			case s&1 == 0 && l.stillHolds(c):
				c.state = s
			default:
				c.seq = 0 // overwritten before its publisher filled it in
				st.ReplaysUnresolved.Add(1)
			}
		}
	}
	if pending > 0 {
		st.ReplaysUnresolved.Add(uint64(pending))
	}
}

// stillHolds reports whether c's slot still holds c's entry.
func (l *orderLog) stillHolds(c *replayCand) bool {
	sh := &l.shards[c.shard]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.ring[(c.seq-1)%orderShardSize].seq == c.seq
}

// sweep releases the entries older than the window and re-arms itself
// while younger ones are left; an idle log costs no timer.
func (l *orderLog) sweep() {
	// Disarmed before the scan: an entry recorded after this re-arms
	// the timer itself, one recorded before is seen by the scan.
	l.armed.Store(false)
	now := time.Now().UnixNano()
	oldest, newest := now-l.window, now+l.window
	left := false
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		for k := range sh.ring {
			e := &sh.ring[k]
			switch {
			case e.seq == 0:
			case e.state.Load()&1 == 0 && (e.arrived <= oldest || e.arrived > newest):
				// Too old, or dated implausibly far ahead (the clock
				// was set back): no subscription can be owed it.
				e.msg, e.arrived, e.seq, e.pub = nil, 0, 0, 0
				e.state.Store(0)
			default:
				left = true
			}
		}
		sh.mu.Unlock()
	}
	if left && l.armed.CompareAndSwap(false, true) {
		l.sweeper.Reset(time.Duration(l.window))
	}
}

// stop ends the sweep timer (Broker.Close). l may be nil.
func (l *orderLog) stop() {
	if l != nil {
		l.sweeper.Stop()
	}
}

// replayLocked enqueues for sub (just added to the trie by this session,
// holding s.mu since before the add) the publications owed to it, except
// those it gets as retained messages and those another subscription of
// the session matches (see the top of this file). w collects the store
// writes of a persistent session.
func (s *Session) replayLocked(sub *subscriber, owed []replayCand, retained []*Message, w *writes) {
	now := time.Now()
	for _, c := range owed {
		m := c.msg
		switch {
		case slices.Contains(retained, m):
			continue
		case sub.opts.NoLocal && m.Origin.sessionKey == s.key: // [MQTT-3.8.3-3]
			continue
		case m.Expired(now): // [MQTT-3.3.2-5]
			continue
		case sub.shared == nil && s.otherSubMatchesLocked(sub, m):
			continue
		}
		s.enqueueLocked(sub.queuedFor(m, sub.ids), w)
		s.b.stats.MessagesReplayed.Add(1)
	}
}

// otherSubMatchesLocked reports whether another non-shared subscription
// of the session takes m (it had m, or its own replay gave it).
func (s *Session) otherSubMatchesLocked(sub *subscriber, m *Message) bool {
	for _, o := range s.subs {
		if o == sub || o.shared != nil || (o.opts.NoLocal && m.Origin.sessionKey == s.key) {
			continue
		}
		if topic.Matches(o.filter, m.Topic) {
			return true
		}
	}
	return false
}
