// Package pace is the QoS 0 bound of a sink that queues deliveries for a
// writer of its own (the CoAP endpoint, the MQTT-SN virtual connection),
// and its side of core.Pacer: a subscriber that keeps reading slows its
// publishers instead of losing their QoS 0 messages.
//
// The rule (session.queue_full_policy: backpressure): past the soft
// bound (the adapter's max_pending_qos0) a delivery is still accepted,
// and Room hands the core a channel for the publisher to wait on; it is
// closed once the queue has drained to half the soft bound, so a paced
// publisher is woken once per half a queue, not once per message. Beyond
// twice the soft bound deliveries are refused (the core drops and counts
// them): many publishers at once, publishers that cannot be slowed
// (UDP), or waits that timed out. Under the other policies the soft bound
// is the hard one and nobody waits.
//
// internal/streamconn uses it for MQTT and STOMP; its writer takes the
// whole queue at once, so a take always releases.
package pace

import "sync/atomic"

// Bound counts the QoS 0 deliveries a sink holds. It is guarded by the
// sink's own mutex, except Over, which may be read without it. The core
// calls Deliver and Room with the subscriber's session locked, so nothing
// here blocks; the sink's mutex is taken after the session's, never the
// other way round.
type Bound struct {
	// int32 and packed: every connection of every stream and UDP sink
	// carries one, idle ones included.
	soft         int32
	n            int32
	backpressure bool
	room         chan struct{}
	// over mirrors "n past soft, publishers may wait", so that Pacer.Room
	// costs one atomic load, not the sink's lock, on the common path (a
	// CoAP notification sent inline, a keeping-up MQTT-SN client).
	over atomic.Bool
}

// Init sets the soft bound (at least 1) and whether the broker's policy
// is backpressure.
func (b *Bound) Init(soft int, backpressure bool) {
	b.soft, b.backpressure = int32(min(max(soft, 1), 1<<30)), backpressure
}

// Admit counts one more held QoS 0 delivery, or reports false when the
// sink is full: at the soft bound without backpressure, at twice it with.
func (b *Bound) Admit() bool {
	limit := b.soft
	if b.backpressure {
		limit *= 2
	}
	if b.n >= limit {
		return false
	}
	b.n++
	if b.backpressure && b.n >= b.soft {
		b.over.Store(true)
	}
	return true
}

// Over reports whether publishers may have to wait (Room may be non-nil).
// It needs no lock: a delivery that took the count past the bound set it
// before its publisher asks.
func (b *Bound) Over() bool { return b.over.Load() }

// Room returns the channel publishers wait on while the count is past the
// soft bound (made on first need, shared by all of them), nil otherwise.
func (b *Bound) Room() <-chan struct{} {
	if !b.backpressure || b.n < b.soft {
		return nil
	}
	if b.room == nil {
		b.room = make(chan struct{})
	}
	return b.room
}

// Done counts k held deliveries gone (sent, or discarded); at half the
// soft bound the waiting publishers are released.
func (b *Bound) Done(k int) {
	b.n -= int32(k)
	if b.n <= b.soft/2 {
		b.release()
	}
}

// Release wakes the waiting publishers while the count stays: the sink
// stopped draining for a while (an MQTT-SN client went to sleep) and must
// not hold them.
func (b *Bound) Release() { b.release() }

// Reset forgets every held delivery (the sink closed and dropped its
// queue) and wakes the waiting publishers.
func (b *Bound) Reset() {
	b.n = 0
	b.release()
}

// Len returns the number of held deliveries.
func (b *Bound) Len() int { return int(b.n) }

func (b *Bound) release() {
	if b.over.Load() {
		b.over.Store(false) // only when set: Done runs for every delivery sent
	}
	if b.room != nil {
		close(b.room)
		b.room = nil
	}
}
