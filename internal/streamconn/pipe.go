package streamconn

import (
	"sync"
	"sync/atomic"
)

// MaxPendingAcks bounds the acknowledgements one connection may have
// waiting for the store. Past it the reader stops reading until the
// oldest completes: an MQTT 3.1.1 client has no receive maximum, and the
// bound keeps the slots' memory (and how much a crash can make a client
// resend) small.
const MaxPendingAcks = 1024

// Pipe sends a connection's acknowledgements in the order their units
// arrived, each only once what it confirms is durable (MQTT's PUBACK,
// PUBREC, PUBREL, PUBCOMP [MQTT-4.6.0-2..4]; STOMP's RECEIPT).
//
// Why a pipe: with a store, the core's write for a publication becomes
// durable in a group commit some time after the reader routed it. If the
// reader waited for it, each connection would pay one disk sync per unit;
// instead the reader reserves a slot and goes on reading, and the store's
// commit goroutine completes slots as their groups are synced. Whoever
// completes the oldest slot emits every finished slot from the head, so
// the order never depends on which commit finished first (a message
// routed to no persistent subscriber completes at once, but still waits
// behind an earlier one that went to the disk).
type Pipe[T any] struct {
	c *Conn[T]
	// emit sends one acknowledgement (it may rewrite it for a failed
	// store write, err); byReader says the reader goroutine completes it,
	// so it is a reply. It reports false to end the pipe: nothing after a
	// failure that closed the connection may be acknowledged.
	emit func(it *T, err error, byReader bool) bool
	mu   sync.Mutex
	q    []*Slot[T] // pending, oldest at head
	head int
	free []*Slot[T]
	// full is set by the reader while it waits for room; room wakes it.
	full bool
	room chan struct{}
	dead bool
	// drained, when set, is closed once no slot is pending (Wait).
	drained chan struct{}
}

// Slot is one acknowledgement waiting for its two conditions: the store's
// outcome (Done, usually handed to the core) and the reader's say
// (Release, after it set Item's final form).
type Slot[T any] struct {
	p *Pipe[T]
	// Item is the acknowledgement to send; the reader may change it
	// before Release.
	Item  T
	left  atomic.Int32
	err   error // set by Done before it counts down
	ready bool  // both conditions met; guarded by p.mu
	// Done is the store's outcome for the slot, bound once per slot (no
	// allocation per unit). It must be called exactly once.
	Done func(error)
}

// NewPipe returns a pipe on c that emits with emit.
func NewPipe[T any](c *Conn[T], emit func(it *T, err error, byReader bool) bool) *Pipe[T] {
	return &Pipe[T]{c: c, emit: emit, room: make(chan struct{}, 1)}
}

// Reserve queues a slot for it, waiting while MaxPendingAcks are pending
// (the replies queued so far go out meanwhile). Reader goroutine only.
// The caller must see Done called exactly once and call Release.
func (p *Pipe[T]) Reserve(it T) *Slot[T] {
	p.mu.Lock()
	for len(p.q)-p.head >= MaxPendingAcks {
		p.full = true
		p.mu.Unlock()
		p.c.Kick()
		<-p.room
		p.mu.Lock()
	}
	var s *Slot[T]
	if n := len(p.free); n > 0 {
		s = p.free[n-1]
		p.free = p.free[:n-1]
	} else {
		s = &Slot[T]{p: p}
		s.Done = s.stored
	}
	s.Item = it
	s.err = nil
	s.ready = false
	s.left.Store(2)
	p.q = append(p.q, s)
	p.mu.Unlock()
	return s
}

// stored is the store's outcome for the slot.
func (s *Slot[T]) stored(err error) {
	s.err = err
	s.countDown(false)
}

// Release is the reader's part.
func (s *Slot[T]) Release() { s.countDown(true) }

func (s *Slot[T]) countDown(byReader bool) {
	if s.left.Add(-1) != 0 {
		return // the other condition is still open; s may not be touched now
	}
	s.p.complete(s, byReader)
}

// complete marks s ready and emits every ready slot from the head.
func (p *Pipe[T]) complete(s *Slot[T], byReader bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s.ready = true
	var zero T
	for p.head < len(p.q) && p.q[p.head].ready {
		h := p.q[p.head]
		p.q[p.head] = nil
		p.head++
		if !p.dead && !p.emit(&h.Item, h.err, byReader) {
			p.dead = true
		}
		h.Item = zero
		p.free = append(p.free, h)
	}
	if p.head == len(p.q) {
		p.q, p.head = p.q[:0], 0
		if p.drained != nil {
			close(p.drained)
			p.drained = nil
		}
	}
	if p.full {
		p.full = false
		select {
		case p.room <- struct{}{}:
		default:
		}
	}
}

// Emit queues an acknowledgement as the pipe's emit does: a reply on the
// reader, a Send elsewhere (a writer goroutine takes it, so that none
// waits for the peer's next input).
func (c *Conn[T]) Emit(it T, byReader bool) {
	if byReader {
		c.Reply(it)
	} else {
		c.Send(it)
	}
}

// Wait blocks until every reserved slot has been emitted (or dropped by a
// dead pipe). Reader goroutine only.
func (p *Pipe[T]) Wait() {
	p.mu.Lock()
	for p.head < len(p.q) {
		if p.drained == nil {
			p.drained = make(chan struct{})
		}
		ch := p.drained
		p.mu.Unlock()
		p.c.Kick()
		<-ch
		p.mu.Lock()
	}
	p.mu.Unlock()
}
