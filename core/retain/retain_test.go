package retain

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/iotgw/iotgw/core/topic"
)

func collect(s *Store[string], filter string) []string {
	var out []string
	s.Match(filter, func(tp, v string) bool {
		if tp != v {
			panic(fmt.Sprintf("topic %q delivered with value %q", tp, v))
		}
		out = append(out, tp)
		return true
	})
	slices.Sort(out)
	return out
}

func TestSetGetReplaceDelete(t *testing.T) {
	s := New[int]()
	if s.Set("a/b", 1) {
		t.Fatal("first Set reported replace")
	}
	if !s.Set("a/b", 2) {
		t.Fatal("second Set did not report replace")
	}
	s.Set("a", 3)
	s.Set("a/b/c", 4)
	s.Set("a//", 5)
	if s.Len() != 4 {
		t.Fatalf("Len = %d, want 4", s.Len())
	}
	for tp, want := range map[string]int{"a/b": 2, "a": 3, "a/b/c": 4, "a//": 5} {
		if v, ok := s.Get(tp); !ok || v != want {
			t.Fatalf("Get(%q) = %v, %v; want %v", tp, v, ok, want)
		}
	}
	for _, tp := range []string{"a/", "a/b/c/d", "b", "A/b", "a/b/"} {
		if _, ok := s.Get(tp); ok {
			t.Fatalf("Get(%q) found a value", tp)
		}
	}
	if s.Delete("a/") || s.Delete("x") || s.Delete("a/b/c/d") {
		t.Fatal("Delete of a missing topic reported success")
	}
	if !s.Delete("a/b") || s.Delete("a/b") {
		t.Fatal("Delete(a/b) not exactly once")
	}
	if _, ok := s.Get("a/b/c"); !ok {
		t.Fatal("deleting a/b lost a/b/c")
	}
	if s.Len() != 3 {
		t.Fatalf("Len = %d, want 3", s.Len())
	}
	// Re-setting a topic whose path survives as an interior node.
	if s.Set("a/b", 6) {
		t.Fatal("Set on interior node reported replace")
	}
	if got := collect2(s, "a/+"); !slices.Equal(got, []string{"a/b=6"}) {
		t.Fatalf("Match(a/+) = %v", got)
	}
}

func collect2(s *Store[int], filter string) []string {
	var out []string
	s.Match(filter, func(tp string, v int) bool {
		out = append(out, fmt.Sprintf("%s=%d", tp, v))
		return true
	})
	slices.Sort(out)
	return out
}

func TestSetWithin(t *testing.T) {
	s := New[int]()
	if _, ok := s.SetWithin("a", 1, 2); !ok {
		t.Fatal("first topic refused")
	}
	if _, ok := s.SetWithin("a/b/c", 2, 2); !ok {
		t.Fatal("second topic refused")
	}
	if _, ok := s.SetWithin("a/b", 3, 2); ok {
		t.Fatal("third topic kept beyond the bound (its path exists)")
	}
	if _, ok := s.Get("a/b"); ok || s.Len() != 2 {
		t.Fatalf("refused topic stored: len %d", s.Len())
	}
	if replaced, ok := s.SetWithin("a/b/c", 4, 2); !ok || !replaced {
		t.Fatalf("replacing in a full store: replaced %v ok %v", replaced, ok)
	}
	if _, ok := s.SetWithin("x", 5, 0); !ok || s.Len() != 3 {
		t.Fatal("a bound of zero refused")
	}
}

// TestSetWithinConcurrent adds many new topics at once to a bounded store:
// exactly the bound are kept.
func TestSetWithinConcurrent(t *testing.T) {
	const max, callers = 7, 64
	s := New[int]()
	var (
		wg sync.WaitGroup
		mu sync.Mutex
		ok int
	)
	for i := 0; i < callers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, kept := s.SetWithin(fmt.Sprintf("t/%d", i), i, max); kept {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if ok != max || s.Len() != max {
		t.Fatalf("%d kept, len %d, bound %d", ok, s.Len(), max)
	}
}

func TestDeletePrunes(t *testing.T) {
	s := New[int]()
	s.Set("a/b/c/d", 1)
	s.Set("a/x", 2)
	s.Delete("a/b/c/d")
	a := s.root.children["a"]
	if a == nil || a.children["b"] != nil || a.children["x"] == nil {
		t.Fatalf("branch a/b/c/d not pruned or a/x lost: %+v", a)
	}
	s.Delete("a/x")
	if s.root.children != nil || s.Len() != 0 {
		t.Fatalf("store not empty: %+v", s.root)
	}
	// Deleting a value whose node still has children keeps the children.
	s.Set("p", 1)
	s.Set("p/q", 2)
	s.Delete("p")
	if v, ok := s.Get("p/q"); !ok || v != 2 {
		t.Fatal("deleting p lost p/q")
	}
	if _, ok := s.Get("p"); ok {
		t.Fatal("p still present")
	}
}

func TestMatchRules(t *testing.T) {
	s := New[string]()
	topics := []string{"a", "a/b", "a/b/c", "a/", "a//c", "/a", "/", "b", "A/b",
		"$SYS", "$SYS/uptime", "$SYS/broker/load", "a/$b", "ü/x"}
	for _, tp := range topics {
		s.Set(tp, tp)
	}
	cases := map[string][]string{
		"#":        {"/", "/a", "A/b", "a", "a/", "a//c", "a/$b", "a/b", "a/b/c", "b", "ü/x"},
		"+":        {"a", "b"},
		"a/#":      {"a", "a/", "a//c", "a/$b", "a/b", "a/b/c"},
		"a/+":      {"a/", "a/$b", "a/b"},
		"a/+/c":    {"a//c", "a/b/c"},
		"+/+":      {"/", "/a", "A/b", "a/", "a/$b", "a/b", "ü/x"},
		"/#":       {"/", "/a"},
		"/+":       {"/", "/a"},
		"+/#":      {"/", "/a", "A/b", "a", "a/", "a//c", "a/$b", "a/b", "a/b/c", "b", "ü/x"},
		"$SYS/#":   {"$SYS", "$SYS/broker/load", "$SYS/uptime"},
		"$SYS/+":   {"$SYS/uptime"},
		"+/uptime": nil,
		"a/b":      {"a/b"},
		"A/b":      {"A/b"},
		"a/b/c/#":  {"a/b/c"},
		"a/b/c/+":  nil,
		"nothing":  nil,
	}
	for f, want := range cases {
		slices.Sort(want)
		if got := collect(s, f); !slices.Equal(got, want) {
			t.Errorf("Match(%q) = %q, want %q", f, got, want)
		}
	}
}

func TestMatchStopsEarly(t *testing.T) {
	s := New[int]()
	for i := range 100 {
		s.Set(fmt.Sprint("t/", i), i)
	}
	for _, f := range []string{"#", "t/#", "t/+", "+/+"} {
		calls := 0
		s.Match(f, func(string, int) bool { calls++; return calls < 3 })
		if calls != 3 {
			t.Errorf("Match(%q) called fn %d times after it returned false", f, calls)
		}
	}
	calls := 0
	s.Range(func(string, int) bool { calls++; return false })
	if calls != 1 {
		t.Errorf("Range called fn %d times, want 1", calls)
	}
}

func TestRange(t *testing.T) {
	s := New[string]()
	want := []string{"$SYS/x", "a", "a/b", "/", "a//"}
	for _, tp := range want {
		s.Set(tp, tp)
	}
	var got []string
	s.Range(func(tp, v string) bool { got = append(got, tp); return true })
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("Range = %v, want %v", got, want)
	}
}

var levels = []string{"a", "b", "c", "", "$x", "ü"}

func randTopic(r *rand.Rand) string {
	parts := make([]string, 1+r.IntN(5))
	for i := range parts {
		parts[i] = levels[r.IntN(len(levels))]
	}
	if s := strings.Join(parts, "/"); s != "" {
		return s
	}
	return "/"
}

func randFilter(r *rand.Rand) string {
	parts := make([]string, 1+r.IntN(4))
	for i := range parts {
		if r.IntN(3) == 0 {
			parts[i] = "+"
		} else {
			parts[i] = levels[r.IntN(len(levels))]
		}
	}
	if r.IntN(4) == 0 {
		parts[len(parts)-1] = "#"
	}
	if s := strings.Join(parts, "/"); s != "" {
		return s
	}
	return "/"
}

// TestMatchRandom compares Match with a brute-force scan using
// topic.Matches over a store that grows and shrinks at random.
func TestMatchRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	s := New[string]()
	ref := map[string]bool{}
	for step := range 4000 {
		tp := randTopic(r)
		if r.IntN(3) == 0 {
			if s.Delete(tp) != ref[tp] {
				t.Fatalf("Delete(%q) disagrees with reference", tp)
			}
			delete(ref, tp)
		} else {
			if s.Set(tp, tp) != ref[tp] {
				t.Fatalf("Set(%q) replaced disagrees with reference", tp)
			}
			ref[tp] = true
		}
		if s.Len() != len(ref) {
			t.Fatalf("Len = %d, want %d", s.Len(), len(ref))
		}
		if step%20 != 0 {
			continue
		}
		for range 30 {
			f := randFilter(r)
			if err := topic.ValidateFilter(f); err != nil {
				t.Fatalf("generator made invalid filter %q: %v", f, err)
			}
			var want []string
			for tp := range ref {
				if topic.Matches(f, tp) {
					want = append(want, tp)
				}
			}
			slices.Sort(want)
			if got := collect(s, f); !slices.Equal(got, want) {
				t.Fatalf("step %d Match(%q) = %q, want %q", step, f, got, want)
			}
		}
	}
}

func TestConcurrent(t *testing.T) {
	s := New[int]()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for i := range 2000 {
				tp := randTopic(r)
				switch i % 4 {
				case 0:
					s.Delete(tp)
				case 1:
					s.Match(randFilter(r), func(string, int) bool { return true })
				case 2:
					s.Get(tp)
					s.Len()
				default:
					s.Set(tp, i)
				}
			}
		}()
	}
	wg.Wait()
	n := 0
	s.Range(func(string, int) bool { n++; return true })
	if n != s.Len() {
		t.Fatalf("Range saw %d entries, Len = %d", n, s.Len())
	}
}

func BenchmarkRetainMatch(b *testing.B) {
	metrics := []string{"temp", "hum", "pres"}
	s := New[int]()
	for site := range 100 {
		for dev := range 334 {
			for _, m := range metrics {
				s.Set(fmt.Sprintf("site/%d/dev/%d/%s", site, dev, m), site)
			}
		}
	}
	b.Logf("%d retained topics", s.Len())
	for _, f := range []string{
		"site/42/dev/7/temp",  // exact: 1 result
		"site/42/dev/7/+",     // 3 results
		"site/42/dev/+/temp",  // 334 results
		"+/+/dev/7/temp",      // 100 results, wide fan-out at the top
		"site/42/#",           // 1002 results
		"site/none/dev/+/any", // no results
	} {
		b.Run(strings.ReplaceAll(f, "/", "_"), func(b *testing.B) {
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				s.Match(f, func(string, int) bool { n++; return true })
			}
			b.ReportMetric(float64(n)/float64(b.N), "results/op")
		})
	}
}
