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

// TestStoreAckedByDeletesNow: an acknowledgement through AckedBy (the
// path every adapter takes) hands its delete to the store at once. It once
// stayed in the session's pending batch until the next durable write, so
// acknowledged messages piled up in the store and came back after a crash.
func TestStoreAckedByDeletesNow(t *testing.T) {
	forEngines(t, func(t *testing.T, e *storeEnv) {
		sub, sink, _ := connect(t, e.b, "sub", false, time.Hour, nil)
		if r := sub.Subscribe("t", SubOptions{QoS: 1}); r.Err != nil {
			t.Fatal(r.Err)
		}
		pub, _, _ := connect(t, e.b, "pub", true, 0, nil)
		for i := 0; i < 50; i++ {
			if err := pub.Publish(&Message{Topic: "t", Payload: []byte("x"), QoS: 1}); err != nil {
				t.Fatal(err)
			}
			for _, d := range sink.take() {
				if !sub.AckedBy(sink, d.ID) {
					t.Fatalf("AckedBy(%d) refused", d.ID)
				}
			}
		}
		// Nothing else of this session's will come: what the store holds
		// now is what a crash would leave.
		if n := storedMessages(t, e.st); n != 0 {
			t.Fatalf("%d acknowledged messages still in the store", n)
		}
	})
}

func storedMessages(t *testing.T, st store.Store) int {
	t.Helper()
	// An empty durable commit waits for every earlier one to be applied.
	if err := st.Commit(context.Background(), new(store.Batch), true); err != nil {
		t.Fatal(err)
	}
	n := 0
	err := st.Load(context.Background(), func(r store.Record) error {
		if r.Kind() == store.KindMessage {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestStoreRecoveredInflightAckDeletes: a message recovered into the
// inflight window (resent with DUP after a restart) and then acknowledged
// is deleted from the store, so a second restart does not bring it back.
// Recovered inflight entries were once not marked as stored, so their
// acknowledgement deleted nothing and every crash resurrected them.
func TestStoreRecoveredInflightAckDeletes(t *testing.T) {
	forEngines(t, func(t *testing.T, e *storeEnv) {
		sub, sink, _ := connect(t, e.b, "sub", false, time.Hour, nil)
		if r := sub.Subscribe("t", SubOptions{QoS: 1}); r.Err != nil {
			t.Fatal(r.Err)
		}
		sub.Start()
		pub, _, _ := connect(t, e.b, "pub", true, 0, nil)
		for i := 0; i < 3; i++ {
			if err := pub.Publish(&Message{Topic: "t", Payload: []byte("x"), QoS: 1}); err != nil {
				t.Fatal(err)
			}
		}
		if got := sink.take(); len(got) != 3 {
			t.Fatalf("got %d deliveries before the restart", len(got))
		}
		e.restart()

		sub, sink, _ = connect(t, e.b, "sub", false, time.Hour, nil)
		sub.Start()
		resent := sink.take()
		if len(resent) != 3 {
			t.Fatalf("resent %d after the restart, want 3", len(resent))
		}
		for _, d := range resent {
			if !sub.AckedBy(sink, d.ID) {
				t.Fatalf("AckedBy(%d) refused", d.ID)
			}
		}
		if n := storedMessages(t, e.st); n != 0 {
			t.Fatalf("%d acknowledged recovered messages still in the store", n)
		}
		e.restart()
		sub, sink, _ = connect(t, e.b, "sub", false, time.Hour, nil)
		sub.Start()
		if got := sink.take(); len(got) != 0 {
			t.Fatalf("%d acknowledged messages came back after a second restart", len(got))
		}
	})
}
