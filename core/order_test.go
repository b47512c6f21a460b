package core

import (
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The order replay (order.go). A publication that arrived after a
// SUBSCRIBE but is routed before the subscription is in the trie is
// simulated by publishing with an arrival later than the one given to
// SubscribeAt afterwards.

func payloads(ds []Delivery) []string {
	var out []string
	for _, d := range ds {
		if d.Msg != nil {
			out = append(out, string(d.Msg.Payload))
		}
	}
	return out
}

// replaySetup connects a subscriber and a publisher; subAt, now, is the
// arrival of the SUBSCRIBE to come.
func replaySetup(t *testing.T, mod func(*Config)) (b *Broker, sub *Session, sink *fakeSink, pub *Session, subAt int64) {
	t.Helper()
	b = newTestBroker(t, mod)
	sub, sink, _ = connect(t, b, "sub", true, 0, nil)
	pub, _, _ = connect(t, b, "pub", true, 0, nil)
	return b, sub, sink, pub, time.Now().UnixNano()
}

func TestOrderReplayOwedOnce(t *testing.T) {
	b, sub, sink, pub, subAt := replaySetup(t, nil)
	if err := pub.Publish(&Message{Topic: "t/1", Payload: []byte("m1"), QoS: 1, Arrived: subAt + 1000}); err != nil {
		t.Fatal(err)
	}
	if got := sink.peek(); len(got) != 0 {
		t.Fatalf("delivered before the subscription: %v", payloads(got))
	}
	res := sub.SubscribeAt("t/+", SubOptions{QoS: 1, ID: 7}, subAt)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	sub.SendRetained(res)
	if err := pub.Publish(&Message{Topic: "t/1", Payload: []byte("m2"), QoS: 1, Arrived: time.Now().UnixNano()}); err != nil {
		t.Fatal(err)
	}
	got := sink.take()
	if p := payloads(got); !slices.Equal(p, []string{"m1", "m2"}) {
		t.Fatalf("got %v, want [m1 m2] (m1 replayed once, m2 routed)", p)
	}
	if d := got[0]; d.QoS != 1 || d.Retain || !slices.Equal(d.SubIDs, []uint32{7}) || d.Filter != "t/+" || d.ID == 0 {
		t.Fatalf("replayed delivery %+v", d)
	}
	if n := b.Stats().MessagesReplayed.Load(); n != 1 {
		t.Fatalf("MessagesReplayed = %d, want 1", n)
	}
}

func TestOrderReplayNotOwed(t *testing.T) {
	for _, c := range []struct {
		name    string
		window  time.Duration
		arrived int64 // of the publication, relative to the SUBSCRIBE's
		unknown bool  // the SUBSCRIBE's arrival is unknown
		stale   bool  // both arrived longer than the window ago
		expired bool  // the publication expires before the SUBSCRIBE [MQTT-3.3.2-5]
	}{
		{name: "published first", arrived: -1000},
		{name: "same instant", arrived: 0},
		{name: "subscribe arrival unknown", arrived: 1000, unknown: true},
		{name: "disabled", window: -1, arrived: 1000},
		{name: "outside the window", arrived: 1000, stale: true},
		{name: "expired", arrived: 1000, expired: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, sub, sink, pub, subAt := replaySetup(t, func(cfg *Config) {
				if c.window < 0 {
					cfg.OrderWindow = 0
				}
			})
			if c.stale {
				subAt -= int64(2 * DefaultOrderWindow)
			}
			m := &Message{Topic: "t", Payload: []byte("m"), Arrived: subAt + c.arrived}
			if c.expired {
				m.ExpiresAt = time.Now().Add(time.Millisecond)
			}
			pub.Publish(m)
			if c.expired {
				time.Sleep(2 * time.Millisecond)
			}
			at := subAt
			if c.unknown {
				at = 0
			}
			sub.SubscribeAt("t", SubOptions{}, at)
			if got := sink.take(); len(got) != 0 {
				t.Fatalf("replayed %v", payloads(got))
			}
		})
	}
}

// A subscription that replaces one of the same filter is not owed what
// the old one had.
func TestOrderReplayReplacedSubscription(t *testing.T) {
	_, sub, sink, pub, subAt := replaySetup(t, nil)
	sub.Subscribe("t", SubOptions{})
	pub.Publish(&Message{Topic: "t", Payload: []byte("m"), Arrived: subAt + 1000})
	sub.SubscribeAt("t", SubOptions{QoS: 1}, subAt)
	if p := payloads(sink.take()); !slices.Equal(p, []string{"m"}) {
		t.Fatalf("got %v, want [m] once", p)
	}
}

// A session with another subscription matching the publication had it
// through that one.
func TestOrderReplayOverlappingSubscription(t *testing.T) {
	_, sub, sink, pub, subAt := replaySetup(t, nil)
	sub.Subscribe("t/#", SubOptions{})
	pub.Publish(&Message{Topic: "t/x", Payload: []byte("m"), Arrived: subAt + 1000})
	sub.SubscribeAt("t/x", SubOptions{}, subAt)
	if p := payloads(sink.take()); !slices.Equal(p, []string{"m"}) {
		t.Fatalf("got %v, want [m] once", p)
	}
}

func TestOrderReplayRetained(t *testing.T) {
	for _, c := range []struct {
		name   string
		opts   SubOptions
		retain bool // the one delivery has the retain flag
	}{
		{name: "sent as retained", opts: SubOptions{QoS: 1}, retain: true},
		{name: "retain handling 2", opts: SubOptions{QoS: 1, RetainHandling: 2}, retain: false},
		{name: "retain as published", opts: SubOptions{QoS: 1, RetainHandling: 2, RetainAsPublished: true}, retain: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, sub, sink, pub, subAt := replaySetup(t, nil)
			pub.Publish(&Message{Topic: "r", Payload: []byte("kept"), QoS: 1, Retain: true, Arrived: subAt + 1000})
			res := sub.SubscribeAt("r", c.opts, subAt)
			sub.SendRetained(res)
			got := sink.take()
			if p := payloads(got); !slices.Equal(p, []string{"kept"}) {
				t.Fatalf("got %v, want the retained message once", p)
			}
			if got[0].Retain != c.retain {
				t.Fatalf("retain flag %v, want %v", got[0].Retain, c.retain)
			}
		})
	}
}

// A retained message replaced before the subscription: the older one is
// replayed (it was a live publication), the current one comes as
// retained, after it.
func TestOrderReplayRetainedReplaced(t *testing.T) {
	_, sub, sink, pub, subAt := replaySetup(t, nil)
	pub.Publish(&Message{Topic: "r", Payload: []byte("old"), Retain: true, Arrived: subAt + 1000})
	pub.Publish(&Message{Topic: "r", Payload: []byte("new"), Retain: true, Arrived: subAt + 2000})
	res := sub.SubscribeAt("r", SubOptions{}, subAt)
	sub.SendRetained(res)
	got := sink.take()
	if p := payloads(got); !slices.Equal(p, []string{"old", "new"}) || got[0].Retain || !got[1].Retain {
		t.Fatalf("got %v (retain %v), want old (live) then new (retained)", p, got)
	}
}

func TestOrderReplayNoLocal(t *testing.T) {
	for _, noLocal := range []bool{false, true} {
		t.Run("no_local="+strconv.FormatBool(noLocal), func(t *testing.T) {
			b := newTestBroker(t, nil)
			s, sink, _ := connect(t, b, "self", true, 0, nil)
			subAt := time.Now().UnixNano()
			s.Publish(&Message{Topic: "t", Payload: []byte("own"), Arrived: subAt + 1000})
			s.SubscribeAt("t", SubOptions{NoLocal: noLocal}, subAt)
			want := []string{"own"}
			if noLocal {
				want = nil
			}
			if p := payloads(sink.take()); !slices.Equal(p, want) {
				t.Fatalf("got %v, want %v [MQTT-3.8.3-3]", p, want)
			}
		})
	}
}

// A shared group this subscription created gets what was owed; joining
// a group that existed gets nothing (a member had it).
func TestOrderReplayShared(t *testing.T) {
	b := newTestBroker(t, nil)
	first, sink1, _ := connect(t, b, "first", true, 0, nil)
	second, sink2, _ := connect(t, b, "second", true, 0, nil)
	pub, _, _ := connect(t, b, "pub", true, 0, nil)
	subAt := time.Now().UnixNano()
	pub.Publish(&Message{Topic: "t", Payload: []byte("m1"), QoS: 1, Arrived: subAt + 1000})
	res := first.SubscribeAt("$share/g/t", SubOptions{QoS: 1}, subAt)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	got := sink1.take()
	if p := payloads(got); !slices.Equal(p, []string{"m1"}) {
		t.Fatalf("group creator got %v, want [m1]", p)
	}
	first.Acked(got[0].ID)
	pub.Publish(&Message{Topic: "t", Payload: []byte("m2"), QoS: 1, Arrived: subAt + 2000})
	second.SubscribeAt("$share/g/t", SubOptions{QoS: 1}, subAt)
	if p := append(payloads(sink1.take()), payloads(sink2.take())...); !slices.Equal(p, []string{"m2"}) {
		t.Fatalf("group got %v, want [m2] once", p)
	}
}

// Per-publisher order [MQTT-4.6.0-6] while publications race the
// subscription: each message that arrived after the SUBSCRIBE reaches the
// subscriber exactly once, replayed or routed, and one publisher's
// messages of one QoS in the order published.
func TestOrderReplayRacePublisherOrder(t *testing.T) {
	var replayed uint64
	for round := range 40 {
		b := newTestBroker(t, nil)
		sub, sink, _ := connect(t, b, "sub", true, 0, nil)
		const pubs = 2
		var arrivals [pubs][]int64
		var stop atomic.Bool
		var wg sync.WaitGroup
		for p := range pubs {
			pub, _, _ := connect(t, b, "pub"+strconv.Itoa(p), true, 0, nil)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 400 && !stop.Load(); i++ {
					at := time.Now().UnixNano()
					arrivals[p] = append(arrivals[p], at)
					pub.Publish(&Message{Topic: "race/" + strconv.Itoa(p), Payload: []byte(strconv.Itoa(p) + "/" + strconv.Itoa(i)), QoS: byte(i % 2), Arrived: at})
				}
			}()
		}
		time.Sleep(time.Duration(round%5) * 100 * time.Microsecond)
		subAt := time.Now().UnixNano()
		sub.SubscribeAt("race/+", SubOptions{QoS: 1}, subAt)
		time.Sleep(time.Millisecond)
		stop.Store(true)
		wg.Wait()
		var all []Delivery
		for idle := 0; idle < 3; { // QoS 1 beyond the inflight window waits for acks
			ds := sink.take()
			if len(ds) == 0 {
				idle++
				time.Sleep(time.Millisecond)
				continue
			}
			idle = 0
			for _, d := range ds {
				if d.ID != 0 {
					sub.Acked(d.ID)
				}
			}
			all = append(all, ds...)
		}
		// Order holds per topic and QoS [MQTT-4.6.0-6]: a QoS 0 message
		// may overtake QoS 1 ones waiting for the inflight window.
		last := [pubs][2]int{{-1, -1}, {-1, -1}}
		seen := make(map[string]bool)
		for _, d := range all {
			key := string(d.Msg.Payload)
			ps, is, _ := strings.Cut(key, "/")
			p, err1 := strconv.Atoi(ps)
			i, err2 := strconv.Atoi(is)
			if err1 != nil || err2 != nil {
				t.Fatalf("payload %q", key)
			}
			if seen[key] {
				t.Fatalf("round %d: %s delivered twice", round, key)
			}
			seen[key] = true
			if i <= last[p][i%2] {
				t.Fatalf("round %d: publisher %d: %d after %d [MQTT-4.6.0-6]", round, p, i, last[p][i%2])
			}
			last[p][i%2] = i
		}
		for p := range pubs {
			for i, at := range arrivals[p] {
				if key := strconv.Itoa(p) + "/" + strconv.Itoa(i); at > subAt && !seen[key] {
					t.Fatalf("round %d: %s arrived %d ns after the SUBSCRIBE and was lost", round, key, at-subAt)
				}
			}
		}
		replayed += b.Stats().MessagesReplayed.Load()
		b.Close()
	}
	t.Logf("%d messages replayed in all", replayed)
}

// A persistent subscriber's replayed QoS 1 message has its record like a
// routed one: unacknowledged at a restart, it is sent again.
func TestOrderReplayPersistentStore(t *testing.T) {
	forEngines(t, func(t *testing.T, e *storeEnv) {
		sub, sink, _ := connect(t, e.b, "sub", false, time.Hour, nil)
		pub, _, _ := connect(t, e.b, "pub", true, 0, nil)
		subAt := time.Now().UnixNano()
		if err := pub.Publish(&Message{Topic: "p", Payload: []byte("m"), QoS: 1, Arrived: subAt + 1000}); err != nil {
			t.Fatal(err)
		}
		if r := sub.SubscribeAt("p", SubOptions{QoS: 1}, subAt); r.Err != nil {
			t.Fatal(r.Err)
		}
		if p := payloads(takeN(sink, 1)); !slices.Equal(p, []string{"m"}) {
			t.Fatalf("got %v before the restart", p)
		}
		sub.Disconnect(sink, DisconnectOptions{})
		e.restart()
		_, sink2, present := connect(t, e.b, "sub", false, time.Hour, nil)
		got := takeN(sink2, 1)
		if !present || !slices.Equal(payloads(got), []string{"m"}) || !got[0].Dup {
			t.Fatalf("after the restart (present %v): %+v, want m resent", present, got)
		}
	})
}

// The log keeps at most orderShardSize entries per shard, and the sweep
// releases entries older than the window.
func TestOrderLogBounds(t *testing.T) {
	l := newOrderLog(10 * time.Millisecond)
	defer l.stop()
	now := time.Now().UnixNano()
	for i := range 3 * orderShards * orderShardSize {
		l.routed(l.record(&Message{Topic: "t", Arrived: now + int64(i)}, nil), 0)
	}
	if big := l.record(&Message{Topic: "t", Payload: make([]byte, orderMaxPayload+1), Arrived: now}, nil); big.e != nil {
		t.Fatal("a large payload was logged")
	}
	count := func() (n int) {
		for i := range l.shards {
			sh := &l.shards[i]
			sh.mu.Lock()
			for k := range sh.ring {
				if sh.ring[k].seq != 0 {
					n++
				}
			}
			sh.mu.Unlock()
		}
		return n
	}
	if n := count(); n != orderShards*orderShardSize {
		t.Fatalf("%d entries, want %d", n, orderShards*orderShardSize)
	}
	deadline := time.Now().Add(2 * time.Second)
	for count() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := count(); n != 0 {
		t.Fatalf("%d entries left after the window", n)
	}
	if l.armed.Load() {
		t.Fatal("sweep timer still armed for an empty log")
	}
}

// A scan waits for an entry whose publisher is still matching, and gives
// up on it (counted) after orderPendingWait.
func TestOrderLogPending(t *testing.T) {
	l := newOrderLog(time.Second)
	defer l.stop()
	var st Stats
	now := time.Now().UnixNano()
	ref := l.record(&Message{Topic: "t", Arrived: now + 1}, nil)
	go func() {
		time.Sleep(time.Millisecond)
		l.routed(ref, 4)
	}()
	if got := l.owed("t", now, 5, &st); len(got) != 1 || got[0].state != routedState(4) {
		t.Fatalf("owed = %+v, want the entry routed against generation 4", got)
	}
	if got := l.owed("t", now, 4, &st); len(got) != 0 {
		t.Fatalf("owed to generation 4 = %+v, want none (it saw the subscription)", got)
	}
	l.record(&Message{Topic: "t", Arrived: now + 2}, nil) // never routed
	start := time.Now()
	if got := l.owed("t", now+1, 5, &st); len(got) != 0 {
		t.Fatalf("unresolved entry replayed: %+v", got)
	}
	if d := time.Since(start); d < orderPendingWait {
		t.Fatalf("gave up after %v", d)
	}
	if n := st.ReplaysUnresolved.Load(); n != 1 {
		t.Fatalf("ReplaysUnresolved = %d", n)
	}
}

// keepPublisherOrder restores one session's publication order among
// candidates whose arrival times disagree with it.
func TestOrderKeepPublisherOrder(t *testing.T) {
	a, b := &Message{Origin: Origin{sessionKey: "a"}}, &Message{Origin: Origin{sessionKey: "b"}}
	c := []replayCand{
		{msg: a, arrived: 1, pub: 2},
		{msg: b, arrived: 2, pub: 1},
		{msg: a, arrived: 3, pub: 1},
		{msg: b, arrived: 4, pub: 2},
	}
	keepPublisherOrder(c)
	var got []string
	for _, x := range c {
		got = append(got, x.msg.Origin.sessionKey+strconv.FormatUint(x.pub, 10))
	}
	if want := []string{"a1", "b1", "a2", "b2"}; !slices.Equal(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
}
