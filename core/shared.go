package core

import (
	"hash/maphash"
	"math/rand/v2"
	"sync"
	"sync/atomic"

	"github.com/iotgw/iotgw/core/topic"
)

// Shared-subscription strategies: how a group picks the member that
// receives a message.
const (
	SharedRoundRobin   = "round_robin"
	SharedRandom       = "random"
	SharedSticky       = "sticky"
	SharedHashClientID = "hash_clientid"
	SharedHashTopic    = "hash_topic"
)

// sharedGroup is a $share/{group}/{filter} (or $queue/{filter}) group; one
// member receives each message.
type sharedGroup struct {
	name     string
	filter   string
	strategy string
	seed     maphash.Seed
	mu       sync.Mutex
	// members is replaced, never mutated, so that pick reads it without
	// the mutex.
	members atomic.Pointer[[]*subscriber]
	next    atomic.Uint32
	sticky  atomic.Pointer[subscriber]
}

func (g *sharedGroup) set(sub *subscriber) {
	g.mu.Lock()
	defer g.mu.Unlock()
	old := g.list()
	n := make([]*subscriber, 0, len(old)+1)
	for _, m := range old {
		if m.sess != sub.sess {
			n = append(n, m)
		}
	}
	n = append(n, sub)
	g.members.Store(&n)
}

func (g *sharedGroup) remove(s *Session) (removed bool, empty bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	old := g.list()
	n := make([]*subscriber, 0, len(old))
	for _, m := range old {
		if m.sess != s {
			n = append(n, m)
		} else {
			removed = true
		}
	}
	g.members.Store(&n)
	return removed, len(n) == 0
}

func (g *sharedGroup) list() []*subscriber {
	if p := g.members.Load(); p != nil {
		return *p
	}
	return nil
}

// pick chooses the member that receives msg by the group's strategy,
// preferring members that are online; with none online it picks among all
// (their sessions queue the message). exclude, when set, is never picked,
// and then only online members are (used to move messages away from a
// member that left).
func (g *sharedGroup) pick(msg *Message, exclude *Session) *subscriber {
	ms := g.list()
	if len(ms) == 0 {
		return nil
	}
	if len(ms) == 1 && exclude == nil {
		return ms[0]
	}
	if g.strategy == SharedSticky {
		if m := g.sticky.Load(); m != nil && m.sess != exclude && m.sess.online.Load() && g.isMember(ms, m) {
			return m
		}
	}
	var start int
	switch g.strategy {
	case SharedRandom:
		start = rand.IntN(len(ms))
	case SharedHashClientID:
		start = int(maphash.String(g.seed, msg.Origin.ClientID) % uint64(len(ms)))
	case SharedHashTopic:
		start = int(maphash.String(g.seed, msg.Topic) % uint64(len(ms)))
	default: // round robin, and sticky's first choice
		start = int(g.next.Add(1)) % len(ms)
	}
	for i := range ms {
		m := ms[(start+i)%len(ms)]
		if m.sess != exclude && m.sess.online.Load() {
			if g.strategy == SharedSticky {
				g.sticky.Store(m)
			}
			return m
		}
	}
	if exclude != nil {
		return nil
	}
	return ms[start]
}

func (g *sharedGroup) isMember(ms []*subscriber, m *subscriber) bool {
	for _, x := range ms {
		if x == m {
			return true
		}
	}
	return false
}

// sharedKey is the trie key of a shared group; session keys never start
// with NUL, so the two kinds of key never clash.
func sharedKey(group string) string { return "\x00share\x00" + group }

// addShared makes sub a member of the group, creating the group if need
// be. created reports that it did, and gen is then the trie generation
// the group entered (see topic.Trie.AddGen).
func (b *Broker) addShared(group, inner string, sub *subscriber) (created bool, gen uint64) {
	b.sharedMu.Lock()
	defer b.sharedMu.Unlock()
	gsub, ok := b.subs.Get(inner, sharedKey(group))
	if ok && gsub.group != nil {
		sub.shared = gsub.group
		gsub.group.set(sub)
		return false, 0
	}
	g := &sharedGroup{name: group, filter: inner, strategy: b.cfg.SharedStrategy, seed: b.seed}
	sub.shared = g
	// The member first: a publication that matches the new group
	// must find someone to pick.
	g.set(sub)
	_, gen = b.subs.AddGen(inner, sharedKey(group), &subscriber{group: g, filter: inner})
	return true, gen
}

func (b *Broker) removeSub(s *Session, filter string, sub *subscriber) {
	group, inner, shared, err := topic.ParseShared(filter)
	if err != nil {
		return
	}
	if !shared {
		b.subs.Remove(inner, s.key)
		return
	}
	b.sharedMu.Lock()
	defer b.sharedMu.Unlock()
	gsub, ok := b.subs.Get(inner, sharedKey(group))
	if !ok || gsub.group == nil {
		return
	}
	if _, empty := gsub.group.remove(s); empty {
		b.subs.Remove(inner, sharedKey(group))
	}
}

// takeSharedLocked removes the messages shared groups had chosen this
// session for: queued ones, and with inflight also the QoS 1 ones
// inflight. A QoS 2 message already sent must never go to another member
// [MQTT-4.8.2-5].
func (s *Session) takeSharedLocked(inflight bool) []queued {
	var out []queued
	if s.queue.len() > 0 {
		var keep deque
		for s.queue.len() > 0 {
			q := s.queue.popFront()
			if q.group != nil {
				out = append(out, q)
			} else {
				keep.pushBack(q)
			}
		}
		s.queue = keep
	}
	if inflight {
		for id, e := range s.inflight {
			if e.group != nil && e.d.QoS == 1 && e.d.Msg != nil {
				q := queued{msg: e.d.Msg, qos: e.d.QoS, retain: e.d.Retain, filter: e.d.Filter, group: e.group, tk: e.tk}
				if e.stored {
					q.seq = e.seq
				}
				out = append(out, q)
				if e.unsent {
					s.unsent--
				}
				delete(s.inflight, id)
			}
		}
	}
	return out
}

// redistribute hands messages taken from session from to other members of
// their groups. With keepIfNone, a message no other online member can take
// goes back to from's queue; otherwise it is dropped and counted. w (nil
// without a store) collects the new members' records and the removal of
// from's, which must follow the puts of from's records.
func (b *Broker) redistribute(from *Session, msgs []queued, keepIfNone bool, w *writes) {
	for _, q := range msgs {
		m := q.group.pick(q.msg, from)
		if m == nil && !keepIfNone {
			m = q.group.pick(q.msg, nil) // an offline member's session queues it
		}
		if m == nil || m.sess == from {
			if keepIfNone {
				from.mu.Lock()
				if !from.ended {
					from.pushLocked(q, nil) // keeps its record and sequence number
				}
				from.mu.Unlock()
			} else {
				b.stats.DroppedQueueFull.Add(1)
			}
			continue
		}
		if w != nil && q.seq != 0 {
			w.b.DeleteMessage(from.clientID, q.seq)
			if q.tk != nil {
				w.waits = append(w.waits, q.tk)
			}
		}
		qos := q.msg.QoS
		if m.opts.QoS < qos {
			qos = m.opts.QoS
		}
		m.sess.enqueue(queued{msg: q.msg, qos: qos, retain: q.retain, ids: m.ids, filter: m.filter, group: q.group}, w)
	}
}
