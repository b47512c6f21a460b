package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
)

// caseKey identifies one cell of the benchmark matrix.
type caseKey struct {
	tag      string
	scenario string
	proto    string // protoLabel: "mqtt", "mqttsn→mqtt", ...
	qos      int
	n        int
	rate     float64 // offered rate (latency)
	kind     string  // quiet: request kind; order: probe mode
	gap      float64 // quiet: gap, order: idle, in ms
}

func keyOf(r result) caseKey {
	return caseKey{tag: r.Tag, scenario: r.Scenario, proto: protoLabel(r), qos: r.QoS, n: r.N, rate: r.OfferedRate,
		kind: r.Kind, gap: r.GapMs}
}

// readResults parses -json lines. Lines that are not results (a broker's log
// leaking into the file, a truncated line after a crash) are skipped rather
// than failing the whole report.
func readResults(r io.Reader) ([]result, error) {
	var out []result
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var res result
		if err := json.Unmarshal([]byte(line), &res); err != nil {
			continue
		}
		out = append(out, res)
	}
	return out, sc.Err()
}

// pick returns the median run by the scenario's headline number, so that with
// REPEAT>1 one lucky or unlucky run on a noisy machine does not decide.
func pick(runs []result) (result, bool) { return pickBy(runs, headline) }

// pickBy returns the median run by by(run).
func pickBy(runs []result, by func(result) float64) (result, bool) {
	if len(runs) == 0 {
		return result{}, false
	}
	s := append([]result(nil), runs...)
	sort.SliceStable(s, func(i, j int) bool { return by(s[i]) < by(s[j]) })
	return s[(len(s)-1)/2], true
}

func headline(r result) float64 {
	switch r.Scenario {
	case "idle":
		return r.RSSPerConnKiB
	case "connect":
		return r.ConnectRate
	case "quiet":
		return r.P50us
	}
	return r.Rate
}

// printReport writes the comparison tables for labels a and b: the
// messaging matrix, latency at a fixed rate, the protocol rows (label a
// only, tag "proto"), and memory per idle connection.
func printReport(w io.Writer, path, a, b string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	all, err := readResults(f)
	if err != nil {
		return err
	}
	var order []caseKey
	runs := map[caseKey]map[string][]result{}
	for _, r := range all {
		k := keyOf(r)
		if runs[k] == nil {
			runs[k] = map[string][]result{}
			order = append(order, k)
		}
		runs[k][r.Label] = append(runs[k][r.Label], r)
	}
	var matrix, latency, protos, idle, quiet, probes, fanin0, connects []caseKey
	for _, k := range order {
		switch {
		case k.scenario == "connect":
			connects = append(connects, k)
		case k.scenario == "idle":
			idle = append(idle, k)
		case k.scenario == "quiet":
			quiet = append(quiet, k)
		case k.scenario == "order":
			probes = append(probes, k)
		case k.tag == "fanin0":
			fanin0 = append(fanin0, k)
		case k.tag == "proto":
			protos = append(protos, k)
		case k.scenario == "latency":
			latency = append(latency, k)
		default:
			matrix = append(matrix, k)
		}
	}
	sections := 0
	section := func() {
		if sections > 0 {
			fmt.Fprintln(w)
		}
		sections++
	}

	if len(matrix) > 0 {
		section()
		tw := newTable(w)
		fmt.Fprintf(tw, "scenario\tprotocol\tqos\t%s msg/s\t%s msg/s\tratio %s/%s\tloss%% %s\tloss%% %s\tp99 %s\tp99 %s\t\n",
			a, b, a, b, a, b, a, b)
		for _, k := range matrix {
			ra, okA := pick(runs[k][a])
			rb, okB := pick(runs[k][b])
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n",
				scenarioName(k), k.proto, k.qos,
				cell(okA, ra, fmtRate(ra.Rate)), cell(okB, rb, fmtRate(rb.Rate)),
				ratio(okA && okB && ra.Error == "", ra.Rate, rb.Rate),
				cell(okA, ra, fmt.Sprintf("%.2f", ra.LossPct)), cell(okB, rb, fmt.Sprintf("%.2f", rb.LossPct)),
				cell(okA, ra, fmtUs(ra.P99us)), cell(okB, rb, fmtUs(rb.P99us)))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}

	if len(latency) > 0 {
		section()
		tw := newTable(w)
		fmt.Fprintf(tw, "latency\tprotocol\tqos\toffered msg/s\t%s p50\tp90\tp99\tmax\t%s p50\tp90\tp99\tmax\tp50 %s/%s\tp90\tp99\tloss%% %s\tloss%% %s\t\n",
			a, b, a, b, a, b)
		for _, k := range latency {
			ra, okA := pickLatency(runs[k][a])
			rb, okB := pickLatency(runs[k][b])
			both := okA && okB && ra.Error == "" && rb.Error == ""
			c := []string{"pairs " + strconv.Itoa(k.n), k.proto, strconv.Itoa(k.qos), fmtRate(k.rate)}
			c = append(c, usCells(okA, ra, ra.P50us, ra.P90us, ra.P99us, ra.MaxUs)...)
			c = append(c, usCells(okB, rb, rb.P50us, rb.P90us, rb.P99us, rb.MaxUs)...)
			writeRow(tw, append(c,
				ratio(both, ra.P50us, rb.P50us), ratio(both, ra.P90us, rb.P90us), ratio(both, ra.P99us, rb.P99us),
				cell(okA, ra, fmt.Sprintf("%.2f", ra.LossPct)), cell(okB, rb, fmt.Sprintf("%.2f", rb.LossPct)))...)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}

	if len(protos) > 0 {
		section()
		tw := newTable(w)
		fmt.Fprintf(tw, "%s protocol\tscenario\tqos\twindow\tmsg/s\trate cost vs MQTT\tCPU µs/msg\tCPU cost vs MQTT\tloss%%\tp50\tp99\tretransmits\t\n", a)
		for _, k := range protos {
			r, ok := pick(runs[k][a])
			if !ok {
				continue
			}
			cost, cpu, cpuCost := "-", "-", "-"
			if base, ok := baseline(runs, k, a); ok && r.Rate > 0 && r.Error == "" {
				cost = fmt.Sprintf("%.2f", base.Rate/r.Rate)
				if base.CPUusPerMsg > 0 && r.CPUusPerMsg > 0 {
					cpuCost = fmt.Sprintf("%.2f", r.CPUusPerMsg/base.CPUusPerMsg)
				}
			}
			if r.CPUusPerMsg > 0 {
				cpu = fmt.Sprintf("%.2f", r.CPUusPerMsg)
			}
			win := strconv.Itoa(r.Window)
			if r.E2E {
				win += " e2e"
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n",
				k.proto, scenarioName(k), k.qos, win, cell(ok, r, fmtRate(r.Rate)), cost, cpu, cpuCost,
				cell(ok, r, fmt.Sprintf("%.2f", r.LossPct)), cell(ok, r, fmtUs(r.P50us)), cell(ok, r, fmtUs(r.P99us)),
				cell(ok, r, strconv.FormatInt(r.Retransmits, 10)))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}

	if len(idle) > 0 {
		section()
		tw := newTable(w)
		fmt.Fprintf(tw, "idle\tprotocol\tconns\t%s KiB/conn\t%s KiB/conn\tratio %s/%s\t%s conn/s\t%s conn/s\t\n",
			a, b, a, b, a, b)
		for _, k := range idle {
			ra, okA := pick(runs[k][a])
			rb, okB := pick(runs[k][b])
			fmt.Fprintf(tw, "qos %d\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t\n", k.qos, k.proto, k.n,
				cell(okA, ra, fmt.Sprintf("%.2f", ra.RSSPerConnKiB)),
				cell(okB, rb, fmt.Sprintf("%.2f", rb.RSSPerConnKiB)),
				ratio(okA && okB && ra.RSSAfterKiB > 0 && rb.RSSAfterKiB > 0, ra.RSSPerConnKiB, rb.RSSPerConnKiB),
				cell(okA, ra, fmtRate(ra.ConnectRate)), cell(okB, rb, fmtRate(rb.ConnectRate)))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	for _, t := range []struct {
		keys  []caseKey
		print func(io.Writer, []caseKey, map[caseKey]map[string][]result, string, string) error
	}{{connects, printConnect}, {quiet, printQuiet}, {probes, printOrder}, {fanin0, printFanin0}} {
		if len(t.keys) > 0 {
			section()
			if err := t.print(w, t.keys, runs, a, b); err != nil {
				return err
			}
		}
	}
	// Problems go under the tables rather than into them, so columns stay
	// readable while nothing is silently dropped.
	for _, k := range order {
		for _, l := range []string{a, b} {
			for _, r := range runs[k][l] {
				if r.Error != "" || r.TimedOut || r.Dups > 0 || r.Conns != 0 && r.Conns < r.N {
					fmt.Fprintf(w, "note: %s %s %s qos %d: %s\n", l, k.proto, scenarioName(k), k.qos, problem(r))
				}
			}
		}
	}
	return nil
}

func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
}

// pickLatency is pick by p99: the median run's tail, not its throughput.
func pickLatency(runs []result) (result, bool) {
	return pickBy(runs, func(r result) float64 { return r.P99us })
}

// baseline is the MQTT run a protocol row's cost is measured against: the
// plain MQTT row of the same protocol table (same flags), else the MQTT row
// of the messaging matrix with the same scenario, QoS and size.
func baseline(runs map[caseKey]map[string][]result, k caseKey, label string) (result, bool) {
	for _, tag := range []string{k.tag, ""} {
		bk := k
		bk.tag, bk.proto = tag, protoMQTT
		if r, ok := pick(runs[bk][label]); ok && r.Error == "" && r.Rate > 0 {
			return r, true
		}
	}
	return result{}, false
}

func scenarioName(k caseKey) string {
	switch k.scenario {
	case "pairs":
		return "pairs " + strconv.Itoa(k.n)
	case "fanin":
		return "fanin " + strconv.Itoa(k.n) + "→1"
	case "fanout":
		return "fanout 1→" + strconv.Itoa(k.n)
	case "latency":
		return "latency " + strconv.Itoa(k.n) + " @" + fmtRate(k.rate)
	case "quiet":
		return "quiet " + k.kind + " after " + fmtMs(k.gap)
	case "order":
		return "order " + k.kind + " idle " + fmtMs(k.gap)
	}
	return k.scenario + " " + strconv.Itoa(k.n)
}

func problem(r result) string {
	var p []string
	if r.TimedOut {
		p = append(p, "timed out")
	}
	if r.Dups > 0 {
		p = append(p, fmt.Sprintf("%d duplicates", r.Dups))
	}
	if r.Conns != 0 && r.Conns < r.N {
		p = append(p, fmt.Sprintf("only %d of %d connections", r.Conns, r.N))
	}
	if r.Error != "" {
		p = append(p, fmt.Sprintf("%d errors, first: %s", r.Errors, r.Error))
	}
	return strings.Join(p, "; ")
}

// cell shows v for a present run, "-" for a missing one and "err" for a run
// that failed outright (an error with nothing received).
func cell(ok bool, r result, v string) string {
	switch {
	case !ok:
		return "-"
	case r.Error != "" && r.Received == 0 && r.Conns == 0:
		return "err"
	}
	return v
}

// usCells is one cell per latency in vs (µs) of run r, as cell shows them.
func usCells(ok bool, r result, vs ...float64) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = cell(ok, r, fmtUs(v))
	}
	return out
}

// writeRow writes one table row of cells.
func writeRow(tw io.Writer, cells ...string) {
	fmt.Fprint(tw, strings.Join(cells, "\t")+"\t\n")
}

func ratio(ok bool, a, b float64) string {
	if !ok || b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", a/b)
}

// fmtRate prints a rate with thousands separators; benchmark numbers are read
// across columns, and 1234567 is easy to misread by a factor of ten.
func fmtRate(v float64) string {
	s := strconv.FormatInt(int64(v+0.5), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
