package core

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iotgw/iotgw/core/store"
)

// failingStore is the memory store whose writes fail once armed.
type failingStore struct {
	store.Store
	armed atomic.Bool
}

var errDiskFull = errors.New("disk full")

func (f *failingStore) Commit(ctx context.Context, b *store.Batch, durable bool) error {
	if f.armed.Load() && b.Len() > 0 {
		return errDiskFull
	}
	return f.Store.Commit(ctx, b, durable)
}

func (f *failingStore) CommitAsync(b *store.Batch, durable bool, done func(error)) {
	done(f.Commit(context.Background(), b, durable))
}

// TestStoreFailureRefusesAndReports: once a write fails, a publication
// that needed it is refused with ErrStore (so no adapter acknowledges it),
// in both the waiting and the async form, and the failure handler hears
// of it exactly once.
func TestStoreFailureRefusesAndReports(t *testing.T) {
	fs := &failingStore{Store: store.NewMemory()}
	var told atomic.Int32
	cfg := DefaultConfig()
	cfg.SysInterval = 0
	b, err := New(cfg, nil, WithStore(fs), WithStoreFailure(func(err error) {
		if !errors.Is(err, errDiskFull) {
			t.Errorf("handler got %v", err)
		}
		told.Add(1)
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	sub, _, _ := connect(t, b, "sub", false, time.Hour, nil)
	if r := sub.Subscribe("t", SubOptions{QoS: 1}); r.Err != nil {
		t.Fatal(r.Err)
	}
	pub, _, _ := connect(t, b, "pub", true, 0, nil)
	if err := pub.Publish(&Message{Topic: "t", Payload: []byte("ok"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	fs.armed.Store(true)
	if err := pub.Publish(&Message{Topic: "t", Payload: []byte("lost"), QoS: 1}); !errors.Is(err, ErrStore) {
		t.Fatalf("Publish after a failed write: %v, want ErrStore", err)
	}
	done := make(chan error, 1)
	if err := pub.PublishAsync(&Message{Topic: "t", Payload: []byte("lost too"), QoS: 1}, func(err error) { done <- err }); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ErrStore) {
		t.Fatalf("PublishAsync outcome: %v, want ErrStore", err)
	}
	// QoS 0 and clean sessions never needed the store: they still flow.
	if err := pub.Publish(&Message{Topic: "t", Payload: []byte("qos0"), QoS: 0}); err != nil {
		t.Fatalf("QoS 0 publish: %v", err)
	}
	if n := told.Load(); n != 1 {
		t.Fatalf("failure handler called %d times, want 1", n)
	}
}
