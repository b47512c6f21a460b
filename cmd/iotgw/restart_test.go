package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// rawMQTT is a lean MQTT 3.1.1 client for bulk QoS 1 traffic: paho's
// per-message tokens and goroutines cost more than the gateway's work at
// 100,000 messages. It knows CONNECT, SUBSCRIBE, PUBLISH and PUBACK.
type rawMQTT struct {
	t  *testing.T
	nc net.Conn
	r  *bufio.Reader
	w  *bufio.Writer
}

func dialRaw(t *testing.T, addr, clientID string, clean bool) *rawMQTT {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &rawMQTT{t: t, nc: nc, r: bufio.NewReaderSize(nc, 1<<16), w: bufio.NewWriterSize(nc, 1<<16)}
	var flags byte
	if clean {
		flags = 0x02
	}
	body := append([]byte{0, 4, 'M', 'Q', 'T', 'T', 4, flags, 0, 0}, mqttString(clientID)...)
	c.packet(0x10, body)
	c.flush()
	if typ, b := c.read(); typ != 0x20 || len(b) != 2 || b[1] != 0 {
		t.Fatalf("CONNACK %x % x", typ, b)
	}
	return c
}

func mqttString(s string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(s))), s...)
}

// packet buffers one packet with the fixed header byte h.
func (c *rawMQTT) packet(h byte, body []byte) {
	c.w.WriteByte(h)
	n := len(body)
	for {
		b := byte(n % 128)
		n /= 128
		if n > 0 {
			b |= 0x80
		}
		c.w.WriteByte(b)
		if n == 0 {
			break
		}
	}
	c.w.Write(body)
}

func (c *rawMQTT) flush() {
	if err := c.w.Flush(); err != nil {
		c.t.Fatal(err)
	}
}

// read returns the next packet's type (the high nibble of its first byte,
// shifted back) and body; a read error or 30 s of silence fails the test.
func (c *rawMQTT) read() (byte, []byte) {
	typ, body, err := c.readErr(30 * time.Second)
	if err != nil {
		c.t.Fatal(err)
	}
	return typ, body
}

func (c *rawMQTT) readErr(d time.Duration) (byte, []byte, error) {
	h, body, err := c.readPacket(d)
	return h & 0xf0, body, err
}

// readPacket returns the next packet's whole first byte (type and flags:
// DUP, QoS, RETAIN of a PUBLISH) and its body.
func (c *rawMQTT) readPacket(d time.Duration) (byte, []byte, error) {
	c.nc.SetReadDeadline(time.Now().Add(d))
	h, err := c.r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, mul := 0, 1
	for {
		b, err := c.r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n += int(b&0x7f) * mul
		mul *= 128
		if b&0x80 == 0 {
			break
		}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return 0, nil, err
	}
	return h, body, nil
}

// publishQoS1 publishes n QoS 1 messages to topic, payload the decimal
// index, keeping up to window of them unacknowledged, and returns once
// all are PUBACKed.
func (c *rawMQTT) publishQoS1(topic string, n, window int) {
	acks := make(chan error, 1)
	room := make(chan struct{}, window)
	go func() {
		for got := 0; got < n; got++ {
			typ, _, err := c.readErr(30 * time.Second)
			if err == nil && typ != 0x40 {
				err = fmt.Errorf("got packet type %x, want PUBACK", typ)
			}
			if err != nil {
				acks <- fmt.Errorf("after %d PUBACKs: %w", got, err)
				return
			}
			<-room
		}
		acks <- nil
	}()
	for i := 0; i < n; i++ {
		select {
		case room <- struct{}{}:
		default:
			// Window full: send what is buffered and wait for a PUBACK.
			c.flush()
			room <- struct{}{}
		}
		// Packet ids cycle over 1..65535; window is far smaller, so an id
		// is never reused while still unacknowledged.
		id := uint16(i%65535 + 1)
		body := binary.BigEndian.AppendUint16(mqttString(topic), id)
		c.packet(0x32, strconv.AppendInt(body, int64(i), 10))
	}
	c.flush()
	if err := <-acks; err != nil {
		c.t.Fatal(err)
	}
}

// receiveQoS1 reads QoS 1 PUBLISHes, acknowledging each, until every
// index below n has arrived; it returns how many PUBLISHes came in all.
func (c *rawMQTT) receiveQoS1(n int) (missing, total int) {
	seen := make([]bool, n)
	missing = n
	for missing > 0 {
		typ, body, err := c.readErr(10 * time.Second)
		if err != nil {
			c.t.Logf("receive: %v with %d missing", err, missing)
			return missing, total
		}
		if typ != 0x30 {
			continue
		}
		tl := int(binary.BigEndian.Uint16(body))
		id := body[2+tl : 4+tl]
		c.packet(0x40, id)
		total++
		if i, err := strconv.Atoi(string(body[4+tl:])); err == nil && i >= 0 && i < n && !seen[i] {
			seen[i] = true
			missing--
		}
		if c.r.Buffered() == 0 {
			c.flush()
		}
	}
	c.flush()
	return missing, total
}

// restartCount is how many messages TestGracefulRestartQueued queues:
// 10,000 by default to keep the suite lean, IOTGWTEST_RESTART_MESSAGES
// (e.g. 100000, issue 8's figure; not IOTGW_: the gateway refuses
// IOTGW_ variables that name no key) to measure the full case.
func restartCount(t *testing.T) int {
	if s := os.Getenv("IOTGWTEST_RESTART_MESSAGES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			t.Fatalf("IOTGWTEST_RESTART_MESSAGES=%q", s)
		}
		return n
	}
	return 10000
}

// TestGracefulRestartQueued queues QoS 1 messages for an offline
// persistent subscriber, stops the gateway with SIGTERM, restarts it on
// the same store and checks the subscriber then receives every one. The
// shutdown and start-up times are logged, not asserted (no timed
// assertions in this repository); issue 8 asks for under 2 s at 100,000:
//
//	IOTGWTEST_RESTART_MESSAGES=100000 go test -run TestGracefulRestartQueued -v ./cmd/iotgw/
func TestGracefulRestartQueued(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	n := restartCount(t)
	bin := buildBinary(t)
	dir := filepath.Join(t.TempDir(), "data")
	// Every message stays queued for the offline session: raise the
	// queue bound above n so none is dropped as the oldest.
	env := "IOTGW_SESSION_MAX_QUEUED=" + strconv.Itoa(n+1000)
	g := startGateway(t, bin, dir, env)

	sub := dialRaw(t, g.addr, "restart-sub", false)
	sub.packet(0x82, append([]byte{0, 1}, append(mqttString("bulk/#"), 1)...))
	sub.flush()
	if typ, b := sub.read(); typ != 0x90 || b[len(b)-1] != 1 {
		t.Fatalf("SUBACK %x % x", typ, b)
	}
	sub.nc.Close() // offline; the session stays (clean session 0)

	pub := dialRaw(t, g.addr, "restart-pub", true)
	begin := time.Now()
	pub.publishQoS1("bulk/x", n, 1000)
	t.Logf("%d QoS 1 messages queued (all PUBACKed) in %v", n, time.Since(begin))
	pub.nc.Close()

	stop := g.term(t)
	g = startGateway(t, bin, dir, env)
	defer func() { g.term(t) }()
	t.Logf("%d queued: SIGTERM to exit %v; start to listening %v (store recovery %s); restart total %v",
		n, stop, g.startup, g.recovered, stop+g.startup)

	sub = dialRaw(t, g.addr, "restart-sub", false)
	missing, total := sub.receiveQoS1(n)
	t.Logf("after restart the subscriber got %d PUBLISHes, %d of %d distinct messages missing", total, missing, n)
	if missing > 0 {
		t.Fatalf("%d of %d queued messages lost across a graceful restart", missing, n)
	}
}
