package coap

import (
	"testing"
	"time"
)

// TestDedupLifetime: an id is a duplicate within the lifetime (with its
// stored answer for CON), new again after it, and old entries are pruned.
func TestDedupLifetime(t *testing.T) {
	d := newDedup(time.Second)
	t0 := time.Unix(1000, 0)
	if v, _ := d.check(7, t0); v != dedupNew {
		t.Fatalf("first: %v", v)
	}
	if v, _ := d.check(7, t0); v != dedupPending {
		t.Fatalf("while processing: %v", v)
	}
	d.done(7, []byte{1, 2})
	if v, ack := d.check(7, t0.Add(500*time.Millisecond)); v != dedupAnswer || string(ack) != "\x01\x02" {
		t.Fatalf("duplicate: %v %x", v, ack)
	}
	if v, _ := d.check(8, t0); v != dedupNew {
		t.Fatalf("other id: %v", v)
	}
	d.done(8, nil)
	if v, _ := d.check(8, t0); v != dedupDrop {
		t.Fatalf("NON duplicate: %v", v)
	}
	for i := 0; i < 5000; i++ {
		d.check(uint16(100+i), t0.Add(2*time.Second+time.Duration(i)))
	}
	if v, _ := d.check(7, t0.Add(3*time.Second)); v != dedupNew {
		t.Fatalf("after the lifetime: %v", v)
	}
	if len(d.entries) > 5002 || len(d.order)-d.head != len(d.entries) {
		t.Fatalf("entries %d, order %d from %d", len(d.entries), len(d.order), d.head)
	}
}
