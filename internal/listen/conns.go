package listen

import (
	"context"
	"sync"
)

// Closer is a connection the adapter can ask to close with a reason.
type Closer interface {
	comparable
	Close(reason error)
}

// Conns tracks an adapter's live connections so that Stop can close them
// all, and refuses new ones once it has.
type Conns[C Closer] struct {
	mu      sync.Mutex
	m       map[C]struct{}
	stopped bool
}

// Add registers c and runs started while still holding the registry's
// lock (the adapter's WaitGroup.Add goes there, so it cannot race with
// Stop's Wait). It reports false, without running started, after
// CloseAll.
func (r *Conns[C]) Add(c C, started func()) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return false
	}
	if r.m == nil {
		r.m = make(map[C]struct{})
	}
	r.m[c] = struct{}{}
	started()
	return true
}

// Remove forgets c when it has ended.
func (r *Conns[C]) Remove(c C) {
	r.mu.Lock()
	delete(r.m, c)
	r.mu.Unlock()
}

// CloseAll refuses new connections and closes every registered one with
// reason.
func (r *Conns[C]) CloseAll(reason error) {
	r.mu.Lock()
	r.stopped = true
	cs := make([]C, 0, len(r.m))
	for c := range r.m {
		cs = append(cs, c)
	}
	r.mu.Unlock()
	for _, c := range cs {
		c.Close(reason)
	}
}

// Wait waits for wg, or for ctx to end first.
func Wait(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
