// Package ratelimit holds the token buckets of iotgw's limits: a bucket
// per connection (messages and bytes per second), per listener
// (connections per second) and per source address, and a bounded table
// that keeps per-key state (buckets, failed-login counts) without letting
// an address flood grow memory without bound.
//
// Times are monotonic nanoseconds from Now, so a wall-clock step neither
// refills nor drains a bucket.
package ratelimit

import (
	"math"
	"time"
)

// epoch anchors Now; time.Since reads the monotonic clock.
var epoch = time.Now()

// Now returns the current monotonic time in nanoseconds, the unit of every
// now argument in this package.
func Now() int64 { return int64(time.Since(epoch)) }

// Bucket is a token bucket: it holds up to burst tokens and refills at
// rate tokens per second. The zero Bucket is off (every take passes). It
// is not safe for concurrent use: a connection's bucket is used by its
// reader only; shared ones are guarded by their owner.
type Bucket struct {
	perNs  float64 // tokens per nanosecond; 0: off
	burst  float64
	tokens float64 // may be negative: a debt the next takes wait out
	last   int64
}

// NewBucket returns a full bucket refilling at rate per second up to
// burst (at least 1); a rate of 0 or less returns the zero, off, bucket.
func NewBucket(rate float64, burst int, now int64) Bucket {
	if rate <= 0 || math.IsNaN(rate) {
		return Bucket{}
	}
	b := float64(max(burst, 1))
	return Bucket{perNs: rate / 1e9, burst: b, tokens: b, last: now}
}

// On reports whether the bucket limits anything.
func (b *Bucket) On() bool { return b.perNs > 0 }

// refill adds what the time since the last update earned.
func (b *Bucket) refill(now int64) {
	if d := now - b.last; d > 0 {
		b.tokens = math.Min(b.burst, b.tokens+float64(d)*b.perNs)
		b.last = now
	}
}

// wait is how long until the balance reaches want tokens.
func (b *Bucket) wait(want float64) time.Duration {
	if b.tokens >= want {
		return 0
	}
	return time.Duration(math.Ceil((want - b.tokens) / b.perNs))
}

// Reserve takes n tokens, going into debt if need be, and returns how
// long the caller must wait before acting on them (0: at once). It never
// refuses: the wait is the limit. A connection's reader waits it out
// before reading on, which is what slows a TCP client to the rate.
func (b *Bucket) Reserve(now int64, n float64) time.Duration {
	if b.perNs == 0 {
		return 0
	}
	b.refill(now)
	b.tokens -= n
	return b.wait(0)
}

// Allow takes n tokens if the bucket has them (or is full: a unit larger
// than the burst passes alone, into debt, rather than never), else takes
// nothing and returns how long until it would pass.
func (b *Bucket) Allow(now int64, n float64) (bool, time.Duration) {
	if b.perNs == 0 {
		return true, 0
	}
	b.refill(now)
	if b.tokens >= n || b.tokens >= b.burst {
		b.tokens -= n
		return true, 0
	}
	return false, b.wait(math.Min(n, b.burst))
}

// ready is whether Allow(now, n) would pass, and if not the wait; it
// takes nothing.
func (b *Bucket) ready(now int64, n float64) (bool, time.Duration) {
	if b.perNs == 0 {
		return true, 0
	}
	b.refill(now)
	if b.tokens >= n || b.tokens >= b.burst {
		return true, 0
	}
	return false, b.wait(math.Min(n, b.burst))
}

// ClientConfig is a connection's budget: messages and payload bytes per
// second, each with its burst (limits.client_msg_rate,
// limits.client_msg_burst, limits.client_bytes_rate,
// limits.client_bytes_burst). A rate of 0 is no limit.
type ClientConfig struct {
	MsgRate    float64
	MsgBurst   int
	BytesRate  float64
	BytesBurst int
}

// On reports whether either rate is set.
func (c ClientConfig) On() bool { return c.MsgRate > 0 || c.BytesRate > 0 }

// Client is one connection's message and byte buckets; not safe for
// concurrent use (the connection's reader owns it).
type Client struct {
	msgs, bytes Bucket
}

// NewClient returns a connection's buckets, full; nil when cfg limits
// nothing, so that the caller's fast path is one nil check.
func NewClient(cfg ClientConfig, now int64) *Client {
	if !cfg.On() {
		return nil
	}
	return &Client{msgs: NewBucket(cfg.MsgRate, cfg.MsgBurst, now), bytes: NewBucket(cfg.BytesRate, cfg.BytesBurst, now)}
}

// Reserve takes one message of size payload bytes and returns how long
// the connection must pause before handling it (Bucket.Reserve).
func (c *Client) Reserve(now int64, size int) time.Duration {
	return max(c.msgs.Reserve(now, 1), c.bytes.Reserve(now, float64(size)))
}

// Allow takes one message of size bytes if both buckets have room, else
// nothing, and returns how long until it would pass. Datagram protocols
// use it: they cannot pause a sender, so they answer "congestion".
func (c *Client) Allow(now int64, size int) (bool, time.Duration) {
	ok1, w1 := c.msgs.ready(now, 1)
	ok2, w2 := c.bytes.ready(now, float64(size))
	if !ok1 || !ok2 {
		return false, max(w1, w2)
	}
	c.msgs.Allow(now, 1)
	c.bytes.Allow(now, float64(size))
	return true, 0
}
