package mqtt_test

// Shared helpers of the MQTT black-box tests: a paho client wrapper that
// collects what it receives, and a raw client that speaks bytes (encoded
// with the codec, or hand-made when the bytes must be wrong).

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/iotgw/iotgw/adapters/mqtt/codec"
	"github.com/iotgw/iotgw/internal/testutil"
)

// waitTimeout bounds every wait for something that must happen. It is
// generous: a loaded two-core machine running -race is slow, and a passing
// run never waits for it.
const waitTimeout = 10 * time.Second

// transport is one way for paho to reach the broker.
type transport struct {
	name string
	url  func(g *testutil.Gateway) string
}

var transports = []transport{
	{"tcp", func(g *testutil.Gateway) string { return g.MQTTURL() }},
	{"ws", func(g *testutil.Gateway) string { return g.WSURL() }},
}

// received is a copy of one message as a client saw it.
type received struct {
	Topic    string
	Payload  string
	QoS      byte
	Retained bool
	Dup      bool
}

func (r received) String() string {
	return fmt.Sprintf("%s %q qos=%d retain=%v dup=%v", r.Topic, r.Payload, r.QoS, r.Retained, r.Dup)
}

// clientSeq makes client ids unique across the tests of one process.
var clientSeq atomic.Uint64

func uniqueID(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, clientSeq.Add(1))
}

// pahoClient is a connected paho client that funnels every message it
// receives (through the default handler) into msgs, and remembers if the
// connection was lost.
type pahoClient struct {
	paho.Client
	t    testing.TB
	id   string
	msgs chan received

	mu   sync.Mutex
	lost error
}

// newPahoOpts returns paho options for one test client: no automatic
// reconnection (a lost connection must show), generous timeouts.
func newPahoOpts(url, id string) *paho.ClientOptions {
	return paho.NewClientOptions().
		AddBroker(url).
		SetClientID(id).
		SetProtocolVersion(4).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetOrderMatters(true).
		SetConnectTimeout(waitTimeout).
		SetWriteTimeout(waitTimeout).
		SetKeepAlive(30 * time.Second)
}

// connectPaho connects a paho client and fails the test if it cannot. The
// client is disconnected when the test ends. tweak may adjust the options.
func connectPaho(t testing.TB, url, id string, tweak func(*paho.ClientOptions)) (*pahoClient, *paho.ConnectToken) {
	t.Helper()
	c, tok, err := tryConnectPaho(t, url, id, tweak)
	if err != nil {
		t.Fatalf("paho %s connect to %s: %v", id, url, err)
	}
	return c, tok
}

func tryConnectPaho(t testing.TB, url, id string, tweak func(*paho.ClientOptions)) (*pahoClient, *paho.ConnectToken, error) {
	t.Helper()
	pc := &pahoClient{t: t, id: id, msgs: make(chan received, 4096)}
	opts := newPahoOpts(url, id).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
			pc.msgs <- received{Topic: m.Topic(), Payload: string(m.Payload()), QoS: m.Qos(),
				Retained: m.Retained(), Dup: m.Duplicate()}
		}).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			pc.mu.Lock()
			pc.lost = err
			pc.mu.Unlock()
		})
	if tweak != nil {
		tweak(opts)
	}
	pc.Client = paho.NewClient(opts)
	tok := pc.Connect()
	if !tok.WaitTimeout(waitTimeout) {
		return nil, nil, errors.New("timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, nil, err
	}
	t.Cleanup(func() { pc.Disconnect(50) })
	return pc, tok.(*paho.ConnectToken), nil
}

// lostErr returns the error the connection-lost handler saw, if any.
func (c *pahoClient) lostErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lost
}

// wait waits for a paho token and fails the test on timeout or error.
func wait(t testing.TB, what string, tok paho.Token) {
	t.Helper()
	if !tok.WaitTimeout(waitTimeout) {
		t.Fatalf("%s: timed out", what)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// subscribe subscribes to filter (messages go to c.msgs) and checks the
// granted QoS in the SUBACK [MQTT-3.8.4-5].
func (c *pahoClient) subscribe(filter string, qos byte) {
	c.t.Helper()
	tok := c.Subscribe(filter, qos, nil)
	wait(c.t, c.id+" subscribe "+filter, tok)
	if got := tok.(*paho.SubscribeToken).Result()[filter]; got != qos {
		c.t.Fatalf("%s subscribe %s: granted QoS %d, want %d [MQTT-3.8.4-5]", c.id, filter, got, qos)
	}
}

// publish publishes and waits for the QoS flow to complete.
func (c *pahoClient) publish(topic string, qos byte, retain bool, payload string) {
	c.t.Helper()
	wait(c.t, fmt.Sprintf("%s publish %s", c.id, topic), c.Publish(topic, qos, retain, payload))
}

// next returns the next message received, failing the test after
// waitTimeout.
func (c *pahoClient) next() received {
	c.t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-time.After(waitTimeout):
		c.t.Fatalf("%s: no message within %v", c.id, waitTimeout)
		return received{}
	}
}

// until collects messages up to and including the first one whose payload
// is marker. Deliveries to one session are ordered, so whatever the broker
// routed to this client before the marker has arrived by then.
func (c *pahoClient) until(marker string) []received {
	c.t.Helper()
	var got []received
	for {
		m := c.next()
		if m.Payload == marker {
			return got
		}
		got = append(got, m)
	}
}

// rawClient is a TCP connection driven byte by byte.
type rawClient struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
}

func dialRaw(t testing.TB, addr string) *rawClient {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawClient{t: t, nc: nc, br: bufio.NewReader(nc)}
}

// write sends raw bytes.
func (r *rawClient) write(b []byte) {
	r.t.Helper()
	_ = r.nc.SetWriteDeadline(time.Now().Add(waitTimeout))
	if _, err := r.nc.Write(b); err != nil {
		r.t.Fatalf("raw write: %v", err)
	}
}

// send encodes p as MQTT 3.1.1 and sends it.
func (r *rawClient) send(p codec.Packet) {
	r.t.Helper()
	b, err := codec.Append(nil, p, codec.V311)
	if err != nil {
		r.t.Fatalf("encode %s: %v", p.Type(), err)
	}
	r.write(b)
}

// read reads one packet, waiting at most waitTimeout.
func (r *rawClient) read() (codec.Packet, error) {
	_ = r.nc.SetReadDeadline(time.Now().Add(waitTimeout))
	p, _, err := codec.ReadPacket(r.br, codec.V311, 0)
	return p, err
}

// expect reads one packet and fails the test unless it is one.
func (r *rawClient) expect(what string) codec.Packet {
	r.t.Helper()
	p, err := r.read()
	if err != nil {
		r.t.Fatalf("%s: reading: %v", what, err)
	}
	return p
}

// connect sends CONNECT and returns the CONNACK.
func (r *rawClient) connect(c *codec.Connect) *codec.Connack {
	r.t.Helper()
	if c.ProtocolLevel == 0 {
		c.ProtocolLevel = codec.V311
	}
	r.send(c)
	p := r.expect("CONNACK")
	ack, ok := p.(*codec.Connack)
	if !ok {
		r.t.Fatalf("got %s, want CONNACK", p.Type())
	}
	return ack
}

// connectOK connects and fails unless the CONNACK accepts.
func (r *rawClient) connectOK(c *codec.Connect) *codec.Connack {
	r.t.Helper()
	ack := r.connect(c)
	if ack.ReasonCode != 0 {
		r.t.Fatalf("CONNACK return code %#x, want 0", byte(ack.ReasonCode))
	}
	return ack
}

// expectClosed waits for the broker to close the connection and fails if
// it sends anything first or keeps it open past waitTimeout.
func (r *rawClient) expectClosed(why string) {
	r.t.Helper()
	_ = r.nc.SetReadDeadline(time.Now().Add(waitTimeout))
	buf := make([]byte, 256)
	n, err := r.br.Read(buf)
	if n > 0 {
		r.t.Errorf("%s: broker sent % x instead of closing", why, buf[:n])
		return
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		r.t.Fatalf("%s: connection still open after %v", why, waitTimeout)
	}
	// io.EOF or a reset: closed either way.
}

// closedWithin reports, without failing, whether the broker closes the
// connection before d; bytes received meanwhile are discarded.
func (r *rawClient) closedWithin(d time.Duration) bool {
	_ = r.nc.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 256)
	for {
		_, err := r.br.Read(buf)
		if err != nil {
			var ne net.Error
			return !(errors.As(err, &ne) && ne.Timeout())
		}
	}
}

// fixedHeader builds a packet from its first byte, a hand-made remaining
// length encoding and a body, for malformed input.
func fixedHeader(first byte, remaining []byte, body ...[]byte) []byte {
	b := append([]byte{first}, remaining...)
	for _, p := range body {
		b = append(b, p...)
	}
	return b
}

// mqttString is a two-byte length followed by s, as MQTT encodes strings;
// s may hold any bytes, valid UTF-8 or not.
func mqttString(s string) []byte {
	return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...)
}

// vbi encodes n as a Variable Byte Integer (remaining length).
func vbi(n int) []byte {
	var b []byte
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			return b
		}
	}
}

// describe renders messages compactly for failure output.
func describe(ms []received) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = m.String()
	}
	return "[" + strings.Join(parts, "; ") + "]"
}
