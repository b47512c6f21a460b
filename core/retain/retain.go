// Package retain implements the retained-message store: at most one value
// per concrete topic, organised by topic level so that a subscription's
// filter can be answered by walking only the matching branches instead of
// scanning every retained message.
//
// Topic and wildcard rules are those of package core/topic: levels are split
// by '/', empty levels are real levels, '+' matches exactly one level, '#'
// matches any number of levels including the parent level, filters starting
// with a wildcard do not match topics starting with '$', and matching is
// case sensitive. The store does not validate topics or filters; callers do
// that once at the protocol edge.
package retain

import (
	"strings"
	"sync"

	"github.com/iotgw/iotgw/core/topic"
)

// Store holds one value per concrete topic, organised by topic levels so
// that a filter can be walked without scanning everything. A Store is safe
// for concurrent use; its zero value is an empty store ready to use.
type Store[V any] struct {
	mu   sync.RWMutex
	root node[V]
	n    int
}

// node is one topic level. topic is the full topic of the value held here,
// kept so callbacks receive it without rebuilding it from the path.
type node[V any] struct {
	children map[string]*node[V]
	topic    string
	val      V
	has      bool
}

// New returns an empty Store.
func New[V any]() *Store[V] {
	return &Store[V]{}
}

// Set stores v as the retained value for topic, reporting whether it
// replaced an existing value. topic must be a valid topic name.
func (s *Store[V]) Set(topic string, v V) (replaced bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.setLocked(topic, v)
}

// SetWithin is Set for a store bounded to max topics: it replaces the
// value of a topic already held, or adds topic while fewer than max are
// held; otherwise it stores nothing and reports ok false. The check and
// the store are done under one lock, so concurrent callers never take the
// store beyond max. A max of zero or less means no bound.
func (s *Store[V]) SetWithin(topic string, v V, max int) (replaced, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if max > 0 && s.n >= max && !s.hasLocked(topic) {
		return false, false
	}
	return s.setLocked(topic, v), true
}

func (s *Store[V]) setLocked(topic string, v V) (replaced bool) {
	n := &s.root
	src, cloned, off := topic, false, 0
	for {
		level, more := cutAt(src, off)
		c := n.children[level]
		if c == nil {
			if !cloned {
				// Keys and the stored topic outlive the call; copy once
				// so they never alias (and pin) a caller's buffer. All
				// new levels are then substrings of this one copy.
				src, cloned = strings.Clone(topic), true
				level = src[off : off+len(level)]
			}
			c = &node[V]{}
			if n.children == nil {
				n.children = make(map[string]*node[V])
			}
			n.children[level] = c
		}
		n = c
		if !more {
			break
		}
		off += len(level) + 1
	}
	replaced = n.has
	if !replaced {
		if !cloned {
			// The path existed (as a prefix of another topic) but held
			// no value yet.
			src = strings.Clone(topic)
		}
		n.topic = src
		n.has = true
		s.n++
	}
	n.val = v
	return replaced
}

// Delete removes the value for topic and prunes branches left empty,
// reporting whether a value was present.
func (s *Store[V]) Delete(topic string) (deleted bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !deleteFrom(&s.root, topic) {
		return false
	}
	s.n--
	return true
}

func deleteFrom[V any](n *node[V], rest string) bool {
	level, more := cutAt(rest, 0)
	c := n.children[level]
	if c == nil {
		return false
	}
	if more {
		if !deleteFrom(c, rest[len(level)+1:]) {
			return false
		}
	} else {
		if !c.has {
			return false
		}
		var zero V
		c.val, c.topic, c.has = zero, "", false // do not pin the value
	}
	if !c.has && len(c.children) == 0 {
		delete(n.children, level)
		if len(n.children) == 0 {
			n.children = nil // maps never shrink; release the buckets
		}
	}
	return true
}

// Get returns the value retained for topic.
func (s *Store[V]) Get(topic string) (V, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.getLocked(topic)
}

func (s *Store[V]) hasLocked(topic string) bool {
	_, ok := s.getLocked(topic)
	return ok
}

func (s *Store[V]) getLocked(topic string) (V, bool) {
	n := &s.root
	for off := 0; ; {
		level, more := cutAt(topic, off)
		if n = n.children[level]; n == nil {
			var zero V
			return zero, false
		}
		if !more {
			return n.val, n.has
		}
		off += len(level) + 1
	}
}

// Len returns the number of retained topics.
func (s *Store[V]) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.n
}

// Match calls fn for every stored topic matching filter, stopping early when
// fn returns false. filter must be a valid topic filter (the inner filter
// of a shared subscription, not the "$share/..." form). The order is
// unspecified.
//
// Match holds the read lock while calling fn, so fn must not call back into
// the Store: a Set or Delete would deadlock, and even a nested read can
// deadlock once a writer is waiting. Copy what you need and act afterwards.
func (s *Store[V]) Match(filter string, fn func(topic string, v V) bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	walk(&s.root, filter, true, fn)
}

// walk visits the values under n matching filter, whose first level applies
// to n's children. root marks the top level, where the '$' rule applies.
// It returns false once fn has asked to stop.
func walk[V any](n *node[V], filter string, root bool, fn func(string, V) bool) bool {
	level, more := cutAt(filter, 0)
	rest := ""
	if more {
		rest = filter[len(level)+1:]
	}
	switch level {
	case "#":
		// '#' includes the parent level: "a/#" matches "a"
		// [MQTT-4.7.1-2]. At the root there is no parent topic.
		if !root && n.has && !fn(n.topic, n.val) {
			return false
		}
		for name, c := range n.children {
			if root && topic.IsDollar(name) {
				continue // [MQTT-4.7.2-1]
			}
			if !all(c, fn) {
				return false
			}
		}
	case "+":
		for name, c := range n.children {
			if root && topic.IsDollar(name) {
				continue // [MQTT-4.7.2-1]
			}
			if !visit(c, rest, more, fn) {
				return false
			}
		}
	default:
		if c := n.children[level]; c != nil {
			return visit(c, rest, more, fn)
		}
	}
	return true
}

// visit handles node c that has just matched one filter level: either the
// filter is used up and c's own value is the candidate, or the walk goes on.
func visit[V any](c *node[V], rest string, more bool, fn func(string, V) bool) bool {
	if more {
		return walk(c, rest, false, fn)
	}
	if c.has {
		return fn(c.topic, c.val)
	}
	return true
}

// all visits every value at or below n.
func all[V any](n *node[V], fn func(string, V) bool) bool {
	if n.has && !fn(n.topic, n.val) {
		return false
	}
	for _, c := range n.children {
		if !all(c, fn) {
			return false
		}
	}
	return true
}

// Range calls fn for every retained topic, stopping early when fn returns
// false; it is meant for expiry sweeps and statistics. The same locking
// rules as Match apply: collect expired topics and Delete them after Range
// returns.
func (s *Store[V]) Range(fn func(topic string, v V) bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	all(&s.root, fn)
}

// cutAt returns the level of s starting at byte off and whether another
// level follows it. Keeping "more" separate from an empty remainder is what
// distinguishes "a/" (two levels) from "a" (one).
func cutAt(s string, off int) (level string, more bool) {
	s = s[off:]
	if i := strings.IndexByte(s, '/'); i >= 0 {
		return s[:i], true
	}
	return s, false
}
