package ratelimit

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// Table keeps per-key state in two generations: lookups move an entry
// into the current one; the older generation is dropped whole when the
// current one holds half of max entries (so memory stays bounded under a
// flood of spoofed source addresses) or when period has passed since the
// last rotation (so idle keys are forgotten without a sweep). An entry
// dropped by time was untouched for at least one period: a bucket whose
// period is its refill time (burst/rate) is full again by then, a failure
// count whose period is its window has lapsed, so forgetting them loses
// nothing. A size rotation under a flood may forget live state early;
// it then errs towards the client (a fresh, full bucket) while the
// listener-wide bucket still bounds the total.
//
// Not safe for concurrent use; the owner locks.
type Table[K comparable, V any] struct {
	cur, old map[K]*V
	half     int
	period   int64
	rotated  int64
}

// NewTable returns a table of at most max entries (at least 2) whose idle
// entries are forgotten after one to two periods (0: by size only).
func NewTable[K comparable, V any](max int, period time.Duration, now int64) *Table[K, V] {
	half := max / 2
	if half < 1 {
		half = 1
	}
	return &Table[K, V]{cur: make(map[K]*V), old: make(map[K]*V), half: half, period: int64(period), rotated: now}
}

func (t *Table[K, V]) maybeRotate(now int64) {
	if t.period > 0 && now-t.rotated >= 2*t.period {
		// Idle for two periods: nothing kept is current.
		clear(t.old)
		clear(t.cur)
		t.rotated = now
		return
	}
	if len(t.cur) >= t.half || (t.period > 0 && now-t.rotated >= t.period) {
		t.old, t.cur = t.cur, make(map[K]*V, min(len(t.cur), t.half))
		t.rotated = now
	}
}

// Get returns key's entry, or nil.
func (t *Table[K, V]) Get(key K, now int64) *V {
	t.maybeRotate(now)
	if v := t.cur[key]; v != nil {
		return v
	}
	if v := t.old[key]; v != nil {
		delete(t.old, key)
		t.cur[key] = v
		return v
	}
	return nil
}

// Put adds or replaces key's entry.
func (t *Table[K, V]) Put(key K, v *V, now int64) {
	t.maybeRotate(now)
	delete(t.old, key)
	t.cur[key] = v
}

// Delete forgets key.
func (t *Table[K, V]) Delete(key K) {
	delete(t.cur, key)
	delete(t.old, key)
}

// Len returns the number of entries kept (both generations).
func (t *Table[K, V]) Len() int { return len(t.cur) + len(t.old) }

// Keyed is a token bucket per key (a source address), safe for
// concurrent use, in a bounded Table.
type Keyed[K comparable] struct {
	mu         sync.Mutex
	rate       float64
	burst      int
	tab        *Table[K, Bucket]
	refillTime time.Duration
}

// NewKeyed returns buckets of rate per second and burst per key, for at
// most maxKeys keys; nil when rate is 0 (callers check for nil: off).
func NewKeyed[K comparable](rate float64, burst, maxKeys int) *Keyed[K] {
	if rate <= 0 {
		return nil
	}
	// Idle keys are forgotten after their refill time, but not sooner
	// than a second: a fast bucket would otherwise rotate its table on
	// every call.
	refill := max(time.Duration(float64(time.Second)*float64(max(burst, 1))/rate), time.Second)
	return &Keyed[K]{rate: rate, burst: burst, tab: NewTable[K, Bucket](maxKeys, refill, Now()), refillTime: refill}
}

// Allow takes a token from key's bucket, or reports how long until one is
// there.
func (k *Keyed[K]) Allow(key K, now int64) (bool, time.Duration) {
	k.mu.Lock()
	defer k.mu.Unlock()
	b := k.tab.Get(key, now)
	if b == nil {
		nb := NewBucket(k.rate, k.burst, now)
		b = &nb
		k.tab.Put(key, b, now)
	}
	return b.Allow(now, 1)
}

// Len returns how many keys are tracked.
func (k *Keyed[K]) Len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.tab.Len()
}

// Shared is one bucket safe for concurrent use (a listener's connection
// rate).
type Shared struct {
	mu sync.Mutex
	b  Bucket
}

// NewShared returns a shared bucket; nil when rate is 0 (off).
func NewShared(rate float64, burst int) *Shared {
	if rate <= 0 {
		return nil
	}
	return &Shared{b: NewBucket(rate, burst, Now())}
}

// Allow takes a token, or reports how long until one is there.
func (s *Shared) Allow(now int64) (bool, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Allow(now, 1)
}

// AddrKey is the key of a source address in per-address limits: an IPv4
// address itself (also when IPv4-mapped), an IPv6 address's /64 — one
// host commonly holds a whole /64, so a per-address limit keyed by the
// full IPv6 address would be no limit. The zero Addr for what is not an
// address.
func AddrKey(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a.WithZone("")
}

// ParseAddr reads the IP address of a remote as adapters name it:
// "host:port", a bare address, or either followed by more (MQTT-SN's
// forwarder-encapsulated peers); false when none is found.
func ParseAddr(remote string) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		return ap.Addr().Unmap(), true
	}
	if a, err := netip.ParseAddr(remote); err == nil {
		return a.Unmap(), true
	}
	if host, _, err := net.SplitHostPort(remote); err == nil {
		if a, err := netip.ParseAddr(host); err == nil {
			return a.Unmap(), true
		}
	}
	// "1.2.3.4:5/node" and the like: the longest parsable head.
	for i := len(remote) - 1; i > 0; i-- {
		switch remote[i] {
		case '/', '#', ' ', '|':
			if a, ok := ParseAddr(remote[:i]); ok {
				return a, true
			}
		}
	}
	return netip.Addr{}, false
}

// AddrOf is ParseAddr for a net.Addr.
func AddrOf(a net.Addr) (netip.Addr, bool) {
	switch a := a.(type) {
	case *net.TCPAddr:
		ip, ok := netip.AddrFromSlice(a.IP)
		return ip.Unmap(), ok
	case *net.UDPAddr:
		ip, ok := netip.AddrFromSlice(a.IP)
		return ip.Unmap(), ok
	case nil:
		return netip.Addr{}, false
	}
	return ParseAddr(a.String())
}
