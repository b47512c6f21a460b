package core

// Subscriptions of a session: subscribe (with its retained messages),
// unsubscribe and listing. Moved out of session.go to keep it readable.

import (
	"fmt"
	"time"

	"github.com/iotgw/iotgw/core/store"
	"github.com/iotgw/iotgw/core/topic"
)

// SubResult is the outcome of one Subscribe.
type SubResult struct {
	Filter  string
	QoS     byte  // granted QoS
	Err     error // nil on success
	Existed bool  // replaced an existing subscription
	sub     *subscriber
	retain  []*Message
}

// Subscribe adds or replaces the subscription to filter (which may be a
// "$share/{group}/..." or "$queue/..." filter). It does not send retained
// messages; call SendRetained after acknowledging the subscription, so the
// acknowledgement precedes them on the wire.
//
// Subscribe is SubscribeAt with the arrival unknown.
func (s *Session) Subscribe(filter string, opts SubOptions) SubResult {
	return s.SubscribeAt(filter, opts, 0)
}

// SubscribeAt is Subscribe for a SUBSCRIBE whose packet arrived at
// arrived: the kernel receive time, Unix nanoseconds, as in
// Message.Arrived (0: unknown). Publications that arrived after it but
// were routed before the subscription was in place are then delivered to
// it too, in their arrival order, possibly before SubscribeAt returns
// (order.go); they may precede the adapter's acknowledgement.
//
// The arrival is an argument rather than a SubOptions field because it
// describes the packet, not the subscription: SubOptions is copied into
// every trie entry and stored with persistent sessions, which need not
// carry it.
func (s *Session) SubscribeAt(filter string, opts SubOptions, arrived int64) SubResult {
	res := SubResult{Filter: filter}
	group, inner, shared, err := topic.ParseShared(filter)
	if err == nil {
		err = topic.ValidateFilter(inner)
	}
	if err != nil {
		res.Err = fmt.Errorf("%w: %v", ErrInvalidFilter, err)
		return res
	}
	if err := s.b.checkLimits(inner); err != nil {
		res.Err = fmt.Errorf("%w: %v", ErrInvalidFilter, err)
		return res
	}
	if !s.b.authorizeAccess(s.info.Load(), Access{Action: ActionSubscribe, Topic: filter, QoS: opts.QoS}) {
		res.Err = ErrNotAuthorized
		return res
	}
	sub := &subscriber{sess: s, opts: opts, filter: inner}
	if opts.ID != 0 {
		sub.ids = []uint32{opts.ID}
	}
	// s.mu is held across the trie add, so that no delivery routed after
	// it can overtake the replays (order.go), and so that a session that
	// ends meanwhile cannot leave the subscription behind in the trie.
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		res.Err = ErrSessionClosed
		return res
	}
	_, res.Existed = s.subs[filter]
	if max := s.b.cfg.MaxSubscriptions; max > 0 && !res.Existed && len(s.subs) >= max {
		s.mu.Unlock()
		res.Err = ErrQuotaExceeded
		return res
	}
	s.subs[filter] = sub
	if wb := s.pwLocked(nil); wb != nil {
		wb.PutSubscription(&store.Subscription{ClientID: s.clientID, Filter: filter, QoS: opts.QoS, NoLocal: opts.NoLocal,
			RetainAsPublished: opts.RetainAsPublished, RetainHandling: opts.RetainHandling, ID: opts.ID})
	}
	added, gen := true, uint64(0)
	if shared {
		added, gen = s.b.addShared(group, inner, sub)
	} else {
		_, gen = s.b.subs.AddGen(inner, s.key, sub)
	}
	var owed []replayCand
	if arrived != 0 && s.b.order != nil && added && !res.Existed {
		owed = s.b.order.owed(inner, arrived, gen, &s.b.stats)
	}
	var w *writes
	if len(owed) > 0 {
		// Retained first: a message this subscription gets as retained
		// is not replayed as well.
		res.retain = s.b.retainedFor(inner, opts, shared, res.Existed)
		w = s.b.newWrites()
		s.replayLocked(sub, owed, res.retain, w)
	}
	s.mu.Unlock()
	// Before SUBACK: a restart keeps what was granted, and the replays
	// are as durable as deliveries routed by their publishers.
	var errc chan error
	if w != nil {
		errc = make(chan error, 1)
		s.b.submit(w, func(err error) { errc <- err })
	}
	s.flushWrites(true)
	if errc != nil {
		<-errc
	}
	res.QoS = opts.QoS
	res.sub = sub
	if len(owed) == 0 {
		res.retain = s.b.retainedFor(inner, opts, shared, res.Existed)
	}
	return res
}

// retainedFor returns the retained messages a new subscription gets: none
// for a shared subscription (4.8.2); per Retain Handling otherwise
// [MQTT-3.3.1-9..11].
func (b *Broker) retainedFor(inner string, opts SubOptions, shared, existed bool) []*Message {
	if shared || !(opts.RetainHandling == 0 || (opts.RetainHandling == 1 && !existed)) {
		return nil
	}
	var out []*Message
	now := time.Now()
	b.retained.Match(inner, func(_ string, m *Message) bool {
		if !m.Expired(now) {
			out = append(out, m)
		}
		return true
	})
	return out
}

// SendRetained delivers the retained messages a successful Subscribe
// found, with the retain flag set [MQTT-3.3.1-8].
func (s *Session) SendRetained(r SubResult) {
	if r.Err != nil || r.sub == nil {
		return
	}
	w := s.b.newWrites()
	for _, m := range r.retain {
		qos := m.QoS
		if r.QoS < qos {
			qos = r.QoS
		}
		s.enqueue(queued{msg: m, qos: qos, retain: true, ids: r.sub.ids, filter: r.sub.filter}, w)
	}
	s.b.commit(w, false) // nothing to acknowledge: no need to wait
}

// Unsubscribe removes the subscription to filter, reporting whether it
// existed.
func (s *Session) Unsubscribe(filter string) bool {
	s.mu.Lock()
	sub, ok := s.subs[filter]
	delete(s.subs, filter)
	if ok {
		if wb := s.pwLocked(nil); wb != nil {
			wb.DeleteSubscription(s.clientID, filter)
		}
	}
	s.mu.Unlock()
	if !ok {
		return false
	}
	s.flushWrites(true)
	s.b.removeSub(s, filter, sub)
	return true
}

// Subscriptions returns the session's filters as subscribed.
func (s *Session) Subscriptions() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.subs))
	for f := range s.subs {
		out = append(out, f)
	}
	return out
}
