package core

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/iotgw/iotgw/core/store"
	"github.com/iotgw/iotgw/core/topic"
)

// Recover loads the store's state into the broker (a no-op without a
// store). Call it once, after New and before any client connects.
//
// Clocks: a session's expiry counts from its recorded disconnect time; a
// session that was connected when the gateway stopped (a crash, or a
// connection still open) counts from now, the restart, and its will is
// handled as for a connection lost now. Message expiry, will delays and
// $delayed due times are absolute and keep counting across the downtime:
// what expired meanwhile is dropped, what fell due meanwhile is published
// now.
func (b *Broker) Recover(ctx context.Context) error {
	if b.store == nil {
		return nil
	}
	start := time.Now()
	r := &recovery{b: b, now: start, sessions: make(map[string]*Session)}
	err := b.store.Load(ctx, store.Handler{
		Session:      r.session,
		Subscription: r.subscription,
		Inbound:      r.inbound,
		Registration: r.registration,
		Message:      r.message,
		Retained:     r.retained,
		Will:         r.will,
		Delayed:      r.delayed,
		Ban: func(rec *store.Ban) error {
			b.bans.recover(rec, r.now, &r.cleanup)
			return nil
		},
	}.Handle)
	if err != nil {
		return err
	}
	// Records of sessions that no longer exist (a put that raced with the
	// session's end) and expired records are removed before any client
	// connects.
	if r.cleanup.Len() > 0 {
		if err := b.store.Commit(ctx, &r.cleanup, true); err != nil {
			return err
		}
	}
	for _, s := range r.order {
		r.arm(s)
	}
	for _, f := range r.later {
		f()
	}
	b.log.Info("store recovered", zap.Int("sessions", len(r.order)), zap.Int("messages", r.messages),
		zap.Int("retained", r.retainedN), zap.Int("bans", int(b.bans.n.Load())), zap.Duration("took", time.Since(start)))
	return nil
}

// recovery is the state of one Recover.
type recovery struct {
	b         *Broker
	now       time.Time
	sessions  map[string]*Session
	order     []*Session
	disc      map[*Session]time.Time
	cleanup   store.Batch
	later     []func()
	messages  int
	retainedN int
}

func (r *recovery) session(rec *store.Session) error {
	b := r.b
	info := &ClientInfo{Protocol: rec.Protocol, ClientID: rec.ClientID, Username: rec.Username}
	s := &Session{
		b:         b,
		clientID:  rec.ClientID,
		key:       b.newSessionKey(rec.ClientID),
		paused:    true,
		expiry:    rec.Expiry,
		subs:      make(map[string]*subscriber),
		window:    b.cfg.MaxInflight,
		inflight:  make(map[uint16]*inflightEntry),
		inQoS2:    make(map[uint16]struct{}),
		persisted: true,
	}
	s.info.Store(info)
	disc := rec.DisconnectedAt
	if disc.IsZero() || rec.Will != nil {
		// Connected when the gateway stopped: the connection ended now,
		// without a clean disconnect, so its will is due. Recorded, so a
		// second restart counts from this one and publishes it once.
		if disc.IsZero() {
			disc = r.now
		}
		upd := *rec
		upd.DisconnectedAt, upd.Will = disc, nil
		r.cleanup.PutSession(&upd)
	}
	s.since.Store(disc.UnixNano())
	if rec.Will != nil {
		due := disc.Add(rec.Will.Delay)
		r.cleanup.PutWill(&store.PendingWill{ClientID: rec.ClientID, Due: due, Msg: rec.Will.Msg})
		s.pending = fromWillRecord(&rec.Will.Msg, rec.Will.Delay)
		s.pendingDue = due
	}
	if r.disc == nil {
		r.disc = make(map[*Session]time.Time)
	}
	r.disc[s] = disc
	r.sessions[rec.ClientID] = s
	r.order = append(r.order, s)
	b.shard(rec.ClientID).m[rec.ClientID] = s
	return nil
}

// owner returns the recovered session of a per-session record, or nil
// (and schedules the record's removal) for an orphan.
func (r *recovery) owner(clientID string) *Session {
	if s := r.sessions[clientID]; s != nil {
		return s
	}
	r.cleanup.DeleteSession(clientID)
	return nil
}

func (r *recovery) subscription(rec *store.Subscription) error {
	s := r.owner(rec.ClientID)
	if s == nil {
		return nil
	}
	group, inner, shared, err := topic.ParseShared(rec.Filter)
	if err != nil {
		return fmt.Errorf("%w: subscription %q of %q: %v", store.ErrCorrupt, rec.Filter, rec.ClientID, err)
	}
	opts := SubOptions{QoS: rec.QoS, NoLocal: rec.NoLocal, RetainAsPublished: rec.RetainAsPublished,
		RetainHandling: rec.RetainHandling, ID: rec.ID}
	sub := &subscriber{sess: s, opts: opts, filter: inner}
	if opts.ID != 0 {
		sub.ids = []uint32{opts.ID}
	}
	s.subs[rec.Filter] = sub
	if shared {
		r.b.addShared(group, inner, sub)
	} else {
		r.b.subs.Add(inner, s.key, sub)
	}
	return nil
}

func (r *recovery) inbound(rec *store.Inbound) error {
	if s := r.owner(rec.ClientID); s != nil {
		s.holdQoS2Locked(rec.PacketID)
	}
	return nil
}

func (r *recovery) registration(rec *store.Registration) error {
	if s := r.owner(rec.ClientID); s != nil {
		if s.adapterState == nil {
			s.adapterState = make(map[string][]byte)
		}
		s.adapterState[rec.Adapter] = rec.Data
	}
	return nil
}

func (r *recovery) message(rec *store.SessionMessage) error {
	s := r.owner(rec.ClientID)
	if s == nil {
		return nil
	}
	if rec.Seq > s.seq {
		s.seq = rec.Seq
	}
	var group *sharedGroup
	if rec.Share != "" {
		if sub := s.subs[rec.Share]; sub != nil {
			group = sub.shared
		}
	}
	var msg *Message
	if rec.Msg != nil {
		msg = fromRecord(rec.Msg)
	}
	switch rec.State {
	case store.StateQueued:
		// Expired ones are dropped (and deleted) when they reach the
		// window, as for messages that expire while queued.
		s.queue.pushBack(queued{msg: msg, qos: rec.QoS, retain: rec.Retain, ids: rec.SubIDs,
			filter: rec.Filter, group: group, seq: rec.Seq})
	case store.StateSent:
		if msg.Expired(r.now) {
			r.cleanup.DeleteMessage(rec.ClientID, rec.Seq)
			r.b.stats.DroppedExpired.Add(1)
			return nil
		}
		fallthrough
	case store.StateReceived:
		d := Delivery{Msg: msg, ID: rec.PacketID, QoS: rec.QoS, Retain: rec.Retain, SubIDs: rec.SubIDs, Filter: rec.Filter}
		// Start resends these (DUP, or PUBREL once received) in Seq order.
		// stored: the record is on disk, so the acknowledgement must delete
		// it, or the message comes back after the next restart.
		s.addInflightLocked(rec.PacketID, &inflightEntry{d: d, seq: rec.Seq, received: rec.State == store.StateReceived,
			group: group, stored: true})
		if rec.PacketID > s.nextID {
			s.nextID = rec.PacketID
		}
	}
	r.messages++
	return nil
}

func (r *recovery) retained(rec *store.Retained) error {
	m := fromRecord(&rec.Msg)
	if m.Expired(r.now) {
		r.cleanup.DeleteRetained(m.Topic)
		return nil
	}
	r.b.retained.Set(m.Topic, m)
	r.retainedN++
	return nil
}

func (r *recovery) will(rec *store.PendingWill) error {
	w := fromWillRecord(&rec.Msg, 0)
	wait := rec.Due.Sub(r.now)
	if s := r.sessions[rec.ClientID]; s != nil && s.pending == nil {
		// The session's reconnect cancels it, its expiry publishes it.
		s.pending = w
		s.pendingDue = rec.Due
		return nil
	}
	b := r.b
	r.later = append(r.later, func() {
		time.AfterFunc(max(wait, 0), func() { b.publishWill(w, rec.ClientID) })
	})
	return nil
}

func (r *recovery) delayed(rec *store.Delayed) error {
	b := r.b
	if rec.ID > b.delayedSeq.Load() {
		b.delayedSeq.Store(rec.ID)
	}
	b.stats.DelayedPending.Add(1)
	m := fromRecord(&rec.Msg)
	id, wait := rec.ID, rec.Due.Sub(r.now)
	r.later = append(r.later, func() { b.scheduleDelayed(m, id, max(wait, 0)) })
	return nil
}

// arm starts a recovered session's clocks: its expiry from its disconnect
// time (or now), and its pending will.
func (r *recovery) arm(s *Session) {
	disc := r.disc[s]
	s.mu.Lock()
	if s.pending != nil {
		s.willTmr = time.AfterFunc(max(s.pendingDue.Sub(r.now), 0), s.fireDelayedWill)
	}
	if s.expiry != NeverExpire {
		left := s.expiry - r.now.Sub(disc)
		s.timer = time.AfterFunc(max(left, 0), func() { s.b.expireSession(s) })
	}
	s.mu.Unlock()
}
