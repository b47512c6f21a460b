package stomp_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/iotgw/iotgw/core"
	"github.com/iotgw/iotgw/core/store"
)

// TestReceiptsPipelinedInOrder: with a durable store, a client that sends
// many SENDs with receipts (persistent subscriber, so each is a disk
// write) and other frames with receipts between them, without waiting,
// gets every RECEIPT in frame order, and every message reaches the
// subscriber; a DISCONNECT's RECEIPT comes last, after all of them.
func TestReceiptsPipelinedInOrder(t *testing.T) {
	t.Parallel()
	cfg := store.DefaultConfig()
	cfg.Dir = t.TempDir()
	st, err := store.Open(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := startEnv(t, nil, core.WithStore(st))

	sub := dialRaw(t, e.stomp)
	sub.connect("client-id:" + uniqueID("durable-sub"))
	sub.subscribe("s", "rcpt/x", "client-individual")
	sub.sync("SUBSCRIBE\nid:sync\ndestination:rcpt/sync\nreceipt:subscribed\n\n\x00")

	pub := dialRaw(t, e.stomp)
	pub.connect()
	const n = 200
	var b strings.Builder
	var want []string
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "SEND\ndestination:rcpt/x\nqos:1\nreceipt:send-%d\n\nm%d\x00", i, i)
		want = append(want, fmt.Sprintf("send-%d", i))
		if i%50 == 49 {
			fmt.Fprintf(&b, "SUBSCRIBE\nid:s%d\ndestination:rcpt/other\nreceipt:sub-%d\n\n\x00", i, i)
			want = append(want, fmt.Sprintf("sub-%d", i))
		}
	}
	b.WriteString("DISCONNECT\nreceipt:bye\n\n\x00")
	want = append(want, "bye")
	pub.write(b.String())
	for i, w := range want {
		f := pub.expect(frame.RECEIPT)
		if got := f.Header.Get(frame.ReceiptId); got != w {
			t.Fatalf("RECEIPT %d is %q, want %q", i, got, w)
		}
	}
	pub.expectClosed("after DISCONNECT's RECEIPT")
	for i := 0; i < n; i++ {
		m := sub.expect(frame.MESSAGE)
		if string(m.Body) != fmt.Sprintf("m%d", i) {
			t.Fatalf("message %d is %q", i, m.Body)
		}
		sub.write("ACK\nid:" + m.Header.Get(frame.Ack) + "\n\n\x00") // within the inflight window
	}
}
