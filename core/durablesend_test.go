package core

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/iotgw/iotgw/core/store"
)

// gateStore is the memory store with a gate: while it is shut, commits
// wait (nothing is written, nothing answered) until it opens, the way a
// slow disk, or a kill before the write, leaves them.
type gateStore struct {
	store.Store
	mu   sync.Mutex
	shut bool
	held []func()
}

func (g *gateStore) CommitAsync(b *store.Batch, durable bool, done func(error)) {
	g.mu.Lock()
	if g.shut {
		g.held = append(g.held, func() { g.Store.CommitAsync(b, durable, done) })
		g.mu.Unlock()
		return
	}
	g.mu.Unlock()
	g.Store.CommitAsync(b, durable, done)
}

func (g *gateStore) Commit(_ context.Context, b *store.Batch, durable bool) error {
	errc := make(chan error, 1)
	g.CommitAsync(b, durable, func(err error) { errc <- err })
	return <-errc
}

func (g *gateStore) close() {
	g.mu.Lock()
	g.shut = true
	g.mu.Unlock()
}

// open writes what waited, in order, and lets later commits through.
func (g *gateStore) open() {
	g.mu.Lock()
	held := g.held
	g.held, g.shut = nil, false
	g.mu.Unlock()
	for _, f := range held {
		f()
	}
}

// TestStoreQoS2SentOnlyOnceIDDurable: a QoS 2 delivery to a persistent
// session reaches the sink only once the record with its packet id is
// durable, both fresh from a publication and drained from the queue when
// the client comes back. Before, the PUBLISH went out at once: a kill
// before the write left the client holding an id the restarted gateway
// did not know was in use, and the next message sent under it was taken
// for a resend and dropped (cmd/iotgw TestCrashOnlineSubscribers).
func TestStoreQoS2SentOnlyOnceIDDurable(t *testing.T) {
	gs := &gateStore{Store: store.NewMemory()}
	cfg := DefaultConfig()
	cfg.SysInterval = 0
	b, err := New(cfg, nil, WithStore(gs))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	sub, sink, _ := connect(t, b, "sub", false, time.Hour, nil)
	if r := sub.Subscribe("t", SubOptions{QoS: 2}); r.Err != nil {
		t.Fatal(r.Err)
	}
	pub, _, _ := connect(t, b, "pub", true, 0, nil)

	// Fresh: the publication's batch carries the sent record and its id.
	gs.close()
	done := make(chan error, 1)
	if err := pub.PublishAsync(&Message{Topic: "t", Payload: []byte("1"), QoS: 2}, func(err error) { done <- err }); err != nil {
		t.Fatal(err)
	}
	if ds := sink.take(); len(ds) != 0 {
		t.Fatalf("QoS 2 PUBLISH %d sent before its packet id was durable", ds[0].ID)
	}
	gs.open()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ds := takeN(sink, 1)
	if len(ds) != 1 || ds[0].QoS != 2 || string(ds[0].Msg.Payload) != "1" {
		t.Fatalf("after the write: %+v", ds)
	}
	sub.Received(ds[0].ID)
	sub.Acked(ds[0].ID)

	// Drained: queued while offline, sent (and given its id) on resume.
	sub.Disconnect(sink, DisconnectOptions{})
	if err := pub.Publish(&Message{Topic: "t", Payload: []byte("2"), QoS: 2}); err != nil {
		t.Fatal(err)
	}
	sink = &fakeSink{}
	sub, _, err = b.Connect(context.Background(), ConnectRequest{ClientID: "sub", Protocol: ProtoMQTT, Expiry: time.Hour, Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	gs.close()
	sub.Start()
	if ds := sink.take(); len(ds) != 0 {
		t.Fatalf("queued QoS 2 PUBLISH %d sent before its packet id was durable", ds[0].ID)
	}
	gs.open()
	if ds := takeN(sink, 1); len(ds) != 1 || string(ds[0].Msg.Payload) != "2" {
		t.Fatalf("after the write: %+v", ds)
	}
}
