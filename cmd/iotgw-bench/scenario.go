package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// config is one benchmark run's parameters, filled from flags.
type config struct {
	addr      string // default broker address for both sides
	pubAddr   string // publishers' broker address ("" = addr)
	subAddr   string // subscribers' (and idle connections') broker address ("" = addr)
	pubProto  string
	subProto  string
	wsPath    string
	scenario  string
	qos       int
	n         int
	msgs      int
	size      int
	window    int
	duration  time.Duration
	drain     time.Duration
	stall     time.Duration
	keepAlive time.Duration
	settle    time.Duration
	e2e       bool
	refill    int
	brokerPID int
	parallel  int
	label     string
	tag       string        // free-form group for -report (compare.sh: "proto")
	rate      float64       // offered msg/s over all publishers; 0 = unpaced
	warmup    int           // first messages per publisher not timed
	retry     time.Duration // UDP retransmission timeout

	// quiet and order: several brokers in one run, interleaved.
	addrs        string // label=host:port,... ("" = -label at -addr)
	subAddrs     string // label/proto=address,...: subscribers not on the -addrs address
	quietGaps    string // durations, comma-separated
	quietKinds   string // ping, subscribe, puback
	quietSamples int    // per (broker, kind) at the longest gap
	idle         time.Duration
	trials       int
	orderProtos  string // subscriber protocols, comma-separated
	orderWait    time.Duration
	orderSuback  bool
}

// side returns the protocol and address of the publishing or subscribing side.
func (c config) side(pub bool) (proto, addr string) {
	if pub {
		proto, addr = c.pubProto, c.pubAddr
	} else {
		proto, addr = c.subProto, c.subAddr
	}
	if addr == "" {
		addr = c.addr
	}
	return proto, addr
}

// result is what a run reports; the JSON names are the stable interface that
// bench/compare.sh and -report rely on.
type result struct {
	Label    string `json:"label,omitempty"`
	Scenario string `json:"scenario"`
	Proto    string `json:"proto,omitempty"`     // publishers' protocol (all connections' for idle)
	SubProto string `json:"sub_proto,omitempty"` // subscribers' protocol when it differs
	QoS      int    `json:"qos"`
	N        int    `json:"n"`
	Msgs     int    `json:"msgs"`
	Size     int    `json:"size"`
	Window   int    `json:"window"`
	E2E      bool   `json:"e2e,omitempty"`
	Warmup   int    `json:"warmup,omitempty"` // first messages per publisher left out of the latencies
	Tag      string `json:"tag,omitempty"`
	TLS      bool   `json:"tls,omitempty"` // connections over TLS (-tls)

	Sent        int64   `json:"sent"`
	Received    int64   `json:"received"`
	Expected    int64   `json:"expected"`
	Unique      int64   `json:"unique"`
	LossPct     float64 `json:"loss_pct"`
	Dups        int64   `json:"dups"`
	Foreign     int64   `json:"foreign,omitempty"`
	BadAcks     int64   `json:"bad_acks,omitempty"`
	Stalls      int64   `json:"stalls,omitempty"`
	Retransmits int64   `json:"retransmits,omitempty"`
	Rate        float64 `json:"rate"`
	PublishRate float64 `json:"publish_rate"`
	OfferedRate float64 `json:"offered_rate,omitempty"`
	WindowSec   float64 `json:"window_s"`
	P50us       float64 `json:"p50_us"`
	P90us       float64 `json:"p90_us"`
	P99us       float64 `json:"p99_us"`
	MaxUs       float64 `json:"max_us"`

	Conns         int     `json:"conns,omitempty"`
	ConnectRate   float64 `json:"connect_rate,omitempty"`
	RSSBeforeKiB  int64   `json:"rss_before_kib,omitempty"`
	RSSAfterKiB   int64   `json:"rss_after_kib,omitempty"`
	RSSPerConnKiB float64 `json:"rss_per_conn_kib,omitempty"`
	// CPUusPerMsg is the broker's CPU time (user + system, from
	// /proc/<pid>/stat; -broker-pid) per delivered message over the run:
	// the protocol's cost independent of windows and round trips.
	CPUusPerMsg float64 `json:"cpu_us_per_msg,omitempty"`
	// PeakRSSKiB is the highest VmRSS of the broker (-broker-pid) sampled
	// every rssEvery while messages flow; RSSBeforeKiB is the first sample.
	PeakRSSKiB int64 `json:"peak_rss_kib,omitempty"`

	// quiet and order.
	Kind    string  `json:"kind,omitempty"`    // quiet: ping, subscribe, puback; order: no-wait, suback-first
	GapMs   float64 `json:"gap_ms,omitempty"`  // quiet: silence before each request; order: -idle
	Samples int     `json:"samples,omitempty"` // quiet: round trips measured
	Trials  int     `json:"trials,omitempty"`  // order: probes fired
	// Misses (order) is a pointer so that a run with none still says 0.
	Misses *int `json:"misses,omitempty"`

	TimedOut bool   `json:"timed_out,omitempty"`
	Errors   int64  `json:"errors,omitempty"`
	Error    string `json:"error,omitempty"`
}

// session holds the connections of one run and tears them down together.
type session struct {
	cfg     config
	ctx     context.Context
	ioDL    time.Time // socket deadline: the run's bound plus teardown grace
	closing atomic.Bool
	errs    failures
	readers sync.WaitGroup

	mu    sync.Mutex
	conns []wire
	ids   [][2]string // client id and address of MQTT connections, for forgetSessions
}

func newSession(ctx context.Context, cfg config) *session {
	dl, _ := ctx.Deadline()
	return &session{cfg: cfg, ctx: ctx, ioDL: dl.Add(2 * time.Second)}
}

// dial connects one client of the publishing (pub) or subscribing side
// and registers it for teardown and keep-alive.
func (s *session) dial(pub bool, name string, sz bufSizes) (wire, error) {
	proto, addr := s.cfg.side(pub)
	id := fmt.Sprintf("iotgw-bench-%d-%s", os.Getpid(), name)
	c, err := dialWire(dialOpts{proto: proto, addr: addr, wsPath: s.cfg.wsPath,
		clientID: id, keepAlive: s.cfg.keepAlive, deadline: s.ioDL, sz: sz, retry: s.cfg.retry})
	if err != nil {
		return nil, fmt.Errorf("connect %s (%s): %w", name, proto, err)
	}
	s.mu.Lock()
	s.conns = append(s.conns, c)
	if proto == protoMQTT {
		s.ids = append(s.ids, [2]string{id, addr})
	}
	s.mu.Unlock()
	return c, nil
}

// forgetSessions ends the persistent sessions a -persistent run left on
// the broker (a clean-session connect and disconnect per client id), so
// that later runs do not queue messages for subscribers that are gone and
// the broker's memory and store reflect only the run being measured.
func (s *session) forgetSessions() {
	if !persistentSessions {
		return
	}
	s.mu.Lock()
	ids := s.ids
	s.ids = nil
	s.mu.Unlock()
	_, _ = parallel(len(ids), max(s.cfg.parallel, 1), false, func(i int) error {
		c, err := dialWire(dialOpts{proto: protoMQTT, addr: ids[i][1], clientID: ids[i][0], keepAlive: s.cfg.keepAlive,
			deadline: time.Now().Add(5 * time.Second), sz: bufSizes{read: 512, write: 512}, forget: true})
		if err == nil {
			c.disconnect()
		}
		return err
	})
}

// startReader launches the connection's single reader goroutine.
func (s *session) startReader(w wire, r *reader) {
	s.readers.Add(1)
	go func() {
		defer s.readers.Done()
		r.loop(w, &s.closing, &s.errs)
	}()
}

// keepAlive pings quiet connections until the run ends. Runs are usually much
// shorter than the keep-alive, but -duration may not be.
func (s *session) keepAliveLoop() {
	t := time.NewTicker(s.cfg.keepAlive / 2)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		cs := append([]wire(nil), s.conns...)
		s.mu.Unlock()
		for _, c := range cs {
			if err := c.ping(s.cfg.keepAlive / 2); err != nil && !s.closing.Load() {
				s.errs.add(fmt.Errorf("keep-alive: %w", err))
			}
		}
	}
}

// close disconnects everything and waits (bounded) for the readers to exit.
func (s *session) close() {
	if s.closing.Swap(true) {
		return
	}
	s.mu.Lock()
	cs := s.conns
	s.mu.Unlock()
	for _, c := range cs {
		c.disconnect()
	}
	done := make(chan struct{})
	go func() { s.readers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
	}
}

// parallel runs f(0..n-1) on up to par goroutines and returns the first error
// and how many calls succeeded. With stopOnErr it stops starting new calls
// after a failure.
func parallel(n, par int, stopOnErr bool, f func(i int) error) (int, error) {
	var (
		next, ok atomic.Int64
		errs     failures
		wg       sync.WaitGroup
	)
	for w := 0; w < min(par, n); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) || (stopOnErr && errs.n.Load() > 0) {
					return
				}
				if err := f(int(i)); err != nil {
					errs.add(err)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	return int(ok.Load()), errs.firstErr()
}

// topology is who publishes where and who hears whom in a message scenario.
type topology struct {
	pubTopics  []string
	subFilters []string
	subBase    []int // first publisher each subscriber hears
	subCount   []int // how many consecutive publishers it hears
}

func planTopology(scenario string, n int) (topology, error) {
	var t topology
	switch scenario {
	case "pairs", "latency":
		for i := 0; i < n; i++ {
			topic := "bench/pairs/" + strconv.Itoa(i)
			t.pubTopics = append(t.pubTopics, topic)
			t.subFilters = append(t.subFilters, topic)
			t.subBase = append(t.subBase, i)
			t.subCount = append(t.subCount, 1)
		}
	case "fanin":
		for i := 0; i < n; i++ {
			t.pubTopics = append(t.pubTopics, "bench/fanin/"+strconv.Itoa(i))
		}
		t.subFilters = []string{"bench/fanin/#"}
		t.subBase = []int{0}
		t.subCount = []int{n}
	case "fanout":
		t.pubTopics = []string{"bench/fanout"}
		for i := 0; i < n; i++ {
			t.subFilters = append(t.subFilters, "bench/fanout")
			t.subBase = append(t.subBase, 0)
			t.subCount = append(t.subCount, 1)
		}
	default:
		return t, fmt.Errorf("unknown scenario %q", scenario)
	}
	return t, nil
}

// runMessaging executes pairs, fanin, fanout or latency (pairs at a fixed
// offered rate).
func runMessaging(ctx context.Context, cfg config) (result, error) {
	res := result{Label: cfg.label, Scenario: cfg.scenario, QoS: cfg.qos, N: cfg.n,
		Msgs: cfg.msgs, Size: cfg.size, Window: cfg.window, OfferedRate: cfg.rate,
		E2E: cfg.e2e || cfg.qos == 0, Tag: cfg.tag, Warmup: cfg.warmup, TLS: benchTLS != nil}
	res.Proto, res.SubProto = protoNames(cfg)
	topo, err := planTopology(cfg.scenario, cfg.n)
	if err != nil {
		return res, err
	}
	s := newSession(ctx, cfg)
	defer s.close()
	go s.keepAliveLoop()

	qos := byte(cfg.qos)
	pubConns := make([]wire, len(topo.pubTopics))
	subConns := make([]wire, len(topo.subFilters))
	pubs := make([]*publisher, len(pubConns))
	par := max(cfg.parallel, 1)
	_, err = parallel(len(pubConns), par, true, func(i int) error {
		c, err := s.dial(true, cfg.scenario+"-p"+strconv.Itoa(i), bufSizes{read: 4 << 10, write: 64 << 10})
		if err != nil {
			return err
		}
		p := newPublisher(uint32(i), c, qos, cfg.msgs, cfg.size, cfg.window, cfg.e2e, cfg.stall)
		p.refill = int64(cfg.refill)
		if err := c.preparePublish(p, topo.pubTopics[i]); err != nil {
			return fmt.Errorf("publisher %d: %w", i, err)
		}
		pubConns[i], pubs[i] = c, p
		return nil
	})
	if err != nil {
		return res, err
	}
	// Subscribers are built sequentially because each one appends to its
	// publishers' progress slices; only the network part runs in parallel.
	subs := make([]*subscriber, len(subConns))
	for i := range subs {
		b := topo.subBase[i]
		subs[i] = newSubscriber(uint32(b), pubs[b:b+topo.subCount[i]], cfg.msgs)
		subs[i].warmup = uint32(cfg.warmup)
	}
	_, err = parallel(len(subConns), par, true, func(i int) error {
		c, err := s.dial(false, cfg.scenario+"-s"+strconv.Itoa(i), bufSizes{read: 64 << 10, write: 4 << 10})
		if err != nil {
			return err
		}
		granted, err := c.subscribe(topo.subFilters[i], qos)
		if err != nil {
			return err
		}
		if granted != qos {
			return fmt.Errorf("broker granted QoS %d for requested QoS %d", granted, qos)
		}
		subConns[i] = c
		return nil
	})
	if err != nil {
		return res, err
	}
	for i, c := range subConns {
		s.startReader(c, &reader{sub: subs[i]})
	}
	for i, c := range pubConns {
		s.startReader(c, &reader{pub: pubs[i]})
	}
	if cfg.rate > 0 {
		// Each publisher offers rate/n, their schedules staggered evenly
		// so that the broker sees a steady stream rather than n bursts.
		interval := int64(float64(len(pubs)) * 1e9 / cfg.rate)
		start := benchNow() + int64(10*time.Millisecond)
		for i, p := range pubs {
			p.interval = max(interval, 1)
			p.start = start + int64(i)*p.interval/int64(len(pubs))
		}
	}

	cpuBefore := brokerCPU(cfg.brokerPID)
	rss := sampleRSS(cfg.brokerPID)
	var pubWG sync.WaitGroup
	for _, p := range pubs {
		pubWG.Add(1)
		go func() {
			defer pubWG.Done()
			p.run(ctx, &s.errs)
		}()
	}
	pubsDone := make(chan struct{})
	go func() { pubWG.Wait(); close(pubsDone) }()
	var expected int64
	for _, c := range topo.subCount {
		expected += int64(c) * int64(cfg.msgs)
	}
	unique := func() (u int64) {
		for _, sb := range subs {
			u += sb.unique.Load()
		}
		return u
	}
	select {
	case <-pubsDone:
	case <-ctx.Done():
	}
	// Drain: wait for the stragglers, but not for messages that are gone.
	tick := time.NewTicker(5 * time.Millisecond)
	last, lastChange := unique(), time.Now()
	for last < expected && ctx.Err() == nil && time.Since(lastChange) < cfg.drain {
		select {
		case <-tick.C:
		case <-ctx.Done():
		}
		if u := unique(); u != last {
			last, lastChange = u, time.Now()
		}
	}
	tick.Stop()
	if cpuAfter := brokerCPU(cfg.brokerPID); cpuBefore >= 0 && cpuAfter >= 0 {
		if n := unique(); n > 0 {
			res.CPUusPerMsg = float64(cpuAfter-cpuBefore) / float64(time.Microsecond) / float64(n)
		}
	}
	if first, peak := rss.finish(); peak > 0 {
		res.RSSBeforeKiB, res.PeakRSSKiB = first, peak
	}
	res.TimedOut = ctx.Err() != nil
	s.close()
	<-pubsDone
	s.forgetSessions()

	var hist histogram
	firstSend, lastSend, lastRecv := int64(-1), int64(0), int64(0)
	for _, p := range pubs {
		res.Sent += p.sent
		res.Retransmits += p.retransmits.Load()
		res.BadAcks += p.badAcks.Load()
		res.Stalls += p.stalls
		if p.sent > 0 && (firstSend < 0 || p.firstSend < firstSend) {
			firstSend = p.firstSend
		}
		lastSend = max(lastSend, p.lastSend)
	}
	for _, sb := range subs {
		res.Received += sb.received.Load()
		res.Unique += sb.unique.Load()
		res.Dups += sb.dups
		res.Foreign += sb.foreign
		lastRecv = max(lastRecv, sb.lastRecv)
		hist.merge(&sb.hist)
	}
	res.Expected = expected
	if expected > 0 {
		res.LossPct = 100 * float64(expected-res.Unique) / float64(expected)
	}
	if firstSend >= 0 && lastRecv > firstSend {
		res.WindowSec = float64(lastRecv-firstSend) / 1e9
		res.Rate = float64(res.Received) / res.WindowSec
	}
	if firstSend >= 0 && lastSend > firstSend {
		res.PublishRate = float64(res.Sent) / (float64(lastSend-firstSend) / 1e9)
	}
	histResult(&res, &hist)
	res.Errors = s.errs.n.Load()
	if e := s.errs.firstErr(); e != nil {
		res.Error = e.Error()
	}
	return res, nil
}

// runIdle opens n connections with one subscription each and reports how much
// the broker's resident memory grew per connection.
func runIdle(ctx context.Context, cfg config) (result, error) {
	res := result{Label: cfg.label, Scenario: cfg.scenario, QoS: cfg.qos, N: cfg.n, Tag: cfg.tag, TLS: benchTLS != nil}
	res.Proto, _ = cfg.side(false)
	s := newSession(ctx, cfg)
	defer s.close()
	go s.keepAliveLoop()

	var before int64
	if cfg.brokerPID > 0 {
		// Let the broker finish whatever start-up allocation it still does,
		// so that growth is attributable to our connections.
		sleepCtx(ctx, cfg.settle)
		kib, err := readRSS(cfg.brokerPID)
		if err != nil {
			return res, err
		}
		before = kib
	}
	start := time.Now()
	connected, err := parallel(cfg.n, max(cfg.parallel, 1), false, func(i int) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c, err := s.dial(false, "idle-"+strconv.Itoa(i), bufSizes{read: 512, write: 512})
		if err != nil {
			return err
		}
		if _, err := c.subscribe("bench/idle/"+strconv.Itoa(i), byte(cfg.qos)); err != nil {
			return err
		}
		s.startReader(c, &reader{})
		return nil
	})
	res.Conns = connected
	if el := time.Since(start).Seconds(); el > 0 {
		res.ConnectRate = float64(connected) / el
	}
	if err != nil {
		res.Errors = int64(cfg.n - connected)
		res.Error = err.Error()
	}
	if cfg.brokerPID > 0 && connected > 0 {
		sleepCtx(ctx, cfg.settle)
		after, rerr := readRSS(cfg.brokerPID)
		if rerr != nil {
			return res, rerr
		}
		res.RSSBeforeKiB, res.RSSAfterKiB = before, after
		res.RSSPerConnKiB = float64(after-before) / float64(connected)
	}
	res.TimedOut = ctx.Err() != nil
	if n := s.errs.n.Load(); n > 0 {
		res.Errors += n
		if res.Error == "" {
			res.Error = s.errs.firstErr().Error()
		}
	}
	return res, nil
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// clockTick is the unit of /proc/<pid>/stat's CPU times (USER_HZ, 100 on
// Linux for every architecture Go supports).
const clockTick = 10 * time.Millisecond

// brokerCPU returns the CPU time (user + system) pid has used so far, or
// -1 without a pid or /proc.
func brokerCPU(pid int) time.Duration {
	if pid <= 0 {
		return -1
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return -1
	}
	d, err := parseStatCPU(string(b))
	if err != nil {
		return -1
	}
	return d
}

// parseStatCPU reads utime and stime (fields 14 and 15) from a
// /proc/<pid>/stat line. The command name (field 2) may hold spaces, so
// fields are counted after its closing parenthesis.
func parseStatCPU(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat")
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state): utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("malformed /proc stat times")
	}
	return time.Duration(u+st) * clockTick, nil
}

// rssEvery is how often a messaging run samples the broker's VmRSS: often
// enough to catch the peak of a burst that lasts a second or two.
const rssEvery = 50 * time.Millisecond

// rssSampler follows a broker's resident memory during a run.
type rssSampler struct {
	stop        chan struct{}
	done        chan struct{}
	first, peak int64
}

// sampleRSS starts sampling pid's VmRSS every rssEvery; without a pid it
// does nothing.
func sampleRSS(pid int) *rssSampler {
	s := &rssSampler{stop: make(chan struct{}), done: make(chan struct{})}
	if pid <= 0 {
		close(s.done)
		return s
	}
	go func() {
		defer close(s.done)
		t := time.NewTicker(rssEvery)
		defer t.Stop()
		for {
			if kib, err := readRSS(pid); err == nil {
				if s.first == 0 {
					s.first = kib
				}
				s.peak = max(s.peak, kib)
			}
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// finish stops the sampler and returns its first and highest samples in
// KiB (0 when nothing was sampled).
func (s *rssSampler) finish() (first, peak int64) {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
	return s.first, s.peak
}

// readRSS returns VmRSS of pid in KiB from /proc/<pid>/status.
func readRSS(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	return parseVmRSS(string(b))
}

func parseVmRSS(status string) (int64, error) {
	for _, line := range strings.Split(status, "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				break
			}
			return strconv.ParseInt(f[0], 10, 64)
		}
	}
	return 0, errors.New("VmRSS not found in /proc status")
}

// probe retries a connection (with the publishers' protocol) until the
// broker answers or ctx expires; scripts use it to wait for a freshly
// started broker.
func probe(ctx context.Context, cfg config) error {
	proto, addr := cfg.side(true)
	for {
		dl, _ := ctx.Deadline()
		if t := time.Now().Add(time.Second); t.Before(dl) {
			dl = t
		}
		c, err := dialWire(dialOpts{proto: proto, addr: addr, wsPath: cfg.wsPath,
			clientID: fmt.Sprintf("iotgw-bench-%d-probe", os.Getpid()), keepAlive: cfg.keepAlive,
			deadline: dl, sz: bufSizes{read: 512, write: 512}, retry: cfg.retry})
		if err == nil {
			c.disconnect()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("broker at %s (%s) not ready: %w", addr, proto, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// protoNames are the result's protocol fields: the publishers' protocol, and
// the subscribers' when it differs.
func protoNames(cfg config) (pub, sub string) {
	if cfg.subProto != cfg.pubProto {
		return cfg.pubProto, cfg.subProto
	}
	return cfg.pubProto, ""
}
