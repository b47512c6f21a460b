package streamconn

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"
)

// A peer that reads slowly but steadily through what was queued before
// the final unit still gets it, even when that takes longer than the
// time one write of a closing connection may take (closeWriteTimeout).
// net.Pipe makes every write wait for the reader, so the queue is written
// at the reader's pace; the reader is paced to take well over a second.
func TestCloseFlushesQueueToSlowReader(t *testing.T) {
	g := newGroup(Config{})
	p, c, r := startPipe(t, g)
	io.WriteString(c, "hello\n")
	expectLine(t, c, r, "welcome")

	unit := strings.Repeat("x", 64<<10-1) + "\n"
	// The writer takes the first unit alone and waits in its write (the
	// byte read shows it has begun); the rest is queued behind it and
	// taken once the connection is closing.
	p.eng.Send(unit)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.ReadByte(); err != nil {
		t.Fatal(err)
	}
	const queued = 16
	for range queued {
		p.eng.Send(unit)
	}
	last := "bye\n"
	p.eng.CloseWith(&last)

	// 16 KiB every 25 ms: about 650 KB/s, 64 KiB in a tenth of a second,
	// the whole queue in about a second and a half.
	var got bytes.Buffer
	buf := make([]byte, 16<<10)
	for !bytes.HasSuffix(got.Bytes(), []byte(last)) {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := r.Read(buf)
		got.Write(buf[:n])
		if err != nil {
			t.Fatalf("after %d of %d bytes: %v (the final unit did not arrive)", 1+got.Len(), len(unit)*(queued+1)+len(last), err)
		}
		time.Sleep(25 * time.Millisecond)
	}
	if want := len(unit)*(queued+1) + len(last) - 1; got.Len() != want {
		t.Errorf("read %d bytes, want %d", got.Len(), want)
	}
	<-p.ended
}
