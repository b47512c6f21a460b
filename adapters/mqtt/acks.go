package mqtt

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/iotgw/iotgw/adapters/mqtt/codec"
)

// maxPendingAcks bounds the acknowledgements one connection may have
// waiting for the store. Past it the reader stops reading until the oldest
// completes: a 3.1.1 client has no receive maximum, and the bound keeps
// the slots' memory (and how much a crash can make a client resend) small.
const maxPendingAcks = 1024

// ackPipe sends a connection's PUBACK, PUBREC, PUBREL and PUBCOMP in the
// order their packets arrived [MQTT-4.6.0-2], [MQTT-4.6.0-3],
// [MQTT-4.6.0-4], each only once what it confirms is durable.
//
// Why a pipe: with a store, the core's write for a publication becomes
// durable in a group commit some time after the reader routed it. If the
// reader waited for it, each connection would pay one disk sync per
// packet; instead the reader queues a slot and goes on reading, and the
// store's commit goroutine completes slots as their groups are synced.
// Whoever completes the oldest slot sends every finished slot from the
// head, so the order never depends on which commit finished first (a
// message routed to no persistent subscriber completes at once, but
// still waits behind an earlier one that went to the disk).
type ackPipe struct {
	c    *conn
	mu   sync.Mutex
	q    []*ackSlot // pending, oldest at head
	head int
	free []*ackSlot
	// full is set by the reader when it waits for room (q at
	// maxPendingAcks); room wakes it.
	full bool
	room chan struct{}
	// dead is set once a failed durable write closed the connection:
	// nothing after the failure may be acknowledged.
	dead bool
}

// ackSlot is one acknowledgement waiting for its two conditions: the
// store's outcome (core's done callback) and the reader's say (reason code
// set; for a publication, congested subscribers have room).
type ackSlot struct {
	p     *ackPipe
	ack   codec.Ack
	left  atomic.Int32
	err   error       // set by the store callback before it counts down
	ready bool        // both conditions met; guarded by p.mu
	done  func(error) // slot.stored, bound once per slot: no allocation per packet
}

// pipe returns the connection's ack pipe, made on first use so that a
// connection that never publishes at QoS > 0 does not pay for it.
func (c *conn) pipe() *ackPipe {
	if c.acks == nil {
		c.acks = &ackPipe{c: c, room: make(chan struct{}, 1)}
	}
	return c.acks
}

// reserve queues a slot for an acknowledgement of kind for packet id,
// waiting while maxPendingAcks are pending. Called by the reader only.
// The caller must call slot.done exactly once (or hand it to the core,
// which does) and then slot.release.
func (p *ackPipe) reserve(kind codec.PacketType, id uint16) *ackSlot {
	p.mu.Lock()
	for len(p.q)-p.head >= maxPendingAcks {
		p.full = true
		p.mu.Unlock()
		p.c.kickWriter() // the acks queued so far go out while we wait
		<-p.room
		p.mu.Lock()
	}
	var s *ackSlot
	if n := len(p.free); n > 0 {
		s = p.free[n-1]
		p.free = p.free[:n-1]
	} else {
		s = &ackSlot{p: p}
		s.done = s.stored
	}
	s.ack = codec.Ack{Kind: kind, PacketID: id}
	s.err = nil
	s.ready = false
	s.left.Store(2)
	p.q = append(p.q, s)
	p.mu.Unlock()
	return s
}

// stored is the store's outcome for the slot (core's done callback).
func (s *ackSlot) stored(err error) {
	s.err = err
	s.countDown(false)
}

// release is the reader's part: rc is the reason code to send (MQTT 5
// only; 3.1.1 acknowledgements carry none).
func (s *ackSlot) release(rc codec.ReasonCode) {
	s.ack.ReasonCode = rc
	s.countDown(true)
}

// countDown meets one condition; byReader says the reader goroutine calls
// (see complete).
func (s *ackSlot) countDown(byReader bool) {
	if s.left.Add(-1) != 0 {
		return // the other condition is still open; s may not be touched now
	}
	s.p.complete(s, byReader)
}

// complete marks s ready and sends every ready slot from the head. On the
// reader goroutine (byReader) the acks are replies, which the reader
// writes at the end of its burst; from anywhere else (the store's commit
// goroutine, typically, long after the burst) they go to a writer
// goroutine, started if none runs, so none waits for the client's next
// packet.
func (p *ackPipe) complete(s *ackSlot, byReader bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s.ready = true
	for p.head < len(p.q) && p.q[p.head].ready {
		h := p.q[p.head]
		p.q[p.head] = nil
		p.head++
		p.sendLocked(h, byReader)
		p.free = append(p.free, h)
	}
	if p.head == len(p.q) {
		p.q, p.head = p.q[:0], 0
	}
	if p.full {
		p.full = false
		select {
		case p.room <- struct{}{}:
		default:
		}
	}
}

// sendLocked sends one acknowledgement, or closes the connection when its
// write failed and the protocol has no way to say so.
func (p *ackPipe) sendLocked(s *ackSlot, byReader bool) {
	if p.dead {
		return
	}
	c := p.c
	ack := s.ack
	if s.err != nil {
		// The message (or release) is not durable, so it must not be
		// acknowledged as if it were. MQTT 5 can refuse a publication in
		// its PUBACK/PUBREC; otherwise the connection ends unacknowledged
		// and the client resends on its next connection.
		v5 := c.version == codec.V5
		if v5 && (ack.Kind == codec.TypePuback || ack.Kind == codec.TypePubrec) {
			ack.ReasonCode = codec.UnspecifiedError
		} else {
			p.dead = true
			c.logAt(zap.WarnLevel, "closing: store write failed", zap.Error(s.err))
			c.Close(fmt.Errorf("%w: %v", errStoreFailed, s.err))
			return
		}
	}
	c.enqueue(&ack, byReader)
}

var errStoreFailed = errors.New("store write failed")

// ignoreOutcome is the done callback of a QoS 0 publication: nothing is
// acknowledged, so there is nothing to wait for.
func ignoreOutcome(error) {}
