package topic

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

const benchFilters = 100_000

var metrics = []string{"temp", "hum", "pres"}

// benchFilterSet returns benchFilters filters shaped like a fleet of
// devices: 80% exact device/metric subscriptions, 10% per-device '+',
// 5% per-site cross-device '+', 5% per-site '#'.
func benchFilterSet() []string {
	r := rand.New(rand.NewPCG(7, 8))
	out := make([]string, benchFilters)
	for i := range out {
		site, dev := r.IntN(1000), r.IntN(1000)
		switch p := r.IntN(100); {
		case p < 80:
			out[i] = fmt.Sprintf("site/%d/dev/%d/%s", site, dev, metrics[r.IntN(3)])
		case p < 90:
			out[i] = fmt.Sprintf("site/%d/dev/%d/+", site, dev)
		case p < 95:
			out[i] = fmt.Sprintf("site/%d/dev/+/%s", site, metrics[r.IntN(3)])
		default:
			out[i] = fmt.Sprintf("site/%d/#", site)
		}
	}
	return out
}

func benchTopics(n int, seed uint64) []string {
	r := rand.New(rand.NewPCG(seed, seed))
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("site/%d/dev/%d/%s", r.IntN(1000), r.IntN(1000), metrics[r.IntN(3)])
	}
	return out
}

func benchTrie(b *testing.B) *Trie[int] {
	b.Helper()
	tr := NewTrie[int]()
	for i, f := range benchFilterSet() {
		tr.Add(f, fmt.Sprint("c", i), i)
	}
	return tr
}

func BenchmarkTrieMatch(b *testing.B) {
	tr := benchTrie(b)
	hot := benchTopics(1024, 9)
	// More distinct topics than the cache holds, visited in order, so
	// every lookup misses: each run fills the cache and resets it.
	cold := benchTopics(4*defaultCacheLimit, 10)

	b.Run("hit", func(b *testing.B) {
		for _, tp := range hot {
			tr.Match(tp)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			tr.Match(hot[i&1023])
		}
	})
	b.Run("miss", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			tr.Match(cold[i%len(cold)])
		}
	})
	// The walk alone, without cache bookkeeping.
	b.Run("walk", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			tr.mu.RLock()
			tr.match(cold[i%len(cold)])
			tr.mu.RUnlock()
		}
	})
}

func BenchmarkTrieMatchParallel(b *testing.B) {
	tr := benchTrie(b)
	hot := benchTopics(1024, 9)
	cold := benchTopics(4*defaultCacheLimit, 10)
	for _, tp := range hot {
		tr.Match(tp)
	}
	b.Run("hit", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := rand.IntN(1024)
			for pb.Next() {
				tr.Match(hot[i&1023])
				i++
			}
		})
	})
	b.Run("miss", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := rand.IntN(len(cold))
			for pb.Next() {
				tr.Match(cold[i%len(cold)])
				i++
			}
		})
	})
}

func BenchmarkTrieAdd(b *testing.B) {
	filters := benchFilterSet()
	keys := make([]string, len(filters))
	for i := range keys {
		keys[i] = fmt.Sprint("c", i)
	}
	// Building a 100k-filter trie from scratch (session restore); the
	// per-filter cost is reported as ns/filter.
	b.Run("build100k", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			tr := NewTrie[int]()
			for i, f := range filters {
				tr.Add(f, keys[i], i)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(filters)), "ns/filter")
	})
	// Subscribe/unsubscribe churn against a populated trie whose match
	// cache is warm, so each pair also pays the cache swap.
	b.Run("churn", func(b *testing.B) {
		tr := benchTrie(b)
		hot := benchTopics(64, 11)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			tr.Match(hot[i&63])
			tr.Add("site/1/dev/2/new", "x", i)
			tr.Remove("site/1/dev/2/new", "x")
		}
	})
}
