package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The quiet and order scenarios measure several brokers in one run
// (-addrs) and interleave them: every round visits each broker once, in a
// fresh random order, so noise from the rest of a shared machine (a CI job,
// a compaction, another benchmark) lands on all of them alike instead of on
// whichever broker happened to run during it.

// brokerAddr is one -addrs entry: a label for the results and the broker's
// MQTT (TCP) address.
type brokerAddr struct{ label, addr string }

// parseAddrs reads -addrs, "label=host:port,label=host:port". Empty, it is
// the single broker of -label (default "broker") at -addr.
func parseAddrs(s, label, addr string) ([]brokerAddr, error) {
	if strings.TrimSpace(s) == "" {
		if label == "" {
			label = "broker"
		}
		return []brokerAddr{{label, addr}}, nil
	}
	var out []brokerAddr
	seen := map[string]bool{}
	for _, f := range strings.Split(s, ",") {
		l, a, ok := strings.Cut(strings.TrimSpace(f), "=")
		if !ok || a == "" || !validLabel(l) {
			return nil, fmt.Errorf("-addrs: %q is not label=host:port (labels: letters, digits, . _ -)", f)
		}
		if seen[l] {
			return nil, fmt.Errorf("-addrs: label %q given twice", l)
		}
		seen[l] = true
		out = append(out, brokerAddr{l, a})
	}
	return out, nil
}

// parseSubAddrs reads -sub-addrs, "label/proto=addr,...": where a broker's
// subscribers of a protocol connect when that is not its -addrs address
// (iotgw's STOMP or MQTT-SN listener).
func parseSubAddrs(s string) (map[[2]string]string, error) {
	out := map[[2]string]string{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, f := range strings.Split(s, ",") {
		k, a, ok := strings.Cut(strings.TrimSpace(f), "=")
		l, p, ok2 := strings.Cut(k, "/")
		if !ok || !ok2 || a == "" || !validLabel(l) || !knownProto(p) {
			return nil, fmt.Errorf("-sub-addrs: %q is not label/protocol=address", f)
		}
		out[[2]string{l, p}] = a
	}
	return out, nil
}

// validLabel keeps labels usable inside topic names and JSON as they are.
func validLabel(l string) bool {
	if l == "" {
		return false
	}
	for _, r := range l {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// parseList splits a comma-separated flag value, dropping empty items.
func parseList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// parseGaps reads -quiet-gaps, e.g. "20ms,200ms".
func parseGaps(s string) ([]time.Duration, error) {
	var out []time.Duration
	for _, f := range parseList(s) {
		d, err := time.ParseDuration(f)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("-quiet-gaps: %q is not a positive duration", f)
		}
		out = append(out, d)
	}
	if len(out) == 0 {
		return nil, errors.New("-quiet-gaps is empty")
	}
	return out, nil
}

// Request kinds of the quiet scenario.
const (
	quietPing      = "ping"      // PINGREQ -> PINGRESP
	quietSubscribe = "subscribe" // SUBSCRIBE to a filter never used before -> SUBACK
	quietPuback    = "puback"    // QoS 1 PUBLISH to a topic nobody subscribes -> PUBACK
)

var quietKinds = []string{quietPing, quietSubscribe, quietPuback}

// quietSamples is how many samples a gap gets: -quiet-samples at the
// longest gap, and at a shorter one as many as fit in the same time (at
// most ten times as many), since short gaps are cheap and their tails need
// more samples to mean anything.
func quietSamples(gap, longest time.Duration, samples int) int {
	f := min(float64(longest)/float64(gap), 10)
	return max(int(float64(samples)*f), 1)
}

// quietBudget is the default -duration of a quiet run: its schedule twice
// over (random visiting orders stretch rounds, see runQuiet) plus set-up.
func quietBudget(gaps []time.Duration, samples int) time.Duration {
	longest := slices.Max(gaps)
	var d time.Duration
	for _, g := range gaps {
		d += time.Duration(quietSamples(g, longest, samples)+1) * g * 2
	}
	return d + 20*time.Second
}

// quietTarget is one (broker, kind) connection of the quiet scenario.
type quietTarget struct {
	broker brokerAddr
	kind   string
	c      *mqttConn
	seq    int       // requests sent, for packet ids and fresh filters
	last   time.Time // when the connection last carried anything
	pkt    []byte    // request scratch
	hist   histogram
	err    error // the first failure; the target is then left out
}

// replyTimeout bounds one quiet round trip, so that a broker that stopped
// answering ends its own rows, not the run.
const replyTimeout = 5 * time.Second

// roundTrip sends one request of the target's kind and reads its reply,
// returning the time from just before the write to just after the read.
// The connection's reader is a bufio.Reader that nobody else touches, so
// the reply is read by the read(2) that finds it, with no goroutine hand-off
// in between; the write is one write(2) with TCP_NODELAY.
func (t *quietTarget) roundTrip(payload []byte) (time.Duration, error) {
	t.seq++
	id := packetID(int64(t.seq))
	var want byte
	switch t.kind {
	case quietPing:
		t.pkt, want = append(t.pkt[:0], pingreq...), pktPingresp
	case quietSubscribe:
		// A new filter every time: an existing one would only be a lookup.
		filter := "bench/quiet/" + t.broker.label + "/" + strconv.Itoa(os.Getpid()) + "/" + strconv.Itoa(t.seq)
		t.pkt, want = t.c.subscribePacket(t.pkt[:0], id, filter, 0), pktSuback
	case quietPuback:
		t.pkt = appendPublishHeader(t.pkt[:0], "bench/quiet/nobody/"+t.broker.label, 1, len(payload))
		t.pkt = append(t.pkt, byte(id>>8), byte(id))
		t.pkt, want = append(t.pkt, payload...), pktPuback
	}
	if err := t.c.nc.SetReadDeadline(time.Now().Add(replyTimeout)); err != nil {
		return 0, err
	}
	start := time.Now()
	if err := t.c.writeFlush(t.pkt); err != nil {
		return 0, err
	}
	h, body, err := t.c.pr.next()
	rtt := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("%s: waiting for the reply: %w", t.kind, err)
	}
	if h>>4 != want {
		return 0, fmt.Errorf("%s: expected packet type %d, got %d", t.kind, want, h>>4)
	}
	if want != pktPingresp {
		if got, err := ackID(body); err != nil || got != id {
			return 0, fmt.Errorf("%s: reply for packet id %d, sent %d", t.kind, got, id)
		}
		if want == pktSuback && (len(body) < 3 || body[2] >= 0x80) {
			return 0, fmt.Errorf("subscribe %w", errRefused)
		}
	}
	return rtt, nil
}

// runQuiet measures request/reply round trips on connections that were
// quiet for each -quiet-gaps gap: one MQTT 3.1.1 connection per (broker,
// kind), visited round-robin in a random order per round.
//
// Within a round the visits are spread evenly over the gap
// (gap/connections apart), and a visit also waits until its connection has
// been quiet for the whole gap since its last reply: with a random order a
// connection visited last in one round and first in the next would
// otherwise be quiet for much less. Rounds therefore take somewhat longer
// than the gap; every sample still follows at least the gap of silence.
func runQuiet(ctx context.Context, cfg config) ([]result, error) {
	brokers, err := parseAddrs(cfg.addrs, cfg.label, cfg.addr)
	if err != nil {
		return nil, err
	}
	gaps, err := parseGaps(cfg.quietGaps)
	if err != nil {
		return nil, err
	}
	kinds := parseList(cfg.quietKinds)
	dl, _ := ctx.Deadline()
	ioDL := dl.Add(2 * time.Second)
	var targets []*quietTarget
	defer func() {
		for _, t := range targets {
			t.c.disconnect()
		}
	}()
	for _, b := range brokers {
		for _, k := range kinds {
			w, err := dialWire(dialOpts{proto: protoMQTT, addr: b.addr, keepAlive: cfg.keepAlive, deadline: ioDL,
				clientID: fmt.Sprintf("iotgw-bench-%d-quiet-%s-%s", os.Getpid(), b.label, k),
				sz:       bufSizes{read: 512, write: 512}})
			if err != nil {
				return nil, fmt.Errorf("connect %s (%s): %w", b.label, k, err)
			}
			c := w.(*mqttConn)
			// Go's default for TCP, made explicit: the request must leave
			// at once, not wait for Nagle.
			if tc, ok := c.nc.(*net.TCPConn); ok {
				_ = tc.SetNoDelay(true)
			}
			targets = append(targets, &quietTarget{broker: b, kind: k, c: c, last: time.Now()})
		}
	}
	payload := make([]byte, cfg.size)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(os.Getpid())))
	longest := slices.Max(gaps)
	var out []result
	timedOut := false
	for _, gap := range gaps {
		for _, t := range targets {
			t.hist = histogram{}
		}
		samples := quietSamples(gap, longest, cfg.quietSamples)
		step := gap / time.Duration(len(targets))
		next := time.Now()
		// Round 0 is a warm-up and not recorded: a connection's first
		// SUBSCRIBE or PUBLISH after a change of gap pays for the
		// previous phase's pattern, not this one's.
		for round := 0; round <= samples && !timedOut; round++ {
			for _, i := range rng.Perm(len(targets)) {
				t := targets[i]
				if t.err != nil {
					continue
				}
				at := next
				if q := t.last.Add(gap); q.After(at) {
					at = q
				}
				sleepCtx(ctx, time.Until(at))
				if ctx.Err() != nil {
					timedOut = true
					break
				}
				rtt, err := t.roundTrip(payload)
				t.last = time.Now()
				next = at.Add(step)
				if err != nil {
					t.err = err
					continue
				}
				if round > 0 {
					t.hist.record(int64(rtt))
				}
			}
		}
		for _, t := range targets {
			r := result{Label: t.broker.label, Scenario: "quiet", Proto: protoMQTT, Kind: t.kind,
				GapMs: float64(gap) / float64(time.Millisecond), Samples: int(t.hist.n), Size: cfg.size,
				Tag: cfg.tag, TimedOut: timedOut}
			histResult(&r, &t.hist)
			if t.err != nil {
				r.Errors, r.Error = 1, t.err.Error()
			}
			out = append(out, r)
		}
		if timedOut {
			break
		}
	}
	return out, nil
}

// histResult copies a latency histogram's quantiles into r.
func histResult(r *result, h *histogram) {
	r.P50us = float64(h.quantile(0.50)) / 1e3
	r.P90us = float64(h.quantile(0.90)) / 1e3
	r.P99us = float64(h.quantile(0.99)) / 1e3
	r.MaxUs = float64(h.max) / 1e3
}
