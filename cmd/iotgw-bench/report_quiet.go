package main

import (
	"fmt"
	"io"
	"strconv"
)

// The -report tables of the quiet-connection rows (issue 14): round trips
// after silence, the cross-client ordering probe, and QoS 0 fan-in at full
// speed with the broker's peak memory.

// runsByLabel is the report's index: every run of a case, by broker label.
type runsByLabel = map[caseKey]map[string][]result

// printQuiet is the quiet table: p50/p90/p99 per (kind, gap) for a and b
// and the ratios a/b. With several runs of a row, the median run by p50.
func printQuiet(w io.Writer, keys []caseKey, runs runsByLabel, a, b string) error {
	tw := newTable(w)
	fmt.Fprintf(tw, "quiet\tafter\tsamples\t%s p50\tp90\tp99\t%s p50\tp90\tp99\tp50 %s/%s\tp90 %s/%s\t\n", a, b, a, b, a, b)
	for _, k := range keys {
		ra, okA := pick(runs[k][a])
		rb, okB := pick(runs[k][b])
		both := okA && okB && ra.Error == "" && rb.Error == "" && ra.Samples > 0 && rb.Samples > 0
		samples := ra.Samples
		if !okA {
			samples = rb.Samples
		}
		c := []string{k.kind, fmtMs(k.gap), strconv.Itoa(samples)}
		c = append(c, usCells(okA, ra, ra.P50us, ra.P90us, ra.P99us)...)
		c = append(c, usCells(okB, rb, rb.P50us, rb.P90us, rb.P99us)...)
		writeRow(tw, append(c, ratio(both, ra.P50us, rb.P50us), ratio(both, ra.P90us, rb.P90us))...)
	}
	return tw.Flush()
}

// orderTotals adds up the order runs of one broker: misses, trials fired,
// and the median run's hit latency.
func orderTotals(rs []result) (misses, trials int, p50 float64, ok bool) {
	for _, r := range rs {
		if r.Misses != nil {
			misses += *r.Misses
		}
		trials += r.Trials
	}
	if r, ok := pickBy(rs, func(r result) float64 { return r.P50us }); ok {
		p50 = r.P50us
	}
	return misses, trials, p50, len(rs) > 0
}

// printOrder is the ordering probe's table: misses out of the trials of
// every run (REPEAT runs add up), per subscriber protocol, for a and b.
func printOrder(w io.Writer, keys []caseKey, runs runsByLabel, a, b string) error {
	tw := newTable(w)
	fmt.Fprintf(tw, "order\tpub→sub\tidle\t%s misses\tmiss%%\t%s misses\tmiss%%\t%s hit p50\t%s hit p50\t\n", a, b, a, b)
	for _, k := range keys {
		var cells []string
		for _, l := range []string{a, b} {
			m, n, _, ok := orderTotals(runs[k][l])
			if !ok || n == 0 {
				cells = append(cells, "-", "-")
				continue
			}
			cells = append(cells, fmt.Sprintf("%d/%d", m, n), fmt.Sprintf("%.1f", 100*float64(m)/float64(n)))
		}
		for _, l := range []string{a, b} {
			_, n, p50, ok := orderTotals(runs[k][l])
			if !ok || n == 0 || p50 == 0 {
				cells = append(cells, "-")
				continue
			}
			cells = append(cells, fmtUs(p50))
		}
		writeRow(tw, append([]string{k.kind, k.proto, fmtMs(k.gap)}, cells...)...)
	}
	return tw.Flush()
}

// printFanin0 is the QoS 0 fan-in firehose table: delivered/sent, loss,
// rate and the broker's peak RSS for a and b, and the ratios a/b.
func printFanin0(w io.Writer, keys []caseKey, runs runsByLabel, a, b string) error {
	tw := newTable(w)
	fmt.Fprintf(tw, "fan-in firehose\tqos\t%s delivered/sent\tloss%%\tmsg/s\tpeak RSS\t%s delivered/sent\tloss%%\tmsg/s\tpeak RSS\tmsg/s %s/%s\tpeak RSS %s/%s\t\n",
		a, b, a, b, a, b)
	for _, k := range keys {
		ra, okA := pick(runs[k][a])
		rb, okB := pick(runs[k][b])
		side := func(ok bool, r result) []string {
			return []string{
				cell(ok, r, fmtRate(float64(r.Unique))+"/"+fmtRate(float64(r.Sent))),
				cell(ok, r, fmt.Sprintf("%.2f", r.LossPct)),
				cell(ok, r, fmtRate(r.Rate)),
				cell(ok, r, fmtMiB(r.PeakRSSKiB)),
			}
		}
		both := okA && okB && ra.Error == "" && rb.Error == ""
		c := append([]string{strconv.Itoa(k.n) + "→1", strconv.Itoa(k.qos)}, side(okA, ra)...)
		writeRow(tw, append(append(c, side(okB, rb)...),
			ratio(both, ra.Rate, rb.Rate), ratio(both && rb.PeakRSSKiB > 0, float64(ra.PeakRSSKiB), float64(rb.PeakRSSKiB)))...)
	}
	return tw.Flush()
}

// fmtMs prints a duration given in milliseconds.
func fmtMs(ms float64) string { return strconv.FormatFloat(ms, 'f', -1, 64) + "ms" }

// fmtMiB prints a size given in KiB as MiB, "-" when it was not measured.
func fmtMiB(kib int64) string {
	if kib <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f MiB", float64(kib)/1024)
}
