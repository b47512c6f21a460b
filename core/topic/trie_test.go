package topic

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// sub is the test subscriber value: it records where it was stored so a
// Match result can be checked against the filter that produced it.
type sub struct{ F, K string }

func (s sub) String() string { return s.F + "|" + s.K }

func sortedStrings(vs []sub) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.String()
	}
	slices.Sort(out)
	return out
}

func TestTrieMatchTable(t *testing.T) {
	for _, c := range matchCases {
		tr := NewTrie[sub]()
		tr.Add(c.filter, "k", sub{c.filter, "k"})
		got := tr.Match(c.topic)
		if (len(got) == 1) != c.want || len(got) > 1 {
			t.Errorf("Trie{%q}.Match(%q) = %v, want match=%v", c.filter, c.topic, got, c.want)
		}
		if again := tr.Match(c.topic); len(again) != len(got) { // cached path
			t.Errorf("Trie{%q}.Match(%q) cached = %v, uncached %v", c.filter, c.topic, again, got)
		}
	}

	// All filters in one trie: each topic must match exactly the filters
	// the table says, and nothing from neighbouring entries.
	tr := NewTrie[sub]()
	filters := map[string]bool{}
	for _, c := range matchCases {
		tr.Add(c.filter, "k", sub{c.filter, "k"})
		filters[c.filter] = true
	}
	for _, c := range matchCases {
		var want []string
		for f := range filters {
			if Matches(f, c.topic) {
				want = append(want, sub{f, "k"}.String())
			}
		}
		slices.Sort(want)
		if got := sortedStrings(tr.Match(c.topic)); !slices.Equal(got, want) {
			t.Errorf("Match(%q) = %v, want %v", c.topic, got, want)
		}
	}
}

func TestTrieAddReplaceRemoveGet(t *testing.T) {
	tr := NewTrie[int]()
	if !tr.Add("a/+", "s1", 1) {
		t.Fatal("first Add reported replace")
	}
	if !tr.Add("a/+", "s2", 2) || !tr.Add("a/#", "s1", 3) {
		t.Fatal("Add of new keys reported replace")
	}
	if tr.Add("a/+", "s1", 10) {
		t.Fatal("replacing Add reported added")
	}
	if n := tr.Len(); n != 3 {
		t.Fatalf("Len = %d, want 3", n)
	}
	if v, ok := tr.Get("a/+", "s1"); !ok || v != 10 {
		t.Fatalf("Get(a/+, s1) = %v, %v; want 10, true", v, ok)
	}
	for _, miss := range [][2]string{{"a/+", "s3"}, {"a", "s1"}, {"a/+/b", "s1"}, {"b/+", "s1"}, {"+", "s1"}} {
		if _, ok := tr.Get(miss[0], miss[1]); ok {
			t.Fatalf("Get%v found a value", miss)
		}
	}
	got := tr.Match("a/x")
	slices.Sort(got)
	if !slices.Equal(got, []int{2, 3, 10}) {
		t.Fatalf("Match(a/x) = %v, want [2 3 10]", got)
	}
	if tr.Remove("a/+", "nobody") || tr.Remove("x/y", "s1") || tr.Remove("a", "s1") {
		t.Fatal("Remove of a missing entry reported success")
	}
	if !tr.Remove("a/+", "s1") {
		t.Fatal("Remove(a/+, s1) failed")
	}
	if tr.Remove("a/+", "s1") {
		t.Fatal("second Remove succeeded")
	}
	if n := tr.Len(); n != 2 {
		t.Fatalf("Len = %d, want 2", n)
	}
	tr.Remove("a/+", "s2")
	tr.Remove("a/#", "s1")
	if tr.Len() != 0 || !tr.root.empty() {
		t.Fatalf("trie not pruned: Len=%d root=%+v", tr.Len(), tr.root)
	}
	if got := tr.Match("a/x"); len(got) != 0 {
		t.Fatalf("Match on empty trie = %v", got)
	}
}

func TestTriePruneKeepsSiblings(t *testing.T) {
	tr := NewTrie[int]()
	tr.Add("a/b/c", "k", 1)
	tr.Add("a/b", "k", 2)
	tr.Add("a/+/c", "k", 3)
	tr.Remove("a/b/c", "k")
	if _, ok := tr.Get("a/b", "k"); !ok {
		t.Fatal("removing a/b/c dropped a/b")
	}
	if tr.root.children["a"].children["b"].children != nil {
		t.Fatal("empty branch a/b/c not pruned")
	}
	tr.Remove("a/+/c", "k")
	if tr.root.children["a"].plus != nil {
		t.Fatal("empty '+' branch not pruned")
	}
	tr.Remove("a/b", "k")
	if !tr.root.empty() {
		t.Fatal("root not empty after removing everything")
	}
}

func TestTrieManyKeysPerFilter(t *testing.T) {
	// Crosses indexThreshold in both directions.
	tr := NewTrie[int]()
	const n = 100
	for i := range n {
		tr.Add("fleet/#", fmt.Sprint("s", i), i)
	}
	for i := 0; i < n; i += 2 {
		if !tr.Remove("fleet/#", fmt.Sprint("s", i)) {
			t.Fatalf("Remove s%d failed", i)
		}
	}
	for i := range n {
		v, ok := tr.Get("fleet/#", fmt.Sprint("s", i))
		if ok != (i%2 == 1) || (ok && v != i) {
			t.Fatalf("Get s%d = %v, %v", i, v, ok)
		}
	}
	if got := tr.Match("fleet/x"); len(got) != n/2 {
		t.Fatalf("Match returned %d values, want %d", len(got), n/2)
	}
	for i := 1; i < n; i += 2 {
		tr.Remove("fleet/#", fmt.Sprint("s", i))
	}
	if tr.Len() != 0 || !tr.root.empty() {
		t.Fatal("not empty after removing all keys")
	}
}

func TestTrieGeneration(t *testing.T) {
	tr := NewTrie[int]()
	g0 := tr.Generation()
	tr.Add("a", "k", 1)
	g1 := tr.Generation()
	tr.Add("a", "k", 2) // replace
	g2 := tr.Generation()
	tr.Remove("b", "k") // no-op
	g3 := tr.Generation()
	tr.Remove("a", "k")
	g4 := tr.Generation()
	tr.Match("a")
	if !(g0 < g1 && g1 < g2 && g2 == g3 && g3 < g4 && tr.Generation() == g4) {
		t.Fatalf("generations %d %d %d %d %d", g0, g1, g2, g3, g4)
	}
}

func TestTrieCacheInvalidation(t *testing.T) {
	tr := NewTrie[string]()
	tr.Add("a/b", "s1", "exact")
	if got := tr.Match("a/b"); !slices.Equal(got, []string{"exact"}) {
		t.Fatalf("Match = %v", got)
	}
	if got := tr.Match("x/y"); len(got) != 0 { // cache a negative result too
		t.Fatalf("Match(x/y) = %v", got)
	}

	tr.Add("a/+", "s2", "plus")
	tr.Add("#", "s3", "all")
	got := tr.Match("a/b")
	slices.Sort(got)
	if !slices.Equal(got, []string{"all", "exact", "plus"}) {
		t.Fatalf("after Add, Match = %v", got)
	}
	if got := tr.Match("x/y"); !slices.Equal(got, []string{"all"}) {
		t.Fatalf("after Add, cached negative result survived: %v", got)
	}

	tr.Add("a/+", "s2", "plus2") // replacement must invalidate too
	got = tr.Match("a/b")
	slices.Sort(got)
	if !slices.Equal(got, []string{"all", "exact", "plus2"}) {
		t.Fatalf("after replace, Match = %v", got)
	}

	tr.Remove("a/b", "s1")
	tr.Remove("#", "s3")
	if got := tr.Match("a/b"); !slices.Equal(got, []string{"plus2"}) {
		t.Fatalf("after Remove, Match = %v", got)
	}
}

func TestTrieResultAppendIsSafe(t *testing.T) {
	tr := NewTrie[int]()
	tr.Add("a", "1", 1)
	tr.Add("+", "2", 2)
	r1 := tr.Match("a")
	_ = append(r1, 99)
	r2 := tr.Match("a") // from cache
	if len(r2) != 2 || slices.Contains(r2, 99) {
		t.Fatalf("append to a result leaked into the cache: %v", r2)
	}
}

func TestTrieCacheBounded(t *testing.T) {
	const limit = 16
	tr := NewTrie[int]()
	tr.cacheLimit = limit
	tr.Add("t/+", "k", 1)
	cached := func(tp string) bool { _, ok := tr.cache.Load().m.Load(tp); return ok }

	// Random topics never grow the cache past its limit.
	for i := range 1000 {
		if got := tr.Match(fmt.Sprint("r/", i)); len(got) != 0 {
			t.Fatalf("Match(r/%d) = %v", i, got)
		}
		if n := tr.cache.Load().n.Load(); n > limit {
			t.Fatalf("cache holds %d entries, limit %d", n, limit)
		}
	}

	// One-off topics: the cache fills, is never hit, and stops growing...
	tr.Add("x", "k", 2) // fresh cache
	for i := range limit {
		tr.Match(fmt.Sprint("t/", i))
	}
	c := tr.cache.Load()
	for i := range 8*limit - 1 {
		tp := fmt.Sprint("t/u", i)
		if got := tr.Match(tp); len(got) != 1 {
			t.Fatalf("Match(%s) = %v", tp, got)
		}
		if tr.cache.Load() != c || cached(tp) {
			t.Fatalf("useless full cache grown or reset after %d skipped misses", i+1)
		}
	}
	// ...until 8*limit skipped misses, when it is replaced.
	tr.Match("t/later")
	if tr.cache.Load() == c || !cached("t/later") {
		t.Fatal("useless cache not reset after 8*limit skipped misses")
	}

	// A cache whose entries are hit is reset as soon as it is full.
	tr.Add("y", "k", 3) // fresh cache
	for i := range limit {
		tp := fmt.Sprint("t/", i)
		tr.Match(tp)
		tr.Match(tp) // hit
	}
	if h := tr.cache.Load().hits.Load(); h != limit {
		t.Fatalf("hits = %d, want %d", h, limit)
	}
	c = tr.cache.Load()
	tr.Match("t/hot")
	if tr.cache.Load() == c || !cached("t/hot") {
		t.Fatal("useful full cache was not reset for a new topic")
	}
	if got := tr.Match("t/0"); len(got) != 1 {
		t.Fatalf("Match after reset = %v", got)
	}
}

func TestTrieMatchAllocs(t *testing.T) {
	tr := NewTrie[int]()
	tr.Add("site/+/dev/#", "k", 1)
	tr.Add("site/1/dev/2/temp", "k", 2)
	tr.Match("site/1/dev/2/temp")
	if a := testing.AllocsPerRun(1000, func() { tr.Match("site/1/dev/2/temp") }); a != 0 {
		t.Errorf("cache hit allocates %v times per Match", a)
	}
	walk := func() {
		tr.mu.RLock()
		tr.match("site/1/dev/2/temp")
		tr.mu.RUnlock()
	}
	if a := testing.AllocsPerRun(1000, walk); a > 1 {
		t.Errorf("walk allocates %v times, want at most 1 (the result)", a)
	}
	miss := func() {
		tr.mu.RLock()
		tr.match("nothing/here")
		tr.mu.RUnlock()
	}
	if a := testing.AllocsPerRun(1000, miss); a != 0 {
		t.Errorf("walk with no result allocates %v times", a)
	}
}

// TestTrieRandom compares Match against a brute-force scan of every entry
// through a long random sequence of adds, replaces and removes, checking
// each topic twice so both the walk and the cache are exercised.
func TestTrieRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	tr := NewTrie[sub]()
	ref := map[sub]bool{}
	topics := make([]string, 300)
	for i := range topics {
		topics[i] = randTopic(r)
	}
	keys := []string{"k1", "k2", "k3"}
	for step := range 3000 {
		f, k := randFilter(r), keys[r.IntN(len(keys))]
		s := sub{f, k}
		if r.IntN(3) == 0 {
			if tr.Remove(f, k) != ref[s] {
				t.Fatalf("Remove(%q, %q) disagrees with reference", f, k)
			}
			delete(ref, s)
		} else {
			if tr.Add(f, k, s) == ref[s] {
				t.Fatalf("Add(%q, %q) added/replaced disagrees with reference", f, k)
			}
			ref[s] = true
		}
		if tr.Len() != len(ref) {
			t.Fatalf("Len = %d, want %d", tr.Len(), len(ref))
		}
		if step%50 != 0 {
			continue
		}
		for _, tp := range topics {
			var want []string
			for s := range ref {
				if Matches(s.F, tp) {
					want = append(want, s.String())
				}
			}
			slices.Sort(want)
			for pass := range 2 {
				if got := sortedStrings(tr.Match(tp)); !slices.Equal(got, want) {
					t.Fatalf("step %d pass %d Match(%q) = %v, want %v", step, pass, tp, got, want)
				}
			}
		}
	}
}

// TestTrieConcurrent hammers Add, Remove and Match from separate goroutines
// (run it with -race). While running, every returned value must belong to a
// filter matching the topic and a permanent subscription must never vanish.
// Afterwards, with the trie quiet, cached results must equal a brute-force
// scan: a walk filed into a newer cache would show up here as a stale entry.
func TestTrieConcurrent(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var filters, topics []string
	for range 60 {
		filters = append(filters, randFilter(r))
	}
	for range 60 {
		topics = append(topics, randTopic(r))
	}
	keys := []string{"k1", "k2"}

	tr := NewTrie[sub]()
	tr.Add("#", "forever", sub{"#", "forever"})
	tr.Add("$x/#", "forever", sub{"$x/#", "forever"})

	var stop atomic.Bool
	var wg sync.WaitGroup
	errc := make(chan error, 16)
	worker := func(seed uint64, fn func(r *rand.Rand) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, seed))
			for !stop.Load() {
				if err := fn(r); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	add := func(r *rand.Rand) error {
		f, k := filters[r.IntN(len(filters))], keys[r.IntN(len(keys))]
		tr.Add(f, k, sub{f, k})
		return nil
	}
	remove := func(r *rand.Rand) error {
		tr.Remove(filters[r.IntN(len(filters))], keys[r.IntN(len(keys))])
		return nil
	}
	const hot = 3 // topics the read-your-writes checkers contend on
	match := func(r *rand.Rand) error {
		tp := topics[r.IntN(len(topics))]
		if r.IntN(2) == 0 {
			tp = topics[r.IntN(hot)]
		}
		forever := false
		for _, s := range tr.Match(tp) {
			if !Matches(s.F, tp) {
				return fmt.Errorf("Match(%q) returned %v", tp, s)
			}
			forever = forever || s.K == "forever"
		}
		if !forever {
			return fmt.Errorf("Match(%q) lost the permanent subscription", tp)
		}
		return nil
	}
	// Read-your-writes: a Match that starts after Add/Remove returned must
	// see the change, even while other goroutines are filling the cache
	// with walks of older states. Filing such a walk into the cache
	// installed by the mutation would fail here.
	ryw := func(key string) func(r *rand.Rand) error {
		return func(r *rand.Rand) error {
			tp := topics[r.IntN(hot)]
			me := sub{tp, key}
			tr.Add(tp, key, me)
			if !slices.Contains(tr.Match(tp), me) {
				return fmt.Errorf("Match(%q) after Add misses %v", tp, me)
			}
			tr.Remove(tp, key)
			if slices.Contains(tr.Match(tp), me) {
				return fmt.Errorf("Match(%q) after Remove still has %v", tp, me)
			}
			return nil
		}
	}
	worker(1, add)
	worker(2, add)
	worker(5, ryw("ryw1"))
	worker(6, ryw("ryw2"))
	worker(3, remove)
	worker(4, remove)
	for i := range 4 {
		worker(10+uint64(i), match)
	}
	worker(20, func(*rand.Rand) error { tr.Len(); tr.Generation(); return nil })

	time.Sleep(300 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}

	current := []sub{{"#", "forever"}, {"$x/#", "forever"}}
	for _, f := range filters {
		for _, k := range keys {
			if _, ok := tr.Get(f, k); ok && !slices.Contains(current, sub{f, k}) {
				current = append(current, sub{f, k})
			}
		}
	}
	if tr.Len() != len(current) {
		t.Fatalf("Len = %d, Get finds %d entries", tr.Len(), len(current))
	}
	for _, tp := range topics {
		var want []string
		for _, s := range current {
			if Matches(s.F, tp) {
				want = append(want, s.String())
			}
		}
		slices.Sort(want)
		if got := sortedStrings(tr.Match(tp)); !slices.Equal(got, want) {
			t.Fatalf("quiescent Match(%q) = %v, want %v", tp, got, want)
		}
	}
}

// TestTrieMatchGenExact checks MatchGen's generation against AddGen's
// while the trie changes: a result holds value i of a replaced entry
// exactly when its generation is in [gen(i), gen(i+1)), on the cached and
// the walked path alike.
func TestTrieMatchGenExact(t *testing.T) {
	tr := NewTrie[int]()
	const n = 20000
	gens := make([]uint64, n+2)
	gens[n+1] = ^uint64(0)
	type seen struct {
		v   int // 0: no value of key "w"
		gen uint64
	}
	var wg, started sync.WaitGroup
	var stop atomic.Bool
	obs := make([][]seen, 3)
	for r := range obs {
		wg.Add(1)
		started.Add(1)
		go func() {
			defer wg.Done()
			started.Done()
			for !stop.Load() {
				res, g := tr.MatchGen("a/b")
				s := seen{gen: g}
				for _, v := range res {
					if v > 0 {
						s.v = v
					}
				}
				obs[r] = append(obs[r], s)
			}
		}()
	}
	wg.Add(1)
	go func() { // other mutations move the generation on in between
		defer wg.Done()
		for i := 0; !stop.Load(); i++ {
			tr.Add("x/#", "noise", -1)
			tr.Remove("x/#", "noise")
		}
	}()
	started.Wait()
	for i := 1; i <= n; i++ {
		_, gens[i] = tr.AddGen("a/+", "w", i)
	}
	stop.Store(true)
	wg.Wait()
	for _, list := range obs {
		for _, s := range list {
			if s.v == 0 {
				if s.gen >= gens[1] {
					t.Fatalf("generation %d has no value, but value 1 was added at %d", s.gen, gens[1])
				}
				continue
			}
			if s.gen < gens[s.v] || s.gen >= gens[s.v+1] {
				t.Fatalf("value %d seen at generation %d, but it was current in [%d, %d)", s.v, s.gen, gens[s.v], gens[s.v+1])
			}
		}
	}
	if _, g := tr.MatchGen("a/b"); g != tr.Generation() {
		t.Fatalf("quiescent MatchGen generation %d, trie at %d", g, tr.Generation())
	}
}
