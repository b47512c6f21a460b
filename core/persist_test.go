package core

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/iotgw/iotgw/core/store"
)

// storeEnv runs a test against one engine; restart closes the broker (and
// for pebble the store, as a shutdown does) and recovers a new broker from
// the same data.
type storeEnv struct {
	t      *testing.T
	engine string
	dir    string
	st     store.Store
	b      *Broker
}

func newStoreEnv(t *testing.T, engine string) *storeEnv {
	e := &storeEnv{t: t, engine: engine, dir: t.TempDir()}
	e.open()
	t.Cleanup(func() {
		e.b.Close()
		e.st.Close()
	})
	return e
}

func (e *storeEnv) open() {
	e.t.Helper()
	if e.st == nil {
		cfg := store.DefaultConfig()
		cfg.Engine, cfg.Dir = e.engine, e.dir
		st, err := store.Open(cfg, nil)
		if err != nil {
			e.t.Fatal(err)
		}
		e.st = st
	}
	cfg := DefaultConfig()
	cfg.SysInterval = 0
	b, err := New(cfg, nil, WithStore(e.st))
	if err != nil {
		e.t.Fatal(err)
	}
	if err := b.Recover(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	e.b = b
}

func (e *storeEnv) restart() {
	e.t.Helper()
	e.b.Close()
	if e.engine == store.EnginePebble {
		if err := e.st.Close(); err != nil {
			e.t.Fatal(err)
		}
		e.st = nil
	}
	e.open()
}

func forEngines(t *testing.T, f func(t *testing.T, e *storeEnv)) {
	for _, engine := range []string{store.EngineMemory, store.EnginePebble} {
		t.Run(engine, func(t *testing.T) { f(t, newStoreEnv(t, engine)) })
	}
}

// takeN takes what sink got once it holds n deliveries (or after a few
// seconds): a QoS 2 delivery to a persistent session goes out from
// another goroutine once its packet id is durable (durablesend.go).
func takeN(sink *fakeSink, n int) []Delivery {
	ds := sink.take()
	for deadline := time.Now().Add(5 * time.Second); len(ds) < n && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
		ds = append(ds, sink.take()...)
	}
	return ds
}

func topics(ds []Delivery) []string {
	var out []string
	for _, d := range ds {
		if d.Msg != nil {
			out = append(out, d.Msg.Topic)
		}
	}
	return out
}

func TestStoreRestartKeepsSessionsQueuesRetainedAndInbound(t *testing.T) {
	forEngines(t, func(t *testing.T, e *storeEnv) {
		sub, sink, _ := connect(t, e.b, "sub", false, time.Hour, nil)
		for f, q := range map[string]byte{"a/#": 1, "q2": 2, "$share/g/sh": 1} {
			if r := sub.Subscribe(f, SubOptions{QoS: q}); r.Err != nil {
				t.Fatal(r.Err)
			}
		}
		sub.Disconnect(sink, DisconnectOptions{})

		pub, _, _ := connect(t, e.b, "pub", true, 0, nil)
		now := time.Now()
		for _, m := range []*Message{
			{Topic: "a/1", Payload: []byte("1"), QoS: 1},
			{Topic: "a/2", Payload: []byte("2"), QoS: 1, Retain: true},
			{Topic: "a/3", Payload: []byte("3"), QoS: 1, ExpiresAt: now.Add(50 * time.Millisecond)},
			{Topic: "a/4", Payload: []byte("4"), QoS: 0},
			{Topic: "sh", Payload: []byte("s"), QoS: 1},
			{Topic: "$delayed/1/a/d", Payload: []byte("d"), QoS: 1},
		} {
			if err := pub.Publish(m); err != nil {
				t.Fatal(err)
			}
		}
		if dup, err := pub.PublishExactlyOnce(7, &Message{Topic: "q2", Payload: []byte("x"), QoS: 2}); dup || err != nil {
			t.Fatal(dup, err)
		}
		// A persistent publisher whose QoS 2 id awaits PUBREL across the restart.
		pub2, _, _ := connect(t, e.b, "pub2", false, time.Hour, nil)
		if _, err := pub2.PublishExactlyOnce(9, &Message{Topic: "none", Payload: []byte("y"), QoS: 2}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(60 * time.Millisecond) // a/3 expires meanwhile
		e.restart()

		if _, ok := e.b.Retained("a/2"); !ok {
			t.Fatal("retained message lost")
		}
		sub, sink, present := connect(t, e.b, "sub", false, time.Hour, nil)
		if !present {
			t.Fatal("session not present after restart")
		}
		if got := sub.Subscriptions(); len(got) != 3 {
			t.Fatalf("subscriptions %v", got)
		}
		sub.Start()
		ds := takeN(sink, 4)
		if got, want := topics(ds), []string{"a/1", "a/2", "sh", "q2"}; !slices.Equal(got, want) {
			t.Fatalf("delivered %v, want %v", got, want)
		}
		for _, d := range ds {
			if d.QoS == 2 {
				sub.Received(d.ID)
			}
			sub.Acked(d.ID)
		}
		deadline := time.Now().Add(3 * time.Second)
		var delayed []Delivery
		for len(delayed) == 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
			delayed = sink.take()
		}
		if got := topics(delayed); !slices.Equal(got, []string{"a/d"}) {
			t.Fatalf("delayed %v", got)
		}
		sub.Acked(delayed[0].ID)
		pub2, _, _ = connect(t, e.b, "pub2", false, time.Hour, nil)
		if dup, _ := pub2.PublishExactlyOnce(9, &Message{Topic: "none", Payload: []byte("y"), QoS: 2}); !dup {
			t.Fatal("inbound QoS 2 id not kept: the resent PUBLISH was routed again")
		}
		if !pub2.Release(9) {
			t.Fatal("release")
		}

		// Everything acknowledged is gone after another restart; the
		// released id too; nothing is delivered twice.
		e.restart()
		sub, sink, _ = connect(t, e.b, "sub", false, time.Hour, nil)
		sub.Start()
		if ds := sink.take(); len(ds) != 0 {
			t.Fatalf("acknowledged messages came back: %v", topics(ds))
		}
		pub2, _, _ = connect(t, e.b, "pub2", false, time.Hour, nil)
		if dup, _ := pub2.PublishExactlyOnce(9, &Message{Topic: "none", Payload: []byte("z"), QoS: 2}); dup {
			t.Fatal("released QoS 2 id still held after restart")
		}
	})
}

func TestStoreInflightResentWithSameID(t *testing.T) {
	forEngines(t, func(t *testing.T, e *storeEnv) {
		sub, sink, _ := connect(t, e.b, "sub", false, time.Hour, nil)
		sub.Subscribe("t", SubOptions{QoS: 2})
		sub.Start()
		e.b.Publish(&Message{Topic: "t", Payload: []byte("1"), QoS: 2})
		e.b.Publish(&Message{Topic: "t", Payload: []byte("2"), QoS: 2})
		ds := takeN(sink, 2)
		if len(ds) != 2 {
			t.Fatalf("got %d deliveries", len(ds))
		}
		sub.Received(ds[0].ID) // the first is awaiting PUBCOMP, the second PUBREC
		e.restart()

		sub, sink, _ = connect(t, e.b, "sub", false, time.Hour, nil)
		sub.Start()
		got := sink.take()
		if len(got) != 2 || !got[0].Release || got[0].ID != ds[0].ID || got[1].ID != ds[1].ID || !got[1].Dup ||
			string(got[1].Msg.Payload) != "2" {
			t.Fatalf("resent %+v after %+v", got, ds)
		}
	})
}

func TestStoreCleanSessionsAndQoS0NeverWrite(t *testing.T) {
	forEngines(t, func(t *testing.T, e *storeEnv) {
		before := e.st.Stats().Commits
		sub, sink, _ := connect(t, e.b, "sub", true, 0, nil)
		sub.Subscribe("t", SubOptions{QoS: 1})
		sub.Start()
		pub, _, _ := connect(t, e.b, "pub", false, time.Hour, nil) // persistent, but publishes only
		after := e.st.Stats().Commits
		for i := 0; i < 10; i++ {
			pub.Publish(&Message{Topic: "t", Payload: []byte("x"), QoS: 1})
			pub.Publish(&Message{Topic: "t", Payload: []byte("x"), QoS: 0})
		}
		for _, d := range sink.take() {
			sub.Acked(d.ID)
		}
		sub.Disconnect(sink, DisconnectOptions{})
		if got := e.st.Stats().Commits; got != after || after != before+1 {
			t.Fatalf("commits: %d before, %d after the persistent connect, %d at the end", before, after, got)
		}
	})
}

func TestStoreSessionExpiryCountsAcrossRestart(t *testing.T) {
	forEngines(t, func(t *testing.T, e *storeEnv) {
		s, sink, _ := connect(t, e.b, "gone", false, time.Hour,
			&Will{Msg: &Message{Topic: "will", Payload: []byte("w"), QoS: 1}, Delay: 2 * time.Hour})
		s.Subscribe("x", SubOptions{QoS: 1})
		s.Disconnect(sink, DisconnectOptions{PublishWill: true})
		watcher, wsink, _ := connect(t, e.b, "watch", false, time.Hour, nil)
		watcher.Subscribe("will", SubOptions{QoS: 1})
		watcher.Disconnect(wsink, DisconnectOptions{})
		// Pretend the disconnect happened two hours ago, beyond the
		// session's one-hour expiry. Counted from the recorded
		// disconnect the session is over at recovery; counted from the
		// restart it would live another hour. No clock is asserted.
		var b store.Batch
		b.PutSession(&store.Session{ClientID: "gone", Protocol: ProtoMQTT, Expiry: time.Hour,
			DisconnectedAt: time.Now().Add(-2 * time.Hour)})
		if err := e.st.Commit(context.Background(), &b, true); err != nil {
			t.Fatal(err)
		}
		e.restart()
		deadline := time.Now().Add(10 * time.Second)
		for e.b.SessionCount() != 1 {
			if time.Now().After(deadline) {
				t.Fatalf("%d sessions: the expired session survived the restart", e.b.SessionCount())
			}
			time.Sleep(5 * time.Millisecond)
		}
		// Its session ended before the will delay: the will went out.
		_, wsink, _ = connect(t, e.b, "watch", false, time.Hour, nil)
		for time.Now().Before(deadline) && len(wsink.peek()) == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		if got := topics(wsink.take()); !slices.Equal(got, []string{"will"}) {
			t.Fatalf("will deliveries %v", got)
		}
	})
}

// TestStoreSetWillRewritesSessionRecord: a will replaced while connected
// (MQTT-SN WILLTOPICUPD/WILLMSGUPD) is the one a crash publishes at the
// restart, not the one given at connect.
func TestStoreSetWillRewritesSessionRecord(t *testing.T) {
	forEngines(t, func(t *testing.T, e *storeEnv) {
		watcher, wsink, _ := connect(t, e.b, "watch", false, time.Hour, nil)
		watcher.Subscribe("will/#", SubOptions{QoS: 1})
		watcher.Disconnect(wsink, DisconnectOptions{})
		s, _, _ := connect(t, e.b, "sn", false, time.Hour,
			&Will{Msg: &Message{Topic: "will/old", Payload: []byte("o"), QoS: 1}})
		s.SetWill(&Will{Msg: &Message{Topic: "will/new", Payload: []byte("n"), QoS: 1}})
		// "sn" is still connected when the broker stops: for it a crash,
		// so recovery publishes its will.
		e.restart()
		_, wsink, _ = connect(t, e.b, "watch", false, time.Hour, nil)
		var got []string
		for deadline := time.Now().Add(5 * time.Second); len(got) == 0 && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
			got = append(got, topics(wsink.take())...)
		}
		if !slices.Equal(got, []string{"will/new"}) {
			t.Fatalf("will deliveries %v, want [will/new]", got)
		}
	})
}

// TestStoreAdapterState: an adapter's state of a persistent session (the
// MQTT-SN topic registry) survives a restart, the last one set wins, an
// empty one removes it, a clean session stores nothing, and the session's
// end removes it from the store.
func TestStoreAdapterState(t *testing.T) {
	forEngines(t, func(t *testing.T, e *storeEnv) {
		p, psink, _ := connect(t, e.b, "p", false, time.Hour, nil)
		for _, d := range []string{"one", "two"} {
			if err := p.SetAdapterState("mqttsn", []byte(d)); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.SetAdapterState("other", []byte("x")); err != nil {
			t.Fatal(err)
		}
		if err := p.SetAdapterState("other", nil); err != nil {
			t.Fatal(err)
		}
		if got := string(p.AdapterState("mqttsn")); got != "two" {
			t.Fatalf("in memory: %q", got)
		}
		p.Disconnect(psink, DisconnectOptions{})
		c, _, _ := connect(t, e.b, "c", true, 0, nil)
		if err := c.SetAdapterState("mqttsn", []byte("clean")); err != nil {
			t.Fatal(err)
		}
		if got := c.AdapterState("mqttsn"); got != nil {
			t.Fatalf("clean session kept %q", got)
		}
		// "k" is ended by a clean start before the restart.
		k, _, _ := connect(t, e.b, "k", false, time.Hour, nil)
		if err := k.SetAdapterState("mqttsn", []byte("k")); err != nil {
			t.Fatal(err)
		}
		connect(t, e.b, "k", true, 0, nil)
		e.restart()

		p, _, present := connect(t, e.b, "p", false, time.Hour, nil)
		if !present {
			t.Fatal("session not present")
		}
		if got := string(p.AdapterState("mqttsn")); got != "two" {
			t.Fatalf("after restart: %q, want two", got)
		}
		if got := p.AdapterState("other"); got != nil {
			t.Fatalf("removed state came back: %q", got)
		}
		k, _, present = connect(t, e.b, "k", false, time.Hour, nil)
		if present || k.AdapterState("mqttsn") != nil {
			t.Fatalf("ended session's state came back (present %v)", present)
		}
		// A clean start of "p" drops its state from the store too.
		connect(t, e.b, "p", true, 0, nil)
		e.restart()
		p, _, _ = connect(t, e.b, "p", false, time.Hour, nil)
		if got := p.AdapterState("mqttsn"); got != nil {
			t.Fatalf("state of a cleaned session came back: %q", got)
		}
	})
}
