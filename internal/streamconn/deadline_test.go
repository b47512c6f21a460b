package streamconn

import (
	"strings"
	"testing"
	"time"
)

// A connection whose writer once had to wait for the peer (a write with
// the WriteTimeout deadline) still takes deliveries after a quiet spell
// longer than that deadline: the non-blocking writes that follow must not
// meet the old deadline.
func TestWriteAfterQuietLongerThanWriteTimeout(t *testing.T) {
	p, c, r := dialWelcomed(t, newGroup(Config{WriteTimeout: 200 * time.Millisecond}))
	// More than the socket buffers hold (12.5 MiB, sent before the peer
	// reads any), so that the writer waits in a write.
	unit := strings.Repeat("x", 64<<10-1) + "\n"
	const units = 200
	for range units {
		p.eng.Send(unit)
	}
	for i := range units {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := r.ReadString('\n'); err != nil {
			t.Fatalf("unit %d: %v", i, err)
		}
	}
	// Quiet for longer than the deadline the waiting write had.
	time.Sleep(400 * time.Millisecond)
	if !p.eng.Deliver("later\n", false) {
		t.Fatal("delivery refused")
	}
	expectLine(t, c, r, "later")
}
