package core

// What the management API reads and does: sessions listed and looked up
// by client id, kicked, subscribed on a client's behalf; messages
// published by the operator; retained messages listed and deleted. None
// of it is on the publish path: listing walks the session shards one at a
// time, each under its own lock.

import (
	"container/heap"
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/iotgw/iotgw/core/topic"
)

// ErrAdministrative ends a connection an operator closed (the management
// API's kick): MQTT 5 sees DISCONNECT 0x98 (administrative action), STOMP
// an ERROR frame, MQTT-SN a DISCONNECT, CoAP observers a final 5.03.
var ErrAdministrative = errors.New("administrative action")

// SessionInfo is a snapshot of one session for the management API.
type SessionInfo struct {
	ClientID string
	Protocol string
	Username string
	Listener string
	Remote   string
	// Connected is true while a connection holds the session; Since is
	// when it connected, or, offline, when it disconnected.
	Connected bool
	Since     time.Time
	KeepAlive time.Duration
	// Expiry is how long the session outlives its connection
	// (NeverExpire: forever).
	Expiry time.Duration
	// Subscriptions are the session's filters with their options, by
	// filter (only with SessionDetail).
	Subscriptions []SubscriptionInfo
	// SubscriptionCount, Inflight and Queued are counts now; MessagesIn
	// (published by the client), MessagesOut (handed to its connection)
	// and Dropped (deliveries lost for it: a full queue, QoS 0 while
	// offline or congested) count since the session began in this
	// process.
	SubscriptionCount int
	Inflight          int
	Queued            int
	MessagesIn        uint64
	MessagesOut       uint64
	Dropped           uint64
}

// SubscriptionInfo is one subscription of a session.
type SubscriptionInfo struct {
	ClientID string
	// Filter is the filter as subscribed ("$share/g/a/#" for a shared
	// one); Group is the share group ("" if not shared).
	Filter  string
	Group   string
	Options SubOptions
}

// SessionFilter selects sessions in ListSessions; zero fields match all.
type SessionFilter struct {
	Protocol string
	Username string
	// Prefix matches client ids that start with it.
	Prefix string
	// Connected, when set, keeps only connected (true) or offline (false)
	// sessions.
	Connected *bool
}

func (f *SessionFilter) match(s *Session) bool {
	if f.Prefix != "" && !strings.HasPrefix(s.clientID, f.Prefix) {
		return false
	}
	if f.Connected != nil && s.online.Load() != *f.Connected {
		return false
	}
	if f.Protocol != "" || f.Username != "" {
		info := s.info.Load()
		if f.Protocol != "" && info.Protocol != f.Protocol {
			return false
		}
		if f.Username != "" && info.Username != f.Username {
			return false
		}
	}
	return true
}

// idHeap is a max-heap of client ids: ListSessions keeps the limit
// smallest ids after the cursor in it, so a page costs one pass over the
// sessions and memory for one page, whatever the number of sessions.
type idHeap []*Session

func (h idHeap) Len() int           { return len(h) }
func (h idHeap) Less(i, j int) bool { return h[i].clientID > h[j].clientID }
func (h idHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *idHeap) Push(x any)        { *h = append(*h, x.(*Session)) }
func (h *idHeap) Pop() any {
	old := *h
	s := old[len(old)-1]
	*h = old[:len(old)-1]
	return s
}

// ListSessions returns up to limit sessions that match f, in client id
// order, starting after the client id after ("" from the start), and
// whether more follow. The client id of the last one is the cursor of
// the next page: a page holds what exists when it is read, so sessions
// added or removed between pages neither repeat nor shift the others.
func (b *Broker) ListSessions(f SessionFilter, after string, limit int) (page []SessionInfo, more bool) {
	if limit <= 0 {
		return nil, false
	}
	h := make(idHeap, 0, limit+1)
	n := 0 // sessions after the cursor that match
	for i := range b.shards {
		sh := &b.shards[i]
		sh.mu.Lock()
		for id, s := range sh.m {
			if id <= after || !f.match(s) {
				continue
			}
			n++
			if len(h) == limit && id >= h[0].clientID {
				continue
			}
			heap.Push(&h, s)
			if len(h) > limit {
				heap.Pop(&h)
			}
		}
		sh.mu.Unlock()
	}
	more = n > limit
	sort.Slice(h, func(i, j int) bool { return h[i].clientID < h[j].clientID })
	page = make([]SessionInfo, len(h))
	for i, s := range h {
		page[i] = s.Snapshot(false)
	}
	return page, more
}

// Session returns the session of a client id, if there is one.
func (b *Broker) Session(clientID string) (*Session, bool) {
	sh := b.shard(clientID)
	sh.mu.Lock()
	s, ok := sh.m[clientID]
	sh.mu.Unlock()
	return s, ok
}

// Snapshot returns the session's state; with subs, its subscriptions
// too.
func (s *Session) Snapshot(subs bool) SessionInfo {
	info := s.info.Load()
	si := SessionInfo{ClientID: s.clientID, Protocol: info.Protocol, Username: info.Username,
		Listener: info.Listener, Remote: info.Remote, KeepAlive: info.KeepAlive,
		Connected: s.online.Load(), Since: time.Unix(0, s.since.Load()),
		MessagesIn: s.msgsIn.Load(), MessagesOut: s.msgsOut.Load(), Dropped: s.dropped.Load()}
	s.mu.Lock()
	si.Expiry = s.expiry
	si.Inflight = len(s.inflight)
	si.Queued = s.queue.len()
	si.SubscriptionCount = len(s.subs)
	if subs {
		si.Subscriptions = s.subscriptionsLocked()
	}
	s.mu.Unlock()
	if !si.Connected {
		si.Remote = "" // the last address, not a live one
	}
	return si
}

func (s *Session) subscriptionsLocked() []SubscriptionInfo {
	out := make([]SubscriptionInfo, 0, len(s.subs))
	for f, sub := range s.subs {
		si := SubscriptionInfo{ClientID: s.clientID, Filter: f, Options: sub.opts}
		if g, _, shared, err := topic.ParseShared(f); err == nil && shared {
			si.Group = g
		}
		out = append(out, si)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Filter < out[j].Filter })
	return out
}

// Kick closes the connection of a client id with ErrAdministrative. found
// reports a session; connected, that it had a connection to close. The
// session itself stays as its expiry says (as after any disconnect).
func (b *Broker) Kick(clientID string) (found, connected bool) {
	s, ok := b.Session(clientID)
	if !ok {
		return false, false
	}
	return true, s.Kick(ErrAdministrative)
}

// SubscriptionFilter selects subscriptions in ListSubscriptions.
type SubscriptionFilter struct {
	ClientID string // exact
	// Topic keeps the subscriptions whose filter, without its $share
	// prefix, equals it.
	Topic string
	Group string // share group
}

// ListSubscriptions returns up to limit subscriptions that match f,
// ordered by client id then filter, starting after the cursor (client
// id, filter), and whether more follow.
func (b *Broker) ListSubscriptions(f SubscriptionFilter, afterID, afterFilter string, limit int) (page []SubscriptionInfo, more bool) {
	keep := func(si *SubscriptionInfo) bool {
		if f.Group != "" && si.Group != f.Group {
			return false
		}
		if f.Topic != "" {
			_, inner, _, err := topic.ParseShared(si.Filter)
			if err != nil || inner != f.Topic {
				return false
			}
		}
		return si.ClientID > afterID || (si.ClientID == afterID && si.Filter > afterFilter)
	}
	var all []SubscriptionInfo
	collect := func(s *Session) {
		s.mu.Lock()
		for _, si := range s.subscriptionsLocked() {
			if keep(&si) {
				all = append(all, si)
			}
		}
		s.mu.Unlock()
	}
	if f.ClientID != "" {
		if s, ok := b.Session(f.ClientID); ok && s.clientID >= afterID {
			collect(s)
		}
	} else {
		for i := range b.shards {
			sh := &b.shards[i]
			sh.mu.Lock()
			ss := make([]*Session, 0, len(sh.m))
			for id, s := range sh.m {
				if id >= afterID {
					ss = append(ss, s)
				}
			}
			sh.mu.Unlock()
			for _, s := range ss {
				collect(s)
			}
		}
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].ClientID != all[j].ClientID {
			return all[i].ClientID < all[j].ClientID
		}
		return all[i].Filter < all[j].Filter
	})
	if len(all) > limit {
		return all[:limit], true
	}
	return all, false
}

// SubscribeFor subscribes a client's session to filter on its behalf,
// authorized as that client, and sends it the retained messages the
// subscription gets. ErrSessionClosed: no such session.
func (b *Broker) SubscribeFor(clientID, filter string, opts SubOptions) error {
	s, ok := b.Session(clientID)
	if !ok {
		return ErrSessionClosed
	}
	r := s.Subscribe(filter, opts)
	if r.Err != nil {
		return r.Err
	}
	s.SendRetained(r)
	return nil
}

// UnsubscribeFor removes a subscription of a client's session; false if
// it had none to filter (or there is no such session).
func (b *Broker) UnsubscribeFor(clientID, filter string) bool {
	s, ok := b.Session(clientID)
	return ok && s.Unsubscribe(filter)
}

// PublishMatched publishes a message from the operator, as Publish does,
// and reports whether any subscription matched its topic when it was
// routed (the API's 200 against 202). A $delayed message counts as
// matched: its subscribers are known only when it is due.
func (b *Broker) PublishMatched(msg *Message) (matched bool, err error) {
	matched = strings.HasPrefix(msg.Topic, delayedPrefix) || len(b.subs.Match(msg.Topic)) > 0
	if err := b.Publish(msg); err != nil {
		return false, err
	}
	return matched, nil
}

// ListRetained returns up to limit retained messages whose topics match
// filter ("#" for all), in topic order after the topic after, and whether
// more follow.
func (b *Broker) ListRetained(filter, after string, limit int) (page []*Message, more bool, err error) {
	if err := topic.ValidateFilter(filter); err != nil {
		return nil, false, ErrInvalidFilter
	}
	now := time.Now()
	b.retained.Match(filter, func(t string, m *Message) bool {
		if t > after && !m.Expired(now) {
			page = append(page, m)
		}
		return true
	})
	sort.Slice(page, func(i, j int) bool { return page[i].Topic < page[j].Topic })
	if len(page) > limit {
		return page[:limit], true, nil
	}
	return page, false, nil
}

// DeleteRetained removes the retained message of a topic, durably with a
// store; false if there was none.
func (b *Broker) DeleteRetained(topicName string) (bool, error) {
	if _, ok := b.Retained(topicName); !ok {
		return false, nil
	}
	// Recorded as an empty retained message, as a client's deletion is,
	// but not routed: nobody is told.
	msg := &Message{Topic: topicName, Retain: true}
	w := b.newWrites()
	b.retained.Delete(topicName)
	storeRetained(w, msg)
	return true, b.commit(w, true)
}

// ConnectedBy counts the connected sessions by protocol and listener
// key ("mqtt.tcp", "coap.udp"), in one pass over the sessions.
func (b *Broker) ConnectedBy() map[string]int {
	m := map[string]int{}
	for i := range b.shards {
		sh := &b.shards[i]
		sh.mu.Lock()
		for _, s := range sh.m {
			if s.online.Load() {
				info := s.info.Load()
				m[info.Protocol+"."+info.Listener]++
			}
		}
		sh.mu.Unlock()
	}
	return m
}
