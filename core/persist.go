package core

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/iotgw/iotgw/core/store"
	"github.com/iotgw/iotgw/core/topic"
)

// Persistence in the core (see core/store for the log itself and
// docs/design.md for the rules): memory stays authoritative; the broker
// writes to the store only
//
//   - for persistent sessions (expiry > 0): the session record,
//     subscriptions, QoS 1/2 messages (queued, sent, received) and inbound
//     QoS 2 ids; clean sessions and QoS 0 never touch the disk;
//   - retained messages (except the broker's own $SYS tree, rebuilt on
//     every start), pending wills and $delayed messages.
//
// A publication collects its writes (one record per persistent
// subscriber, the retained message, an inbound QoS 2 id) in one batch
// while it routes; Publish returns only once that batch is durable, so an
// adapter that acknowledges after Publish (PUBACK, PUBREC, RECEIPT, 2.04)
// never acknowledges what a crash could lose. Later changes of a session
// (acks, state changes, drops) collect in the session's pending batch
// under Session.mu and are handed to the store after it is released
// (flushWrites), never while holding it.

// WithStore makes the broker keep its durable state in st. Without it (or
// with nil) nothing survives the process. The broker does not close st;
// call Recover before any client connects.
func WithStore(st store.Store) Option { return func(b *Broker) { b.store = st } }

// Durable reports whether the broker has a store: Session.Publish may then
// wait for a disk write, and an adapter should not hold replies back
// while it does.
func (b *Broker) Durable() bool { return b.store != nil }

// WithStoreFailure has fn told of the first store write that fails. After
// one, the store refuses every later write (its state on disk is
// unknown), so the broker acknowledges no QoS 1/2 message any more; the
// gateway stops on it (restarting recovers what is durable). fn is called
// once, possibly on the store's commit goroutine: it must not block.
func WithStoreFailure(fn func(error)) Option { return func(b *Broker) { b.storeFailed = fn } }

// ErrStore wraps a store failure: the message was not acknowledged
// because it could not be made durable.
var ErrStore = errors.New("core: store")

// ticket orders the later writes of a message (its ack's delete, its
// state changes) after the batch that puts it. A subscriber may receive
// and acknowledge a message before its publisher has handed that batch to
// the store; the delete must not overtake the put, or the message would
// come back after a restart (a duplicate, fatal for QoS 2). ch is closed
// once the put is submitted; the store applies commits in submission
// order.
type ticket struct{ ch chan struct{} }

func (t *ticket) submitted() bool {
	select {
	case <-t.ch:
		return true
	default:
		return false
	}
}

// writes are the store writes of one publication (or of a redistribution
// of shared messages).
type writes struct {
	b  store.Batch
	tk *ticket
	// waits are tickets of puts this batch's deletes must follow.
	waits []*ticket
}

// writesPool recycles the writes of publications that wrote nothing (QoS 0,
// clean sessions: most traffic), so that a store costs the publish path no
// allocation when it is not used.
var writesPool = sync.Pool{New: func() any { return new(writes) }}

// newWrites returns a batch for one publication, nil without a store.
func (b *Broker) newWrites() *writes {
	if b.store == nil {
		return nil
	}
	return writesPool.Get().(*writes)
}

// recycle returns w to the pool once nothing refers to it: only a batch
// that was never handed to the store qualifies (the store keeps &w.b
// until its commit completes).
func (w *writes) recycle() {
	clear(w.waits)
	*w = writes{waits: w.waits[:0]}
	writesPool.Put(w)
}

func (w *writes) ticket() *ticket {
	if w.tk == nil {
		w.tk = &ticket{ch: make(chan struct{})}
	}
	return w.tk
}

// commit hands w to the store and, with durable set, waits until it is
// durable. w may be nil.
func (b *Broker) commit(w *writes, durable bool) error {
	if !durable || w == nil || (w.b.Len() == 0 && w.b.Err() == nil) {
		// Nothing to wait for (an empty batch has no durable outcome
		// either): no channel, no callback, no allocation.
		b.submit(w, nil)
		return nil
	}
	errc := make(chan error, 1)
	b.submit(w, func(err error) { errc <- err })
	return <-errc
}

// submit hands w (nil: nothing) to the store, after the puts its deletes
// must follow. With done set the writes are durable ones and done gets
// their outcome exactly once: ErrStore-wrapped on failure, at once when
// there is nothing to write, otherwise later on the store's commit
// goroutine, so done must not block. Without done they are written
// without waiting for the disk.
func (b *Broker) submit(w *writes, done func(error)) {
	if w == nil {
		if done != nil {
			done(nil)
		}
		return
	}
	for _, t := range w.waits {
		<-t.ch
	}
	empty := w.b.Len() == 0
	switch {
	case empty:
		if done != nil {
			done(nil)
		}
	case done == nil:
		b.store.CommitAsync(&w.b, false, b.logStoreErr)
	default:
		b.store.CommitAsync(&w.b, true, b.storeOutcome(done))
	}
	if w.tk != nil {
		close(w.tk.ch)
	}
	if empty && w.b.Err() == nil {
		w.recycle()
	}
}

// storeOutcome wraps done for a durable commit: a failure is logged and
// reported as ErrStore.
func (b *Broker) storeOutcome(done func(error)) func(error) {
	return func(err error) {
		if err != nil {
			b.logStoreErr(err)
			err = fmt.Errorf("%w: %v", ErrStore, err)
		}
		done(err)
	}
}

// discard gives up w without writing (the publication was refused before
// anything was routed), releasing anyone waiting on its ticket.
func (w *writes) discard() {
	if w != nil && w.tk != nil {
		close(w.tk.ch)
	}
}

func (b *Broker) logStoreErr(err error) {
	if err == nil || errors.Is(err, store.ErrClosed) {
		return
	}
	b.log.Error("store write failed", zap.Error(err))
	if b.storeFailed != nil {
		b.storeFailedOnce.Do(func() { b.storeFailed(err) })
	}
}

// pwLocked returns the session's pending batch, nil when the session is
// not persistent; tk, when set, is the ticket of the put the new write
// must follow.
func (s *Session) pwLocked(tk *ticket) *store.Batch {
	if !s.persisted {
		return nil
	}
	if s.pw == nil {
		s.pw = new(store.Batch)
	}
	if tk != nil && !tk.submitted() {
		s.pwWait = append(s.pwWait, tk)
	}
	return s.pw
}

// flushWrites hands the session's pending writes to the store, in the
// order they were made; with durable set it returns once they are
// durable. It must be called without s.mu: it may wait for a publisher to
// submit its batch (see ticket) and for the store.
func (s *Session) flushWrites(durable bool) error {
	if s.b.store == nil {
		return nil
	}
	if !durable {
		s.wmu.Lock()
		s.mu.Lock()
		pw, waits := s.pw, s.pwWait
		s.pw, s.pwWait = nil, nil
		s.mu.Unlock()
		if pw != nil {
			w := &writes{waits: waits, b: *pw}
			s.b.submit(w, nil)
		}
		s.wmu.Unlock()
		return nil
	}
	errc := make(chan error, 1)
	s.flushWritesAsync(func(err error) { errc <- err })
	return <-errc
}

// flushWritesAsync is a durable flushWrites that does not wait: done gets
// the outcome exactly once, possibly on the store's commit goroutine (it
// must not block). It must be called without s.mu.
//
// A persistent session with nothing pending still commits an empty
// durable batch: a concurrent non-durable flush may have taken the
// caller's writes, and the barrier makes done wait for them too.
func (s *Session) flushWritesAsync(done func(error)) {
	if s.b.store == nil {
		done(nil)
		return
	}
	s.wmu.Lock()
	s.mu.Lock()
	pw, waits := s.pw, s.pwWait
	s.pw, s.pwWait = nil, nil
	persisted := s.persisted
	s.mu.Unlock()
	if pw == nil && !persisted {
		s.wmu.Unlock()
		done(nil)
		return
	}
	if pw == nil {
		pw = new(store.Batch)
	}
	for _, t := range waits {
		<-t.ch
	}
	// s.wmu keeps the submissions of concurrent flushes in swap order.
	s.b.store.CommitAsync(pw, true, s.b.storeOutcome(done))
	s.wmu.Unlock()
}

// sessionRecordLocked is the session's own record; disconnected is the
// time its connection ended (zero while connected).
func (s *Session) sessionRecordLocked(disconnected time.Time) *store.Session {
	info := s.info.Load()
	r := &store.Session{ClientID: s.clientID, Protocol: info.Protocol, Username: info.Username,
		Expiry: s.expiry, DisconnectedAt: disconnected}
	if s.will != nil {
		r.Will = &store.Will{Msg: willRecord(s.will), Delay: s.will.Delay}
	}
	return r
}

// dropStoredLocked makes the session non-persistent and removes what the
// store holds of it, after every put still on its way (see ticket).
func (s *Session) dropStoredLocked() {
	s.adapterState = nil // it lives exactly as long as the session outlives connections
	if !s.persisted {
		return
	}
	pw := s.pwLocked(nil)
	for i := 0; i < s.queue.len(); i++ {
		if tk := s.queue.at(i).tk; tk != nil && !tk.submitted() {
			s.pwWait = append(s.pwWait, tk)
		}
	}
	for _, e := range s.inflight {
		if e.tk != nil && !e.tk.submitted() {
			s.pwWait = append(s.pwWait, e.tk)
		}
	}
	pw.DeleteSession(s.clientID)
	s.persisted = false
}

// messageRecord is a session message as stored.
func (s *Session) messageRecord(seq uint64, state store.State, id uint16, qos byte, retain bool,
	ids []uint32, filter string, group *sharedGroup, msg *Message) *store.SessionMessage {
	r := &store.SessionMessage{ClientID: s.clientID, Seq: seq, State: state, PacketID: id, QoS: qos,
		Retain: retain, SubIDs: ids, Filter: filter}
	if group != nil {
		r.Share = "$share/" + group.name + "/" + group.filter
	}
	if msg != nil && state != store.StateReceived {
		m := toRecord(msg)
		r.Msg = &m
	}
	return r
}

func (s *Session) putQueuedLocked(wb *store.Batch, q *queued) {
	if wb != nil && q.seq != 0 {
		wb.PutMessage(s.messageRecord(q.seq, store.StateQueued, 0, q.qos, q.retain, q.ids, q.filter, q.group, q.msg))
	}
}

// deleteQueuedLocked removes a dropped queued message's record. It does
// not wait for the message's put: a put that overtakes the delete only
// brings back, after a crash, a message its publisher had acknowledged.
func (s *Session) deleteQueuedLocked(wb *store.Batch, q *queued) {
	if wb != nil && q.seq != 0 {
		wb.DeleteMessage(s.clientID, q.seq)
	}
}

func toRecord(m *Message) store.Message {
	r := store.Message{Topic: m.Topic, Payload: m.Payload, QoS: m.QoS, Retain: m.Retain,
		ContentType: m.ContentType, PayloadFormat: m.PayloadFormat, ExpiresAt: m.ExpiresAt,
		ResponseTopic: m.ResponseTopic, CorrelationData: m.CorrelationData, Created: m.Created,
		Origin: store.Origin{Protocol: m.Origin.Protocol, ClientID: m.Origin.ClientID,
			Username: m.Origin.Username, Listener: m.Origin.Listener}}
	if len(m.UserProps) > 0 {
		r.UserProps = make([]store.UserProperty, len(m.UserProps))
		for i, p := range m.UserProps {
			r.UserProps[i] = store.UserProperty(p)
		}
	}
	return r
}

func fromRecord(r *store.Message) *Message {
	m := &Message{Topic: r.Topic, Payload: r.Payload, QoS: r.QoS, Retain: r.Retain,
		ContentType: r.ContentType, PayloadFormat: r.PayloadFormat, ExpiresAt: r.ExpiresAt,
		ResponseTopic: r.ResponseTopic, CorrelationData: r.CorrelationData, Created: r.Created,
		Origin: Origin{Protocol: r.Origin.Protocol, ClientID: r.Origin.ClientID,
			Username: r.Origin.Username, Listener: r.Origin.Listener}}
	if len(r.UserProps) > 0 {
		m.UserProps = make([]UserProperty, len(r.UserProps))
		for i, p := range r.UserProps {
			m.UserProps[i] = UserProperty(p)
		}
	}
	return m
}

// willRecord stores a will's message. The will's own expiry interval
// starts only when it is published, so it is kept as ExpiresAt - Created.
func willRecord(w *Will) store.Message {
	r := toRecord(w.Msg)
	if r.Created.IsZero() {
		r.Created = time.Now()
	}
	r.ExpiresAt = time.Time{}
	if w.Expiry > 0 {
		r.ExpiresAt = r.Created.Add(w.Expiry)
	}
	return r
}

func fromWillRecord(r *store.Message, delay time.Duration) *Will {
	w := &Will{Msg: fromRecord(r), Delay: delay, stored: true}
	if !r.ExpiresAt.IsZero() {
		w.Expiry = r.ExpiresAt.Sub(r.Created)
	}
	w.Msg.ExpiresAt = time.Time{}
	return w
}

// storeRetained records a retained message's change in w.
func storeRetained(w *writes, msg *Message) {
	if w == nil || topic.IsSys(msg.Topic) {
		return
	}
	if len(msg.Payload) == 0 {
		w.b.DeleteRetained(msg.Topic)
		return
	}
	r := toRecord(msg)
	w.b.PutRetained(&r)
}

// storeDelayed records a pending delayed message, returning its id.
func (b *Broker) storeDelayed(w *writes, msg *Message, due time.Time) uint64 {
	id := b.delayedSeq.Add(1)
	if w != nil {
		w.b.PutDelayed(&store.Delayed{ID: id, Due: due, Msg: toRecord(msg)})
	}
	return id
}
