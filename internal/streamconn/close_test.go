package streamconn

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// A peer that reads slowly but steadily through what was queued before
// the final unit still gets it, even when that takes longer than the
// time one write of a closing connection may take (closeWriteTimeout).
// net.Pipe makes every write wait for the reader, so the queue is written
// at the reader's pace; the reader is paced to take longer than that.
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
	const queued = 48
	for range queued {
		p.eng.Send(unit)
	}
	last := "bye\n"
	p.eng.CloseWith(&last)

	// 16 KiB every 25 ms: about 650 KB/s, 64 KiB in a tenth of a second,
	// the whole queue in about five seconds.
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

// A peer that keeps writing and reads slowly is still reading what the
// kernel holds for it when the drain window ends: the drain goes on while
// the peer takes those bytes (closing with its input unread would reset
// the connection and discard them, the final unit among them).
func TestDrainWaitsForSlowReaderOverTCP(t *testing.T) {
	g := newGroup(Config{CloseDrain: 100 * time.Millisecond})
	p, c, r := dialWelcomed(t, g)
	stop, writeErr := keepWritingLines(c)

	// 4 MiB queued before the final unit, read at about 3 MB/s: most of
	// it is still in the kernel's buffers, or the engine's queue, when
	// the 100 ms drain window ends.
	unit := strings.Repeat("x", 64<<10-1) + "\n"
	for range 64 {
		p.eng.Send(unit)
	}
	last := "bye\n"
	p.eng.CloseWith(&last)
	for n := 0; ; n++ {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("after %d lines: %v (the final unit did not arrive)", n, err)
		}
		if line == last {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	if err := <-writeErr; err != nil {
		t.Errorf("the client's write failed before it read the final unit: %v", err)
	}
	c.Close()
	<-p.ended
}

// keepWritingLines writes lines to c until stop is closed; writeErr gets
// the failure, or nil once stopped.
func keepWritingLines(c net.Conn) (stop chan struct{}, writeErr chan error) {
	stop, writeErr = make(chan struct{}), make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				writeErr <- nil
				return
			default:
			}
			if _, err := io.WriteString(c, "ping\n"); err != nil {
				writeErr <- err
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	return stop, writeErr
}

// dialWelcomed serves one lineProto connection of g over loopback TCP
// and opens it ("hello", "welcome").
func dialWelcomed(t *testing.T, g *Group) (*lineProto, net.Conn, *bufio.Reader) {
	t.Helper()
	addr, conns := startTCP(t, g)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	p := <-conns
	io.WriteString(c, "hello\n")
	r := bufio.NewReader(c)
	expectLine(t, c, r, "welcome")
	return p, c, r
}

// A reader paused for a client's rate sends what it queued before the
// pause, reads nothing meanwhile, and wakes when the connection closes.
func TestPauseSendsRepliesAndEndsOnClose(t *testing.T) {
	g := newGroup(Config{})
	p, c, r := startPipe(t, g)
	io.WriteString(c, "hello\npause\n")
	expectLine(t, c, r, "welcome")
	expectLine(t, c, r, "pausing") // written during the pause, not after it
	go io.WriteString(c, "ping\n")
	time.Sleep(20 * time.Millisecond)
	p.mu.Lock()
	n := len(p.got)
	p.mu.Unlock()
	if n != 2 {
		t.Fatalf("%d lines handled during the pause, want 2", n)
	}
	p.eng.CloseWith(nil)
	select {
	case <-p.ended:
	case <-time.After(10 * time.Second):
		t.Fatal("a paused reader did not end when its connection closed")
	}
}
