package core

import "github.com/iotgw/iotgw/core/store"

// A client's publication and its QoS 2 exchanges, in two forms: the plain
// methods return once the store holds what the adapter is about to
// acknowledge; the Async ones route (or record) before they return and
// report durability through a callback, so that an adapter can keep
// reading its connection and send its acknowledgements, in order, as the
// store's group commits complete. One connection then has many writes in
// one commit instead of waiting a disk sync per packet.
//
// Every done callback is called exactly once: at once when nothing had to
// be written (no store, clean session, nothing routed to a persistent
// subscriber), otherwise on the store's commit goroutine, so it must not
// block. Its error is nil or wraps ErrStore.

// Publish routes a message from this session's client. Its Origin is set
// here; the message must not be modified afterwards.
//
// With a store, Publish returns once every write that holds the message
// (its copy for each persistent subscriber, the retained message) is
// durable, so the caller may acknowledge it then; ErrStore if it cannot be.
func (s *Session) Publish(msg *Message) error {
	return s.publishWith(msg, s.b.newWrites(), nil)
}

// PublishAsync routes msg like Publish and returns its refusal, if any
// (done is then not called); otherwise done reports when the message's
// writes are durable.
func (s *Session) PublishAsync(msg *Message, done func(error)) error {
	return s.publishWith(msg, s.b.newWrites(), done)
}

// publishWith routes msg with its writes collected in w; with done nil it
// waits for them to be durable, otherwise done gets the outcome.
func (s *Session) publishWith(msg *Message, w *writes, done func(error)) error {
	info := s.info.Load()
	msg.Origin = Origin{Protocol: info.Protocol, ClientID: s.clientID, Username: info.Username,
		Listener: info.Listener, sessionKey: s.key}
	s.msgsIn.Add(1)
	return s.b.publishW(msg, info, s, w, done)
}

// PublishExactlyOnce handles an inbound QoS 2 publication with packet id
// id: it is routed only the first time the id is seen, until Release
// [MQTT-4.3.3-2] (the "store the packet identifier" method). dup reports a
// repeat that was not routed again.
func (s *Session) PublishExactlyOnce(id uint16, msg *Message) (dup bool, err error) {
	errc := make(chan error, 1)
	dup, err = s.PublishExactlyOnceAsync(id, msg, func(err error) { errc <- err })
	if err != nil {
		return dup, err
	}
	return dup, <-errc
}

// PublishExactlyOnceAsync is PublishExactlyOnce reporting durability
// through done, which is not called when err is a refusal. For a repeat
// (dup), done waits for the writes submitted before it, so that the
// original's PUBREC — even one sent by an earlier connection — is not
// overtaken.
func (s *Session) PublishExactlyOnceAsync(id uint16, msg *Message, done func(error)) (dup bool, err error) {
	s.mu.Lock()
	if _, held := s.inQoS2[id]; held {
		s.mu.Unlock()
		s.flushWritesAsync(done)
		return true, nil
	}
	s.holdQoS2Locked(id)
	persisted := s.persisted
	s.mu.Unlock()
	// The held id is written with the message's copies, in one batch:
	// after a crash a resent PUBLISH is recognised as a duplicate exactly
	// when its copies survived.
	w := s.b.newWrites()
	if w != nil && persisted {
		w.b.PutInbound(s.clientID, id)
	}
	if err := s.publishWith(msg, w, done); err != nil {
		// A refused message is not held: the publisher gets the error in
		// PUBREC and will not send PUBREL.
		s.mu.Lock()
		delete(s.inQoS2, id)
		s.mu.Unlock()
		return false, err
	}
	return false, nil
}

// Release handles PUBREL for an inbound QoS 2 id, reporting whether the id
// was held.
//
// The release is durable before Release returns (so before PUBCOMP):
// a client reuses the id at once, and a held id that came back after a
// crash would make its next message look like a duplicate and be lost.
func (s *Session) Release(id uint16) bool {
	errc := make(chan error, 1)
	held := s.ReleaseAsync(id, func(err error) { errc <- err })
	<-errc
	return held
}

// ReleaseAsync is Release reporting through done when the release is
// durable (PUBCOMP may go then).
func (s *Session) ReleaseAsync(id uint16, done func(error)) bool {
	s.mu.Lock()
	_, held := s.inQoS2[id]
	delete(s.inQoS2, id)
	if held {
		if wb := s.pwLocked(nil); wb != nil {
			wb.DeleteInbound(s.clientID, id)
		}
	}
	s.mu.Unlock()
	if held {
		s.flushWritesAsync(done)
	} else {
		done(nil)
	}
	return held
}

// Received records PUBREC for an outbound QoS 2 delivery; the adapter then
// sends PUBREL. It returns false for an unknown id.
//
// For a persistent session the received state is durable before Received
// returns (so before PUBREL goes out): after a crash the session resends
// PUBREL, never the message, which the client would take as new.
func (s *Session) Received(id uint16) bool {
	errc := make(chan error, 1)
	ok := s.ReceivedAsync(id, func(err error) { errc <- err })
	<-errc
	return ok
}

// ReceivedAsync is Received reporting through done when the received
// state is durable (PUBREL may go then).
func (s *Session) ReceivedAsync(id uint16, done func(error)) bool {
	s.mu.Lock()
	e, ok := s.inflight[id]
	if !ok || e.d.QoS != 2 {
		s.mu.Unlock()
		done(nil)
		return false
	}
	e.received = true
	e.d.Msg = nil // the payload is no longer needed once received
	stored := e.stored
	if stored {
		if wb := s.pwLocked(e.tk); wb != nil {
			wb.PutMessage(s.messageRecord(e.seq, store.StateReceived, id, 2, e.d.Retain, e.d.SubIDs, e.d.Filter, e.group, nil))
		}
	}
	s.mu.Unlock()
	if stored {
		s.flushWritesAsync(done)
	} else {
		done(nil)
	}
	return true
}
