package main

import (
	"encoding/binary"
	"math/bits"
	"time"
)

// epoch is the zero of every timestamp the benchmark takes. Publishers and
// subscribers live in one process, so a monotonic offset from a shared start
// is exact and immune to wall-clock steps.
var epoch = time.Now()

// benchNow returns monotonic nanoseconds since epoch.
func benchNow() int64 { return int64(time.Since(epoch)) }

// Payload layout. Every message carries its send time and identity so that the
// receiving side alone can compute latency, loss and duplicates.
//
//	[0:8)   send time, benchNow() nanoseconds, little endian
//	[8:12)  publisher index
//	[12:16) per-publisher sequence number, 0-based
//	[16:)   padding up to -size
const payloadHeader = 16

// stampPayload writes the header into p, which is at least payloadHeader long.
func stampPayload(p []byte, sentAt int64, pub, seq uint32) {
	binary.LittleEndian.PutUint64(p[0:8], uint64(sentAt))
	binary.LittleEndian.PutUint32(p[8:12], pub)
	binary.LittleEndian.PutUint32(p[12:16], seq)
}

// readPayload is the inverse of stampPayload; ok is false for payloads that
// cannot have come from this benchmark.
func readPayload(p []byte) (sentAt int64, pub, seq uint32, ok bool) {
	if len(p) < payloadHeader {
		return 0, 0, 0, false
	}
	return int64(binary.LittleEndian.Uint64(p[0:8])),
		binary.LittleEndian.Uint32(p[8:12]),
		binary.LittleEndian.Uint32(p[12:16]), true
}

// Histogram layout: values below 2^subBits are exact; above, each power of two
// is split into 2^(subBits-1) equal buckets, so any recorded value is within
// 1/64 (about 1.6%) of the truth. That is plenty for p99 comparisons and costs
// a fixed ~30 KiB per subscriber instead of one int64 per message.
const (
	subBits    = 7
	subHalf    = 1 << (subBits - 1) // 64 buckets per power of two
	histBucket = (63-subBits+2)*subHalf + subHalf
)

// histogram is a log-linear latency histogram in nanoseconds. It is owned by
// one goroutine while recording and merged after the run.
type histogram struct {
	counts [histBucket]uint64
	n      uint64
	max    int64
	min    int64
	sum    int64
}

// bucketOf maps a non-negative value to its bucket index.
func bucketOf(v int64) int {
	if v < 1<<subBits {
		return int(v)
	}
	k := bits.Len64(uint64(v)) - 1 // v in [2^k, 2^(k+1))
	shift := k - (subBits - 1)
	return shift*subHalf + int(uint64(v)>>uint(shift))
}

// bucketHigh returns the largest value that maps to bucket i, so percentiles
// err on the pessimistic side rather than flattering the broker.
func bucketHigh(i int) int64 {
	if i < 1<<subBits {
		return int64(i)
	}
	shift := i/subHalf - 1
	m := int64(i%subHalf + subHalf)
	return (m+1)<<uint(shift) - 1
}

// record adds one latency sample. Negative values (impossible with a shared
// monotonic clock, but cheap to guard) count as zero.
func (h *histogram) record(v int64) {
	if v < 0 {
		v = 0
	}
	h.counts[bucketOf(v)]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += v
}

// merge adds o's samples into h.
func (h *histogram) merge(o *histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
	h.sum += o.sum
}

// quantile returns the value at quantile q in [0,1] using the nearest-rank
// definition, capped at the exact maximum.
func (h *histogram) quantile(q float64) int64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.999999999)
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(bucketHigh(i), h.max)
		}
	}
	return h.max
}

// bitset records which sequence numbers arrived, to tell duplicates from
// first deliveries without a map.
type bitset []uint64

func newBitset(n int) bitset { return make(bitset, (n+63)/64) }

// testAndSet marks i and reports whether it was already marked.
func (b bitset) testAndSet(i uint32) bool {
	w, m := i/64, uint64(1)<<(i%64)
	was := b[w]&m != 0
	b[w] |= m
	return was
}
