package pace

import "testing"

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestBackpressure: past the soft bound deliveries are kept and Room asks
// publishers to wait, up to twice the bound; the room opens at half the
// soft bound.
func TestBackpressure(t *testing.T) {
	var b Bound
	b.Init(4, true)
	for i := 0; i < 3; i++ {
		if !b.Admit() || b.Room() != nil || b.Over() {
			t.Fatalf("delivery %d: below the soft bound, no wait", i)
		}
	}
	if !b.Admit() || !b.Over() {
		t.Fatal("at the soft bound: publishers wait")
	}
	room := b.Room()
	if room == nil || b.Room() != room {
		t.Fatal("one room for every waiting publisher")
	}
	for i := 0; i < 4; i++ {
		if !b.Admit() {
			t.Fatalf("delivery %d past the soft bound refused", 4+i)
		}
	}
	if b.Admit() || b.Len() != 8 {
		t.Fatalf("beyond twice the bound: refused (held %d)", b.Len())
	}
	b.Done(5)
	if closed(room) {
		t.Fatal("room opened above half the soft bound")
	}
	b.Done(1)
	if !closed(room) || b.Over() || b.Room() != nil {
		t.Fatal("room still closed at half the soft bound")
	}
}

// TestNoBackpressure: the soft bound is the hard one; nobody waits.
func TestNoBackpressure(t *testing.T) {
	var b Bound
	b.Init(2, false)
	for i, want := range []bool{true, true, false} {
		if b.Admit() != want {
			t.Fatalf("delivery %d: admitted %v", i, !want)
		}
	}
	if b.Over() || b.Room() != nil {
		t.Fatal("a room without backpressure")
	}
}

// TestReleaseAndReset: a sink that stops draining or closes wakes its
// publishers; Release keeps the count, Reset drops it.
func TestReleaseAndReset(t *testing.T) {
	var b Bound
	b.Init(1, true)
	b.Admit()
	room := b.Room()
	b.Release()
	if !closed(room) || b.Len() != 1 || b.Over() {
		t.Fatal("Release")
	}
	b.Admit()
	room = b.Room()
	b.Reset()
	if !closed(room) || b.Len() != 0 {
		t.Fatal("Reset")
	}
}
