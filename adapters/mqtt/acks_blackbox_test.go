package mqtt_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/iotgw/iotgw/adapters/mqtt"
	"github.com/iotgw/iotgw/adapters/mqtt/codec"
	"github.com/iotgw/iotgw/core"
	"github.com/iotgw/iotgw/core/store"
	"github.com/iotgw/iotgw/internal/testutil"
)

// gateStore is the memory store with a hand on the durability outcome:
// while holding, durable commits are applied but their done callbacks wait
// for the test to release them (in any order); with fail set, durable
// commits that write report that error.
type gateStore struct {
	store.Store
	mu   sync.Mutex
	hold bool
	held []func()
	fail error
}

func (g *gateStore) CommitAsync(b *store.Batch, durable bool, done func(error)) {
	writes := b.Len() > 0
	err := g.Store.Commit(context.Background(), b, durable)
	g.mu.Lock()
	if durable && writes && g.fail != nil {
		err = g.fail
	}
	if durable && g.hold {
		g.held = append(g.held, func() { done(err) })
		g.mu.Unlock()
		return
	}
	g.mu.Unlock()
	done(err)
}

func (g *gateStore) setHold(on bool) {
	g.mu.Lock()
	g.hold = on
	g.mu.Unlock()
}

func (g *gateStore) setFail(err error) {
	g.mu.Lock()
	g.fail = err
	g.mu.Unlock()
}

// heldCount returns how many durable outcomes are being held.
func (g *gateStore) heldCount() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.held)
}

// releaseNewestFirst hands out the held outcomes, newest first: the
// opposite of the order the acknowledgements must go out in.
func (g *gateStore) releaseNewestFirst() {
	g.mu.Lock()
	held := g.held
	g.held, g.hold = nil, false
	g.mu.Unlock()
	for i := len(held) - 1; i >= 0; i-- {
		held[i]()
	}
}

// startGated runs an MQTT server over a broker whose store is gs.
func startGated(t *testing.T, gs *gateStore) string {
	t.Helper()
	log := zaptest.NewLogger(t)
	ccfg := core.DefaultConfig()
	ccfg.SysInterval = 0
	b, err := core.New(ccfg, log, core.WithStore(gs))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	b.Start()
	cfg := mqtt.DefaultConfig()
	cfg.TCP, cfg.WS = "127.0.0.1:0", ""
	s := mqtt.New(cfg, log)
	if err := s.Start(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		gs.releaseNewestFirst()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Stop(ctx)
		b.Close()
	})
	return s.TCPAddr().String()
}

// offlineSubscriber leaves a persistent 3.1.1 session subscribed to
// filter at QoS 2, offline: what is published to it must be stored.
func offlineSubscriber(t *testing.T, addr, filter string) {
	t.Helper()
	r := dialRaw(t, addr)
	r.connectOK(&codec.Connect{ClientID: uniqueID("acks-sub"), KeepAlive: 60})
	r.send(&codec.Subscribe{PacketID: 1, Subscriptions: []codec.Subscription{{Filter: filter, QoS: 2}}})
	if _, ok := r.expect("SUBACK").(*codec.Suback); !ok {
		t.Fatal("no SUBACK")
	}
	r.send(&codec.Disconnect{})
	r.nc.Close()
}

// expectSilence fails if the broker sends anything within a short while:
// an acknowledgement must not overtake its durable write.
func expectSilence(t *testing.T, r *rawClient, why string) {
	t.Helper()
	_ = r.nc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if p, _, err := codec.ReadPacket(r.br, codec.V311, 0); err == nil {
		t.Fatalf("%s: got %s %+v before the write was durable", why, p.Type(), p)
	}
}

func expectAck(t *testing.T, r *rawClient, kind codec.PacketType, id uint16) {
	t.Helper()
	p := r.expect(kind.String())
	a, ok := p.(*codec.Ack)
	if !ok || a.Kind != kind || a.PacketID != id {
		t.Fatalf("got %s %+v, want %s for packet id %d [MQTT-4.6.0-2..4]", p.Type(), p, kind, id)
	}
}

// TestAcksWaitForDurableWritesInOrder: the reader keeps reading while the
// store makes its writes durable; each PUBACK/PUBREC/PUBCOMP goes only
// once its write is durable, and in the order the packets came, even when
// the outcomes arrive newest first and a message that wrote nothing
// (no persistent subscriber) completes at once.
func TestAcksWaitForDurableWritesInOrder(t *testing.T) {
	gs := &gateStore{Store: store.NewMemory()}
	addr := startGated(t, gs)
	offlineSubscriber(t, addr, "acks/#")

	// A persistent publisher: its held QoS 2 id is stored too.
	pub := dialRaw(t, addr)
	pub.connectOK(&codec.Connect{ClientID: uniqueID("acks-pub"), KeepAlive: 60})
	gs.setHold(true)
	pub.send(&codec.Publish{Topic: "acks/1", QoS: 1, PacketID: 1, Payload: []byte("one")})
	pub.send(&codec.Publish{Topic: "nobody/2", QoS: 1, PacketID: 2, Payload: []byte("two")})
	pub.send(&codec.Publish{Topic: "acks/3", QoS: 2, PacketID: 3, Payload: []byte("three")})
	pub.send(&codec.Publish{Topic: "acks/4", QoS: 1, PacketID: 4, Payload: []byte("four")})
	// The reader took all four without waiting for the disk: three
	// durable writes are held at once (a fourth when the publisher's
	// own session write, made after its CONNACK, reached the store only
	// once holding began).
	testutil.Eventually(t, waitTimeout, func() bool { return gs.heldCount() >= 3 }, "three durable writes in flight")
	expectSilence(t, pub, "publications held")
	gs.releaseNewestFirst()
	expectAck(t, pub, codec.TypePuback, 1)
	expectAck(t, pub, codec.TypePuback, 2)
	expectAck(t, pub, codec.TypePubrec, 3)
	expectAck(t, pub, codec.TypePuback, 4)

	// PUBCOMP waits for the release of the held id to be durable.
	gs.setHold(true)
	pub.send(&codec.Ack{Kind: codec.TypePubrel, PacketID: 3})
	testutil.Eventually(t, waitTimeout, func() bool { return gs.heldCount() == 1 }, "the release in flight")
	expectSilence(t, pub, "release held")
	gs.releaseNewestFirst()
	expectAck(t, pub, codec.TypePubcomp, 3)
}

// TestAckAfterStoreFailure: a publication whose write failed is not
// acknowledged as accepted. MQTT 5 says so in the PUBACK (0x80); 3.1.1
// cannot, so the connection ends without the PUBACK and the client
// resends later.
func TestAckAfterStoreFailure(t *testing.T) {
	gs := &gateStore{Store: store.NewMemory()}
	addr := startGated(t, gs)
	offlineSubscriber(t, addr, "fail/#")
	gs.setFail(errors.New("disk full"))

	v5 := &v5Raw{dialRaw(t, addr)}
	v5.connectOK(&codec.Connect{ClientID: uniqueID("fail-v5"), CleanStart: true})
	v5.send(&codec.Publish{Topic: "fail/5", QoS: 1, PacketID: 7, Payload: []byte("x")})
	ack := v5Expect[*codec.Ack](v5, "PUBACK")
	if ack.Kind != codec.TypePuback || ack.PacketID != 7 || ack.ReasonCode != codec.UnspecifiedError {
		t.Fatalf("got %+v, want PUBACK 7 with reason 0x80", ack)
	}

	v3 := dialRaw(t, addr)
	v3.connectOK(&codec.Connect{ClientID: uniqueID("fail-v3"), CleanStart: true, KeepAlive: 60})
	v3.send(&codec.Publish{Topic: "fail/3", QoS: 1, PacketID: 9, Payload: []byte("x")})
	v3.expectClosed("3.1.1 PUBLISH whose write failed")
}
