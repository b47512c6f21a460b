package topic

import (
	"strings"
	"sync"
	"sync/atomic"
)

const (
	// defaultCacheLimit bounds how many distinct topics one match cache
	// holds. Publishers choose topics freely, so without a bound a stream
	// of unique topics would grow the cache without limit.
	defaultCacheLimit = 1 << 16

	// indexThreshold is the number of entries at one node above which a
	// key->position map is kept. Most filters have a handful of
	// subscribers, where a linear scan beats hashing and saves a map per
	// node; popular filters (fleet-wide "#" subscriptions, big shared
	// groups) would otherwise make each subscribe O(n).
	indexThreshold = 8

	// maxScratch is the largest match buffer returned to the pool, so one
	// huge fan-out does not pin a large buffer in every P's pool.
	maxScratch = 1 << 14
)

// Trie maps topic filters to subscribers. V is the subscriber value; key
// identifies a subscriber within one filter (for example a session id, or
// "share:group" for a shared-subscription group), so one filter can hold
// many values and one subscriber can hold many filters.
//
// Filters must be valid (see ValidateFilter) and must be the inner filter of
// a shared subscription, not the "$share/..." form; the Trie does not
// re-validate them, for speed.
//
// A Trie is safe for concurrent use. Mutations take a write lock; Match is
// served from a lock-free cache when possible and otherwise walks the trie
// under a read lock. The zero value is ready to use, but NewTrie is the
// conventional constructor.
type Trie[V any] struct {
	mu   sync.RWMutex
	root node[V] // guarded by mu
	n    int     // number of (filter, key) entries; guarded by mu

	gen   atomic.Uint64
	cache atomic.Pointer[matchCache]

	// cacheLimit overrides defaultCacheLimit when positive; tests use it.
	cacheLimit int64

	scratch sync.Pool // of *[]V, reused walk buffers
}

// matchCache maps a topic to a *cached[V] holding the result of matching
// it. A cache object is only ever filled with results computed from the
// single trie state that was current when it was installed: see Match.
type matchCache struct {
	m     sync.Map      // string -> *cached[V]
	gen   atomic.Uint64 // the trie generation every entry describes (see mutated)
	n     atomic.Int64  // entries stored
	hits  atomic.Int64  // entries that were hit at least once
	skips atomic.Int64  // misses not stored because the cache was full
}

// cached is one cache entry. hit is set on the entry's first hit only, so
// steady-state hits do not write shared memory.
type cached[V any] struct {
	res []V
	hit atomic.Bool
}

// admit decides, on a miss, whether to store the new result (insert) or to
// replace the whole cache first (reset). It is called under the read lock.
//
// A cache that fills up is reset at once if it proved useful (at least a
// quarter of its entries were hit), so a changing hot set is relearned. A
// cache full of topics that were never repeated (many devices each
// publishing its own topic, or a cycle longer than the cache) is kept but
// no longer grown: inserting would cost more than the walk it could save.
// It is still reset after 8×limit such misses so that a later shift to a
// repetitive workload gets cached again.
func (c *matchCache) admit(limit int64) (insert, reset bool) {
	switch {
	case c.n.Load() < limit:
		return true, false
	case c.hits.Load() >= limit/4:
		return false, true
	case c.skips.Add(1) >= 8*limit:
		return false, true
	}
	return false, false
}

// node is one level of the trie. Literal levels live in children; the '+'
// and '#' wildcards get dedicated pointers so a walk never hashes them.
type node[V any] struct {
	children map[string]*node[V]
	plus     *node[V]
	hash     *node[V]

	// keys and vals are parallel so Match can append vals in one copy.
	keys  []string
	vals  []V
	index map[string]int // key -> position; only when len(keys) > indexThreshold
}

// NewTrie returns an empty Trie.
func NewTrie[V any]() *Trie[V] {
	return &Trie[V]{}
}

// Add stores v for (filter, key). If the pair already exists its value is
// replaced and Add returns false; otherwise it returns true.
func (t *Trie[V]) Add(filter, key string, v V) (added bool) {
	added, _ = t.AddGen(filter, key, v)
	return added
}

// AddGen is Add also returning the generation of the first trie state that
// holds v: a MatchGen reporting a generation at least gen saw v (unless it
// was removed again), one reporting less did not.
func (t *Trie[V]) AddGen(filter, key string, v V) (added bool, gen uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()

	n := &t.root
	src, cloned, off := filter, false, 0
	for {
		level, _, more := cut(src[off:])
		c := n.child(level)
		if c == nil {
			if !cloned {
				// Map keys outlive the call; take them from a private
				// copy so a level never pins a caller's larger string
				// (for example a whole decoded packet).
				src, cloned = strings.Clone(filter), true
				level = src[off : off+len(level)]
			}
			c = &node[V]{}
			n.setChild(level, c)
		}
		n = c
		if !more {
			break
		}
		off += len(level) + 1
	}
	added = n.put(key, v)
	if added {
		t.n++
	}
	// A replacement changes what Match returns, so it invalidates too.
	t.mutated()
	return added, t.gen.Load()
}

// Remove deletes the (filter, key) entry and prunes nodes left empty. It
// reports whether the entry existed.
func (t *Trie[V]) Remove(filter, key string) (removed bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !removeFrom(&t.root, filter, key) {
		return false
	}
	t.n--
	t.mutated()
	return true
}

// Get returns the value stored for (filter, key).
func (t *Trie[V]) Get(filter, key string) (V, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var zero V
	n := &t.root
	for rest, more := filter, true; more; {
		var level string
		level, rest, more = cut(rest)
		if n = n.child(level); n == nil {
			return zero, false
		}
	}
	if i := n.find(key); i >= 0 {
		return n.vals[i], true
	}
	return zero, false
}

// Len returns the number of (filter, key) entries.
func (t *Trie[V]) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.n
}

// Generation returns a counter that increases on every mutation (every Add,
// and every Remove that removed something). Callers that derive their own
// data from Match results can compare generations to detect changes.
func (t *Trie[V]) Generation() uint64 {
	return t.gen.Load()
}

// Match returns the values of every entry whose filter matches topic, as
// the concatenation of each matching filter's values. The order is
// unspecified but stable for an unchanged trie. topic must be a valid topic
// name (see ValidateName); it is not re-validated.
//
// The returned slice is shared with the cache and with other callers: it is
// read-only. Do not modify its elements; appending to it is safe because its
// capacity equals its length, so append always copies.
//
// A Match that runs concurrently with a mutation may return the result from
// just before or just after it; a Match that starts after a mutation has
// returned always observes it.
func (t *Trie[V]) Match(topic string) []V {
	res, _ := t.MatchGen(topic)
	return res
}

// MatchGen is Match also returning the generation (see Generation) of the
// trie state the result was computed from, exactly: the result holds every
// value added at or before gen (see AddGen) and not removed by then, and
// nothing added later. A cached result reports the generation it was
// cached at, which may be older than Generation when a mutation runs
// concurrently (its result is then the one from just before it).
func (t *Trie[V]) MatchGen(topic string) ([]V, uint64) {
	// Fast path: no mutex. Whatever cache object we load holds only
	// results that were correct for the trie state it was installed for,
	// and it is replaced before any mutation returns.
	if c := t.cache.Load(); c != nil {
		if r, ok := c.m.Load(topic); ok {
			e := r.(*cached[V])
			if !e.hit.Load() && e.hit.CompareAndSwap(false, true) {
				c.hits.Add(1)
			}
			// c holds entries, so its generation no longer changes
			// (mutated replaces a cache that has any).
			return e.res, c.gen.Load()
		}
	}

	t.mu.RLock()
	res := t.match(topic)
	gen := t.gen.Load() // stable: mutations hold the write lock
	// The cache pointer must be loaded here, while the read lock that
	// covered the walk is still held. Mutations swap in a fresh cache
	// while holding the write lock, so under our read lock the current
	// cache belongs to exactly the trie state we walked, and a result can
	// never be filed into a cache describing a newer trie. Loading it
	// after RUnlock could do exactly that: a mutation may slip in between
	// and our stale result would then poison its fresh cache until the
	// next mutation. (Reusing the pointer from the fast path would only
	// file a newer result into a retired cache: harmless, but useless.)
	c := t.cache.Load()
	insert, reset := true, c == nil
	if c != nil {
		insert, reset = c.admit(t.limit())
	}
	if reset {
		// Swapping under the read lock is safe for the same reason as
		// above: no mutation can run while we hold it, so every cache
		// installed now describes the state we walked. The CAS lets
		// one of several racing readers do the reset.
		nc := new(matchCache)
		nc.gen.Store(gen)
		t.cache.CompareAndSwap(c, nc)
		c, insert = t.cache.Load(), true
	}
	if insert {
		// Clone the key: the cache outlives the call, and the caller's
		// topic may be a slice of a larger buffer.
		if _, loaded := c.m.LoadOrStore(strings.Clone(topic), &cached[V]{res: res}); !loaded {
			c.n.Add(1)
		}
	}
	t.mu.RUnlock()
	return res, gen
}

// limit returns the cache bound in entries.
func (t *Trie[V]) limit() int64 {
	if t.cacheLimit > 0 {
		return t.cacheLimit
	}
	return defaultCacheLimit
}

// mutated records a mutation. It must be called with the write lock held,
// which is what makes the cache swap safe (see Match).
//
// Every cache describes one generation (MatchGen reports it): a new one
// gets the current generation, and an empty one that is kept moves on to
// it, which is safe because it has no entry yet (entries are only added
// under the read lock, so none can be added meanwhile).
func (t *Trie[V]) mutated() {
	gen := t.gen.Add(1)
	// An empty cache holds nothing stale, and no reader can be filling it
	// while we hold the write lock, so keep it: bulk subscribes (session
	// restore, benchmarks) then do not allocate a cache per Add.
	c := t.cache.Load()
	switch {
	case c == nil:
	case c.n.Load() > 0:
		nc := new(matchCache)
		nc.gen.Store(gen)
		t.cache.Store(nc)
	default:
		c.gen.Store(gen)
	}
}

// match walks the trie for topic. It must be called with mu held (read or
// write). The only allocation is the exact-size result; the walk appends
// into a pooled scratch buffer and recursion passes substrings.
func (t *Trie[V]) match(topic string) []V {
	bp, _ := t.scratch.Get().(*[]V)
	if bp == nil {
		bp = new([]V)
	}
	out := (*bp)[:0]

	root := &t.root
	level, rest, more := cut(topic)
	// Wildcards at the first level never match '$' topics [MQTT-4.7.2-1].
	if !IsDollar(topic) {
		if root.hash != nil {
			out = append(out, root.hash.vals...)
		}
		if root.plus != nil {
			out = descend(root.plus, rest, more, out)
		}
	}
	if c := root.children[level]; c != nil {
		out = descend(c, rest, more, out)
	}

	var res []V
	if len(out) > 0 {
		res = make([]V, len(out))
		copy(res, out)
	}
	if cap(out) <= maxScratch {
		clear(out) // do not let the pool pin subscriber values
		*bp = out[:0]
		t.scratch.Put(bp)
	}
	return res
}

// descend appends the values under n, which has just consumed one topic
// level. more reports whether rest still holds levels. Each node is reached
// at most once per walk (a node sits at a fixed depth and each filter level
// consumes exactly one topic level), so results have no duplicates.
func descend[V any](n *node[V], rest string, more bool, out []V) []V {
	if !more {
		out = append(out, n.vals...)
		if n.hash != nil {
			// "a/#" matches "a": '#' includes the parent level
			// [MQTT-4.7.1-2].
			out = append(out, n.hash.vals...)
		}
		return out
	}
	if n.hash != nil {
		out = append(out, n.hash.vals...)
	}
	level, next, nmore := cut(rest)
	if n.plus != nil {
		// '+' matches exactly one level, even an empty one.
		out = descend(n.plus, next, nmore, out)
	}
	if c := n.children[level]; c != nil {
		out = descend(c, next, nmore, out)
	}
	return out
}

// removeFrom deletes key at filter below n and prunes n's child when it is
// left empty. It reports whether the entry existed.
func removeFrom[V any](n *node[V], filter, key string) bool {
	level, rest, more := cut(filter)
	c := n.child(level)
	if c == nil {
		return false
	}
	var ok bool
	if more {
		ok = removeFrom(c, rest, key)
	} else {
		ok = c.del(key)
	}
	if ok && c.empty() {
		n.dropChild(level)
	}
	return ok
}

func (n *node[V]) child(level string) *node[V] {
	switch level {
	case "+":
		return n.plus
	case "#":
		return n.hash
	}
	return n.children[level]
}

func (n *node[V]) setChild(level string, c *node[V]) {
	switch level {
	case "+":
		n.plus = c
	case "#":
		n.hash = c
	default:
		if n.children == nil {
			n.children = make(map[string]*node[V])
		}
		n.children[level] = c
	}
}

func (n *node[V]) dropChild(level string) {
	switch level {
	case "+":
		n.plus = nil
	case "#":
		n.hash = nil
	default:
		delete(n.children, level)
		if len(n.children) == 0 {
			n.children = nil // maps never shrink; release the buckets
		}
	}
}

func (n *node[V]) empty() bool {
	return len(n.keys) == 0 && len(n.children) == 0 && n.plus == nil && n.hash == nil
}

func (n *node[V]) find(key string) int {
	if n.index != nil {
		if i, ok := n.index[key]; ok {
			return i
		}
		return -1
	}
	for i, k := range n.keys {
		if k == key {
			return i
		}
	}
	return -1
}

// put stores v under key, reporting whether key was new.
func (n *node[V]) put(key string, v V) bool {
	if i := n.find(key); i >= 0 {
		n.vals[i] = v
		return false
	}
	n.keys = append(n.keys, key)
	n.vals = append(n.vals, v)
	switch {
	case n.index != nil:
		n.index[key] = len(n.keys) - 1
	case len(n.keys) > indexThreshold:
		n.index = make(map[string]int, len(n.keys))
		for i, k := range n.keys {
			n.index[k] = i
		}
	}
	return true
}

// del removes key by moving the last entry into its slot, so removal is
// O(1) with the index; the order change is why Match order is unspecified.
func (n *node[V]) del(key string) bool {
	i := n.find(key)
	if i < 0 {
		return false
	}
	last := len(n.keys) - 1
	if i != last {
		n.keys[i], n.vals[i] = n.keys[last], n.vals[last]
		if n.index != nil {
			n.index[n.keys[i]] = i
		}
	}
	var zero V
	n.keys[last], n.vals[last] = "", zero // do not pin removed values
	n.keys, n.vals = n.keys[:last], n.vals[:last]
	if n.index != nil {
		delete(n.index, key)
		// Hysteresis: drop the index well below the threshold so a
		// node hovering around it does not rebuild on every change.
		if last <= indexThreshold/2 {
			n.index = nil
		}
	}
	if last == 0 {
		n.keys, n.vals = nil, nil
	}
	return true
}
