package store

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// BenchmarkChurn is the broker's QoS 1 write pattern: 8 writers each put
// a message durably (it is acknowledged to the publisher after) and then
// delete it (the subscriber acknowledged it), lazily or durably. One op
// is one message; msgs/s is the figure to compare.
func BenchmarkChurn(b *testing.B) {
	const writers = 8
	engines := []struct {
		name string
		open func(b *testing.B) Store
	}{
		{"memory", func(*testing.B) Store { return NewMemory() }},
	}
	for _, mode := range []string{FsyncAlways, FsyncBatch, FsyncOff} {
		engines = append(engines, struct {
			name string
			open func(b *testing.B) Store
		}{"pebble-" + mode, func(b *testing.B) Store {
			return openTest(b, b.TempDir(), mode, DefaultConfig().BatchWindow)
		}})
	}
	for _, e := range engines {
		for _, durableDelete := range []bool{false, true} {
			name := e.name + "/delete-lazy"
			if durableDelete {
				name = e.name + "/delete-durable"
			}
			b.Run(name, func(b *testing.B) {
				s := e.open(b)
				defer s.Close()
				var wg sync.WaitGroup
				b.ResetTimer()
				start := time.Now()
				for w := range writers {
					n := b.N / writers
					if w < b.N%writers {
						n++
					}
					wg.Add(1)
					go func() {
						defer wg.Done()
						client := "writer-" + strconv.Itoa(w)
						var batch Batch
						for i := range n {
							batch.Reset()
							batch.PutMessage(qos1(client, uint64(i)))
							if err := s.Commit(bg, &batch, true); err != nil {
								b.Error(err)
								return
							}
							batch.Reset()
							batch.DeleteMessage(client, uint64(i))
							if err := s.Commit(bg, &batch, durableDelete); err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
				el := time.Since(start)
				b.StopTimer()
				st := s.Stats()
				b.ReportMetric(float64(b.N)/el.Seconds(), "msgs/s")
				b.ReportMetric(float64(st.Syncs)/float64(b.N), "syncs/msg")
			})
		}
	}
}

// BenchmarkOneWriter is a single connection's QoS 1 stream: Commit waits
// for each write before the next (one message per disk round trip),
// CommitAsync keeps up to 64 in flight (a receive window) and acknowledges
// from done.
func BenchmarkOneWriter(b *testing.B) {
	for _, c := range []struct {
		mode  string
		async bool
	}{{FsyncAlways, false}, {FsyncAlways, true}, {FsyncBatch, false}, {FsyncBatch, true}} {
		async := c.async
		name := c.mode + "/commit"
		if async {
			name = c.mode + "/commit-async"
		}
		b.Run(name, func(b *testing.B) {
			s := openTest(b, b.TempDir(), c.mode, DefaultConfig().BatchWindow)
			defer s.Close()
			window := make(chan struct{}, 64)
			batches := make([]Batch, 64)
			b.ResetTimer()
			start := time.Now()
			for i := range b.N {
				batch := &batches[i%len(batches)]
				if !async {
					batch.Reset()
					batch.PutMessage(qos1("c", uint64(i)))
					if err := s.Commit(bg, batch, true); err != nil {
						b.Fatal(err)
					}
					continue
				}
				window <- struct{}{} // the slot's previous commit is done
				batch.Reset()
				batch.PutMessage(qos1("c", uint64(i)))
				s.CommitAsync(batch, true, func(err error) {
					if err != nil {
						b.Error(err)
					}
					<-window
				})
			}
			for range cap(window) {
				window <- struct{}{}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}

// BenchmarkLoad100k times a start-up: open the store and load 100,000
// queued messages (100 sessions of 1,000), from tables after a clean
// shutdown, and from the WAL after a crash.
func BenchmarkLoad100k(b *testing.B) {
	const sessions, per = 100, 1000
	for _, crash := range []bool{false, true} {
		name := "after-close"
		if crash {
			name = "after-crash"
		}
		b.Run(name, func(b *testing.B) {
			tmpl := b.TempDir()
			s := openTest(b, tmpl, FsyncOff, 0)
			s.noFlushOnClose = crash
			var batch Batch
			for c := range sessions {
				client := fmt.Sprintf("client-%03d", c)
				batch.Reset()
				batch.PutSession(&Session{ClientID: client, Protocol: "mqtt", Expiry: time.Hour})
				batch.PutSubscription(&Subscription{ClientID: client, Filter: "sensors/#", QoS: 1})
				for i := range per {
					batch.PutMessage(qos1(client, uint64(i)))
				}
				if err := s.Commit(bg, &batch, false); err != nil {
					b.Fatal(err)
				}
			}
			if err := s.Close(); err != nil {
				b.Fatal(err)
			}
			size := dirSize(b, tmpl)
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				dir := filepath.Join(b.TempDir(), "copy")
				copyDir(b, tmpl, dir)
				b.StartTimer()
				s := openTest(b, dir, FsyncBatch, time.Millisecond)
				n := 0
				if err := s.Load(bg, Handler{Message: func(*SessionMessage) error { n++; return nil }}.Handle); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if n != sessions*per {
					b.Fatalf("loaded %d messages", n)
				}
				s.noFlushOnClose = true
				s.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(size)/(1<<20), "MiB-on-disk")
		})
	}
}

func dirSize(b *testing.B, dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

func copyDir(b *testing.B, from, to string) {
	if err := os.CopyFS(to, os.DirFS(from)); err != nil {
		b.Fatal(err)
	}
}
