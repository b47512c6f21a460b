package coap

import (
	"sync"
	"time"
)

// dedup is one peer's message-layer deduplication state [RFC 7252 §4.5]:
// the message ids of its recent requests, keyed by the sender's id (the
// go-coap connection it belongs to is the sender's endpoint), with the
// answer to each CON request so that a retransmission gets the same
// acknowledgement without being processed again.
//
// It replaces go-coap's response cache, which the adapter bypasses (see
// processReceived): that cache keys answers to NON requests by the
// answer's own id, and go-coap scans all of it on every datagram, which
// made each request cost O(requests in the last EXCHANGE_LIFETIME).
// Here an entry expires in arrival order, so pruning is amortised O(1).
type dedup struct {
	lifetime time.Duration

	mu      sync.Mutex
	entries map[uint16]dedupEntry
	order   []dedupExpiry // by expiry; order[head:] are live
	head    int
}

type dedupEntry struct {
	expires time.Time
	done    bool   // the request has been processed
	ack     []byte // the encoded answer to a CON request
}

type dedupExpiry struct {
	mid     uint16
	expires time.Time
}

func newDedup(lifetime time.Duration) *dedup {
	return &dedup{lifetime: lifetime, entries: make(map[uint16]dedupEntry)}
}

// dedupVerdict says what to do with a request.
type dedupVerdict int

const (
	dedupNew     dedupVerdict = iota // process it
	dedupPending                     // a copy is being processed: ignore this one
	dedupAnswer                      // a duplicate: resend the stored answer
	dedupDrop                        // a duplicate with no stored answer: ignore
)

// check records request mid as seen (the first time) and says how to
// handle it; ack is the stored answer for dedupAnswer.
func (d *dedup) check(mid uint16, now time.Time) (v dedupVerdict, ack []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.pruneLocked(now)
	if e, ok := d.entries[mid]; ok {
		switch {
		case !e.done:
			return dedupPending, nil
		case e.ack != nil:
			return dedupAnswer, e.ack
		}
		return dedupDrop, nil
	}
	exp := now.Add(d.lifetime)
	d.entries[mid] = dedupEntry{expires: exp}
	d.order = append(d.order, dedupExpiry{mid: mid, expires: exp})
	return dedupNew, nil
}

// done marks request mid processed, storing the encoded answer of a CON
// request (copied).
func (d *dedup) done(mid uint16, ack []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e, ok := d.entries[mid]; ok {
		e.done = true
		if ack != nil {
			e.ack = append([]byte(nil), ack...)
		}
		d.entries[mid] = e
	}
}

// pruneLocked drops the entries whose lifetime has passed.
func (d *dedup) pruneLocked(now time.Time) {
	for d.head < len(d.order) && now.After(d.order[d.head].expires) {
		x := d.order[d.head]
		// An id reused after its entry expired has a newer entry.
		if e, ok := d.entries[x.mid]; ok && e.expires.Equal(x.expires) {
			delete(d.entries, x.mid)
		}
		d.order[d.head] = dedupExpiry{}
		d.head++
	}
	if d.head > 1024 && d.head*2 > len(d.order) {
		n := copy(d.order, d.order[d.head:])
		d.order = d.order[:n]
		d.head = 0
	}
}
