package core

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// yieldingAuth lets other connects run between the limit's check and the
// connection's attachment, the window a check-then-act limit loses in; it
// refuses clients whose password is "bad".
type yieldingAuth struct{}

func (yieldingAuth) Authenticate(_ context.Context, c *ClientInfo) error {
	runtime.Gosched()
	if string(c.Password) == "bad" {
		return ErrBadCredentials
	}
	return nil
}

// TestMaxConnectionsConcurrent connects many more clients than
// limits.max_connections at once, round after round: exactly the limit
// get in, never more connected at any time, and every place comes back
// when its connection leaves.
func TestMaxConnectionsConcurrent(t *testing.T) {
	const max, callers, rounds = 4, 32, 20
	cfg := DefaultConfig()
	cfg.SysInterval = 0
	cfg.MaxConnections = max
	b, err := New(cfg, nil, WithAuthenticator(yieldingAuth{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	for r := 0; r < rounds; r++ {
		type conn struct {
			s    *Session
			sink *fakeSink
		}
		var (
			mu  sync.Mutex
			in  []conn
			wg  sync.WaitGroup
			bad atomic.Int64
		)
		for i := 0; i < callers; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sink := &fakeSink{}
				s, _, err := b.Connect(context.Background(), ConnectRequest{
					ClientID: fmt.Sprintf("c%d-%d", r, i), Sink: sink})
				switch {
				case err == nil:
					mu.Lock()
					in = append(in, conn{s, sink})
					mu.Unlock()
				case !errors.Is(err, ErrServerBusy):
					bad.Add(1)
				}
			}()
		}
		wg.Wait()
		if bad.Load() != 0 {
			t.Fatalf("round %d: %d connects failed other than busy", r, bad.Load())
		}
		if len(in) != max {
			t.Fatalf("round %d: %d connections admitted, limit %d", r, len(in), max)
		}
		if n := b.Stats().ClientsConnected.Load(); n != max {
			t.Fatalf("round %d: %d connected, limit %d", r, n, max)
		}
		for _, c := range in {
			c.s.Disconnect(c.sink, DisconnectOptions{})
		}
		if n := b.slots.Load(); n != 0 {
			t.Fatalf("round %d: %d places still held after every disconnect", r, n)
		}
	}
	if m := b.Stats().ClientsMaximum.Load(); m != max {
		t.Fatalf("maximum connected %d, limit %d", m, max)
	}
}

// TestMaxConnectionsRefusedGiveBack checks that connects failing after
// taking a place (bad credentials, an unknown method) give it back, and
// that a takeover at the limit is refused as before.
func TestMaxConnectionsRefusedGiveBack(t *testing.T) {
	cfg := DefaultConfig()
	cfg.SysInterval = 0
	cfg.MaxConnections = 1
	b, err := New(cfg, nil, WithAuthenticator(yieldingAuth{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	for i := 0; i < 3; i++ {
		_, _, err := b.Connect(context.Background(), ConnectRequest{ClientID: "x", Password: []byte("bad"), Sink: &fakeSink{}})
		if !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("bad password: %v", err)
		}
		_, _, err = b.Connect(context.Background(), ConnectRequest{ClientID: "x", AuthMethod: "nope", Sink: &fakeSink{}})
		if !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("unknown method: %v", err)
		}
	}
	s, sink, _ := connect(t, b, "one", true, 0, nil)
	if _, _, err := b.Connect(context.Background(), ConnectRequest{ClientID: "one", Sink: &fakeSink{}}); !errors.Is(err, ErrServerBusy) {
		t.Fatalf("takeover at the limit: %v", err)
	}
	s.Disconnect(sink, DisconnectOptions{})
	connect(t, b, "two", true, 0, nil)
}

// TestMaxRetainedConcurrent publishes retained messages to many more new
// topics than limits.max_retained at once: exactly the limit are kept,
// and replacing a kept topic still succeeds when the store is full.
func TestMaxRetainedConcurrent(t *testing.T) {
	const max, callers, rounds = 5, 32, 20
	b := newTestBroker(t, func(c *Config) { c.MaxRetained = max })
	for r := 0; r < rounds; r++ {
		var (
			wg          sync.WaitGroup
			kept, other atomic.Int64
		)
		for i := 0; i < callers; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := b.Publish(&Message{Topic: fmt.Sprintf("r/%d/%d", r, i), Payload: []byte("v"), Retain: true})
				switch {
				case err == nil:
					kept.Add(1)
				case !errors.Is(err, ErrQuotaExceeded):
					other.Add(1)
				}
			}()
		}
		wg.Wait()
		if other.Load() != 0 {
			t.Fatalf("round %d: %d publications failed other than by the quota", r, other.Load())
		}
		if kept.Load() != max || b.RetainedCount() != max {
			t.Fatalf("round %d: %d accepted, %d retained, limit %d", r, kept.Load(), b.RetainedCount(), max)
		}
		var topics []string
		b.retained.Range(func(topic string, _ *Message) bool {
			topics = append(topics, topic)
			return true
		})
		for _, tp := range topics {
			if err := b.Publish(&Message{Topic: tp, Payload: []byte("w"), Retain: true}); err != nil {
				t.Fatalf("round %d: replacing %s in a full store: %v", r, tp, err)
			}
		}
		for _, tp := range topics {
			if err := b.Publish(&Message{Topic: tp, Retain: true}); err != nil { // empty payload: delete
				t.Fatal(err)
			}
		}
		if n := b.RetainedCount(); n != 0 {
			t.Fatalf("round %d: %d retained after deleting all", r, n)
		}
	}
}

// TestMaxDelayedConcurrent delays many more messages than
// limits.max_delayed at once: exactly the limit wait, and the pending
// counter never shows more.
func TestMaxDelayedConcurrent(t *testing.T) {
	const max, callers = 6, 48
	b := newTestBroker(t, func(c *Config) { c.MaxDelayed = max })
	var (
		wg                  sync.WaitGroup
		ok, other, overshot atomic.Int64
		done                = make(chan struct{})
		watched             = make(chan struct{})
	)
	go func() {
		defer close(watched)
		for {
			if b.Stats().DelayedPending.Load() > max {
				overshot.Add(1)
			}
			select {
			case <-done:
				return
			default:
				runtime.Gosched()
			}
		}
	}()
	for i := 0; i < callers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// An hour: none is published while the test runs.
			err := b.Publish(&Message{Topic: fmt.Sprintf("$delayed/3600/d/%d", i), Payload: []byte("x")})
			switch {
			case err == nil:
				ok.Add(1)
			case !errors.Is(err, ErrQuotaExceeded):
				other.Add(1)
			}
		}()
	}
	wg.Wait()
	close(done)
	<-watched
	if other.Load() != 0 {
		t.Fatalf("%d delays failed other than by the quota", other.Load())
	}
	if ok.Load() != max || b.Stats().DelayedPending.Load() != max {
		t.Fatalf("%d delayed, %d pending, limit %d", ok.Load(), b.Stats().DelayedPending.Load(), max)
	}
	if overshot.Load() != 0 {
		t.Fatalf("the pending counter showed more than the limit %d times", overshot.Load())
	}
}
