package streamconn

import (
	"bufio"
	"errors"
	"io"
	"net"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/iotgw/iotgw/internal/tcpconn"
)

// lineProto is a test protocol: one command per line. "ping" gets
// "pong", "bye" closes with "bye", "slow" blocks until released, "pause"
// pauses the reader for an hour.
type lineProto struct {
	eng     Conn[string]
	mu      sync.Mutex
	got     []string
	arrived []int64
	ended   chan struct{}
	hold    chan struct{}
}

func (p *lineProto) Next(r *bufio.Reader) error {
	line, err := r.ReadString('\n')
	if err != nil {
		p.eng.CloseWith(nil)
		return err
	}
	line = strings.TrimSuffix(line, "\n")
	p.mu.Lock()
	p.got = append(p.got, line)
	p.arrived = append(p.arrived, p.eng.Arrived())
	p.mu.Unlock()
	switch line {
	case "hello":
		p.eng.Established()
		p.eng.Reply("welcome\n")
	case "ping":
		p.eng.Reply("pong\n")
	case "bye":
		last := "bye\n"
		p.eng.CloseWith(&last)
		return errors.New("bye")
	case "slow":
		p.eng.Reply("before\n")
		p.eng.Kick()
		<-p.hold
	case "pause":
		p.eng.Reply("pausing\n")
		if !p.eng.Pause(time.Hour) {
			return errors.New("closed while paused")
		}
	}
	return nil
}

func (p *lineProto) Encode(b *Batch, it *string) {
	b.Buf = append(b.Buf, *it...)
	b.End()
}
func (p *lineProto) Written([]uint16)                          {}
func (p *lineProto) Ended()                                    { close(p.ended) }
func (p *lineProto) IdleDeadline(time.Time) time.Time          { return time.Time{} }
func (p *lineProto) LogAt(zapcore.Level, string, ...zap.Field) {}

func newGroup(cfg Config) *Group {
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 5 * time.Second
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = 5 * time.Second
	}
	if cfg.MaxPendingQoS0 == 0 {
		cfg.MaxPendingQoS0 = 4
	}
	return NewGroup(cfg)
}

// startPipe serves one lineProto connection over net.Pipe.
func startPipe(t *testing.T, g *Group) (*lineProto, net.Conn, *bufio.Reader) {
	t.Helper()
	server, client := net.Pipe()
	p := &lineProto{ended: make(chan struct{}), hold: make(chan struct{})}
	p.eng.Init(g, p, server, Options{})
	p.eng.Start()
	t.Cleanup(func() { client.Close() })
	return p, client, bufio.NewReader(client)
}

func expectLine(t *testing.T, c net.Conn, r *bufio.Reader, want string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := r.ReadString('\n')
	if err != nil || got != want+"\n" {
		t.Fatalf("read %q, %v; want %q", got, err, want)
	}
}

func TestRepliesAndSends(t *testing.T) {
	g := newGroup(Config{})
	p, c, r := startPipe(t, g)
	io.WriteString(c, "hello\nping\n")
	expectLine(t, c, r, "welcome")
	expectLine(t, c, r, "pong")
	p.eng.Send("from elsewhere\n")
	expectLine(t, c, r, "from elsewhere")
	if !p.eng.Deliver("delivery\n", false) {
		t.Fatal("delivery refused")
	}
	expectLine(t, c, r, "delivery")
}

// A reader blocked in a handler has kicked its earlier replies to a
// writer: they do not wait for the end of the burst.
func TestKickSendsEarlierReplies(t *testing.T) {
	g := newGroup(Config{})
	p, c, r := startPipe(t, g)
	io.WriteString(c, "hello\nslow\n")
	expectLine(t, c, r, "welcome")
	expectLine(t, c, r, "before")
	close(p.hold)
	io.WriteString(c, "ping\n")
	expectLine(t, c, r, "pong")
}

func TestQoS0BoundWithoutBackpressure(t *testing.T) {
	g := newGroup(Config{MaxPendingQoS0: 2})
	p, _, _ := startPipe(t, g)
	// Nobody reads the pipe: the first delivery's writer blocks in its
	// write, the next ones queue.
	p.eng.Lock()
	admitted := 0
	for i := 0; i < 5; i++ {
		if p.eng.AdmitLocked(true) {
			admitted++
		}
	}
	p.eng.Unlock()
	if admitted != 2 {
		t.Fatalf("admitted %d QoS 0 deliveries, want 2", admitted)
	}
	if p.eng.Room() != nil {
		t.Fatal("Room without backpressure")
	}
}

func TestQoS0Backpressure(t *testing.T) {
	g := newGroup(Config{MaxPendingQoS0: 2, Backpressure: true})
	p, c, r := startPipe(t, g)
	io.WriteString(c, "hello\n")
	expectLine(t, c, r, "welcome")
	// The first delivery is taken by a writer that then blocks writing
	// to the pipe nobody reads; the next ones queue behind it.
	if !p.eng.Deliver("m0\n", true) {
		t.Fatal("first delivery refused")
	}
	waitFor(t, func() bool { p.eng.Lock(); defer p.eng.Unlock(); return p.eng.qos0.Len() == 0 })
	for i := 1; i <= 4; i++ {
		if !p.eng.Deliver("m\n", true) {
			t.Fatalf("delivery %d refused below twice the bound", i)
		}
	}
	if p.eng.Deliver("m\n", true) {
		t.Fatal("delivery past twice the bound accepted")
	}
	room := p.eng.Room()
	if room == nil {
		t.Fatal("no Room past the bound")
	}
	select {
	case <-room:
		t.Fatal("room open while the queue is full")
	default:
	}
	expectLine(t, c, r, "m0") // the writer takes the queue once this is read
	select {
	case <-room:
	case <-time.After(5 * time.Second):
		t.Fatal("room not opened when the writer took the queue")
	}
}

// The final unit is written, then the connection ends; Ended runs once.
func TestCloseWithFinalUnit(t *testing.T) {
	g := newGroup(Config{})
	p, c, r := startPipe(t, g)
	io.WriteString(c, "hello\nbye\n")
	expectLine(t, c, r, "welcome")
	expectLine(t, c, r, "bye")
	if _, err := r.ReadString('\n'); err == nil {
		t.Fatal("connection still open after bye")
	}
	<-p.ended
}

// After a burst the reader hands the connection to a small idle
// goroutine, which still serves it.
func TestIdleHandOver(t *testing.T) {
	g := newGroup(Config{})
	_, c, r := startPipe(t, g)
	io.WriteString(c, "hello\n")
	expectLine(t, c, r, "welcome")
	waitFor(t, func() bool {
		var sb strings.Builder
		_ = pprof.Lookup("goroutine").WriteTo(&sb, 2)
		return strings.Contains(sb.String(), "streamconn.(*Conn[...]).idleRead(")
	})
	io.WriteString(c, "ping\n")
	expectLine(t, c, r, "pong")
}

func TestPipeEmitsInOrder(t *testing.T) {
	g := newGroup(Config{})
	p, c, r := startPipe(t, g)
	io.WriteString(c, "hello\n")
	expectLine(t, c, r, "welcome")
	pipe := NewPipe(&p.eng, func(it *string, err error, byReader bool) bool {
		if err != nil {
			*it = "failed\n"
		}
		p.eng.Emit(*it, false)
		return err == nil
	})
	s1, s2, s3 := pipe.Reserve("one\n"), pipe.Reserve("two\n"), pipe.Reserve("three\n")
	for _, s := range []*Slot[string]{s1, s2, s3} {
		s.Release()
	}
	s3.Done(nil)
	s2.Done(nil)
	s1.Done(nil)
	expectLine(t, c, r, "one")
	expectLine(t, c, r, "two")
	expectLine(t, c, r, "three")
	// After a failure nothing later is emitted.
	s4, s5 := pipe.Reserve("four\n"), pipe.Reserve("five\n")
	s4.Release()
	s5.Release()
	s5.Done(nil)
	s4.Done(errors.New("disk"))
	expectLine(t, c, r, "failed")
	pipe.Wait()
	p.eng.Send("after\n")
	expectLine(t, c, r, "after")
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// startTCP serves lineProto connections on a loopback listener, through
// internal/tcpconn as the adapters do.
func startTCP(t *testing.T, g *Group) (addr string, conns chan *lineProto) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns = make(chan *lineProto, 16)
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			p := &lineProto{ended: make(chan struct{}), hold: make(chan struct{})}
			p.eng.Init(g, p, tcpconn.Wrap(nc), Options{})
			p.eng.Start()
			conns <- p
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String(), conns
}

// A peer that keeps writing while the server closes still reads the
// final unit: the server half-closes and drains instead of resetting the
// connection with unread input.
func TestGracefulCloseWhilePeerWrites(t *testing.T) {
	g := newGroup(Config{CloseDrain: 500 * time.Millisecond})
	addr, conns := startTCP(t, g)
	for round := 0; round < 20; round++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		p := <-conns
		io.WriteString(c, "hello\n")
		r := bufio.NewReader(c)
		expectLine(t, c, r, "welcome")
		stop := make(chan struct{})
		writeErr := make(chan error, 1)
		go func() {
			junk := []byte(strings.Repeat("x", 1000) + "\n")
			for {
				select {
				case <-stop:
					writeErr <- nil
					return
				default:
				}
				if _, err := c.Write(junk); err != nil {
					writeErr <- err
					return
				}
			}
		}()
		time.Sleep(10 * time.Millisecond)
		last := "closing\n"
		p.eng.CloseWith(&last)
		// Like a client answering what it reads, this one keeps writing
		// and reads only later; its writes must not fail (a reset) before
		// it has read the final unit.
		time.Sleep(50 * time.Millisecond)
		select {
		case err := <-writeErr:
			t.Fatalf("round %d: the client's write failed before it read the final unit: %v", round, err)
		default:
		}
		expectLine(t, c, r, "closing")
		close(stop)
		c.Close()
		<-p.ended
	}
}

func TestArrivedOverTCP(t *testing.T) {
	g := newGroup(Config{})
	addr, conns := startTCP(t, g)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := <-conns
	before := time.Now().UnixNano()
	io.WriteString(c, "hello\n")
	r := bufio.NewReader(c)
	expectLine(t, c, r, "welcome")
	after := time.Now().UnixNano()
	p.mu.Lock()
	at := p.arrived[0]
	p.mu.Unlock()
	if at < before-int64(time.Second) || at > after {
		t.Fatalf("arrival %d outside [%d, %d]", at, before, after)
	}
}

// A delivery to a quiet TCP connection is written by the delivering
// goroutine: no writer goroutine is left behind.
func TestInlineDelivery(t *testing.T) {
	g := newGroup(Config{})
	addr, conns := startTCP(t, g)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := <-conns
	io.WriteString(c, "hello\n")
	r := bufio.NewReader(c)
	expectLine(t, c, r, "welcome")
	time.Sleep(2 * inlineQuiet)
	p.eng.Deliver("inline\n", true)
	p.eng.Lock()
	writing := p.eng.writing
	p.eng.Unlock()
	if writing {
		t.Fatal("a writer is still running after an inline delivery")
	}
	expectLine(t, c, r, "inline")
}

// quickProto answers "q" straight from the wait's buffer (Quicker).
type quickProto struct{ lineProto }

func (p *quickProto) Quick(in []byte) (int, []byte) {
	if len(in) >= 2 && in[0] == 'q' && in[1] == '\n' {
		return 2, []byte("Q\n")
	}
	return 0, nil
}

// A Quicker's unit is answered without the unit reader, in order with
// everything else.
func TestQuickReply(t *testing.T) {
	g := newGroup(Config{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan *quickProto, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		p := &quickProto{lineProto{ended: make(chan struct{}), hold: make(chan struct{})}}
		p.eng.Init(g, p, tcpconn.Wrap(nc), Options{})
		p.eng.Start()
		done <- p
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := <-done
	r := bufio.NewReader(c)
	io.WriteString(c, "hello\n")
	expectLine(t, c, r, "welcome")
	for i := 0; i < 3; i++ {
		time.Sleep(5 * time.Millisecond) // each "q" arrives on a quiet connection
		io.WriteString(c, "q\n")
		expectLine(t, c, r, "Q")
	}
	io.WriteString(c, "q\nping\n") // after a quick one, the rest goes to the unit reader
	expectLine(t, c, r, "Q")
	expectLine(t, c, r, "pong")
	p.mu.Lock()
	got := strings.Join(p.got, ",")
	p.mu.Unlock()
	if got != "hello,ping" {
		t.Fatalf("the unit reader saw %q, want hello,ping", got)
	}
}
