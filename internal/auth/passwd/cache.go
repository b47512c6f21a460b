package passwd

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"time"
)

// cache remembers successful verifications, so that a fleet reconnecting
// at once (a gateway restart, a network blip) costs one slow hash per
// device per TTL instead of one per connect.
//
// An entry is keyed by HMAC-SHA256 of the user name and the password
// under a key made at start and never stored: the cache holds no
// password, and its keys are useless outside this process. It is as
// strong as HMAC-SHA256 only against someone who can read the process's
// memory, who could read passwords off the connections anyway. An
// entry also holds the stored hash it was checked against, so a reload
// that changes a user's hash (a new password) misses it at once; a
// removed user is not in the file and never reaches the cache. Failures
// are never cached.
type cache struct {
	key [32]byte
	ttl time.Duration
	max int

	mu sync.Mutex
	m  map[[sha256.Size]byte]cached
}

type cached struct {
	stored string
	until  int64 // Unix ns
}

func newCache(ttl time.Duration, max int) *cache {
	c := &cache{ttl: ttl, max: max, m: make(map[[sha256.Size]byte]cached)}
	_, _ = rand.Read(c.key[:])
	return c
}

// sum is the entry key of a user name and password; the name's length
// comes first so that ("ab", "c") and ("a", "bc") differ.
func (c *cache) sum(user string, password []byte) [sha256.Size]byte {
	m := hmac.New(sha256.New, c.key[:])
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(user)))
	m.Write(n[:])
	m.Write([]byte(user))
	m.Write(password)
	var s [sha256.Size]byte
	m.Sum(s[:0])
	return s
}

// hit reports whether key was verified against stored within the TTL.
func (c *cache) hit(key [sha256.Size]byte, stored string) bool {
	now := time.Now().UnixNano()
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if ok && now >= e.until {
		delete(c.m, key)
		return false
	}
	return ok && e.stored == stored
}

// put remembers a success. A full cache first drops what expired, then,
// if still full, one entry whichever (Go's map order): for a cache sized
// well above the fleet that reconnects at once, exact LRU order buys
// nothing.
func (c *cache) put(key [sha256.Size]byte, stored string) {
	now := time.Now().UnixNano()
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[key]; !ok && len(c.m) >= c.max {
		for k, e := range c.m {
			if now >= e.until {
				delete(c.m, k)
			}
		}
		if len(c.m) >= c.max {
			for k := range c.m {
				delete(c.m, k)
				break
			}
		}
	}
	c.m[key] = cached{stored: stored, until: now + int64(c.ttl)}
}

// len is the number of entries (tests).
func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
