package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// quietConfig is a short quiet or order run over brokers (an -addrs value).
func quietConfig(scenario, brokers string) config {
	cfg := testConfig("", scenario, 0, 1, 1)
	cfg.addrs = brokers
	cfg.quietGaps, cfg.quietKinds, cfg.quietSamples = "1ms,3ms", strings.Join(quietKinds, ","), 4
	cfg.idle, cfg.trials, cfg.orderWait, cfg.orderProtos = 5*time.Millisecond, 4, 300*time.Millisecond, protoMQTT
	return cfg
}

// runMany runs a quiet or order configuration and fails on a set-up error.
func runMany(t *testing.T, cfg config) []result {
	t.Helper()
	if err := validate(cfg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.duration)
	defer cancel()
	run := runQuiet
	if cfg.scenario == "order" {
		run = runOrder
	}
	rs, err := run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// checkQuiet asserts one row per (broker, kind, gap), each with every
// sample and ordered quantiles.
func checkQuiet(t *testing.T, rs []result, brokers []string) {
	t.Helper()
	if len(rs) != len(brokers)*len(quietKinds)*2 {
		t.Fatalf("%d results, want %d: %+v", len(rs), len(brokers)*len(quietKinds)*2, rs)
	}
	rows := map[string]bool{}
	for _, r := range rs {
		want := map[float64]int{1: 12, 3: 4}[r.GapMs] // 3x the samples at a third of the longest gap
		if r.Scenario != "quiet" || r.Samples != want || r.Errors != 0 || r.TimedOut {
			t.Errorf("%+v: want %d samples, no errors", r, want)
		}
		if r.P50us <= 0 || r.P50us > r.P90us || r.P90us > r.P99us || r.P99us > r.MaxUs {
			t.Errorf("quantiles out of order: %+v", r)
		}
		rows[r.Label+"/"+r.Kind+"/"+fmtMs(r.GapMs)] = true
	}
	for _, b := range brokers {
		for _, k := range quietKinds {
			for _, g := range []string{"1ms", "3ms"} {
				if !rows[b+"/"+k+"/"+g] {
					t.Errorf("no row for %s %s after %s", b, k, g)
				}
			}
		}
	}
}

func misses(r result) int {
	if r.Misses == nil {
		return -1
	}
	return *r.Misses
}

func TestQuietAndOrderFakeBroker(t *testing.T) {
	b := startFakeBroker(t)
	// Two labels for one broker: the interleaving has two targets per kind.
	brokers := "a=" + b.addr() + ",b=" + b.addr()
	checkQuiet(t, runMany(t, quietConfig("quiet", brokers)), []string{"a", "b"})

	// The control: publishing after the SUBACK, a broker that subscribes
	// before it answers cannot miss.
	cfg := quietConfig("order", brokers)
	cfg.orderSuback = true
	for _, r := range runMany(t, cfg) {
		if r.Trials != 4 || misses(r) != 0 || r.Kind != orderSubackFirst || r.Errors != 0 {
			t.Errorf("suback first: %+v", r)
		}
	}
	// A broker that delivers nothing: every trial is a miss, none an error.
	b.dropEvery = 1
	cfg.orderSuback = false
	for _, r := range runMany(t, cfg) {
		if r.Trials != 4 || misses(r) != 4 || r.LossPct != 100 || r.Kind != orderNoWait || r.Errors != 0 {
			t.Errorf("dropping broker: %+v", r)
		}
	}
	if n := b.protoErrs.Load(); n != 0 {
		t.Errorf("broker saw %d protocol errors", n)
	}
}

// TestOrderEveryProtocolIotgw runs the ordering probe with each kind of
// subscriber against an in-process gateway. With the SUBACK (RECEIPT)
// awaited nothing may be missed, which shows each subscriber's SUBSCRIBE
// and its wait for the delivery work; without, the misses are what the
// scenario measures and are not asserted.
func TestOrderEveryProtocolIotgw(t *testing.T) {
	addrs := startIotgw(t)
	cfg := quietConfig("order", "gw="+addrs[protoMQTT])
	cfg.orderProtos = "mqtt,mqtt5,stomp,stomp-ws,mqttsn"
	cfg.subAddrs = "gw/stomp=" + addrs[protoSTOMP] + ",gw/stomp-ws=" + addrs[protoSTOMPWS] + ",gw/mqttsn=" + addrs[protoMQTTSN]
	for _, suback := range []bool{true, false} {
		cfg.orderSuback = suback
		rs := runMany(t, cfg)
		if len(rs) != 5 {
			t.Fatalf("%d results, want one per protocol: %+v", len(rs), rs)
		}
		for _, r := range rs {
			if r.Trials != 4 || r.Errors != 0 || misses(r) < 0 || suback && misses(r) != 0 {
				t.Errorf("suback first %v, %s: %+v", suback, protoLabel(r), r)
			}
		}
	}
	checkQuiet(t, runMany(t, quietConfig("quiet", "gw="+addrs[protoMQTT])), []string{"gw"})
}

// TestOrderArrivalIotgw is issue 14's ordering promise, black-box: a
// SUBSCRIBE that reached the gateway before another client's PUBLISH gets
// that message, even with both connections idle for 200 ms first (when
// the Go runtime is most likely to handle the PUBLISH first). MQTT 3.1.1
// and 5, STOMP and MQTT-SN subscribers, an MQTT 3.1.1 publisher, raw
// packets so that the order on the wire is the test's own. The issue asks
// for at most 1 miss in 200 trials; CI runs 40 per subscriber kind and
// allows 1 (bench/compare.sh SCENARIOS=order runs the 200).
func TestOrderArrivalIotgw(t *testing.T) {
	if testing.Short() {
		t.Skip("40 trials of 200 ms idle per protocol")
	}
	addrs := startIotgw(t)
	cfg := quietConfig("order", "gw="+addrs[protoMQTT])
	cfg.orderProtos = "mqtt,mqtt5,stomp,mqttsn"
	cfg.subAddrs = "gw/stomp=" + addrs[protoSTOMP] + ",gw/mqttsn=" + addrs[protoMQTTSN]
	cfg.idle, cfg.trials = 200*time.Millisecond, 40
	cfg.duration = 2 * time.Minute
	for _, r := range runMany(t, cfg) {
		if r.Errors != 0 || misses(r) > 1 {
			t.Errorf("%s: %d of %d trials missed the message (errors %d)", protoLabel(r), misses(r), r.Trials, r.Errors)
		}
	}
}

// TestOrderTargets: MQTT subscribers default to the broker's address, the
// others need one and are skipped (and named) without.
func TestOrderTargets(t *testing.T) {
	cfg := quietConfig("order", "x=127.0.0.1:1,y=127.0.0.1:2")
	cfg.orderProtos = "mqtt5,stomp"
	cfg.subAddrs = "x/stomp=127.0.0.1:3"
	ts, skipped, err := orderTargets(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tg := range ts {
		got = append(got, tg.label+"/"+tg.proto+"@"+tg.subAddr)
	}
	want := "x/mqtt5@127.0.0.1:1 x/stomp@127.0.0.1:3 y/mqtt5@127.0.0.1:2"
	if strings.Join(got, " ") != want || strings.Join(skipped, " ") != "y/stomp" {
		t.Errorf("targets %v skipped %v, want %s and y/stomp", got, skipped, want)
	}
	for _, bad := range []string{"x", "x=", "x=a,x=b", "sp ace=a"} {
		if _, err := parseAddrs(bad, "", ""); err == nil {
			t.Errorf("-addrs %q accepted", bad)
		}
	}
	cfg.orderProtos = "coap"
	if _, _, err := orderTargets(cfg); err == nil {
		t.Error("a CoAP subscriber accepted")
	}
}

// TestReportQuietTables feeds -report the lines of the new scenarios and
// checks the tables carry both brokers and the ratios.
func TestReportQuietTables(t *testing.T) {
	three, zero := 3, 0
	lines := []result{
		{Label: "iotgw", Scenario: "quiet", Kind: quietPing, GapMs: 200, Samples: 100, P50us: 300, P90us: 400, P99us: 900, MaxUs: 1000},
		{Label: "mosquitto", Scenario: "quiet", Kind: quietPing, GapMs: 200, Samples: 100, P50us: 200, P90us: 250, P99us: 500, MaxUs: 600},
		{Label: "iotgw", Scenario: "order", Proto: protoMQTT, SubProto: protoSTOMP, Kind: orderNoWait, GapMs: 200, Trials: 10, Misses: &three, P50us: 150},
		{Label: "iotgw", Scenario: "order", Proto: protoMQTT, SubProto: protoSTOMP, Kind: orderNoWait, GapMs: 200, Trials: 10, Misses: &three, P50us: 150},
		{Label: "mosquitto", Scenario: "order", Proto: protoMQTT, Kind: orderNoWait, GapMs: 200, Trials: 10, Misses: &zero, P50us: 90},
		{Label: "iotgw", Scenario: "fanin", Tag: "fanin0", N: 100, Sent: 200000, Unique: 100000, LossPct: 50, Rate: 400000, PeakRSSKiB: 40960},
		{Label: "mosquitto", Scenario: "fanin", Tag: "fanin0", N: 100, Sent: 200000, Unique: 200000, Rate: 200000, PeakRSSKiB: 8192},
	}
	out := reportOf(t, lines)
	rows := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 1 {
			rows[f[0]+" "+f[1]] = strings.Join(f, " ")
		}
	}
	for key, want := range map[string]string{
		// quiet: p50 and p90 ratios.
		"ping 200ms": "ping 200ms 100 300µs 400µs 900µs 200µs 250µs 500µs 1.50 1.60",
		// order: two runs add up; mosquitto has no STOMP row.
		"no-wait mqtt→stomp": "no-wait mqtt→stomp 200ms 6/20 30.0 - - 150µs -",
		"no-wait mqtt":       "no-wait mqtt 200ms - - 0/10 0.0 - 90µs",
		// fanin0: rate and peak RSS ratios.
		"100→1 0": "100→1 0 100,000/200,000 50.00 400,000 40.0 MiB 200,000/200,000 0.00 200,000 8.0 MiB 2.00 5.00",
	} {
		if rows[key] != want {
			t.Errorf("row %q = %q, want %q; report:\n%s", key, rows[key], want, out)
		}
	}
}

// TestFanin0PeakRSSAndWarmup: a QoS 0 firehose fan-in (no credit) runs to
// completion and samples the broker's memory (the fake broker is this
// process); -warmup leaves the first messages out of the latencies only.
func TestFanin0PeakRSSAndWarmup(t *testing.T) {
	b := startFakeBroker(t)
	cfg := testConfig(b.addr(), "fanin", 0, 5, 300)
	cfg.window, cfg.brokerPID, cfg.tag = 0, os.Getpid(), "fanin0"
	res := runCfg(t, cfg)
	if res.Sent != 1500 || res.Unique > res.Sent || res.PeakRSSKiB <= 0 || res.PeakRSSKiB < res.RSSBeforeKiB {
		t.Errorf("fanin0: %+v", res)
	}

	pubs := []*publisher{newPublisher(0, nil, 0, 10, 64, 100, false, time.Second)}
	s := newSubscriber(0, pubs, 10)
	s.warmup = 3
	payload := make([]byte, 64)
	for seq := uint32(0); seq < 10; seq++ {
		stampPayload(payload, 0, 0, seq)
		s.deliver(payload, 1000)
	}
	if s.unique.Load() != 10 || s.hist.n != 7 {
		t.Errorf("warmup 3 of 10: %d unique, %d timed; want 10 and 7", s.unique.Load(), s.hist.n)
	}
}
