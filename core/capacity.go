package core

import "sync/atomic"

// The broker-wide limits that concurrent callers share (connections,
// pending $delayed messages) are counters taken with reserve: the check
// and the increment are one compare-and-swap, so no two callers can both
// take the last place. The retained store's bound is kept by the store
// under its own lock (retain.Store.SetWithin); the per-session limits
// (subscriptions, queue) are checked under Session.mu.

// reserve adds one to c unless c already holds max or more, and reports
// whether it did; max <= 0 means no bound. Unlike adding first and taking
// back what overshoots, a refused caller never shows in c, so a reader of
// the counter never sees more than max and a concurrent caller is never
// refused for a place that is only held for an instant.
func reserve(c *atomic.Int64, max int) bool {
	if max <= 0 {
		c.Add(1)
		return true
	}
	for {
		n := c.Load()
		if n >= int64(max) {
			return false
		}
		if c.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// admitConnection takes one of limits.max_connections' places for a
// connecting client, or reports that none is free. The place is given
// back by detachConnection when the connection leaves its session, or by
// Connect when it fails before attaching. A takeover needs a place of its
// own while the old connection still holds one, as when the limit was
// checked against ClientsConnected.
func (b *Broker) admitConnection() bool {
	return reserve(&b.slots, b.cfg.MaxConnections)
}

// detachConnection accounts for a connection leaving its session
// (disconnect or takeover) and frees its place.
func (b *Broker) detachConnection() {
	b.stats.ClientsConnected.Add(-1)
	b.slots.Add(-1)
}
