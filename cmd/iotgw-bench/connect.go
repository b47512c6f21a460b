package main

// The connect scenario: connection setup rate. Each of -parallel workers
// connects (TCP, the TLS handshake under -tls, CONNECT/CONNACK or STOMP
// CONNECT/CONNECTED), disconnects politely and starts over, until -n
// connections were made.

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// runConnect measures connects per second over the whole run, the time
// of each setup (dial to CONNACK: p50/p90/p99/max) and, with -broker-pid,
// the broker's CPU time per connection (in cpu_us_per_msg).
func runConnect(ctx context.Context, cfg config) (result, error) {
	res := result{Label: cfg.label, Scenario: cfg.scenario, N: cfg.n, Tag: cfg.tag, TLS: benchTLS != nil}
	proto, addr := cfg.side(true)
	res.Proto = proto
	dl, _ := ctx.Deadline()
	workers := min(max(cfg.parallel, 1), cfg.n)
	res.Window = workers // the connect table shows it as "parallel"
	var (
		next, ok atomic.Int64
		errs     failures
		mu       sync.Mutex
		hist     histogram
		wg       sync.WaitGroup
	)
	cpuBefore := brokerCPU(cfg.brokerPID)
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var h histogram
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(cfg.n) {
					break
				}
				t0 := benchNow()
				c, err := dialWire(dialOpts{proto: proto, addr: addr, wsPath: cfg.wsPath,
					clientID: fmt.Sprintf("iotgw-bench-%d-connect-%d", os.Getpid(), i), keepAlive: cfg.keepAlive,
					deadline: dl, sz: bufSizes{read: 512, write: 512}, retry: cfg.retry})
				if err != nil {
					if ctx.Err() == nil {
						errs.add(fmt.Errorf("connect %d (%s): %w", i, proto, err))
					}
					continue
				}
				h.record(benchNow() - t0)
				c.disconnect()
				ok.Add(1)
			}
			mu.Lock()
			hist.merge(&h)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	res.Conns = int(ok.Load())
	if s := elapsed.Seconds(); s > 0 {
		res.ConnectRate = float64(res.Conns) / s
		res.WindowSec = s
	}
	if cpuAfter := brokerCPU(cfg.brokerPID); cpuBefore >= 0 && cpuAfter >= 0 && res.Conns > 0 {
		res.CPUusPerMsg = float64(cpuAfter-cpuBefore) / float64(time.Microsecond) / float64(res.Conns)
	}
	histResult(&res, &hist)
	res.TimedOut = ctx.Err() != nil && res.Conns < cfg.n
	res.Errors = errs.n.Load()
	if e := errs.firstErr(); e != nil {
		res.Error = e.Error()
	}
	return res, nil
}

// connectLine is the text report of a connect run.
func connectLine(r result, label string) string {
	return "connect" + label + " " + protoLabel(r) + " conns=" + strconv.Itoa(r.Conns) + "/" + strconv.Itoa(r.N) +
		fmt.Sprintf("  %.0f conn/s  setup p50 %s  p90 %s  p99 %s  max %s",
			r.ConnectRate, fmtUs(r.P50us), fmtUs(r.P90us), fmtUs(r.P99us), fmtUs(r.MaxUs)) +
		cpuNote(r)
}

func cpuNote(r result) string {
	if r.CPUusPerMsg <= 0 {
		return ""
	}
	return fmt.Sprintf("  broker CPU %.0f µs/conn", r.CPUusPerMsg)
}
