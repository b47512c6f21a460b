// Package storetest is the one test suite every store.Store implementation
// passes: Run for the behaviour of a store while open, RunPersistent for
// what must survive closing and reopening it.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iotgw/iotgw/core/store"
)

// Run runs the suite; newStore returns an empty store (closed by the
// suite unless a test closes it itself).
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"EmptyLoad", testEmptyLoad},
		{"RoundTrip", testRoundTrip},
		{"LoadOrder", testLoadOrder},
		{"Overwrite", testOverwrite},
		{"Deletes", testDeletes},
		{"DeleteSessionIsARange", testDeleteSessionRange},
		{"OrderWithinBatch", testOrderWithinBatch},
		{"InvalidBatchWritesNothing", testInvalidBatch},
		{"EmptyBatch", testEmptyBatch},
		{"CancelledContext", testCancelled},
		{"Handler", testHandler},
		{"ConcurrentCommits", testConcurrent},
		{"CommitAsync", testCommitAsync},
		{"ManyMessages", testManyMessages},
		{"Stats", testStats},
		{"Closed", testClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() { _ = s.Close() })
			tc.fn(t, s)
		})
	}
}

// RunPersistent runs the reopen tests; open opens the store kept in dir
// (a new one when dir is empty of it). A store the test leaves open is
// closed by the suite.
func RunPersistent(t *testing.T, open func(t *testing.T, dir string) store.Store) {
	t.Run("Reopen", func(t *testing.T) {
		dir := t.TempDir()
		s := open(t, dir)
		want := fullSet()
		commit(t, s, true, func(b *store.Batch) { putAll(b, want) })
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = open(t, dir)
		defer s.Close()
		check(t, s, want)

		// Keep going on the reopened store: its old records can be
		// changed and deleted.
		commit(t, s, true, func(b *store.Batch) {
			b.DeleteSession("c1")
			b.DeleteRetained("r/1")
		})
		check(t, s, filter(want, func(r store.Record) bool {
			if rt, ok := r.(*store.Retained); ok {
				return rt.Msg.Topic != "r/1"
			}
			return clientOf(r) != "c1"
		}))
	})
	t.Run("NonDurableWritesSurviveClose", func(t *testing.T) {
		dir := t.TempDir()
		s := open(t, dir)
		var want []store.Record
		for i := range 50 {
			m := msg("c", uint64(i+1))
			want = append(want, m)
			commit(t, s, false, func(b *store.Batch) { b.PutMessage(m) })
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = open(t, dir)
		defer s.Close()
		check(t, s, want)
	})
	t.Run("ReopenManyTimes", func(t *testing.T) {
		dir := t.TempDir()
		var want []store.Record
		for i := range 5 {
			s := open(t, dir)
			check(t, s, want)
			m := msg("c", uint64(i+1))
			commit(t, s, true, func(b *store.Batch) { b.PutMessage(m) })
			want = append(want, m)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		}
	})
}

var (
	t0  = time.Unix(1_700_000_000, 123_456_789).UTC()
	ctx = context.Background()
)

func message(topic string, payload string) store.Message {
	return store.Message{
		Topic: topic, Payload: []byte(payload), QoS: 1,
		ContentType: "text/plain", PayloadFormat: 1,
		ExpiresAt: t0.Add(time.Hour), ResponseTopic: "reply/" + topic,
		CorrelationData: []byte{0, 1, 0xff},
		UserProps:       []store.UserProperty{{Key: "a", Value: "1"}, {Key: "a", Value: "2"}, {Key: "", Value: ""}},
		Created:         t0,
		Origin:          store.Origin{Protocol: "mqtt", ClientID: "pub", Username: "u", Listener: "tcp"},
	}
}

func msg(client string, seq uint64) *store.SessionMessage {
	m := message("t/"+client, fmt.Sprintf("payload %d", seq))
	return &store.SessionMessage{ClientID: client, Seq: seq, State: store.StateQueued, QoS: 1, Msg: &m,
		Filter: "t/#", SubIDs: []uint32{7}}
}

// fullSet is one record of every kind and shape, in Load order.
func fullSet() []store.Record {
	will := message("will/c1", "gone")
	retained := message("r/1", "kept")
	retained.Retain = true
	bare := store.Message{Topic: "r/2", Payload: []byte{0}}
	sent := msg("c1", 2)
	sent.State, sent.PacketID, sent.QoS, sent.Retain = store.StateSent, 65535, 2, true
	sent.SubIDs = []uint32{1, math.MaxUint32}
	sent.Share = "$share/g/t/#"
	received := &store.SessionMessage{ClientID: "c1", Seq: 3, State: store.StateReceived, PacketID: 9, QoS: 2}
	return []store.Record{
		&store.Session{ClientID: "c1", Protocol: "mqtt", Username: "alice", Expiry: time.Duration(math.MaxInt64),
			DisconnectedAt: t0, Will: &store.Will{Msg: will, Delay: 30 * time.Second}},
		&store.Subscription{ClientID: "c1", Filter: "$share/g/t/#", QoS: 1, ID: 268435455},
		&store.Subscription{ClientID: "c1", Filter: "a/+/b", QoS: 2, NoLocal: true, RetainAsPublished: true, RetainHandling: 2},
		&store.Inbound{ClientID: "c1", PacketID: 1},
		&store.Inbound{ClientID: "c1", PacketID: 65535},
		&store.Registration{ClientID: "c1", Adapter: "mqttsn", Data: []byte("\x00\x01topic")},
		msg("c1", 1), sent, received,
		&store.Session{ClientID: "c2 ünïcode", Protocol: "stomp", Expiry: 2 * time.Hour},
		msg("c2 ünïcode", 1),
		&store.Retained{Msg: retained},
		&store.Retained{Msg: bare},
		&store.PendingWill{ClientID: "c1", Due: t0.Add(30 * time.Second), Msg: will},
		&store.Delayed{ID: 1, Due: t0.Add(time.Minute), Msg: message("later", "x")},
		&store.Delayed{ID: math.MaxUint64, Due: t0, Msg: message("last", "")},
		&store.Ban{Field: "address", Value: "192.0.2.0/24", Until: t0.Add(time.Hour), Created: t0, Reason: "login failures"},
		&store.Ban{Field: "clientid", Value: "c1", Created: t0},
		&store.Ban{Field: "username", Value: "mallory ü", Reason: "manual"},
	}
}

// putAll puts records in the batch.
func putAll(b *store.Batch, rs []store.Record) {
	for _, r := range rs {
		switch r := r.(type) {
		case *store.Session:
			b.PutSession(r)
		case *store.Subscription:
			b.PutSubscription(r)
		case *store.Inbound:
			b.PutInbound(r.ClientID, r.PacketID)
		case *store.Registration:
			b.PutRegistration(r)
		case *store.SessionMessage:
			b.PutMessage(r)
		case *store.Retained:
			b.PutRetained(&r.Msg)
		case *store.PendingWill:
			b.PutWill(r)
		case *store.Delayed:
			b.PutDelayed(r)
		case *store.Ban:
			b.PutBan(r)
		}
	}
}

func clientOf(r store.Record) string {
	switch r := r.(type) {
	case *store.Session:
		return r.ClientID
	case *store.Subscription:
		return r.ClientID
	case *store.Inbound:
		return r.ClientID
	case *store.Registration:
		return r.ClientID
	case *store.SessionMessage:
		return r.ClientID
	}
	return ""
}

func filter(rs []store.Record, keep func(store.Record) bool) []store.Record {
	var out []store.Record
	for _, r := range rs {
		if keep(r) {
			out = append(out, r)
		}
	}
	return out
}

func commit(t *testing.T, s store.Store, durable bool, fill func(*store.Batch)) {
	t.Helper()
	var b store.Batch
	fill(&b)
	if err := s.Commit(ctx, &b, durable); err != nil {
		t.Fatalf("commit: %v", err)
	}
}

func loadAll(t *testing.T, s store.Store) []store.Record {
	t.Helper()
	var got []store.Record
	if err := s.Load(ctx, func(r store.Record) error {
		got = append(got, r)
		return nil
	}); err != nil {
		t.Fatalf("load: %v", err)
	}
	return got
}

// check loads s and compares with want, in order.
func check(t *testing.T, s store.Store, want []store.Record) {
	t.Helper()
	got := loadAll(t, s)
	if len(got) != len(want) {
		t.Fatalf("loaded %d records, want %d:\n%s", len(got), len(want), dump(got))
	}
	for i := range want {
		if g, w := canon(got[i]), canon(want[i]); !reflect.DeepEqual(g, w) {
			t.Fatalf("record %d:\n got %s\nwant %s", i, show(g), show(w))
		}
	}
}

func dump(rs []store.Record) string {
	var sb strings.Builder
	for _, r := range rs {
		sb.WriteString(show(r) + "\n")
	}
	return sb.String()
}

func show(r store.Record) string {
	switch r := r.(type) {
	case *store.Session:
		return fmt.Sprintf("%v %+v will=%+v", r.Kind(), *r, r.Will)
	case *store.SessionMessage:
		return fmt.Sprintf("%v %+v msg=%+v", r.Kind(), *r, r.Msg)
	}
	return fmt.Sprintf("%v %+v", r.Kind(), r)
}

// canon returns a copy of r with times in UTC without monotonic readings
// and empty slices as nil, the forms Load returns.
func canon(r store.Record) store.Record {
	tm := func(t time.Time) time.Time {
		if t.IsZero() {
			return t
		}
		return time.Unix(0, t.UnixNano()).UTC()
	}
	bs := func(b []byte) []byte {
		if len(b) == 0 {
			return nil
		}
		return bytes.Clone(b)
	}
	cm := func(m store.Message) store.Message {
		m.Payload, m.CorrelationData = bs(m.Payload), bs(m.CorrelationData)
		m.ExpiresAt, m.Created = tm(m.ExpiresAt), tm(m.Created)
		if len(m.UserProps) == 0 {
			m.UserProps = nil
		}
		return m
	}
	switch r := r.(type) {
	case *store.Session:
		c := *r
		c.DisconnectedAt = tm(c.DisconnectedAt)
		if c.Will != nil {
			w := *c.Will
			w.Msg = cm(w.Msg)
			c.Will = &w
		}
		return &c
	case *store.SessionMessage:
		c := *r
		if len(c.SubIDs) == 0 {
			c.SubIDs = nil
		}
		if c.Msg != nil {
			m := cm(*c.Msg)
			c.Msg = &m
		}
		return &c
	case *store.Registration:
		c := *r
		c.Data = bs(c.Data)
		return &c
	case *store.Retained:
		return &store.Retained{Msg: cm(r.Msg)}
	case *store.PendingWill:
		c := *r
		c.Due, c.Msg = tm(c.Due), cm(c.Msg)
		return &c
	case *store.Delayed:
		c := *r
		c.Due, c.Msg = tm(c.Due), cm(c.Msg)
		return &c
	case *store.Subscription:
		c := *r
		return &c
	case *store.Ban:
		c := *r
		c.Until, c.Created = tm(c.Until), tm(c.Created)
		return &c
	case *store.Inbound:
		c := *r
		return &c
	}
	return r
}

func testEmptyLoad(t *testing.T, s store.Store) { check(t, s, nil) }

func testRoundTrip(t *testing.T, s store.Store) {
	want := fullSet()
	commit(t, s, true, func(b *store.Batch) { putAll(b, want) })
	check(t, s, want)
	// A loaded record is the caller's: changing it changes nothing stored.
	got := loadAll(t, s)
	got[0].(*store.Session).Will.Msg.Payload[0] = 'X'
	check(t, s, want)
}

func testLoadOrder(t *testing.T, s store.Store) {
	// Put in scrambled order, one commit each; Load must group by session
	// (session, subscriptions, inbound, registrations, messages by Seq),
	// then retained, wills, delayed, bans.
	want := fullSet()
	for _, i := range []int{15, 8, 17, 3, 12, 0, 7, 1, 18, 14, 5, 10, 2, 13, 6, 16, 11, 9, 4} {
		commit(t, s, i%2 == 0, func(b *store.Batch) { putAll(b, want[i:i+1]) })
	}
	check(t, s, want)
	// Sequences order numerically, not by their decimal text.
	for _, seq := range []uint64{1 << 40, 256, 255, 2, 1 << 8 << 8} {
		commit(t, s, true, func(b *store.Batch) { b.PutMessage(msg("seq", seq)) })
	}
	var seqs []uint64
	_ = s.Load(ctx, store.Handler{Message: func(m *store.SessionMessage) error {
		if m.ClientID == "seq" {
			seqs = append(seqs, m.Seq)
		}
		return nil
	}}.Handle)
	if fmt.Sprint(seqs) != fmt.Sprint([]uint64{2, 255, 256, 1 << 16, 1 << 40}) {
		t.Fatalf("sequence order %v", seqs)
	}
}

func testOverwrite(t *testing.T, s store.Store) {
	m := msg("c", 5)
	commit(t, s, true, func(b *store.Batch) { b.PutMessage(m) })
	sent := *m
	sent.State, sent.PacketID = store.StateSent, 17
	commit(t, s, true, func(b *store.Batch) { b.PutMessage(&sent) })
	check(t, s, []store.Record{&sent})
	rec := store.SessionMessage{ClientID: "c", Seq: 5, State: store.StateReceived, PacketID: 17, QoS: 2}
	commit(t, s, true, func(b *store.Batch) { b.PutMessage(&rec) })
	check(t, s, []store.Record{&rec})

	sess := &store.Session{ClientID: "c", Protocol: "mqtt", Will: &store.Will{Msg: message("w", "x")}}
	commit(t, s, true, func(b *store.Batch) { b.PutSession(sess) })
	noWill := &store.Session{ClientID: "c", Protocol: "mqtt", Expiry: time.Minute, DisconnectedAt: t0}
	commit(t, s, true, func(b *store.Batch) { b.PutSession(noWill) })
	check(t, s, []store.Record{noWill, &rec})
}

func testDeletes(t *testing.T, s store.Store) {
	all := fullSet()
	commit(t, s, true, func(b *store.Batch) { putAll(b, all) })
	commit(t, s, true, func(b *store.Batch) {
		b.DeleteSubscription("c1", "a/+/b")
		b.DeleteInbound("c1", 65535)
		b.DeleteRegistration("c1", "mqttsn")
		b.DeleteMessage("c1", 2)
		b.DeleteRetained("r/2")
		b.DeleteWill("c1")
		b.DeleteDelayed(math.MaxUint64)
		b.DeleteBan("clientid", "c1")
		// Deleting what does not exist is not an error.
		b.DeleteMessage("nobody", 1)
		b.DeleteSession("nobody")
		b.DeleteRetained("none")
	})
	check(t, s, filter(all, func(r store.Record) bool {
		switch r := r.(type) {
		case *store.Subscription:
			return r.Filter != "a/+/b"
		case *store.Inbound:
			return r.PacketID != 65535
		case *store.Registration, *store.PendingWill:
			return false
		case *store.SessionMessage:
			return r.ClientID != "c1" || r.Seq != 2
		case *store.Retained:
			return r.Msg.Topic != "r/2"
		case *store.Delayed:
			return r.ID != math.MaxUint64
		case *store.Ban:
			return r.Field != "clientid"
		}
		return true
	}))
}

func testDeleteSessionRange(t *testing.T, s store.Store) {
	// Client ids that are prefixes of each other, or contain the bytes the
	// key layout uses, must not leak into each other's range.
	ids := []string{"a", "ab", "a\x00", "a\x01", "a\xff", "\xff\xff", "", strings.Repeat("x", 200), strings.Repeat("x", 201)}
	var all []store.Record
	for _, id := range ids {
		all = append(all,
			&store.Session{ClientID: id, Protocol: "mqtt"},
			&store.Subscription{ClientID: id, Filter: "f"},
			&store.Inbound{ClientID: id, PacketID: 3},
			&store.Registration{ClientID: id, Adapter: "mqttsn", Data: []byte{1}},
			msg(id, 1), msg(id, 2))
	}
	will := &store.PendingWill{ClientID: "a", Due: t0, Msg: message("w", "x")}
	commit(t, s, true, func(b *store.Batch) { putAll(b, all); b.PutWill(will) })
	for _, gone := range ids {
		commit(t, s, true, func(b *store.Batch) { b.DeleteSession(gone) })
		got := loadAll(t, s)
		left := map[string]int{}
		for _, r := range got {
			left[clientOf(r)]++
		}
		if left[gone] != 0 && gone != "" {
			t.Fatalf("after DeleteSession(%q): %d of its records left", gone, left[gone])
		}
		if got[len(got)-1].Kind() != store.KindWill {
			t.Fatalf("DeleteSession(%q) removed the pending will", gone)
		}
		ids = ids[1:]
		for _, id := range ids {
			if id != "" && left[id] != 6 {
				t.Fatalf("after DeleteSession(%q): %q has %d records, want 6", gone, id, left[id])
			}
		}
	}
	check(t, s, []store.Record{will})
}

func testOrderWithinBatch(t *testing.T, s store.Store) {
	old := &store.Session{ClientID: "c", Protocol: "mqtt", Expiry: time.Hour}
	commit(t, s, true, func(b *store.Batch) {
		b.PutSession(old)
		b.PutMessage(msg("c", 1))
		b.PutSubscription(&store.Subscription{ClientID: "c", Filter: "old"})
	})
	// A clean start: the old session goes as a range, the new one is put
	// after it in the same batch and survives.
	fresh := &store.Session{ClientID: "c", Protocol: "mqtt", Expiry: time.Minute}
	sub := &store.Subscription{ClientID: "c", Filter: "new", QoS: 1}
	commit(t, s, true, func(b *store.Batch) {
		b.DeleteSession("c")
		b.PutSession(fresh)
		b.PutSubscription(sub)
		b.PutMessage(msg("c", 9))
		b.DeleteMessage("c", 9)
		b.PutRetained(&store.Message{Topic: "r", Payload: []byte("1")})
		b.DeleteRetained("r")
	})
	check(t, s, []store.Record{fresh, sub})
}

func testInvalidBatch(t *testing.T, s store.Store) {
	var b store.Batch
	b.PutSession(&store.Session{ClientID: "c"})
	b.PutMessage(&store.SessionMessage{ClientID: "c", Seq: 1, State: store.StateSent}) // no body
	b.PutRetained(&store.Message{Topic: "r", Payload: []byte("1")})
	if err := s.Commit(ctx, &b, true); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("commit of an invalid batch: %v, want ErrInvalid", err)
	}
	b.Reset()
	b.PutMessage(&store.SessionMessage{ClientID: "c", Seq: 1, State: store.State(9), Msg: &store.Message{}})
	if err := s.Commit(ctx, &b, false); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("commit of an unknown state: %v, want ErrInvalid", err)
	}
	check(t, s, nil)
	b.Reset() // a reset batch is valid again
	b.PutInbound("c", 1)
	if err := s.Commit(ctx, &b, true); err != nil {
		t.Fatal(err)
	}
	check(t, s, []store.Record{&store.Inbound{ClientID: "c", PacketID: 1}})
}

func testEmptyBatch(t *testing.T, s store.Store) {
	var b store.Batch
	for _, durable := range []bool{false, true} {
		if err := s.Commit(ctx, &b, durable); err != nil {
			t.Fatalf("empty commit (durable %v): %v", durable, err)
		}
	}
	// An empty durable commit is a barrier for earlier non-durable ones.
	commit(t, s, false, func(b *store.Batch) { b.PutInbound("c", 1) })
	if err := s.Commit(ctx, &b, true); err != nil {
		t.Fatal(err)
	}
	check(t, s, []store.Record{&store.Inbound{ClientID: "c", PacketID: 1}})
}

func testCancelled(t *testing.T, s store.Store) {
	c, cancel := context.WithCancel(ctx)
	cancel()
	var b store.Batch
	b.PutInbound("c", 1)
	if err := s.Commit(c, &b, true); !errors.Is(err, context.Canceled) {
		t.Fatalf("commit with a cancelled context: %v", err)
	}
	if err := s.Load(c, func(store.Record) error { return nil }); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("load with a cancelled context: %v", err)
	}
	check(t, s, nil)
}

func testHandler(t *testing.T, s store.Store) {
	all := fullSet()
	commit(t, s, true, func(b *store.Batch) { putAll(b, all) })
	counts := map[store.Kind]int{}
	count := func(k store.Kind) func() error { return func() error { counts[k]++; return nil } }
	h := store.Handler{
		Session:      func(*store.Session) error { return count(store.KindSession)() },
		Subscription: func(*store.Subscription) error { return count(store.KindSubscription)() },
		Inbound:      func(*store.Inbound) error { return count(store.KindInbound)() },
		Registration: func(*store.Registration) error { return count(store.KindRegistration)() },
		Message:      func(*store.SessionMessage) error { return count(store.KindMessage)() },
		Retained:     func(*store.Retained) error { return count(store.KindRetained)() },
		Will:         func(*store.PendingWill) error { return count(store.KindWill)() },
		Delayed:      func(*store.Delayed) error { return count(store.KindDelayed)() },
		Ban:          func(*store.Ban) error { return count(store.KindBan)() },
	}
	if err := s.Load(ctx, h.Handle); err != nil {
		t.Fatal(err)
	}
	want := map[store.Kind]int{}
	for _, r := range all {
		want[r.Kind()]++
	}
	if !reflect.DeepEqual(counts, want) {
		t.Fatalf("handler counts %v, want %v", counts, want)
	}
	// Nil functions skip their kind; an error stops the load.
	stop := errors.New("stop")
	n := 0
	err := s.Load(ctx, store.Handler{Retained: func(*store.Retained) error { n++; return stop }}.Handle)
	if !errors.Is(err, stop) || n != 1 {
		t.Fatalf("load stopped with %v after %d calls", err, n)
	}
}

func testConcurrent(t *testing.T, s store.Store) {
	const writers, per = 8, 100
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := fmt.Sprintf("w%d", w)
			var b store.Batch
			for i := range per {
				b.Reset()
				b.PutMessage(msg(client, uint64(i)))
				if i%2 == 1 {
					b.DeleteMessage(client, uint64(i-1))
				}
				if err := s.Commit(ctx, &b, i%3 != 0); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	left := map[string][]uint64{}
	for _, r := range loadAll(t, s) {
		m := r.(*store.SessionMessage)
		left[m.ClientID] = append(left[m.ClientID], m.Seq)
	}
	for w := range writers {
		seqs := left[fmt.Sprintf("w%d", w)]
		if len(seqs) != per/2 {
			t.Fatalf("writer %d: %d messages left, want %d", w, len(seqs), per/2)
		}
		for i, seq := range seqs {
			if seq != uint64(2*i+1) {
				t.Fatalf("writer %d: message %d has seq %d", w, i, seq)
			}
		}
	}
}

func testCommitAsync(t *testing.T, s store.Store) {
	const n = 200
	var mu sync.Mutex
	var order []uint64
	var wg sync.WaitGroup
	var want []store.Record
	for i := range uint64(n) {
		m := msg("c", i+1)
		want = append(want, m)
		b := new(store.Batch) // each in flight until its done
		b.PutMessage(m)
		wg.Add(1)
		s.CommitAsync(b, true, func(err error) {
			defer wg.Done()
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
		})
	}
	wg.Wait()
	for i, seq := range order {
		if seq != uint64(i) {
			t.Fatalf("durable done calls out of commit order: %v", order)
		}
	}
	check(t, s, want)
	var bad store.Batch
	bad.PutMessage(&store.SessionMessage{ClientID: "c", Seq: 1, State: store.StateSent})
	done := make(chan error, 1)
	s.CommitAsync(&bad, true, func(err error) { done <- err })
	if err := <-done; !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("async commit of an invalid batch: %v", err)
	}
	var empty store.Batch
	s.CommitAsync(&empty, false, func(err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatalf("async empty commit: %v", err)
	}
}

func testManyMessages(t *testing.T, s store.Store) {
	const n = 5000
	var b store.Batch
	for i := range n {
		b.PutMessage(msg(fmt.Sprintf("c%d", i%10), uint64(i)))
		if b.Len() == 500 {
			if err := s.Commit(ctx, &b, true); err != nil {
				t.Fatal(err)
			}
			b.Reset()
		}
	}
	big := message(strings.Repeat("t/", 40000), strings.Repeat("p", 1<<20))
	b.PutRetained(&big)
	if err := s.Commit(ctx, &b, true); err != nil {
		t.Fatal(err)
	}
	got := loadAll(t, s)
	if len(got) != n+1 {
		t.Fatalf("loaded %d records, want %d", len(got), n+1)
	}
	if !reflect.DeepEqual(canon(got[n]), canon(&store.Retained{Msg: big})) {
		t.Fatal("large retained message changed")
	}
}

func testStats(t *testing.T, s store.Store) {
	before := s.Stats()
	commit(t, s, true, func(b *store.Batch) { b.PutInbound("c", 1) })
	after := s.Stats()
	if after.Commits != before.Commits+1 || after.Bytes <= before.Bytes || after.Groups == before.Groups {
		t.Fatalf("stats before %+v after %+v", before, after)
	}
}

func testClosed(t *testing.T, s store.Store) {
	commit(t, s, false, func(b *store.Batch) { b.PutInbound("c", 1) })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var b store.Batch
	b.PutInbound("c", 2)
	if err := s.Commit(ctx, &b, true); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("commit after close: %v", err)
	}
	if err := s.Load(ctx, func(store.Record) error { return nil }); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("load after close: %v", err)
	}
	done := make(chan error, 1)
	s.CommitAsync(&b, true, func(err error) { done <- err })
	if err := <-done; !errors.Is(err, store.ErrClosed) {
		t.Fatalf("async commit after close: %v", err)
	}
	if err := s.Close(); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("second close: %v", err)
	}
}
