package core

import (
	"github.com/iotgw/iotgw/core/store"
)

// An adapter keeps what its protocol needs beyond the core's model (the
// MQTT-SN topic registry, STOMP's subscription routes) with the session
// it belongs to, not beside it: the session decides how long it lives.
// SetAdapterState holds an encoded copy that survives a restart when the
// gateway has a store and lives in memory when it has not; the end hook
// tells adapters when a session is gone, so none of them has to track
// expiry on its own.

// SetAdapterState keeps an adapter's opaque state of a session that
// outlives its connection (expiry > 0), replacing the previous one, and
// returns once it is durable (at once without a store); data nil or empty
// removes it. For a session that ends with its connection it does
// nothing. The adapter reads it back with AdapterState when the client
// resumes, in this run or after a restart; it goes with the session.
func (s *Session) SetAdapterState(adapter string, data []byte) error {
	s.mu.Lock()
	if s.ended || s.expiry == 0 {
		s.mu.Unlock()
		return nil
	}
	if len(data) == 0 {
		delete(s.adapterState, adapter)
	} else {
		if s.adapterState == nil {
			s.adapterState = make(map[string][]byte)
		}
		data = append([]byte(nil), data...)
		s.adapterState[adapter] = data
	}
	if !s.persisted {
		s.mu.Unlock()
		return nil
	}
	pw := s.pwLocked(nil)
	if len(data) == 0 {
		pw.DeleteRegistration(s.clientID, adapter)
	} else {
		pw.PutRegistration(&store.Registration{ClientID: s.clientID, Adapter: adapter, Data: data})
	}
	s.mu.Unlock()
	return s.flushWrites(true)
}

// AdapterState returns what SetAdapterState last kept for adapter (in
// this run or, recovered from the store, before a restart), nil if
// nothing. The caller must not modify it.
func (s *Session) AdapterState(adapter string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.adapterState[adapter]
}

// SessionEndHook is told that a session has ended: it expired, it ended
// with its connection, or a clean start replaced it. It runs after the
// session left the session table, on the goroutine that ended it, with no
// core lock held; it must not block.
type SessionEndHook func(s *Session)

// OnSessionEnd registers a hook for every session that ends from now on.
// Adapters register theirs in Start.
func (b *Broker) OnSessionEnd(h SessionEndHook) {
	b.hookMu.Lock()
	defer b.hookMu.Unlock()
	old := b.endHooks.Load()
	var hooks []SessionEndHook
	if old != nil {
		hooks = append(hooks, *old...)
	}
	hooks = append(hooks, h)
	b.endHooks.Store(&hooks)
}

// sessionEnded runs the end hooks for s.
func (b *Broker) sessionEnded(s *Session) {
	if hooks := b.endHooks.Load(); hooks != nil {
		for _, h := range *hooks {
			h(s)
		}
	}
}

// GiveBack returns QoS 0 deliveries that the sink accepted but will not
// send now (an MQTT-SN client that went to sleep with them in its
// buffer) to the session, in the order given, ahead of everything the
// session queued since: a paused or offline session's messages of every
// QoS then wait in one place, under the session's queue limit, and go out
// in order when it starts again. Deliveries of QoS 1/2 and releases are
// ignored: the session still holds them and resends them on Start.
func (s *Session) GiveBack(ds []Delivery) {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
	back := make([]queued, 0, len(ds))
	for _, d := range ds {
		if d.QoS != 0 || d.Release || d.Msg == nil {
			continue
		}
		back = append(back, queued{msg: d.Msg, retain: d.Retain, ids: d.SubIDs, filter: d.Filter})
	}
	if len(back) == 0 {
		s.mu.Unlock()
		return
	}
	s.queue.pushFrontAll(back)
	// Together with what was queued meanwhile they may exceed the limit:
	// the queue policy picks what goes, the oldest (which may be the
	// given-back ones) or, under drop_new, the newest.
	for max := s.queueMax(); max > 0 && s.queue.len() > max; {
		s.b.stats.DroppedQueueFull.Add(1)
		var q queued
		if s.b.cfg.QueueFullPolicy == DropNew {
			q = s.queue.popBack()
		} else {
			q = s.queue.popFront()
		}
		s.deleteQueuedLocked(s.pwLocked(nil), &q)
	}
	s.drainLocked() // a session that is live again sends them now
	s.mu.Unlock()
	s.flushWrites(false) // the records of QoS 1/2 messages dropped above
}
