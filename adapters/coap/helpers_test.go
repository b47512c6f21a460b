package coap_test

// Shared helpers of the CoAP black-box tests: a whole gateway (core, MQTT
// adapter, CoAP adapter) on 127.0.0.1 port 0, paho MQTT clients, go-coap
// clients, and a raw UDP CoAP client for exchanges a well-behaved client
// library will not produce (no ACK, RST, duplicates, garbage).

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"
	"github.com/plgd-dev/go-coap/v3/udp/coder"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/iotgw/iotgw/adapters/coap"
	"github.com/iotgw/iotgw/adapters/mqtt"
	"github.com/iotgw/iotgw/core"
)

// waitTimeout bounds every wait for something that must happen; a passing
// run never waits for it.
const waitTimeout = 10 * time.Second

type gateway struct {
	t       testing.TB
	b       *core.Broker
	coap    *coap.Server
	mqttURL string
	addr    string // CoAP host:port
}

// startGateway runs a broker with the MQTT and CoAP adapters; tweak may
// change the CoAP configuration, opts the broker's.
func startGateway(t testing.TB, tweak func(*coap.Config), opts ...core.Option) *gateway {
	t.Helper()
	level := zap.WarnLevel
	if os.Getenv("IOTGW_TEST_DEBUG") != "" {
		level = zap.DebugLevel
	}
	log := zaptest.NewLogger(t, zaptest.Level(level))
	ccfg := core.DefaultConfig()
	ccfg.SysInterval = 0
	b, err := core.New(ccfg, log, opts...)
	if err != nil {
		t.Fatalf("core: %v", err)
	}
	b.Start()
	mcfg := mqtt.DefaultConfig()
	mcfg.TCP, mcfg.WS = "127.0.0.1:0", ""
	m := mqtt.New(mcfg, log)
	ctx := context.Background()
	if err := m.Start(ctx, b); err != nil {
		t.Fatalf("mqtt: %v", err)
	}
	cfg := coap.DefaultConfig()
	cfg.UDP = "127.0.0.1:0"
	if tweak != nil {
		tweak(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("coap config: %v", err)
	}
	s := coap.New(cfg, log)
	if err := s.Start(ctx, b); err != nil {
		t.Fatalf("coap: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Errorf("coap stop: %v", err)
		}
		if err := m.Stop(ctx); err != nil {
			t.Errorf("mqtt stop: %v", err)
		}
		b.Close()
	})
	return &gateway{t: t, b: b, coap: s, mqttURL: "tcp://" + m.TCPAddr().String(), addr: s.Addr().String()}
}

// malformed returns the adapter's count of dropped malformed datagrams.
func (g *gateway) malformed() uint64 { return g.packets("malformed", false) }

// notifications returns the adapter's count of notifications sent.
func (g *gateway) notifications() uint64 { return g.packets("notification", true) }

// packets returns the adapter's $SYS packet counter name, of packets sent
// or received.
func (g *gateway) packets(name string, sent bool) uint64 {
	for _, p := range g.b.Stats().AllPackets() {
		if p.Protocol == core.ProtoCoAP {
			for i, n := range p.Names {
				if n != name {
					continue
				}
				if sent {
					return p.Sent(i)
				}
				return p.Received(i)
			}
		}
	}
	return 0
}

// mqttMsg is one message as a paho client saw it.
type mqttMsg struct {
	Topic    string
	Payload  string
	QoS      byte
	Retained bool
}

var clientSeq atomic.Uint64

func uniqueID(prefix string) string { return fmt.Sprintf("%s-%d", prefix, clientSeq.Add(1)) }

// pahoClient is a connected MQTT 3.1.1 client funnelling what it receives
// into msgs.
type pahoClient struct {
	paho.Client
	t    testing.TB
	msgs chan mqttMsg
}

func (g *gateway) mqttClient(t testing.TB) *pahoClient {
	t.Helper()
	pc := &pahoClient{t: t, msgs: make(chan mqttMsg, 1024)}
	opts := paho.NewClientOptions().AddBroker(g.mqttURL).SetClientID(uniqueID("paho")).
		SetProtocolVersion(4).SetCleanSession(true).SetAutoReconnect(false).SetOrderMatters(true).
		SetConnectTimeout(waitTimeout).SetWriteTimeout(waitTimeout).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
			pc.msgs <- mqttMsg{Topic: m.Topic(), Payload: string(m.Payload()), QoS: m.Qos(), Retained: m.Retained()}
		})
	pc.Client = paho.NewClient(opts)
	if tok := pc.Connect(); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatalf("paho connect: %v", tok.Error())
	}
	t.Cleanup(func() { pc.Disconnect(0) })
	return pc
}

func (pc *pahoClient) subscribe(filter string, qos byte) {
	pc.t.Helper()
	if tok := pc.Subscribe(filter, qos, nil); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		pc.t.Fatalf("paho subscribe %s: %v", filter, tok.Error())
	}
}

func (pc *pahoClient) publish(topic string, qos byte, retain bool, payload string) {
	pc.t.Helper()
	if tok := pc.Publish(topic, qos, retain, payload); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		pc.t.Fatalf("paho publish %s: %v", topic, tok.Error())
	}
}

func (pc *pahoClient) next() mqttMsg {
	pc.t.Helper()
	select {
	case m := <-pc.msgs:
		return m
	case <-time.After(waitTimeout):
		pc.t.Fatal("no MQTT message arrived")
	}
	return mqttMsg{}
}

// coapClient dials the gateway with go-coap's client.
func (g *gateway) coapClient(t testing.TB) *udpClient.Conn {
	t.Helper()
	cc, err := udp.Dial(g.addr, options.WithErrors(func(error) {}))
	if err != nil {
		t.Fatalf("coap dial: %v", err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

func queries(qs ...string) []message.Option {
	out := make([]message.Option, 0, len(qs))
	for _, q := range qs {
		out = append(out, message.Option{ID: message.URIQuery, Value: []byte(q)})
	}
	return out
}

func ctxTimeout(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// response is a copy of a go-coap response (its pooled message is
// released by the caller's helper).
type response struct {
	Code    codes.Code
	Payload string
	CF      int // -1 when absent
	Observe int64
	Type    message.Type
	Loc     string // Location-Path joined with "/"
}

func copyResponse(m *pool.Message) response {
	r := response{Code: m.Code(), CF: -1, Observe: -1, Type: m.Type()}
	body, _ := m.ReadBody()
	r.Payload = string(body)
	if cf, err := m.ContentFormat(); err == nil {
		r.CF = int(cf)
	}
	if o, err := m.Observe(); err == nil {
		r.Observe = int64(o)
	}
	var segs []string
	for _, o := range m.Options() {
		if o.ID == message.LocationPath {
			segs = append(segs, string(o.Value))
		}
	}
	r.Loc = strings.Join(segs, "/")
	return r
}

// do sends one request built by build and returns a copy of the response.
func do(t testing.TB, cc *udpClient.Conn, req *pool.Message, err error) response {
	t.Helper()
	if err != nil {
		t.Fatalf("build request: %v", err)
	}
	defer cc.ReleaseMessage(req)
	resp, err := cc.Do(req)
	if err != nil {
		t.Fatalf("coap %v: %v", req.Code(), err)
	}
	defer cc.ReleaseMessage(resp)
	return copyResponse(resp)
}

func post(t testing.TB, cc *udpClient.Conn, path string, cf message.MediaType, body string, qs ...string) response {
	t.Helper()
	req, err := cc.NewPostRequest(ctxTimeout(t), path, cf, bytes.NewReader([]byte(body)), queries(qs...)...)
	return do(t, cc, req, err)
}

func get(t testing.TB, cc *udpClient.Conn, path string, qs ...string) response {
	t.Helper()
	req, err := cc.NewGetRequest(ctxTimeout(t), path, queries(qs...)...)
	return do(t, cc, req, err)
}

// rawClient speaks CoAP datagrams directly over a UDP socket.
type rawClient struct {
	t    testing.TB
	conn *net.UDPConn
	mid  uint16
}

func (g *gateway) raw(t testing.TB) *rawClient {
	t.Helper()
	raddr, err := net.ResolveUDPAddr("udp", g.addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp", nil, raddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawClient{t: t, conn: c, mid: uint16(time.Now().UnixNano())}
}

func (rc *rawClient) nextMID() int32 {
	rc.mid++
	return int32(rc.mid)
}

func (rc *rawClient) sendBytes(b []byte) {
	rc.t.Helper()
	if _, err := rc.conn.Write(b); err != nil {
		rc.t.Fatalf("raw write: %v", err)
	}
}

func (rc *rawClient) send(m message.Message) {
	rc.t.Helper()
	buf := make([]byte, 65536)
	n, err := coder.DefaultCoder.Encode(m, buf)
	if err != nil {
		rc.t.Fatalf("encode: %v", err)
	}
	rc.sendBytes(buf[:n])
}

// request builds a request message for path with query options.
func request(code codes.Code, typ message.Type, mid int32, token []byte, path string, qs ...string) message.Message {
	var opts message.Options
	for _, seg := range strings.Split(strings.TrimPrefix(path, "/"), "/") {
		opts = opts.Add(message.Option{ID: message.URIPath, Value: []byte(seg)})
	}
	opts = append(opts, queries(qs...)...)
	return message.Message{Code: code, Type: typ, MessageID: mid, Token: token, Options: opts}
}

// recv waits for one datagram and decodes it; ok is false on timeout.
func (rc *rawClient) recv(timeout time.Duration) (message.Message, bool) {
	rc.t.Helper()
	b, ok := rc.recvBytes(timeout)
	if !ok {
		return message.Message{}, false
	}
	m := message.Message{Options: make(message.Options, 0, 32)}
	if _, err := coder.DefaultCoder.Decode(b, &m); err != nil {
		rc.t.Fatalf("decode: %v", err)
	}
	m.Payload = append([]byte(nil), m.Payload...)
	return m, true
}

// recvBytes waits for one datagram and returns it undecoded.
func (rc *rawClient) recvBytes(timeout time.Duration) ([]byte, bool) {
	buf := make([]byte, 65536)
	_ = rc.conn.SetReadDeadline(time.Now().Add(timeout))
	n, err := rc.conn.Read(buf)
	if err != nil {
		return nil, false
	}
	return buf[:n], true
}

func (rc *rawClient) mustRecv() message.Message {
	rc.t.Helper()
	m, ok := rc.recv(waitTimeout)
	if !ok {
		rc.t.Fatal("no datagram arrived")
	}
	return m
}

// reply sends an empty ACK or RST for message id mid.
func (rc *rawClient) reply(typ message.Type, mid int32) {
	rc.send(message.Message{Type: typ, Code: codes.Empty, MessageID: mid})
}

func observeOf(m message.Message) int64 {
	v, err := m.Options.Observe()
	if err != nil {
		return -1
	}
	return int64(v)
}
