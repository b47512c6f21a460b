package main

import (
	"fmt"
	"io"
	"strconv"
)

// printConnect is the table of the connect scenario: connects per second
// of both brokers and their ratio, setup times, and each broker's CPU
// time per connection (the cost that does not depend on which side of
// the machine was the bottleneck).
func printConnect(w io.Writer, keys []caseKey, runs map[caseKey]map[string][]result, a, b string) error {
	tw := newTable(w)
	fmt.Fprintf(tw, "connect\tprotocol\tconns\t%s conn/s\t%s conn/s\tratio %s/%s\t%s p50\tp99\t%s p50\tp99\t%s CPU µs/conn\t%s CPU µs/conn\tCPU %s/%s\t\n",
		a, b, a, b, a, b, a, b, a, b)
	for _, k := range keys {
		ra, okA := pickBy(runs[k][a], connectRate)
		rb, okB := pickBy(runs[k][b], connectRate)
		both := okA && okB && ra.Error == "" && rb.Error == ""
		c := []string{"parallel " + strconv.Itoa(ra.Window), k.proto, strconv.Itoa(k.n),
			cell(okA, ra, fmtRate(ra.ConnectRate)), cell(okB, rb, fmtRate(rb.ConnectRate)),
			ratio(both, ra.ConnectRate, rb.ConnectRate)}
		c = append(c, usCells(okA, ra, ra.P50us, ra.P99us)...)
		c = append(c, usCells(okB, rb, rb.P50us, rb.P99us)...)
		writeRow(tw, append(c, cpuCell(okA, ra), cpuCell(okB, rb), ratio(both && ra.CPUusPerMsg > 0, ra.CPUusPerMsg, rb.CPUusPerMsg))...)
	}
	return tw.Flush()
}

func connectRate(r result) float64 { return r.ConnectRate }

func cpuCell(ok bool, r result) string {
	if !ok || r.CPUusPerMsg <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", r.CPUusPerMsg)
}
