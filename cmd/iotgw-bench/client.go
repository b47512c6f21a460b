package main

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// failures collects errors from many goroutines; the first one is kept for the
// report and the rest are only counted.
type failures struct {
	n     atomic.Int64
	mu    sync.Mutex
	first error
}

func (f *failures) add(err error) {
	if f.n.Add(1) == 1 {
		f.mu.Lock()
		f.first = err
		f.mu.Unlock()
	}
}

func (f *failures) firstErr() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.first
}

// publisher drives one publishing connection. Its goroutine owns everything
// except the atomics, which the reader goroutines of this and the subscribing
// connections advance.
type publisher struct {
	id     uint32
	w      wire
	qos    byte
	msgs   int
	window int64 // 0 = unbounded
	e2e    bool  // also bound messages not yet seen by every subscriber
	stall  time.Duration
	refill int64  // free slots needed before a blocked publisher resumes
	body   []byte // payload buffer, restamped per message

	// Pacing (-rate): message seq is due at start + seq*interval; 0 = as
	// fast as the window allows.
	interval int64
	start    int64

	// acked counts completed QoS 1/2 handshakes (PUBACK, PUBCOMP, RECEIPT,
	// CoAP ACK). UDP publishers, whose acks may arrive out of order, store
	// the low-water mark instead: every message below it is acknowledged.
	acked   atomic.Int64
	ackWake atomic.Int64
	// progress has one slot per subscriber that hears this publisher: the
	// highest sequence number it has seen, plus one. A later sequence number
	// implies the earlier ones were either delivered or lost for good (MQTT
	// keeps per-publisher order), which lets QoS 0 flow control survive loss.
	progress []*atomic.Int64
	e2eWake  atomic.Int64
	wake     chan struct{}

	// Written by the publisher goroutine, read after it finished.
	sent        int64
	firstSend   int64
	lastSend    int64
	badAcks     atomic.Int64
	retransmits atomic.Int64 // UDP: messages sent again for want of an ack
	stalls      int64
}

// newPublisher prepares publisher id on w; w may be nil in unit tests that
// drive the publisher by hand.
func newPublisher(id uint32, w wire, qos byte, msgs, size, window int, e2e bool, stall time.Duration) *publisher {
	p := &publisher{
		id: id, w: w, qos: qos, msgs: msgs, window: int64(window),
		e2e: e2e || qos == 0, stall: stall,
		body: make([]byte, size),
		wake: make(chan struct{}, 1),
	}
	for i := payloadHeader; i < size; i++ {
		p.body[i] = byte('a' + i%26)
	}
	p.ackWake.Store(math.MaxInt64)
	p.e2eWake.Store(math.MaxInt64)
	return p
}

// signal wakes the publisher goroutine if it is parked; never blocks.
func (p *publisher) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// onAck is called by this connection's reader for each completed handshake.
func (p *publisher) onAck() {
	if p.acked.Add(1) >= p.ackWake.Load() {
		p.signal()
	}
}

// ackTo is onAck for UDP publishers: every message below low is acknowledged.
func (p *publisher) ackTo(low int64) {
	p.acked.Store(low)
	if low >= p.ackWake.Load() {
		p.signal()
	}
}

// minProgress is the sequence every subscriber has reached, never below floor.
func (p *publisher) minProgress(floor int64) int64 {
	m := int64(math.MaxInt64)
	for _, s := range p.progress {
		if v := s.Load(); v < m {
			m = v
		}
	}
	return max(m, floor)
}

// run publishes p.msgs messages, keeping at most window in flight, and for
// QoS 1/2 waits for the last acknowledgement. It returns early on ctx expiry.
func (p *publisher) run(ctx context.Context, errs *failures) {
	if p.qos > 0 {
		defer p.waitAcks(ctx)
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	total := int64(p.msgs)
	batch := min(max(p.refill, 1), max(p.window, 1))
	var floor int64 // QoS 0 e2e: progress given up on after a stall
	for p.sent < total {
		if ctx.Err() != nil {
			return
		}
		n := total - p.sent
		if p.interval > 0 {
			// Paced: send what is due by now, then sleep until the next one.
			now := benchNow()
			due := (now-p.start)/p.interval + 1
			if due <= p.sent {
				timer.Reset(time.Duration(p.start + p.sent*p.interval - now))
				select {
				case <-timer.C:
				case <-ctx.Done():
				}
				timer.Stop()
				continue
			}
			n = min(n, due-p.sent)
		}
		ackLimited := p.qos > 0 && p.window > 0
		e2eLimited := p.e2e && p.window > 0 && len(p.progress) > 0
		if ackLimited {
			n = min(n, p.window-(p.sent-p.acked.Load()))
		}
		var prog int64
		if e2eLimited {
			prog = p.minProgress(floor)
			n = min(n, p.window-(p.sent-prog))
		}
		if n > 0 {
			if err := p.send(n); err != nil {
				// After the deadline, teardown closes sockets under us;
				// that is the run ending, not a broker failure.
				if ctx.Err() == nil {
					errs.add(fmt.Errorf("publisher %d: %w", p.id, err))
				}
				return
			}
			continue
		}
		target := p.sent - p.window + batch
		if ackLimited && p.sent-p.acked.Load() >= p.window {
			p.ackWake.Store(target)
		}
		if e2eLimited && p.sent-prog >= p.window {
			p.e2eWake.Store(target)
		}
		// Re-check after publishing the thresholds: a reader that advanced
		// a counter before seeing the new threshold would not signal.
		if (!ackLimited || p.acked.Load() >= target) && (!e2eLimited || p.minProgress(floor) >= target) {
			p.ackWake.Store(math.MaxInt64)
			p.e2eWake.Store(math.MaxInt64)
			continue
		}
		timer.Reset(p.stall)
		select {
		case <-p.wake:
		case <-timer.C:
			// No acknowledgement can be lost on TCP, but a QoS 0 message can:
			// when subscribers saw nothing for a whole stall period, count
			// everything outstanding as lost and carry on.
			if e2eLimited && p.minProgress(floor) == prog {
				floor = p.sent
				p.stalls++
			}
		case <-ctx.Done():
		}
		timer.Stop()
		p.ackWake.Store(math.MaxInt64)
		p.e2eWake.Store(math.MaxInt64)
	}
}

// send writes n messages back to back and flushes once.
func (p *publisher) send(n int64) error {
	w := p.w
	w.lock()
	defer w.unlock()
	for i := int64(0); i < n; i++ {
		seq := p.sent
		now := benchNow()
		if seq == 0 {
			p.firstSend = now
		}
		stampPayload(p.body, now, p.id, uint32(seq))
		if err := w.writePublishLocked(seq, now, p.body); err != nil {
			return err
		}
		p.sent++
		p.lastSend = now
	}
	return w.flushLocked()
}

// packetID maps a sequence number to an identifier in 1..65535. With a window
// below 65535 no two in-flight messages share one.
func packetID(seq int64) uint16 { return uint16(seq%65535) + 1 }

// waitAcks blocks until every sent QoS 1/2 message is acknowledged, so the run
// never tears down a connection in the middle of a QoS 2 exchange.
func (p *publisher) waitAcks(ctx context.Context) {
	for {
		p.ackWake.Store(p.sent)
		if p.acked.Load() >= p.sent {
			return
		}
		select {
		case <-p.wake:
		case <-ctx.Done():
			return
		}
	}
}

// source is what one subscriber knows about one publisher it hears.
type source struct {
	pub      *publisher
	seen     bitset
	progress atomic.Int64
}

// subscriber accumulates delivery statistics for one subscribing connection.
// Only its reader goroutine writes the plain fields.
type subscriber struct {
	base    uint32 // publisher index of sources[0]; sources are contiguous
	msgs    uint32 // messages per publisher; larger sequence numbers are foreign
	warmup  uint32 // sequence numbers below it are counted but not timed (-warmup)
	sources []source
	hist    histogram

	received atomic.Int64 // all deliveries, for drain monitoring
	unique   atomic.Int64 // first deliveries only
	dups     int64
	foreign  int64 // payloads that are not from this run's publishers
	lastRecv int64
}

func newSubscriber(base uint32, pubs []*publisher, msgs int) *subscriber {
	s := &subscriber{base: base, msgs: uint32(msgs), sources: make([]source, len(pubs))}
	for i, p := range pubs {
		s.sources[i].pub = p
		s.sources[i].seen = newBitset(msgs)
		p.progress = append(p.progress, &s.sources[i].progress)
	}
	return s
}

// deliver accounts one received payload at time now.
func (s *subscriber) deliver(payload []byte, now int64) {
	sentAt, pub, seq, ok := readPayload(payload)
	idx := pub - s.base
	if !ok || idx >= uint32(len(s.sources)) || seq >= s.msgs {
		s.foreign++
		return
	}
	src := &s.sources[idx]
	s.received.Add(1)
	s.lastRecv = now
	if seq >= s.warmup {
		s.hist.record(now - sentAt)
	}
	if src.seen.testAndSet(seq) {
		s.dups++
		return
	}
	s.unique.Add(1)
	if next := int64(seq) + 1; next > src.progress.Load() {
		src.progress.Store(next)
		if next >= src.pub.e2eWake.Load() {
			src.pub.signal()
		}
	}
}

// reader is what a connection's receive loop accounts to: the publisher
// whose acks arrive on it, or the subscriber whose deliveries do (or
// neither, for idle connections). The protocol's wire does the parsing.
type reader struct {
	pub *publisher  // set on publishing connections
	sub *subscriber // set on subscribing connections
}

// loop runs w's receive loop until the connection fails or is closed.
// Errors after closing is set are the expected result of teardown and are
// not reported.
func (r *reader) loop(w wire, closing *atomic.Bool, errs *failures) {
	err := w.readLoop(r)
	if err != nil && !closing.Load() {
		errs.add(err)
	}
}
