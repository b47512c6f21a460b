package mqttsn

import "testing"

func TestRegistryEncodeDecode(t *testing.T) {
	pre := newPredefined([]PredefinedTopic{{ID: 1, Topic: "pre"}})
	r := newRegistry(10, pre)
	a, _ := r.assign("a/b")
	b, _ := r.assign("c")
	r.markKnown(a)
	got, err := decodeRegistry(r.encode(), 10, pre)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := got.name(a); n != "a/b" || !got.known[a] || got.known[b] || got.byName["c"] != b || got.next != r.next {
		t.Fatalf("decoded %+v from %+v", got, r)
	}
	if id, _ := got.assign("d"); id == a || id == b || id == 1 {
		t.Fatalf("new id %d collides", id)
	}
	for _, bad := range [][]byte{nil, {9}, {1}, {1, 5, 0, 2, 1, 9, 'x'}} {
		if _, err := decodeRegistry(bad, 10, pre); err == nil {
			t.Fatalf("%v decoded", bad)
		}
	}
}
