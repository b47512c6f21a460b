package core

import (
	"slices"
	"sync"
)

// SubOptions are a subscription's options, MQTT 5's being the superset.
type SubOptions struct {
	QoS               byte
	NoLocal           bool   // do not deliver the session's own publications
	RetainAsPublished bool   // keep the publisher's retain flag
	RetainHandling    byte   // 0 send retained, 1 only for a new subscription, 2 never
	ID                uint32 // subscription identifier, 0 for none
}

// subscriber is one trie entry: either a session's subscription or a
// shared-subscription group.
type subscriber struct {
	sess   *Session
	opts   SubOptions
	filter string       // the filter as matched (without any $share prefix)
	ids    []uint32     // prebuilt {opts.ID}, shared read-only by every delivery
	group  *sharedGroup // set on a group's trie entry
	shared *sharedGroup // set on a member: the group it belongs to
}

// route delivers msg to every matching subscription. Overlapping
// subscriptions of one session get a single delivery at the highest QoS
// carrying every subscription identifier [MQTT-3.3.5-1], [MQTT-3.3.4-3..5].
//
// A publication with an arrival time is logged first (order.go), so that a
// subscription whose SUBSCRIBE arrived before it but is added only after
// this match still gets it.
func (b *Broker) route(msg *Message, from *Session, w *writes) {
	var ref orderRef
	if msg.Arrived != 0 && b.order != nil {
		ref = b.order.record(msg, from)
	}
	matches, gen := b.subs.MatchGen(msg.Topic)
	if ref.e != nil {
		b.order.routed(ref, gen)
	}
	if len(matches) == 0 {
		b.stats.DroppedNoSubscriber.Add(1)
		return
	}
	if !hasDuplicateSessions(matches) {
		for _, sub := range matches {
			if sub.group != nil {
				if sub = sub.group.pick(msg, nil); sub == nil {
					continue
				}
			}
			b.deliverTo(sub, msg, sub.ids, from, w)
		}
		return
	}
	b.routeOverlapping(msg, matches, from, w)
}

func hasDuplicateSessions(matches []*subscriber) bool {
	if len(matches) < 2 {
		return false
	}
	if len(matches) <= 32 {
		for i := 1; i < len(matches); i++ {
			if matches[i].sess == nil {
				continue
			}
			for j := 0; j < i; j++ {
				if matches[j].sess == matches[i].sess {
					return true
				}
			}
		}
		return false
	}
	seen := seenPool.Get().(map[*Session]struct{})
	defer func() {
		clear(seen)
		seenPool.Put(seen)
	}()
	for _, m := range matches {
		if m.sess == nil {
			continue
		}
		if _, ok := seen[m.sess]; ok {
			return true
		}
		seen[m.sess] = struct{}{}
	}
	return false
}

// seenPool recycles the sets used to detect overlapping subscriptions
// among many matches, keeping large fan-outs free of allocations.
var seenPool = sync.Pool{New: func() any { return make(map[*Session]struct{}, 64) }}

// routeOverlapping is the slow path for sessions with several matching
// subscriptions: merge them into one delivery each.
func (b *Broker) routeOverlapping(msg *Message, matches []*subscriber, from *Session, w *writes) {
	type merged struct {
		sub *subscriber
		opt SubOptions
		ids []uint32
	}
	order := make([]*Session, 0, len(matches))
	bySess := make(map[*Session]*merged, len(matches))
	for _, sub := range matches {
		if sub.group != nil {
			// Shared deliveries are independent of a session's other
			// subscriptions, so they are not merged.
			if m := sub.group.pick(msg, nil); m != nil {
				b.deliverTo(m, msg, m.ids, from, w)
			}
			continue
		}
		if sub.opts.NoLocal && msg.Origin.sessionKey == sub.sess.key {
			continue
		}
		m := bySess[sub.sess]
		if m == nil {
			m = &merged{sub: sub, opt: sub.opts}
			bySess[sub.sess] = m
			order = append(order, sub.sess)
		} else {
			if sub.opts.QoS > m.opt.QoS {
				m.opt.QoS = sub.opts.QoS
			}
			m.opt.RetainAsPublished = m.opt.RetainAsPublished || sub.opts.RetainAsPublished
		}
		if sub.opts.ID != 0 {
			m.ids = append(m.ids, sub.opts.ID)
		}
	}
	for _, s := range order {
		m := bySess[s]
		// Trie order is arbitrary; ascending identifiers make the
		// delivered list deterministic.
		slices.Sort(m.ids)
		sub := *m.sub
		sub.opts = m.opt
		b.deliverTo(&sub, msg, m.ids, from, w)
	}
}

// deliverTo enqueues msg for one subscriber. When the subscriber is
// congested, the publishing session from (nil for the broker itself) is
// told to wait for room before it acknowledges (see Session.WaitForRoom).
func (b *Broker) deliverTo(sub *subscriber, msg *Message, ids []uint32, from *Session, w *writes) {
	if sub.opts.NoLocal && msg.Origin.sessionKey == sub.sess.key {
		return // [MQTT-3.8.3-3]
	}
	room := sub.sess.enqueue(sub.queuedFor(msg, ids), w)
	if room != nil && from != nil && from != sub.sess {
		from.addWait(room)
	}
}

// queuedFor is msg as sub receives it with identifiers ids: at the lower
// of the two QoS [MQTT-3.8.4-8], and with the retain flag cleared unless
// Retain As Published [MQTT-3.3.1-9], [MQTT-3.3.1-12], [MQTT-3.3.1-13].
func (sub *subscriber) queuedFor(msg *Message, ids []uint32) queued {
	return queued{msg: msg, qos: min(msg.QoS, sub.opts.QoS), retain: sub.opts.RetainAsPublished && msg.Retain,
		ids: ids, filter: sub.filter, group: sub.shared}
}
