package core

// A QoS 2 delivery to a persistent session goes to the sink only once the
// record that carries its packet id is durable.
//
// The receiver of a QoS 2 PUBLISH holds its packet id until PUBREL and
// takes any PUBLISH with a held id for a resend of the message it already
// delivered [MQTT-4.3.3-2]. If the gateway sent PUBLISH id X and then
// died before the record saying "this message went out as X" reached the
// disk, it comes back not knowing X is in use: it either sends the same
// message again under a new id (delivered twice) or, worse, sends another
// message as X, which the client acknowledges and drops (lost). The crash
// test with online subscribers (cmd/iotgw TestCrashOnlineSubscribers)
// found the second. QoS 1 needs no such wait: a QoS 1 message delivered
// twice is allowed, and a client holds no id for it.
//
// The wait costs a QoS 2 delivery one durable commit, shared (group
// commit) by all that are held back meanwhile; non-persistent sessions
// and QoS 0/1 are not affected.

// awaitDurableLocked holds e back until the store is durable up to now,
// starting a barrier goroutine unless one runs. The record of e is in the
// session's pending batch or, for a fresh publication, in the publisher's
// batch, whose ticket the barrier's flush waits for.
func (s *Session) awaitDurableLocked(e *inflightEntry) {
	if e.tk != nil {
		s.pwLocked(e.tk) // the flush must follow the publication's put
	}
	s.awaitN++
	e.await = s.awaitN
	s.awaiting = append(s.awaiting, e)
	if !s.barrier {
		s.barrier = true
		go s.deliverWhenDurable()
	}
}

// deliverWhenDurable flushes the session durably, then hands the held
// deliveries numbered up to what was held before the flush to the sink,
// in order; it repeats while more were held meanwhile. It runs without
// s.mu while waiting (the flush may wait for a publisher's ticket).
func (s *Session) deliverWhenDurable() {
	for {
		s.mu.Lock()
		upTo := s.awaitN
		s.mu.Unlock()
		// Everything held so far has its record in a batch submitted
		// before this flush's, or in the pending batch it takes, or
		// behind a ticket it waits for: once it is durable, so are they.
		errc := make(chan error, 1)
		s.flushWritesAsync(func(err error) { errc <- err })
		err := <-errc
		s.mu.Lock()
		if err != nil {
			// The store failed: the gateway stops (WithStoreFailure) and
			// nothing more may go out that a restart would not know of.
			s.barrier = false
			s.mu.Unlock()
			return
		}
		s.releaseAwaitingLocked(upTo)
		if s.awaitN == upTo {
			s.barrier = false
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
	}
}

// releaseAwaitingLocked hands over the held deliveries numbered up to
// upTo that are still inflight. An offline or paused session keeps them
// inflight for Start to resend.
func (s *Session) releaseAwaitingLocked(upTo uint64) {
	n := 0
	for _, e := range s.awaiting {
		if e.await > upTo {
			break
		}
		n++
		e.await = 0
		if s.inflight[e.d.ID] != e || s.sink == nil || s.paused {
			continue
		}
		if s.sink.Deliver(e.d) {
			s.msgsOut.Add(1)
			s.b.stats.MessagesSent.Add(1)
			s.b.stats.BytesSent.Add(uint64(len(e.d.Msg.Payload) + len(e.d.Msg.Topic)))
		}
	}
	clear(s.awaiting[:n])
	s.awaiting = s.awaiting[n:]
	if len(s.awaiting) == 0 {
		s.awaiting = nil
	}
}
