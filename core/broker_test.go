package core

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// fakeSink records deliveries; limit > 0 makes it refuse QoS 0 beyond it.
type fakeSink struct {
	mu     sync.Mutex
	got    []Delivery
	closed error
	limit  int
}

func (f *fakeSink) Deliver(d Delivery) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed != nil {
		return false
	}
	if f.limit > 0 && d.QoS == 0 && len(f.got) >= f.limit {
		return false
	}
	f.got = append(f.got, d)
	return true
}

func (f *fakeSink) Close(reason error) {
	f.mu.Lock()
	f.closed = reason
	f.mu.Unlock()
}

func (f *fakeSink) peek() []Delivery {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Delivery(nil), f.got...)
}

func (f *fakeSink) take() []Delivery {
	f.mu.Lock()
	defer f.mu.Unlock()
	g := f.got
	f.got = nil
	return g
}

func newTestBroker(t *testing.T, mod func(*Config)) *Broker {
	t.Helper()
	cfg := DefaultConfig()
	cfg.SysInterval = 0
	if mod != nil {
		mod(&cfg)
	}
	b, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

func connect(t *testing.T, b *Broker, id string, clean bool, expiry time.Duration, will *Will) (*Session, *fakeSink, bool) {
	t.Helper()
	sink := &fakeSink{}
	s, present, err := b.Connect(context.Background(), ConnectRequest{ClientID: id, Protocol: ProtoMQTT,
		CleanStart: clean, Expiry: expiry, Will: will, Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	return s, sink, present
}

func TestPublishSubscribeQoSDowngrade(t *testing.T) {
	b := newTestBroker(t, nil)
	sub, sink, _ := connect(t, b, "sub", true, 0, nil)
	pub, _, _ := connect(t, b, "pub", true, 0, nil)
	if r := sub.Subscribe("a/+/c", SubOptions{QoS: 1}); r.Err != nil {
		t.Fatal(r.Err)
	}
	for _, q := range []byte{0, 1, 2} {
		if err := pub.Publish(&Message{Topic: "a/b/c", Payload: []byte{q}, QoS: q}); err != nil {
			t.Fatal(err)
		}
	}
	got := sink.take()
	if len(got) != 3 {
		t.Fatalf("got %d deliveries, want 3", len(got))
	}
	for i, want := range []byte{0, 1, 1} {
		if got[i].QoS != want {
			t.Errorf("delivery %d QoS %d, want %d", i, got[i].QoS, want)
		}
		if (got[i].ID != 0) != (want > 0) {
			t.Errorf("delivery %d id %d for QoS %d", i, got[i].ID, want)
		}
	}
}

func TestOverlappingSubscriptionsDeliverOnce(t *testing.T) {
	b := newTestBroker(t, nil)
	sub, sink, _ := connect(t, b, "sub", true, 0, nil)
	sub.Subscribe("a/#", SubOptions{QoS: 0, ID: 1})
	sub.Subscribe("a/b", SubOptions{QoS: 2, ID: 2})
	b.Publish(&Message{Topic: "a/b", QoS: 2})
	got := sink.take()
	if len(got) != 1 || got[0].QoS != 2 || len(got[0].SubIDs) != 2 {
		t.Fatalf("got %+v, want one QoS 2 delivery with both ids [MQTT-3.3.5-1]", got)
	}
}

func TestRetainedOnSubscribe(t *testing.T) {
	b := newTestBroker(t, nil)
	b.Publish(&Message{Topic: "r/1", Payload: []byte("x"), QoS: 1, Retain: true})
	b.Publish(&Message{Topic: "r/2", Payload: []byte("y"), Retain: true})
	b.Publish(&Message{Topic: "r/2", Payload: nil, Retain: true}) // deletes
	sub, sink, _ := connect(t, b, "sub", true, 0, nil)
	r := sub.Subscribe("r/#", SubOptions{QoS: 2})
	if len(sink.take()) != 0 {
		t.Fatal("retained sent before SendRetained")
	}
	sub.SendRetained(r)
	got := sink.take()
	if len(got) != 1 || !got[0].Retain || got[0].Msg.Topic != "r/1" || got[0].QoS != 1 {
		t.Fatalf("got %+v", got)
	}
	// A live publication carries retain=0 [MQTT-3.3.1-9].
	b.Publish(&Message{Topic: "r/1", Payload: []byte("z"), Retain: true})
	if got := sink.take(); len(got) != 1 || got[0].Retain {
		t.Fatalf("live delivery %+v", got)
	}
}

func TestPersistentSessionQueuesAndResends(t *testing.T) {
	b := newTestBroker(t, nil)
	s, sink, _ := connect(t, b, "p", false, time.Hour, nil)
	s.Subscribe("q", SubOptions{QoS: 2})
	b.Publish(&Message{Topic: "q", Payload: []byte("1"), QoS: 1})
	first := sink.take()
	if len(first) != 1 {
		t.Fatal("no delivery")
	}
	s.Disconnect(sink, DisconnectOptions{})
	b.Publish(&Message{Topic: "q", Payload: []byte("2"), QoS: 2})
	b.Publish(&Message{Topic: "q", Payload: []byte("3"), QoS: 0}) // dropped: offline QoS 0
	s2, sink2, present := connect(t, b, "p", false, time.Hour, nil)
	if !present || s2 != s {
		t.Fatal("session not resumed")
	}
	got := sink2.take()
	if len(got) != 2 || !got[0].Dup || got[0].ID != first[0].ID || string(got[1].Msg.Payload) != "2" {
		t.Fatalf("resume deliveries %+v", got)
	}
	if !s.Acked(got[0].ID) || !s.Received(got[1].ID) {
		t.Fatal("acks not recognised")
	}
	s.Disconnect(sink2, DisconnectOptions{})
	_, sink3, _ := connect(t, b, "p", false, time.Hour, nil)
	got = sink3.take()
	if len(got) != 1 || !got[0].Release {
		t.Fatalf("want a PUBREL resend, got %+v", got)
	}
}

func TestInflightWindowAndQueue(t *testing.T) {
	b := newTestBroker(t, func(c *Config) { c.MaxInflight = 2; c.MaxQueued = 3; c.QueueFullPolicy = DropOldest })
	s, sink, _ := connect(t, b, "w", true, 0, nil)
	s.Subscribe("t", SubOptions{QoS: 1})
	for i := 0; i < 6; i++ {
		b.Publish(&Message{Topic: "t", Payload: []byte{byte(i)}, QoS: 1})
	}
	got := sink.take()
	if len(got) != 2 || s.QueuedCount() != 3 {
		t.Fatalf("window: %d sent, %d queued", len(got), s.QueuedCount())
	}
	if b.Stats().DroppedQueueFull.Load() != 1 {
		t.Fatal("queue-full drop not counted")
	}
	s.Acked(got[0].ID)
	next := sink.take()
	// drop_oldest dropped payload 2, so 3 is next.
	if len(next) != 1 || next[0].Msg.Payload[0] != 3 {
		t.Fatalf("after ack %+v", next)
	}
}

func TestTakeoverPublishesWillAndCloses(t *testing.T) {
	b := newTestBroker(t, nil)
	watcher, wsink, _ := connect(t, b, "watch", true, 0, nil)
	watcher.Subscribe("will/#", SubOptions{QoS: 1})
	_, old, _ := connect(t, b, "dup", true, 0, &Will{Msg: &Message{Topic: "will/dup", Payload: []byte("gone")}})
	connect(t, b, "dup", true, 0, nil)
	if !errors.Is(old.closed, ErrSessionTakenOver) {
		t.Fatalf("old sink closed with %v", old.closed)
	}
	if got := wsink.take(); len(got) != 1 || got[0].Msg.Topic != "will/dup" {
		t.Fatalf("will deliveries %+v", got)
	}
}

func TestCleanDisconnectSuppressesWill(t *testing.T) {
	b := newTestBroker(t, nil)
	watcher, wsink, _ := connect(t, b, "watch", true, 0, nil)
	watcher.Subscribe("w", SubOptions{})
	s, sink, _ := connect(t, b, "c", true, 0, &Will{Msg: &Message{Topic: "w"}})
	s.Disconnect(sink, DisconnectOptions{PublishWill: false})
	if n := len(wsink.take()); n != 0 {
		t.Fatalf("will published after clean disconnect (%d)", n)
	}
	s2, sink2, _ := connect(t, b, "c", true, 0, &Will{Msg: &Message{Topic: "w"}})
	s2.Disconnect(sink2, DisconnectOptions{PublishWill: true})
	if n := len(wsink.take()); n != 1 {
		t.Fatalf("will not published on unclean disconnect (%d)", n)
	}
}

func TestDelayedWillCancelledByReconnect(t *testing.T) {
	b := newTestBroker(t, nil)
	watcher, wsink, _ := connect(t, b, "watch", true, 0, nil)
	watcher.Subscribe("w", SubOptions{})
	s, sink, _ := connect(t, b, "d", false, time.Hour, &Will{Msg: &Message{Topic: "w"}, Delay: 50 * time.Millisecond})
	s.Disconnect(sink, DisconnectOptions{PublishWill: true})
	connect(t, b, "d", false, time.Hour, nil)
	time.Sleep(100 * time.Millisecond)
	if n := len(wsink.take()); n != 0 {
		t.Fatal("delayed will published despite reconnect")
	}
}

func TestSessionExpiry(t *testing.T) {
	b := newTestBroker(t, nil)
	s, sink, _ := connect(t, b, "e", false, 20*time.Millisecond, nil)
	s.Subscribe("x", SubOptions{QoS: 1})
	s.Disconnect(sink, DisconnectOptions{})
	deadline := time.Now().Add(2 * time.Second)
	for b.SessionCount() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("session did not expire")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if len(b.subs.Match("x")) != 0 {
		t.Fatal("expired session's subscription still routed")
	}
}

func TestInboundQoS2ExactlyOnce(t *testing.T) {
	b := newTestBroker(t, nil)
	sub, sink, _ := connect(t, b, "sub", true, 0, nil)
	sub.Subscribe("t", SubOptions{QoS: 2})
	pub, _, _ := connect(t, b, "pub", true, 0, nil)
	for i := 0; i < 3; i++ {
		if _, err := pub.PublishExactlyOnce(7, &Message{Topic: "t", QoS: 2}); err != nil {
			t.Fatal(err)
		}
	}
	if !pub.Release(7) || pub.Release(7) {
		t.Fatal("release bookkeeping")
	}
	if n := len(sink.take()); n != 1 {
		t.Fatalf("%d deliveries, want 1", n)
	}
}

func TestSharedSubscriptionRoundRobin(t *testing.T) {
	b := newTestBroker(t, nil)
	s1, k1, _ := connect(t, b, "m1", true, 0, nil)
	s2, k2, _ := connect(t, b, "m2", true, 0, nil)
	for _, s := range []*Session{s1, s2} {
		if r := s.Subscribe("$share/g/s/#", SubOptions{QoS: 1}); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	for i := 0; i < 10; i++ {
		b.Publish(&Message{Topic: "s/x", QoS: 1})
	}
	n1, n2 := len(k1.take()), len(k2.take())
	if n1+n2 != 10 || n1 == 0 || n2 == 0 {
		t.Fatalf("split %d/%d", n1, n2)
	}
	s1.Unsubscribe("$share/g/s/#")
	s2.Unsubscribe("$share/g/s/#")
	if b.subs.Len() != 0 {
		t.Fatal("group not removed")
	}
}

func TestNoLocal(t *testing.T) {
	b := newTestBroker(t, nil)
	s, sink, _ := connect(t, b, "nl", true, 0, nil)
	s.Subscribe("t", SubOptions{NoLocal: true})
	s.Publish(&Message{Topic: "t"})
	if len(sink.take()) != 0 {
		t.Fatal("no-local delivered own message")
	}
}

func TestPublishValidation(t *testing.T) {
	b := newTestBroker(t, nil)
	s, _, _ := connect(t, b, "v", true, 0, nil)
	for _, topic := range []string{"", "a/+", "a/#", "$SYS/x"} {
		if err := s.Publish(&Message{Topic: topic}); err == nil {
			t.Errorf("publish to %q accepted", topic)
		}
	}
	if r := s.Subscribe("a/#/b", SubOptions{}); !errors.Is(r.Err, ErrInvalidFilter) {
		t.Errorf("bad filter: %v", r.Err)
	}
}

func TestConcurrentPublishSubscribe(t *testing.T) {
	b := newTestBroker(t, nil)
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			id := string(rune('a' + i))
			s, sink, _ := connect(t, b, id, true, 0, nil)
			for j := 0; j < 200; j++ {
				s.Subscribe("c/"+id, SubOptions{QoS: 1})
				s.Publish(&Message{Topic: "c/" + id, QoS: 1})
				for _, d := range sink.take() {
					s.Acked(d.ID)
				}
				s.Unsubscribe("c/" + id)
			}
			s.Disconnect(sink, DisconnectOptions{})
		}(i)
	}
	wg.Wait()
	if b.SessionCount() != 0 {
		t.Fatalf("%d sessions left", b.SessionCount())
	}
}

func TestDelayedPublish(t *testing.T) {
	b := newTestBroker(t, nil)
	s, sink, _ := connect(t, b, "d", true, 0, nil)
	s.Subscribe("later/#", SubOptions{QoS: 1})
	if err := s.Publish(&Message{Topic: "$delayed/1/later/x", Payload: []byte("p"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	if len(sink.take()) != 0 || b.Stats().DelayedPending.Load() != 1 {
		t.Fatal("delivered before its delay")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if got := sink.take(); len(got) == 1 {
			if got[0].Msg.Topic != "later/x" {
				t.Fatalf("topic %q", got[0].Msg.Topic)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("delayed message never arrived")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, bad := range []string{"$delayed/x/t", "$delayed/1", "$delayed/1/a/+", "$delayed/1/$delayed/1/a"} {
		if err := s.Publish(&Message{Topic: bad}); !errors.Is(err, ErrInvalidTopic) {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

func TestLimits(t *testing.T) {
	b := newTestBroker(t, func(c *Config) { c.MaxConnections = 1; c.MaxSubscriptions = 1; c.MaxMessageExpiry = time.Minute })
	s, _, _ := connect(t, b, "one", true, 0, nil)
	if _, _, err := b.Connect(context.Background(), ConnectRequest{ClientID: "two", Sink: &fakeSink{}}); !errors.Is(err, ErrServerBusy) {
		t.Fatalf("second connection: %v", err)
	}
	if r := s.Subscribe("a", SubOptions{}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if r := s.Subscribe("a", SubOptions{QoS: 1}); r.Err != nil {
		t.Fatal("replacing a subscription counts against the limit")
	}
	if r := s.Subscribe("b", SubOptions{}); !errors.Is(r.Err, ErrQuotaExceeded) {
		t.Fatalf("over the limit: %v", r.Err)
	}
	m := &Message{Topic: "a"}
	s.Publish(m)
	if m.ExpiresAt.IsZero() || m.ExpiresAt.Sub(m.Created) != time.Minute {
		t.Fatal("max message expiry not applied")
	}
}

func TestResumeRespectsSmallerWindow(t *testing.T) {
	b := newTestBroker(t, nil)
	s, sink, _ := connect(t, b, "rw", false, time.Hour, nil)
	s.Subscribe("t", SubOptions{QoS: 1})
	for i := 0; i < 5; i++ {
		b.Publish(&Message{Topic: "t", QoS: 1, Payload: []byte{byte(i)}})
	}
	if len(sink.take()) != 5 {
		t.Fatal("setup")
	}
	s.Disconnect(sink, DisconnectOptions{})
	sink2 := &fakeSink{}
	s2, _, err := b.Connect(context.Background(), ConnectRequest{ClientID: "rw", Expiry: time.Hour, ReceiveMax: 2, Sink: sink2})
	if err != nil {
		t.Fatal(err)
	}
	s2.Start()
	got := sink2.take()
	if len(got) != 2 || got[0].Msg.Payload[0] != 0 || got[1].Msg.Payload[0] != 1 || !got[0].Dup {
		t.Fatalf("resent %d beyond the window of 2 [MQTT-3.3.4-9]", len(got))
	}
	s2.Acked(got[0].ID)
	next := sink2.take()
	if len(next) != 1 || next[0].Msg.Payload[0] != 2 || !next[0].Dup {
		t.Fatalf("after ack: %+v", next)
	}
}

func TestRetainedLimitAndQueueLimit(t *testing.T) {
	b := newTestBroker(t, func(c *Config) { c.MaxRetained = 1 })
	if err := b.Publish(&Message{Topic: "r/1", Payload: []byte("a"), Retain: true}); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(&Message{Topic: "r/1", Payload: []byte("b"), Retain: true}); err != nil {
		t.Fatal("replacing a retained message counts against the limit")
	}
	if err := b.Publish(&Message{Topic: "r/2", Payload: []byte("c"), Retain: true}); !errors.Is(err, ErrQuotaExceeded) {
		t.Fatalf("second retained topic: %v", err)
	}
	s, sink, _ := connect(t, b, "q", false, time.Hour, nil)
	s.Subscribe("t", SubOptions{QoS: 1})
	s.Disconnect(sink, DisconnectOptions{})
	s.SetQueueLimit(2)
	for i := 0; i < 5; i++ {
		b.Publish(&Message{Topic: "t", QoS: 1})
	}
	if s.QueuedCount() != 2 {
		t.Fatalf("queued %d, want the session's own limit 2", s.QueuedCount())
	}
}

func TestBackpressureKeepsMessagesAndHoldsPublisher(t *testing.T) {
	b := newTestBroker(t, func(c *Config) { c.MaxInflight = 1; c.MaxQueued = 2 })
	sub, sink, _ := connect(t, b, "slow", true, 0, nil)
	sub.Subscribe("t", SubOptions{QoS: 1})
	pub, _, _ := connect(t, b, "fast", true, 0, nil)
	for i := 0; i < 3; i++ { // 1 inflight + 2 queued: at the limit
		pub.Publish(&Message{Topic: "t", QoS: 1, Payload: []byte{byte(i)}})
	}
	if pub.WaitForRoom(time.Millisecond) {
		t.Fatal("publisher not held back by a full subscriber queue")
	}
	pub.Publish(&Message{Topic: "t", QoS: 1, Payload: []byte{3}})
	if sub.QueuedCount() != 3 || b.Stats().DroppedQueueFull.Load() != 0 {
		t.Fatalf("queued %d, dropped %d: an acknowledged message was dropped", sub.QueuedCount(), b.Stats().DroppedQueueFull.Load())
	}
	released := make(chan bool, 1)
	go func() { released <- pub.WaitForRoom(10 * time.Second) }()
	// The subscriber acknowledges; the queue drains below its limit and
	// the publisher is released.
	for i := 0; i < 2; i++ {
		ds := sink.take()
		if len(ds) != 1 {
			t.Fatalf("want one delivery in flight, got %d", len(ds))
		}
		sub.Acked(ds[0].ID)
	}
	if !<-released {
		t.Fatal("publisher not released when room appeared")
	}
	got := 2
	for {
		ds := sink.take()
		if len(ds) == 0 {
			break
		}
		got += len(ds)
		sub.Acked(ds[0].ID)
	}
	if got != 4 {
		t.Fatalf("subscriber got %d of 4", got)
	}
}

// TestSkipWait: a publisher that cannot be slowed forgets the congested
// subscribers its publications found, so a later publication does not
// wait for them.
func TestSkipWait(t *testing.T) {
	b := newTestBroker(t, func(c *Config) { c.MaxInflight = 1; c.MaxQueued = 1 })
	sub, _, _ := connect(t, b, "slow", true, 0, nil)
	sub.Subscribe("t", SubOptions{QoS: 1})
	pub, _, _ := connect(t, b, "udp", true, 0, nil)
	for i := 0; i < 2; i++ { // 1 inflight + 1 queued: at the limit
		pub.Publish(&Message{Topic: "t", QoS: 1})
	}
	if !pub.MustWait() {
		t.Fatal("setup: publisher not told to wait")
	}
	pub.SkipWait()
	if pub.MustWait() || !pub.WaitForRoom(time.Millisecond) {
		t.Fatal("waits kept after SkipWait")
	}
}
