package app

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/iotgw/iotgw/core"
	"github.com/iotgw/iotgw/core/store"
)

// brokenStore is a store whose writes fail once broken.
type brokenStore struct {
	store.Store
	broken atomic.Bool
}

func (s *brokenStore) Commit(ctx context.Context, b *store.Batch, durable bool) error {
	if s.broken.Load() && b.Len() > 0 {
		return errors.New("input/output error")
	}
	return s.Store.Commit(ctx, b, durable)
}

func (s *brokenStore) CommitAsync(b *store.Batch, durable bool, done func(error)) {
	done(s.Commit(context.Background(), b, durable))
}

// TestStoreFailedSignalsStop: the first failed store write closes
// StoreFailed, which cmd/iotgw turns into a stop with exit status 1.
func TestStoreFailedSignalsStop(t *testing.T) {
	bs := &brokenStore{Store: store.NewMemory()}
	saved := openStore
	openStore = func(store.Config, *zap.Logger) (store.Store, error) { return bs, nil }
	t.Cleanup(func() { openStore = saved })

	cfg, err := Load([]byte("http: {listen: ''}\nmqtt: {tcp: '', ws: ''}\nstomp: {tcp: '', ws: ''}\nmqttsn: {udp: ''}\ncoap: {udp: ''}\nsys: {interval: 0}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	g, err := Start(context.Background(), cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Stop(context.Background()) })
	select {
	case <-g.StoreFailed():
		t.Fatal("StoreFailed closed before any failure")
	default:
	}
	bs.broken.Store(true)
	// A retained message is always stored: its write fails.
	if err := g.Broker.Publish(&core.Message{Topic: "r", Payload: []byte("x"), Retain: true}); !errors.Is(err, core.ErrStore) {
		t.Fatalf("publish: %v, want ErrStore", err)
	}
	select {
	case <-g.StoreFailed():
	case <-time.After(10 * time.Second):
		t.Fatal("StoreFailed not closed after a failed write")
	}
}
