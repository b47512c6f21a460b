package core

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/iotgw/iotgw/core/store"
)

// Session is one client's state in the core: subscriptions, QoS 1/2
// inflight and queued messages, inbound QoS 2 packet ids and the will. It
// outlives connections according to its expiry. All methods are safe for
// concurrent use.
type Session struct {
	b        *Broker
	clientID string
	key      string // unique per incarnation (trie key, no-local identity)
	info     atomic.Pointer[ClientInfo]
	online   atomic.Bool
	// pubSeq numbers the session's logged publications, which keeps
	// their order among the order replay's (order.go).
	pubSeq atomic.Uint64
	// Counters and times for the management API (admin.go): messages the
	// client published and was handed, deliveries dropped for it, and
	// when it last connected or disconnected (Unix ns).
	msgsIn, msgsOut, dropped atomic.Uint64
	since                    atomic.Int64

	mu       sync.Mutex
	sink     Sink
	paused   bool
	ended    bool
	expiry   time.Duration
	timer    *time.Timer // session expiry while offline
	will     *Will       // the connected client's will
	pending  *Will       // a will waiting for its delay after a disconnect
	willTmr  *time.Timer
	authTmr  *time.Timer            // ends the connection when its credentials expire (Grant.ExpireAt)
	subs     map[string]*subscriber // by the filter as subscribed (incl. $share/...)
	window   int
	inflight map[uint16]*inflightEntry
	seq      uint64
	nextID   uint16
	queue    deque
	inQoS2   map[uint16]struct{} // inbound QoS 2 ids awaiting PUBREL
	unsent   int                 // inflight entries marked unsent
	// awaiting are QoS 2 deliveries held back until the record of their
	// packet id is durable (see durablesend.go); awaitN numbers them and
	// barrier is set while a goroutine waits for the store on them.
	awaiting []*inflightEntry
	awaitN   uint64
	barrier  bool
	// queueLimit, when > 0, lowers the broker-wide queue bound.
	queueLimit int
	// room is closed when a queue that passed its limit under the
	// backpressure policy drains below it again.
	room chan struct{}

	// persisted: the session is kept in the store (one is set and the
	// session's expiry is > 0). Its changes collect in pw, under mu, and
	// flushWrites hands them to the store once mu is released; pwWait
	// are the tickets of puts they must follow (see ticket).
	persisted  bool
	pw         *store.Batch
	pwWait     []*ticket
	pendingDue time.Time // when pending is due (recovered sessions)
	// adapterState is adapters' opaque state of a persistent session
	// (SetAdapterState), by adapter name; recovered from the store.
	adapterState map[string][]byte
	// wmu keeps this session's flushes in order; taken before mu, never
	// while holding it.
	wmu sync.Mutex

	// waits are congested subscribers' room channels collected while this
	// session published; WaitForRoom consumes them.
	waitMu sync.Mutex
	waits  []<-chan struct{}
}

type inflightEntry struct {
	d        Delivery
	seq      uint64
	received bool         // QoS 2: PUBREC seen, PUBREL sent
	unsent   bool         // to resend once the window has room (after a resume)
	group    *sharedGroup // shared group that chose this session, if any
	stored   bool         // has a record in the store (under seq)
	tk       *ticket      // the publication that put that record
	// await, when non-zero, numbers a delivery not yet handed to the sink
	// because its packet id is not durable yet (durablesend.go).
	await uint64
}

func (b *Broker) newSession(info *ClientInfo, req ConnectRequest, expiry time.Duration, window int) *Session {
	s := &Session{
		b:        b,
		clientID: req.ClientID,
		key:      b.newSessionKey(req.ClientID),
		sink:     req.Sink,
		paused:   true,
		expiry:   expiry,
		will:     req.Will,
		subs:     make(map[string]*subscriber),
		window:   window,
		// inflight and inQoS2 are made on first use (addInflightLocked,
		// holdQoS2Locked): most sessions are idle subscribers that never
		// see a QoS 2 publication, and an empty map still costs memory.
	}
	s.info.Store(info)
	s.online.Store(true)
	s.since.Store(time.Now().UnixNano())
	return s
}

// resumeLocked binds a new connection to an existing session.
func (s *Session) resumeLocked(info *ClientInfo, req ConnectRequest, expiry time.Duration, window int) {
	s.stopTimersLocked()
	if s.pending != nil && s.pending.stored {
		if wb := s.pwLocked(nil); wb != nil {
			wb.DeleteWill(s.clientID)
		}
	}
	s.pending = nil // a new connection cancels a delayed will [MQTT-3.1.3-9]
	s.info.Store(info)
	s.sink = req.Sink
	s.paused = true
	s.expiry = expiry
	s.will = req.Will
	s.window = window
	s.online.Store(true)
	s.since.Store(time.Now().UnixNano())
}

// detachForTakeover closes the connection holding the session, if any, and
// returns the will to publish now (nil if none).
func (s *Session) detachForTakeover(cleanStart bool) *Will {
	var will *Will
	if s.sink != nil {
		old := s.sink
		s.sink = nil
		s.online.Store(false)
		s.b.detachConnection()
		s.releaseRoomLocked()
		// The old connection did not disconnect cleanly, so its will is
		// due; a delayed will is cancelled by this new connection unless
		// the session ends now.
		if w := s.will; w != nil && (w.Delay == 0 || cleanStart) {
			will = w
		}
		s.will = nil
		old.Close(ErrSessionTakenOver)
	} else if s.pending != nil && cleanStart {
		will = s.pending
		s.pending = nil
	}
	return will
}

func (s *Session) takePendingWillLocked() *Will {
	w := s.pending
	s.pending = nil
	return w
}

func (s *Session) stopTimersLocked() {
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	if s.willTmr != nil {
		s.willTmr.Stop()
		s.willTmr = nil
	}
	if s.authTmr != nil {
		s.authTmr.Stop()
		s.authTmr = nil
	}
}

// ClientID returns the session's client identifier.
func (s *Session) ClientID() string { return s.clientID }

// Info returns the client information of the current connection.
func (s *Session) Info() *ClientInfo { return s.info.Load() }

// Expiry returns the session expiry in force.
func (s *Session) Expiry() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.expiry
}

// SetExpiry changes the session expiry (MQTT 5 DISCONNECT may do so).
func (s *Session) SetExpiry(d time.Duration) {
	d = s.b.ClampExpiry(d)
	s.mu.Lock()
	s.expiry = d
	s.mu.Unlock()
}

// SetWill replaces the connection's will (MQTT-SN WILLTOPICUPD/WILLMSGUPD).
// A persistent session's record carries the will (a crash publishes it
// at the restart), so the record is rewritten, durably before SetWill
// returns and the adapter confirms the update.
func (s *Session) SetWill(w *Will) {
	s.mu.Lock()
	s.will = w
	if s.persisted && s.sink != nil {
		s.pwLocked(nil).PutSession(s.sessionRecordLocked(time.Time{}))
	}
	s.mu.Unlock()
	s.flushWrites(true)
}

// Start ends the pause that Connect begins: unacknowledged deliveries are
// resent in their original order with DUP set (or their release step for
// QoS 2 deliveries already received) [MQTT-4.4.0-1], then queued messages
// flow into the inflight window.
func (s *Session) Start() {
	defer s.flushWrites(false) // state changes of what drained
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sink == nil || !s.paused {
		return
	}
	s.paused = false
	if len(s.inflight) > 0 {
		entries := make([]*inflightEntry, 0, len(s.inflight))
		for _, e := range s.inflight {
			entries = append(entries, e)
		}
		sort.Slice(entries, func(i, j int) bool { return entries[i].seq < entries[j].seq })
		s.unsent = 0
		for i, e := range entries {
			e.unsent = false
			if e.await != 0 {
				continue // handed over once durable (durablesend.go)
			}
			if e.received {
				s.sink.Deliver(Delivery{ID: e.d.ID, QoS: 2, Release: true})
				continue
			}
			// The resumed client's Receive Maximum may be smaller than
			// what is inflight: resend only what it allows now, the
			// rest as acknowledgements make room [MQTT-3.3.4-9].
			if i >= s.window {
				e.unsent = true
				s.unsent++
				continue
			}
			d := e.d
			d.Dup = true
			s.sink.Deliver(d)
		}
	}
	s.drainLocked()
}

// Pause stops handing deliveries to the sink until the next Start; they
// queue in the session (QoS 0 included) meanwhile. MQTT-SN uses it for a
// sleeping client that stays connected.
func (s *Session) Pause() {
	s.mu.Lock()
	s.paused = true
	s.releaseRoomLocked() // a paused session is not draining: do not hold publishers
	s.mu.Unlock()
}

// redeliverLocked hands an unacknowledged delivery to the sink again,
// marked as a duplicate (STOMP NACK: RedeliverBy). It returns false for an
// unknown id, a QoS 2 delivery already received, or when the session is
// paused or offline.
func (s *Session) redeliverLocked(id uint16) bool {
	e, ok := s.inflight[id]
	if !ok || e.received || e.unsent || e.await != 0 || s.sink == nil || s.paused {
		return false
	}
	e.d.Dup = true
	return s.sink.Deliver(e.d)
}

// enqueue hands one message to this session: straight to the sink when
// the window allows, otherwise into the bounded queue.
//
// w collects the store writes of the publication (nil: none): a
// persistent session's QoS 1/2 message gets its sequence number and
// record here, under mu, so its queue order and its records agree.
func (s *Session) enqueue(q queued, w *writes) <-chan struct{} {
	s.mu.Lock()
	room := s.enqueueLocked(q, w)
	s.mu.Unlock()
	return room
}

// enqueueLocked is enqueue with s.mu held (the order replay holds it
// across a subscription's trie add and its replays: order.go).
func (s *Session) enqueueLocked(q queued, w *writes) <-chan struct{} {
	st := &s.b.stats
	if s.ended {
		return nil
	}
	live := s.sink != nil && !s.paused
	if q.qos == 0 {
		if live {
			ok := s.sink.Deliver(Delivery{Msg: q.msg, Retain: q.retain, SubIDs: q.ids, Filter: q.filter})
			var room <-chan struct{}
			if ok && s.b.cfg.QueueFullPolicy == Backpressure {
				// A subscriber that keeps reading slows its publishers
				// rather than losing their QoS 0 messages (see Pacer).
				if p, isPacer := s.sink.(Pacer); isPacer {
					room = p.Room()
				}
			}
			if ok {
				st.MessagesSent.Add(1)
				st.BytesSent.Add(uint64(len(q.msg.Payload) + len(q.msg.Topic)))
				s.msgsOut.Add(1)
			} else {
				st.DroppedQoS0.Add(1)
				s.dropped.Add(1)
			}
			return room
		}
		if s.sink == nil && !s.b.cfg.QueueQoS0 {
			st.DroppedOffline.Add(1)
			s.dropped.Add(1)
			return nil
		}
	}
	var wb *store.Batch
	if w != nil && s.persisted && q.qos > 0 {
		wb = &w.b
		s.seq++
		q.seq, q.tk = s.seq, w.ticket()
	}
	var room <-chan struct{}
	switch {
	case live && s.queue.len() == 0 && len(s.inflight) < s.window:
		s.sendLocked(q, wb, true)
	case live && q.qos > 0 && s.b.cfg.QueueFullPolicy == Backpressure:
		room = s.pushBackpressureLocked(q, wb)
	default:
		s.pushLocked(q, wb)
	}
	return room
}

// pushBackpressureLocked queues a QoS 1/2 message for a connected client
// without dropping it: past the queue limit the message is still kept and
// the publisher is asked to wait for room before acknowledging, which slows
// it to the subscriber's pace. Only beyond twice the limit (many
// publishers at once, or waits that timed out) is the oldest dropped.
func (s *Session) pushBackpressureLocked(q queued, wb *store.Batch) <-chan struct{} {
	s.putQueuedLocked(wb, &q)
	max := s.queueMax()
	if max == 0 {
		s.queue.pushBack(q)
		return nil
	}
	if s.queue.len() >= 2*max {
		s.b.stats.DroppedQueueFull.Add(1)
		s.dropped.Add(1)
		old := s.queue.popFront()
		s.deleteQueuedLocked(wb, &old)
	}
	s.queue.pushBack(q)
	if s.queue.len() < max {
		return nil
	}
	if s.room == nil {
		s.room = make(chan struct{})
	}
	return s.room
}

// releaseRoomLocked wakes publishers waiting for this session's queue.
func (s *Session) releaseRoomLocked() {
	if s.room != nil {
		close(s.room)
		s.room = nil
	}
}

func (s *Session) queueMax() int {
	max := s.b.cfg.MaxQueued
	if s.queueLimit > 0 && (max == 0 || s.queueLimit < max) {
		max = s.queueLimit
	}
	return max
}

func (s *Session) addWait(room <-chan struct{}) {
	s.waitMu.Lock()
	for _, w := range s.waits {
		if w == room {
			s.waitMu.Unlock()
			return
		}
	}
	s.waits = append(s.waits, room)
	s.waitMu.Unlock()
}

// MustWait reports whether WaitForRoom would block: the session's last
// publications went to a congested subscriber. An adapter that defers
// its writes can flush them first.
func (s *Session) MustWait() bool {
	s.waitMu.Lock()
	defer s.waitMu.Unlock()
	return len(s.waits) > 0
}

// WaitForRoom blocks, up to timeout, until every congested subscriber the
// session's last publications went to has room again. An adapter calls it
// after Publish and before acknowledging a QoS 1/2 message, so that a
// publisher outrunning its subscribers is slowed instead of having its
// acknowledged messages dropped. It reports false on timeout (the messages
// are kept either way).
func (s *Session) WaitForRoom(timeout time.Duration) bool {
	s.waitMu.Lock()
	waits := s.waits
	s.waits = nil
	s.waitMu.Unlock()
	if len(waits) == 0 {
		return true
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	for _, w := range waits {
		select {
		case <-w:
		case <-t.C:
			s.b.stats.BackpressureTimeouts.Add(1)
			return false
		}
	}
	return true
}

// SkipWait forgets what the session's last publications would wait for.
// An adapter whose publisher cannot be slowed (an MQTT-SN QoS 0 client
// over UDP, a CoAP connection) calls it after Publish instead of
// WaitForRoom: otherwise the channels pile up in the session and a later
// QoS 1/2 publication would wait for them too.
func (s *Session) SkipWait() {
	s.waitMu.Lock()
	s.waits = nil
	s.waitMu.Unlock()
}

// SetQueueLimit bounds this session's queue below the broker-wide
// session.max_queued (e.g. MQTT-SN's buffer for a sleeping client); n <= 0
// restores the broker-wide limit.
func (s *Session) SetQueueLimit(n int) {
	s.mu.Lock()
	s.queueLimit = n
	s.mu.Unlock()
}

// wb, when set, receives the message's record (if it has one, q.seq != 0)
// and the deletion of a dropped one.
func (s *Session) pushLocked(q queued, wb *store.Batch) {
	max := s.queueMax()
	if max > 0 && s.queue.len() >= max {
		s.b.stats.DroppedQueueFull.Add(1)
		s.dropped.Add(1)
		if s.b.cfg.QueueFullPolicy == DropNew {
			return
		}
		old := s.queue.popFront()
		s.deleteQueuedLocked(wb, &old)
	}
	s.putQueuedLocked(wb, &q)
	s.queue.pushBack(q)
}

// sendLocked assigns a packet id to a QoS 1/2 message, records it inflight
// and hands it to the sink. A QoS 0 message is just handed over. A stored
// message (q.seq != 0) gets its sent state and packet id written to wb
// when it is new (fresh) and, for QoS 2, always: a QoS 2 message must be
// resent under the same packet id after a restart.
func (s *Session) sendLocked(q queued, wb *store.Batch, fresh bool) {
	st := &s.b.stats
	d := Delivery{Msg: q.msg, QoS: q.qos, Retain: q.retain, SubIDs: q.ids, Filter: q.filter}
	if q.qos > 0 {
		d.ID = s.allocIDLocked()
		seq := q.seq
		if seq == 0 {
			s.seq++
			seq = s.seq
		}
		e := &inflightEntry{d: d, seq: seq, group: q.group, stored: q.seq != 0, tk: q.tk}
		s.addInflightLocked(d.ID, e)
		if wb != nil && q.seq != 0 && (fresh || q.qos == 2) {
			wb.PutMessage(s.messageRecord(seq, store.StateSent, d.ID, q.qos, q.retain, q.ids, q.filter, q.group, q.msg))
			if q.qos == 2 {
				s.awaitDurableLocked(e)
				return
			}
		}
	}
	if s.sink.Deliver(d) {
		st.MessagesSent.Add(1)
		st.BytesSent.Add(uint64(len(q.msg.Payload) + len(q.msg.Topic)))
		s.msgsOut.Add(1)
	} else if q.qos == 0 {
		st.DroppedQoS0.Add(1)
		s.dropped.Add(1)
	}
}

// allocIDLocked returns the next packet id not in use; the window is at
// most 65535 so one is always free when the window has room.
func (s *Session) allocIDLocked() uint16 {
	for {
		s.nextID++
		if s.nextID == 0 {
			s.nextID = 1
		}
		if _, busy := s.inflight[s.nextID]; !busy {
			return s.nextID
		}
	}
}

// drainLocked moves queued messages into the inflight window, dropping
// those that expired while they waited [MQTT-3.3.2-5].
func (s *Session) drainLocked() {
	if s.sink == nil || s.paused {
		return
	}
	for s.unsent > 0 && len(s.inflight)-s.unsent < s.window {
		s.resendOldestUnsentLocked()
	}
	if s.queue.len() == 0 {
		return
	}
	now := time.Now()
	defer func() {
		if s.room != nil && s.queue.len() < s.queueMax() {
			s.releaseRoomLocked()
		}
	}()
	for s.queue.len() > 0 {
		if f := s.queue.front(); f.qos > 0 && len(s.inflight) >= s.window {
			return
		}
		q := s.queue.popFront()
		if q.msg.Expired(now) {
			s.b.stats.DroppedExpired.Add(1)
			s.deleteQueuedLocked(s.pwLocked(nil), &q)
			continue
		}
		var wb *store.Batch
		if q.seq != 0 && q.qos == 2 {
			wb = s.pwLocked(q.tk)
		}
		s.sendLocked(q, wb, false)
	}
}

func (s *Session) resendOldestUnsentLocked() {
	var oldest *inflightEntry
	for _, e := range s.inflight {
		if e.unsent && (oldest == nil || e.seq < oldest.seq) {
			oldest = e
		}
	}
	if oldest == nil {
		s.unsent = 0
		return
	}
	oldest.unsent = false
	s.unsent--
	d := oldest.d
	d.Dup = true
	s.sink.Deliver(d)
}

// Acked completes an outbound delivery: PUBACK for QoS 1, PUBCOMP for
// QoS 2 (or a negative acknowledgement that discards it). It returns false
// for an unknown id.
func (s *Session) Acked(id uint16) bool {
	s.mu.Lock()
	ok := s.ackLocked(id)
	s.mu.Unlock()
	// Deleting an acknowledged message need not be durable: losing it in
	// a crash costs a redelivery, and a QoS 2 one is then already in the
	// durable received state (see Received), so only PUBREL is resent.
	s.flushWrites(false)
	return ok
}

func (s *Session) ackLocked(id uint16) bool {
	e, ok := s.inflight[id]
	if !ok {
		return false
	}
	if e.unsent {
		s.unsent--
	}
	if e.stored {
		if wb := s.pwLocked(e.tk); wb != nil {
			wb.DeleteMessage(s.clientID, e.seq)
		}
	}
	delete(s.inflight, id)
	s.drainLocked()
	return true
}

// InflightCount returns the number of unacknowledged outbound deliveries.
func (s *Session) InflightCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.inflight)
}

// QueuedCount returns the number of messages waiting behind the window.
func (s *Session) QueuedCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queue.len()
}

// DisconnectOptions describe how a connection ended.
type DisconnectOptions struct {
	// PublishWill is true for every end except a clean disconnect
	// [MQTT-3.1.2-8], [MQTT-3.1.2-10].
	PublishWill bool
}

// Disconnect detaches sink from the session when its connection ends. It
// is a no-op if sink no longer holds the session (it was taken over). A
// session with zero expiry ends now; otherwise it stays, offline, until
// its expiry.
func (s *Session) Disconnect(sink Sink, o DisconnectOptions) {
	s.mu.Lock()
	if s.sink != sink || sink == nil {
		s.mu.Unlock()
		return
	}
	s.sink = nil
	s.online.Store(false)
	s.since.Store(time.Now().UnixNano())
	s.b.detachConnection()
	s.releaseRoomLocked()
	will := s.will
	s.will = nil
	if !o.PublishWill {
		will = nil
	}
	var publishNow *Will
	end := s.expiry == 0
	if end {
		s.ended = true
		s.stopTimersLocked()
		if will != nil {
			publishNow = will
		}
	} else {
		if s.expiry != NeverExpire {
			s.timer = time.AfterFunc(s.expiry, func() { s.b.expireSession(s) })
		}
		if will != nil {
			if will.Delay <= 0 {
				publishNow = will
			} else {
				s.pending = will
				s.willTmr = time.AfterFunc(will.Delay, s.fireDelayedWill)
			}
		}
		if wb := s.pwLocked(nil); wb != nil {
			// The expiry clock counts from now, also across a restart.
			now := time.Now()
			wb.PutSession(s.sessionRecordLocked(now))
			if s.pending != nil && s.pending == will {
				w := *will
				w.stored = true
				s.pending = &w
				wb.PutWill(&store.PendingWill{ClientID: s.clientID, Due: now.Add(will.Delay), Msg: willRecord(will)})
			}
		}
	}
	var orphans []queued
	if !end {
		// Queued (never sent) shared messages can go to a member that is
		// online now; inflight ones stay, to be completed on reconnect
		// [MQTT-4.8.2-4].
		orphans = s.takeSharedLocked(false)
	}
	s.mu.Unlock()
	if end {
		s.b.endSession(s)
	} else {
		s.flushWrites(false)
		if len(orphans) > 0 {
			w := s.b.newWrites()
			s.b.redistribute(s, orphans, true, w)
			s.b.commit(w, false)
		}
	}
	if publishNow != nil {
		s.b.publishWill(publishNow, s.clientID)
	}
}

func (s *Session) fireDelayedWill() {
	s.mu.Lock()
	m := s.takePendingWillLocked()
	s.mu.Unlock()
	if m != nil {
		s.b.publishWill(m, s.clientID)
	}
}

// Kick closes the session's connection, if any, with reason (the
// management API's kick, Broker.Kick); it reports whether there was one.
func (s *Session) Kick(reason error) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sink != nil {
		s.sink.Close(reason)
		return true
	}
	return false
}

// dropSubscriptions removes every subscription of an ended session from
// the trie and shared groups and releases its queues.
//
// Messages a shared group had chosen this session for, queued or inflight
// but not yet received, go to another member rather than being lost
// [MQTT-4.8.2-5].
func (b *Broker) dropSubscriptions(s *Session) {
	s.mu.Lock()
	s.dropStoredLocked() // before the queue and inflight go: it waits for their puts
	subs := s.subs
	s.subs = make(map[string]*subscriber)
	orphans := s.takeSharedLocked(true)
	s.inflight = nil
	s.unsent = 0
	s.awaiting = nil
	s.queue.clear()
	s.releaseRoomLocked()
	s.mu.Unlock()
	s.flushWrites(true)
	for f, sub := range subs {
		b.removeSub(s, f, sub)
	}
	w := b.newWrites()
	b.redistribute(s, orphans, false, w)
	b.commit(w, true)
}

// addInflightLocked records an outbound QoS 1/2 delivery, making the map
// on first use. s.mu must be held (or the session not yet shared).
func (s *Session) addInflightLocked(id uint16, e *inflightEntry) {
	if s.inflight == nil {
		s.inflight = make(map[uint16]*inflightEntry)
	}
	s.inflight[id] = e
}

// holdQoS2Locked records an inbound QoS 2 packet id until its PUBREL,
// making the map on first use. s.mu must be held (or the session not yet
// shared).
func (s *Session) holdQoS2Locked(id uint16) {
	if s.inQoS2 == nil {
		s.inQoS2 = make(map[uint16]struct{})
	}
	s.inQoS2[id] = struct{}{}
}
