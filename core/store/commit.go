package store

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/cockroachdb/pebble"
	"go.uber.org/zap"
)

// request is one Commit (or CommitAsync) waiting for the commit
// goroutine.
type request struct {
	ctx     context.Context
	b       *Batch
	durable bool
	done    chan error  // Commit: buffered, exactly one reply
	cb      func(error) // CommitAsync
}

var requestPool = sync.Pool{New: func() any { return &request{done: make(chan error, 1)} }}

// Group limits: a group stops collecting at whichever comes first, so one
// huge burst cannot build an unbounded Pebble batch.
const (
	maxGroupRequests = 1024
	maxGroupBytes    = 4 << 20
)

func (s *pebbleStore) Commit(ctx context.Context, b *Batch, durable bool) error {
	r, err := s.submit(ctx, b, durable, nil)
	if r == nil {
		return err
	}
	// Handed over: the goroutine replies exactly once, after it has
	// finished reading the batch.
	err = <-r.done
	s.release(r)
	return err
}

func (s *pebbleStore) CommitAsync(b *Batch, durable bool, done func(error)) {
	if r, err := s.submit(context.Background(), b, durable, done); r == nil {
		done(err)
	}
}

// submit hands a commit to the commit goroutine and returns its request,
// or nil and the outcome when there is nothing to hand over.
func (s *pebbleStore) submit(ctx context.Context, b *Batch, durable bool, cb func(error)) (*request, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if b.err != nil {
		return nil, b.err
	}
	if b.n == 0 && !durable {
		return nil, nil
	}
	r := requestPool.Get().(*request)
	r.ctx, r.b, r.durable, r.cb = ctx, b, durable, cb
	s.sendMu.RLock()
	defer s.sendMu.RUnlock()
	if s.closed {
		s.release(r)
		return nil, ErrClosed
	}
	select {
	case s.reqs <- r:
		return r, nil
	case <-ctx.Done():
		s.release(r)
		return nil, ctx.Err()
	}
}

// finish answers a request; it must not be touched afterwards, since its
// Commit returns and may reuse it.
func (s *pebbleStore) finish(r *request, err error) {
	if cb := r.cb; cb != nil {
		s.release(r)
		cb(err)
		return
	}
	r.done <- err
}

func (s *pebbleStore) release(r *request) {
	r.ctx, r.b, r.cb = nil, nil, nil
	requestPool.Put(r)
}

// committer is the commit goroutine's state.
type committer struct {
	s *pebbleStore
	// waiters are durable requests already applied, waiting for the next
	// sync (FsyncBatch only).
	waiters  []*request
	lastSync time.Time
	timer    *time.Timer
	timerOn  bool
	// failed is the first write error; once set every request gets it.
	failed error
	// dur and nondur split the group being written (reused buffers).
	dur, nondur []*request
}

// run is the one commit goroutine. Each round takes every request that is
// already queued (after the first, without waiting), applies them as one
// Pebble batch in arrival order, answers the non-durable ones, and syncs
// the WAL for the durable ones: at once in FsyncAlways mode, at most once
// per window in FsyncBatch mode, never in FsyncOff mode. While a sync runs,
// new requests queue up and form the next group, which is where the group
// commit comes from.
func (s *pebbleStore) run() {
	defer close(s.done)
	c := &committer{s: s, timer: time.NewTimer(time.Hour)}
	c.timer.Stop()
	group := make([]*request, 0, 64)
	for {
		select {
		case r := <-s.reqs:
			group = c.collect(append(group[:0], r))
			c.write(group)
			clear(group)
		case <-c.timer.C:
			c.timerOn = false
			c.sync(nil, false)
		case <-s.quit:
			// Close took sendMu, so nothing more can be sent: drain.
			for {
				select {
				case r := <-s.reqs:
					group = c.collect(append(group[:0], r))
					c.write(group)
					clear(group)
					continue
				default:
				}
				break
			}
			c.timer.Stop()
			c.sync(nil, true) // Close is durable in every mode
			return
		}
	}
}

// collect appends the requests already queued, within the group limits.
func (c *committer) collect(group []*request) []*request {
	size := group[0].b.Size()
	for len(group) < maxGroupRequests && size < maxGroupBytes {
		select {
		case r := <-c.s.reqs:
			group = append(group, r)
			size += r.b.Size()
		default:
			return group
		}
	}
	return group
}

// write applies one group and answers or parks its requests. A request
// must not be touched once answered: its Commit returns and may reuse it.
func (c *committer) write(group []*request) {
	if c.failed != nil {
		c.answerAll(group, c.failed)
		return
	}
	s := c.s
	pb := s.db.NewBatch()
	defer pb.Close()
	c.nondur, c.dur = c.nondur[:0], c.dur[:0]
	ops, bytes := 0, 0
	for _, r := range group {
		if err := r.ctx.Err(); err != nil {
			s.finish(r, err) // not taken up: nothing of it is written
			continue
		}
		if r.durable {
			c.dur = append(c.dur, r)
		} else {
			c.nondur = append(c.nondur, r)
		}
		if err := addToPebble(pb, r.b); err != nil {
			// Cannot happen with batches built by this package; the group
			// is dropped whole so that no batch is half written.
			c.answerAll(c.dur, err)
			c.answerAll(c.nondur, err)
			return
		}
		ops += r.b.n
		bytes += len(r.b.buf)
	}
	needSync := s.mode != FsyncOff && (len(c.dur) > 0 || len(c.waiters) > 0)
	syncNow := needSync && (s.mode == FsyncAlways || time.Since(c.lastSync) >= s.win)
	if ops == 0 {
		// Only durable barriers (empty batches): they need a sync of what
		// came before them, or just to wait for the next one.
		c.answerAll(c.nondur, nil)
		if syncNow {
			c.sync(c.dur, false)
		} else {
			c.park(c.dur)
		}
		return
	}
	s.groups.Add(1)
	s.bytes.Add(uint64(bytes))
	s.commits.Add(uint64(len(c.dur) + len(c.nondur)))
	if !syncNow {
		if err := s.db.Apply(pb, pebble.NoSync); err != nil {
			c.answerAll(c.nondur, err)
			c.fail(fmt.Errorf("store: write %s: %w", s.dir, err), c.dur)
			return
		}
		c.answerAll(c.nondur, nil)
		c.park(c.dur)
		return
	}
	// Apply, answer the non-durable requests as soon as the write is
	// visible, then wait for the sync that covers it and everything before.
	c.lastSync = time.Now()
	if err := s.db.ApplyNoSyncWait(pb, pebble.Sync); err != nil {
		c.answerAll(c.nondur, err)
		c.fail(fmt.Errorf("store: write %s: %w", s.dir, err), c.dur)
		return
	}
	c.answerAll(c.nondur, nil)
	err := pb.SyncWait()
	s.syncs.Add(1)
	if err != nil {
		c.fail(fmt.Errorf("store: sync %s: %w", s.dir, err), c.dur)
		return
	}
	c.answerWaiters(nil) // older than this group
	c.answerAll(c.dur, nil)
}

// park keeps applied durable requests for the next sync (answering them
// at once in FsyncOff mode).
func (c *committer) park(dur []*request) {
	if c.s.mode == FsyncOff {
		c.answerAll(dur, nil)
		return
	}
	c.waiters = append(c.waiters, dur...)
	if len(c.waiters) > 0 && !c.timerOn {
		c.timerOn = true
		c.timer.Reset(max(0, c.s.win-time.Since(c.lastSync)))
	}
}

// sync syncs the WAL, covering everything applied so far, then answers
// the waiting durable requests and extra (all of them durable). Without
// force it does nothing when nobody waits.
func (c *committer) sync(extra []*request, force bool) {
	if c.failed != nil {
		c.answerWaiters(c.failed)
		c.answerAll(extra, c.failed)
		return
	}
	if !force && len(c.waiters) == 0 && len(extra) == 0 {
		return
	}
	c.lastSync = time.Now()
	// A log-only record written with Sync syncs the WAL up to it.
	if err := c.s.db.LogData(nil, pebble.Sync); err != nil {
		c.fail(fmt.Errorf("store: sync %s: %w", c.s.dir, err), extra)
		return
	}
	c.s.syncs.Add(1)
	c.answerWaiters(nil)
	c.answerAll(extra, nil)
}

func (c *committer) answerAll(rs []*request, err error) {
	for _, r := range rs {
		c.s.finish(r, err)
	}
}

func (c *committer) answerWaiters(err error) {
	for _, r := range c.waiters {
		c.s.finish(r, err)
	}
	clear(c.waiters)
	c.waiters = c.waiters[:0]
}

// fail makes err sticky and answers the unanswered requests and every
// waiter with it.
func (c *committer) fail(err error, unanswered []*request) {
	c.failed = err
	c.s.log.Error("store write failed; refusing further commits", zap.Error(err))
	c.answerWaiters(err)
	c.answerAll(unanswered, err)
}

// addToPebble copies a batch's operations into a Pebble batch.
func addToPebble(pb *pebble.Batch, b *Batch) error {
	return b.each(func(o batchOp) error {
		switch o.op {
		case opPut:
			return pb.Set(o.key, o.val, nil)
		case opDelete:
			return pb.Delete(o.key, nil)
		case opDeletePrefix:
			return pb.DeleteRange(o.key, prefixEnd(o.key), nil)
		}
		return nil
	})
}
