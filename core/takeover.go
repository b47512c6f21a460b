package core

// Session methods for adapters whose connections can be taken over while
// they still run (STOMP keeps subscription ids and redelivery counts per
// persistent session; MQTT acknowledges through AckedBy too). They are
// protocol-agnostic.

// Ended reports whether the session has ended: it expired, a clean start
// discarded it, or its connection closed with zero expiry. An ended
// session never resumes (a later Connect creates a new one), so an adapter
// may then drop whatever it keeps for it. Do not call it while holding a
// lock that a Sink takes (see LOCKING.md).
func (s *Session) Ended() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ended
}

// AckedBy is Acked on behalf of the connection sink: it completes the
// delivery only while sink still holds the session. A connection that was
// taken over may still be handling frames read before the takeover; its
// acknowledgements must not complete deliveries that the session is
// resending to its successor (whose ids it would then reuse for new
// messages while the successor still expects an acknowledgement).
func (s *Session) AckedBy(sink Sink, id uint16) bool {
	s.mu.Lock()
	if sink == nil || s.sink != sink {
		s.mu.Unlock()
		return false
	}
	ok := s.ackLocked(id)
	s.mu.Unlock()
	// As in Acked: the delete (and the state changes of what drained into
	// the window) go to the store now, not durably. Left pending, they
	// would pile up in the session's batch until some durable write, and
	// a crash would bring every acknowledged message back.
	s.flushWrites(false)
	return ok
}

// RedeliverBy hands the unacknowledged delivery id to sink again, marked
// as a duplicate (a STOMP NACK), if sink still holds the session. It
// returns false for an unknown id, a QoS 2 delivery already received, or
// when the session is paused or held by another connection.
func (s *Session) RedeliverBy(sink Sink, id uint16) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sink == nil || s.sink != sink {
		return false
	}
	return s.redeliverLocked(id)
}

// SubscriptionIDs returns the session's filters as subscribed with their
// subscription identifiers. An adapter that keeps its own state keyed by
// identifier (STOMP) rebuilds it from these for a session recovered from
// the store after a restart.
func (s *Session) SubscriptionIDs() map[string]uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]uint32, len(s.subs))
	for f, sub := range s.subs {
		out[f] = sub.opts.ID
	}
	return out
}
