package stomp

import (
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/iotgw/iotgw/core"
)

// sessState is the adapter's half of one core session: the routes that
// map core subscription identifiers onto STOMP subscriptions, and the
// connection bound to it now. A client without client-id has one per
// connection; a persistent session (client-id, session_expiry > 0) keeps
// it in the server's registry for as long as the core session lives, so
// that the next connection with the client-id finds its subscriptions,
// message-ids and redelivery counts.
//
// Locks: subMu → Session.mu → conn.mu → mu. subMu serialises the
// subscription changes that call the core (SUBSCRIBE, UNSUBSCRIBE, the
// resubscribe timeout), so the core's subscriptions follow rt.groups; it
// is never taken on the delivery path. mu is taken inside conn.mu (by
// Deliver), so nothing holding mu takes conn.mu or calls the session.
type sessState struct {
	srv        *Server
	clientID   string
	sess       *core.Session
	persistent bool

	subMu sync.Mutex

	mu    sync.Mutex
	owner *conn  // the connection bound now; nil while offline
	gen   uint64 // changes on every bind and unbind, to void timers
	rt    routes
	timer *time.Timer
}

func newSessState(srv *Server, clientID string, sess *core.Session, persistent bool) *sessState {
	st := &sessState{srv: srv, clientID: clientID, sess: sess, persistent: persistent}
	st.rt.init()
	return st
}

// stateFor returns the state of the session a connection just obtained:
// the registered one if it belongs to the same core session (resumed),
// otherwise a new one, registered when the session is persistent.
func (s *Server) stateFor(clientID string, sess *core.Session, persistent bool) *sessState {
	if !persistent {
		return newSessState(s, clientID, sess, false)
	}
	s.smu.Lock()
	defer s.smu.Unlock()
	if st := s.states[clientID]; st != nil {
		if st.sess == sess {
			return st
		}
		// The session it belonged to has ended (its end hook may not
		// have run yet); a timer still armed is voided here.
		st.mu.Lock()
		st.stopTimerLocked()
		st.mu.Unlock()
	}
	st := newSessState(s, clientID, sess, true)
	s.states[clientID] = st
	return st
}

// sessionEnded is the core's end-of-session hook: a persistent session's
// routing state goes with the core session it belongs to (expired, or
// replaced by a clean start from any protocol).
func (s *Server) sessionEnded(sess *core.Session) {
	s.smu.Lock()
	st := s.states[sess.ClientID()]
	if st == nil || st.sess != sess {
		s.smu.Unlock()
		return
	}
	delete(s.states, sess.ClientID())
	s.smu.Unlock()
	st.mu.Lock()
	st.stopTimerLocked()
	st.mu.Unlock()
}

func (s *Server) unregister(st *sessState) {
	s.smu.Lock()
	if s.states[st.clientID] == st {
		delete(s.states, st.clientID)
	}
	s.smu.Unlock()
}

// PersistentSessions returns the number of persistent STOMP sessions the
// adapter keeps routing state for, online or not.
func (s *Server) PersistentSessions() int {
	s.smu.Lock()
	defer s.smu.Unlock()
	return len(s.states)
}

// restoreIfNew rebuilds the routing state of a session the core resumed
// but this adapter has never seen: the gateway restarted and recovered
// the session from its store. Without it the session's messages would
// carry subscription identifiers nobody knows and be completed unsent.
// The caller holds subMu, before bind and before the session starts.
func (st *sessState) restoreIfNew() {
	subs := st.sess.SubscriptionIDs()
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.rt.nextNum == 0 && len(st.rt.groups) == 0 && len(subs) > 0 {
		st.rt.restore(subs)
	}
}

func (st *sessState) stopTimerLocked() {
	if st.timer != nil {
		st.timer.Stop()
		st.timer = nil
	}
}

// bind makes c the connection of the session. It fails when c was closed
// meanwhile: a takeover by a newer connection, which must stay bound.
// The caller holds subMu.
func (st *sessState) bind(c *conn, v12 bool) bool {
	cfg := &st.srv.cfg
	c.eng.Lock()
	defer c.eng.Unlock()
	if c.eng.ClosingLocked() {
		return false
	}
	c.st = st
	st.mu.Lock()
	defer st.mu.Unlock()
	st.owner = c
	st.gen++
	st.stopTimerLocked()
	if st.rt.rebind(v12, cfg.MaxPendingQoS0, cfg.MaxRedeliveries) {
		gen := st.gen
		st.timer = time.AfterFunc(cfg.ResubscribeTimeout, func() { st.resubscribeExpired(gen) })
	}
	return true
}

// resubscribeExpired drops the subscriptions of an earlier connection
// that the client has not subscribed to again in time: their held
// messages are completed (dropped) and the core subscription removed.
func (st *sessState) resubscribeExpired(gen uint64) {
	st.subMu.Lock()
	defer st.subMu.Unlock()
	st.mu.Lock()
	if st.gen != gen || st.owner == nil {
		st.mu.Unlock()
		return
	}
	owner := st.owner
	var acks []uint16
	var filters []string
	held := 0
	for _, g := range st.rt.holdingGroups() {
		held += len(g.held)
		filters = append(filters, g.filter)
		acks = st.rt.drop(g, acks)
	}
	st.mu.Unlock()
	if len(filters) > 0 {
		owner.logAt(zap.InfoLevel, "subscriptions of the previous connection not renewed: dropped",
			zap.Strings("destinations", filters), zap.Int("held_messages", held),
			zap.Duration("resubscribe_timeout", st.srv.cfg.ResubscribeTimeout))
	}
	for _, f := range filters {
		st.sess.Unsubscribe(f)
	}
	for _, id := range acks {
		st.sess.AckedBy(owner, id)
	}
}

// unbind detaches c when its connection has ended (after the core
// session was told). A persistent session's state then waits for the
// next connection until the core session ends (sessionEnded).
func (st *sessState) unbind(c *conn) {
	ended := st.sess.Ended()
	st.mu.Lock()
	if st.owner != c {
		st.mu.Unlock()
		return
	}
	st.owner = nil
	st.gen++
	st.stopTimerLocked()
	// The core resends what is unacknowledged to the next connection;
	// the frames of this one are of no further use.
	st.rt.rebind(false, 0, 0)
	st.mu.Unlock()
	if st.persistent && ended {
		st.srv.unregister(st)
	}
}
