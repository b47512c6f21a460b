package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"math/rand"
	"net"
	"os"
	"slices"
	"testing"
	"time"
)

func TestRemainingLengthRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 127, 128, 16383, 16384, 2097151, 2097152, 268435455} {
		b := appendRemLen(nil, n)
		got, err := readRemLen(bufio.NewReader(bytes.NewReader(b)))
		if err != nil || got != n {
			t.Fatalf("remaining length %d: got %d, %v (encoded % x)", n, got, err, b)
		}
	}
	// A fifth continuation byte is malformed (§2.2.3).
	if _, err := readRemLen(bufio.NewReader(bytes.NewReader([]byte{0xff, 0xff, 0xff, 0xff, 0x7f}))); err == nil {
		t.Fatal("five-byte remaining length accepted")
	}
}

func TestEncodings(t *testing.T) {
	// CONNECT for client "c", keep-alive 60, clean session: spec §3.1 layout.
	want := []byte{0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, 1, 'c'}
	if got := appendConnect(nil, "c", 60, true); !bytes.Equal(got, want) {
		t.Errorf("CONNECT = % x, want % x", got, want)
	}
	want = []byte{0x82, 6, 0, 1, 0, 1, 'a', 2}
	if got := appendSubscribe(nil, 1, "a", 2); !bytes.Equal(got, want) {
		t.Errorf("SUBSCRIBE = % x, want % x", got, want)
	}
	for typ, h := range map[byte]byte{pktPuback: 0x40, pktPubrec: 0x50, pktPubrel: 0x62, pktPubcomp: 0x70} {
		if got := appendAck(nil, typ, 0x1234); !bytes.Equal(got, []byte{h, 2, 0x12, 0x34}) {
			t.Errorf("ack %d = % x", typ, got)
		}
	}
}

func TestPublishRoundTrip(t *testing.T) {
	for qos := byte(0); qos <= 2; qos++ {
		payload := []byte("hello")
		p := appendPublishHeader(nil, "a/b", qos, len(payload))
		if qos > 0 {
			p = append(p, 0xab, 0xcd)
		}
		p = append(p, payload...)
		pr := packetReader{br: bufio.NewReader(bytes.NewReader(p))}
		h, body, err := pr.next()
		if err != nil {
			t.Fatal(err)
		}
		pv, err := parsePublish(h, body)
		if err != nil {
			t.Fatal(err)
		}
		if pv.qos != qos || string(pv.topic) != "a/b" || string(pv.payload) != "hello" {
			t.Fatalf("qos %d: decoded %+v", qos, pv)
		}
		if qos > 0 && pv.id != 0xabcd {
			t.Fatalf("qos %d: id %x", qos, pv.id)
		}
	}
	if _, err := parsePublish(0x30, []byte{0, 9, 'x'}); err == nil {
		t.Fatal("topic longer than packet accepted")
	}
}

func TestHistogramBuckets(t *testing.T) {
	// Every bucket's upper bound maps back to it, and one more maps to the
	// next: the buckets tile the range with no gaps or overlaps.
	for i := 0; i < bucketOf(1<<62); i++ {
		hi := bucketHigh(i)
		if bucketOf(hi) != i || bucketOf(hi+1) != i+1 {
			t.Fatalf("bucket %d: high %d maps to %d, high+1 to %d", i, hi, bucketOf(hi), bucketOf(hi+1))
		}
	}
}

func TestHistogramQuantilesMatchExact(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	var h histogram
	vals := make([]int64, 100000)
	for i := range vals {
		// Log-normal-ish spread from ~10µs to ~100ms, like real latencies.
		vals[i] = int64(10e3 * (1 + rng.ExpFloat64()*rng.ExpFloat64()*50))
		h.record(vals[i])
	}
	slices.Sort(vals)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 1} {
		exact := vals[int(q*float64(len(vals))+0.999999999)-1]
		got := h.quantile(q)
		// Upper bucket bounds: never below the truth, at most 1/64 above.
		if got < exact || float64(got) > float64(exact)*(1+1.0/64) {
			t.Errorf("q%.3f: histogram %d, exact %d", q, got, exact)
		}
	}
	if h.max != vals[len(vals)-1] || h.min != vals[0] {
		t.Errorf("min/max %d/%d, want %d/%d", h.min, h.max, vals[0], vals[len(vals)-1])
	}
	var merged histogram
	var a, b histogram
	a.record(5)
	b.record(1000)
	merged.merge(&a)
	merged.merge(&b)
	if merged.n != 2 || merged.min != 5 || merged.max != 1000 || merged.quantile(0.5) != 5 {
		t.Errorf("merge: %+v", merged)
	}
}

// TestLatencyMath feeds the subscriber payloads with known send times and
// checks latency, duplicates, loss progress and foreign-payload handling.
func TestLatencyMath(t *testing.T) {
	pubs := []*publisher{newPublisher(7, nil, 0, 10, 64, 100, false, time.Second)}
	s := newSubscriber(7, pubs, 10)
	payload := make([]byte, 64)
	for seq := uint32(0); seq < 10; seq++ {
		stampPayload(payload, 1_000_000, 7, seq)
		s.deliver(payload, 1_000_000+int64(seq+1)*1000) // latency (seq+1) µs
	}
	stampPayload(payload, 1_000_000, 7, 3)
	s.deliver(payload, 2_000_000) // duplicate of seq 3, 1ms late
	stampPayload(payload, 0, 8, 0)
	s.deliver(payload, 1) // unknown publisher
	stampPayload(payload, 0, 7, 10)
	s.deliver(payload, 1) // sequence beyond -msgs
	s.deliver(payload[:8], 1)

	if got := s.received.Load(); got != 11 {
		t.Errorf("received %d, want 11", got)
	}
	if s.unique.Load() != 10 || s.dups != 1 || s.foreign != 3 {
		t.Errorf("unique %d dups %d foreign %d", s.unique.Load(), s.dups, s.foreign)
	}
	if got := s.sources[0].progress.Load(); got != 10 {
		t.Errorf("progress %d, want 10", got)
	}
	// 11 samples, 1..10µs and 1ms: the median is 6µs, reported as the upper
	// bound of its bucket (6000 lies in a 64ns-wide bucket).
	if p50 := s.hist.quantile(0.5); p50 < 6000 || p50 > 6000+63 {
		t.Errorf("p50 %dns, want 6000..6063", p50)
	}
	if s.hist.max != 1_000_000 || s.hist.min != 1000 {
		t.Errorf("min %d max %d", s.hist.min, s.hist.max)
	}
}

func TestParseVmRSS(t *testing.T) {
	kib, err := parseVmRSS("Name:\tmosquitto\nVmPeak:\t 9000 kB\nVmRSS:\t    8644 kB\nThreads:\t1\n")
	if err != nil || kib != 8644 {
		t.Fatalf("got %d, %v", kib, err)
	}
	if _, err := parseVmRSS("Name:\tx\n"); err == nil {
		t.Fatal("missing VmRSS accepted")
	}
}

func TestParseStatCPU(t *testing.T) {
	// A command name with spaces and parentheses: fields count from the last ')'.
	stat := "4242 (iot gw (x)) S 1 4242 4242 0 -1 4194560 2000 0 0 0 250 75 0 0 20 0 12 0 100 0 0"
	d, err := parseStatCPU(stat)
	if err != nil || d != 325*clockTick {
		t.Fatalf("parseStatCPU = %v, %v; want %v", d, err, 325*clockTick)
	}
	if _, err := parseStatCPU("4242 (x) S 1 2"); err == nil {
		t.Fatal("short stat line accepted")
	}
	if got := brokerCPU(os.Getpid()); got < 0 {
		t.Fatalf("brokerCPU(self) = %v", got)
	}
}

func testConfig(addr, scenario string, qos, n, msgs int) config {
	return config{addr: addr, pubProto: protoMQTT, subProto: protoMQTT, scenario: scenario, qos: qos, n: n, msgs: msgs, size: 32,
		window: 10, duration: 10 * time.Second, drain: 300 * time.Millisecond,
		stall: 200 * time.Millisecond, keepAlive: 60 * time.Second, settle: 10 * time.Millisecond,
		parallel: 8, refill: 1, retry: 200 * time.Millisecond}
}

func runCfg(t *testing.T, cfg config) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cfg.duration)
	defer cancel()
	var (
		res result
		err error
	)
	if cfg.scenario == "idle" {
		res, err = runIdle(ctx, cfg)
	} else {
		res, err = runMessaging(ctx, cfg)
	}
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors > 0 || res.TimedOut {
		t.Fatalf("run failed: %+v", res)
	}
	return res
}

func TestScenariosCleanBroker(t *testing.T) {
	b := startFakeBroker(t)
	for _, sc := range []string{"pairs", "fanin", "fanout"} {
		for qos := 0; qos <= 2; qos++ {
			res := runCfg(t, testConfig(b.addr(), sc, qos, 3, 200))
			if res.Expected != 600 || res.Unique != 600 || res.Received != 600 || res.Dups != 0 || res.LossPct != 0 {
				t.Errorf("%s qos %d: %+v", sc, qos, res)
			}
			if wantSent := map[string]int64{"pairs": 600, "fanin": 600, "fanout": 200}[sc]; res.Sent != wantSent {
				t.Errorf("%s qos %d: sent %d, want %d", sc, qos, res.Sent, wantSent)
			}
			if res.Rate <= 0 || res.P99us <= 0 || res.P50us > res.P99us || res.P99us > res.MaxUs {
				t.Errorf("%s qos %d: implausible rate/latency %+v", sc, qos, res)
			}
		}
	}
	if n := b.protoErrs.Load(); n != 0 {
		t.Errorf("broker saw %d protocol errors", n)
	}
}

// TestQoS2FlowAndFaults checks the full QoS 2 exchange in both directions and
// that real duplicates, legal DUP retransmissions and drops are told apart.
func TestQoS2FlowAndFaults(t *testing.T) {
	b := startFakeBroker(t)
	b.dupEvery = 50        // 1000 forwards -> 20 real duplicates
	b.retransmitEvery = 30 // 33 DUP=1 resends that must not count
	b.dropEvery = 100      // 10 never delivered
	res := runCfg(t, testConfig(b.addr(), "pairs", 2, 2, 500))
	// Forward #100, #200... are dropped, and those are also multiples of
	// 50, so the duplicate check never sees them: 20 - 10 = 10 duplicates.
	if res.Sent != 1000 || res.Expected != 1000 {
		t.Fatalf("sent %d expected %d", res.Sent, res.Expected)
	}
	if res.Unique != 990 || res.Dups != 10 || res.Received != 1000 {
		t.Errorf("unique %d dups %d received %d, want 990/10/1000", res.Unique, res.Dups, res.Received)
	}
	if res.LossPct != 1 {
		t.Errorf("loss %.2f%%, want 1%%", res.LossPct)
	}
	// Publisher side: one PUBREL per message. Subscriber side: one PUBCOMP
	// per PUBREL the broker sent, i.e. every handshake was completed.
	if b.pubrelIn.Load() != 1000 {
		t.Errorf("broker got %d PUBREL, want 1000", b.pubrelIn.Load())
	}
	if b.pubcompIn.Load() != b.pubrelSent.Load() || b.pubcompIn.Load() == 0 {
		t.Errorf("subscribers sent %d PUBCOMP for %d PUBREL", b.pubcompIn.Load(), b.pubrelSent.Load())
	}
	if b.protoErrs.Load() != 0 {
		t.Errorf("broker saw %d protocol errors", b.protoErrs.Load())
	}
}

// TestQoS0LossDoesNotDeadlock: with end-to-end credit, dropped QoS 0
// messages must neither stall the publisher nor be miscounted.
func TestQoS0LossDoesNotDeadlock(t *testing.T) {
	b := startFakeBroker(t)
	b.dropEvery = 7
	cfg := testConfig(b.addr(), "fanout", 0, 2, 700)
	res := runCfg(t, cfg)
	if res.Sent != 700 || res.Unique != 1200 || res.Dups != 0 {
		t.Errorf("sent %d unique %d dups %d, want 700/1200/0", res.Sent, res.Unique, res.Dups)
	}
	// Every 7th message lost, including the window's last ones only at the
	// very end: the publisher resumes on later sequence numbers, not stalls.
	if res.Stalls > 1 {
		t.Errorf("%d stalls; later sequence numbers should have released credit", res.Stalls)
	}
}

// TestLatencyEndToEnd checks that a broker-side delay shows up in the
// measured latency: at least the delay, and not wildly more.
func TestLatencyEndToEnd(t *testing.T) {
	b := startFakeBroker(t)
	b.delay = 2 * time.Millisecond
	cfg := testConfig(b.addr(), "pairs", 1, 1, 100)
	// One message in flight end to end: no queueing behind other messages,
	// so latency ≈ delay.
	cfg.window = 1
	cfg.e2e = true
	res := runCfg(t, cfg)
	if res.P50us < 2000 || res.P50us > 50000 {
		t.Errorf("p50 %.0fµs with a 2ms broker delay", res.P50us)
	}
	// 100 strictly sequential messages at >= 2ms each cannot exceed 500/s.
	if res.Rate > 500 {
		t.Errorf("rate %.0f msg/s exceeds what a 2ms serial delay allows", res.Rate)
	}
}

func TestIdleAndProbe(t *testing.T) {
	b := startFakeBroker(t)
	cfg := testConfig(b.addr(), "idle", 1, 50, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := probe(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	res := runCfg(t, cfg)
	if res.Conns != 50 {
		t.Errorf("connected %d of 50", res.Conns)
	}
}

// TestWindowBoundsInFlight drives a publisher over an in-memory pipe and
// acknowledges by hand: it must stop at exactly -window unacknowledged
// messages and resume as acknowledgements free slots.
func TestWindowBoundsInFlight(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	c := testMQTT(client, nil, client)
	p := testPublisher(0, c, "t", 1, 20, 16, 5)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var errs failures
	done := make(chan struct{})
	go func() { p.run(ctx, &errs); close(done) }()

	packets := make(chan byte, 100)
	go func() {
		pr := packetReader{br: bufio.NewReader(server)}
		for {
			h, _, err := pr.next()
			if err != nil {
				close(packets)
				return
			}
			packets <- h >> 4
		}
	}()
	expect := func(n int) {
		t.Helper()
		for i := 0; i < n; i++ {
			select {
			case typ := <-packets:
				if typ != pktPublish {
					t.Fatalf("packet type %d", typ)
				}
			case <-time.After(2 * time.Second):
				t.Fatalf("got %d of %d publishes", i, n)
			}
		}
		select {
		case <-packets:
			t.Fatalf("more than %d publishes: window exceeded", n)
		case <-time.After(50 * time.Millisecond):
		}
	}
	expect(5)
	p.onAck()
	p.onAck()
	expect(2)
	for i := 0; i < 13; i++ {
		p.onAck()
	}
	expect(13)
	for i := 0; i < 5; i++ {
		p.onAck()
	}
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("publisher did not finish after the last acknowledgement")
	}
	if p.sent != 20 || errs.n.Load() != 0 {
		t.Fatalf("sent %d, errors %d", p.sent, errs.n.Load())
	}
}

// TestSteadyStateAllocations pins the "cheap client" property: publishing
// and receiving allocate nothing per message.
func TestSteadyStateAllocations(t *testing.T) {
	const msgs = 10000
	pub := testPublisher(0, testMQTT(nil, nil, io.Discard), "bench/pairs/0", 2, msgs, 64, 100)
	allocs := testing.AllocsPerRun(5, func() {
		pub.sent = 0
		if err := pub.send(msgs); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 0 {
		t.Errorf("publishing %d messages allocated %.0f times", msgs, allocs)
	}

	// A subscriber's inbound stream: QoS 2 PUBLISH + PUBREL per message.
	var stream []byte
	payload := make([]byte, 64)
	for seq := uint32(0); seq < msgs; seq++ {
		stampPayload(payload, 0, 0, seq)
		stream = appendPublishHeader(stream, "bench/pairs/0", 2, len(payload))
		stream = append(stream, byte(packetID(int64(seq))>>8), byte(packetID(int64(seq))))
		stream = append(stream, payload...)
		stream = appendAck(stream, pktPubrel, packetID(int64(seq)))
	}
	sub := newSubscriber(0, []*publisher{pub}, msgs)
	r := &reader{sub: sub}
	var br bytes.Reader
	c := testMQTT(nil, &br, io.Discard)
	c.pending = newBitset(1 << 16)
	allocs = testing.AllocsPerRun(5, func() {
		br.Reset(stream)
		c.br.Reset(&br)
		sub.sources[0].seen = newBitset(msgs) // one allocation per run, not per message
		if err := c.readLoop(r); err != io.EOF {
			t.Fatal(err)
		}
	})
	if allocs > 1 {
		t.Errorf("receiving %d messages allocated %.0f times", msgs, allocs)
	}
	if sub.unique.Load() != 6*msgs || sub.dups != 0 {
		t.Errorf("unique %d dups %d", sub.unique.Load(), sub.dups)
	}
}

// BenchmarkPublish is the publisher's per-message cost with the network
// removed: stamp, encode, buffer.
func BenchmarkPublish(b *testing.B) {
	pub := testPublisher(0, testMQTT(nil, nil, io.Discard), "bench/pairs/0", 1, b.N, 64, 100)
	b.ReportAllocs()
	b.ResetTimer()
	if err := pub.send(int64(b.N)); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkReceiveQoS1 is the subscriber's per-message cost: decode, ack,
// latency and duplicate bookkeeping.
func BenchmarkReceiveQoS1(b *testing.B) {
	var stream []byte
	payload := make([]byte, 64)
	for seq := 0; seq < b.N; seq++ {
		stampPayload(payload, 0, 0, uint32(seq))
		stream = appendPublishHeader(stream, "bench/pairs/0", 1, len(payload))
		stream = append(stream, byte(packetID(int64(seq))>>8), byte(packetID(int64(seq))))
		stream = append(stream, payload...)
	}
	pub := newPublisher(0, nil, 1, b.N, 64, 100, false, time.Second)
	c := testMQTT(nil, bytes.NewReader(stream), io.Discard)
	r := &reader{sub: newSubscriber(0, []*publisher{pub}, b.N)}
	b.ReportAllocs()
	b.ResetTimer()
	if err := c.readLoop(r); err != io.EOF {
		b.Fatal(err)
	}
}

// testMQTT builds an MQTT 3.1.1 client connection over arbitrary streams,
// without a handshake, for tests that drive it by hand.
func testMQTT(nc net.Conn, r io.Reader, w io.Writer) *mqttConn {
	c := &mqttConn{stream: stream{nc: nc, br: bufio.NewReaderSize(r, 64<<10), bw: bufio.NewWriterSize(w, 64<<10)}}
	c.pr = packetReader{br: c.br, buf: make([]byte, 0, 256)}
	return c
}

// testPublisher is a publisher on c, prepared to publish on topic.
func testPublisher(id uint32, c *mqttConn, topic string, qos byte, msgs, size, window int) *publisher {
	p := newPublisher(id, c, qos, msgs, size, window, false, time.Second)
	_ = c.preparePublish(p, topic)
	return p
}
