package stomp_test

// Shared helpers of the STOMP black-box tests: a broker with the MQTT and
// STOMP adapters on loopback port 0, a paho (MQTT 3.1.1) client, a raw
// MQTT 5 client built on the MQTT codec (for user properties and content
// type), and a raw STOMP connection for the frames no library would send.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/go-stomp/stomp/v3/frame"
	"go.uber.org/zap/zaptest"

	"github.com/iotgw/iotgw/adapters/mqtt"
	"github.com/iotgw/iotgw/adapters/mqtt/codec"
	"github.com/iotgw/iotgw/adapters/stomp"
	"github.com/iotgw/iotgw/core"
)

// waitTimeout bounds every wait for something that must happen; a passing
// run never waits for it.
const waitTimeout = 10 * time.Second

type env struct {
	b     *core.Broker
	srv   *stomp.Server
	mqtt  string // host:port
	stomp string // host:port
	ws    string // ws://host:port/stomp
}

var seq atomic.Uint64

func uniqueID(prefix string) string { return fmt.Sprintf("%s-%d", prefix, seq.Add(1)) }

// startEnv starts a broker, the MQTT adapter and the STOMP adapter on
// loopback port 0 and stops them when the test ends.
func startEnv(t testing.TB, tweak func(*stomp.Config), opts ...core.Option) *env {
	t.Helper()
	log := zaptest.NewLogger(t)
	ccfg := core.DefaultConfig()
	ccfg.SysInterval = 0
	b, err := core.New(ccfg, log, opts...)
	if err != nil {
		t.Fatal(err)
	}
	b.Start()
	mcfg := mqtt.DefaultConfig()
	mcfg.TCP, mcfg.WS = "127.0.0.1:0", ""
	ms := mqtt.New(mcfg, log)
	if err := ms.Start(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	scfg := stomp.DefaultConfig()
	scfg.TCP, scfg.WS = "127.0.0.1:0", "127.0.0.1:0"
	if tweak != nil {
		tweak(&scfg)
	}
	if err := scfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ss := stomp.New(scfg, log)
	if err := ss.Start(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := ss.Stop(ctx); err != nil {
			t.Errorf("stomp stop: %v", err)
		}
		_ = ms.Stop(ctx)
		b.Close()
	})
	return &env{b: b, srv: ss, mqtt: ms.TCPAddr().String(), stomp: ss.TCPAddr().String(),
		ws: "ws://" + ss.WSAddr().String() + scfg.WSPath}
}

// mqttMsg is one message as paho saw it.
type mqttMsg struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
}

// pahoClient is a connected MQTT 3.1.1 client collecting what it receives.
type pahoClient struct {
	paho.Client
	t    testing.TB
	msgs chan mqttMsg
}

func connectPaho(t testing.TB, addr string) *pahoClient {
	t.Helper()
	return connectPahoWith(t, addr, nil)
}

// connectPahoWith is connectPaho with the options adjusted by tweak (a
// user name and password, say).
func connectPahoWith(t testing.TB, addr string, tweak func(*paho.ClientOptions)) *pahoClient {
	t.Helper()
	pc := &pahoClient{t: t, msgs: make(chan mqttMsg, 1024)}
	opts := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(uniqueID("paho")).
		SetProtocolVersion(4).SetCleanSession(true).SetAutoReconnect(false).SetOrderMatters(true).
		SetConnectTimeout(waitTimeout).SetWriteTimeout(waitTimeout).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
			pc.msgs <- mqttMsg{Topic: m.Topic(), Payload: m.Payload(), QoS: m.Qos(), Retain: m.Retained()}
		})
	if tweak != nil {
		tweak(opts)
	}
	pc.Client = paho.NewClient(opts)
	waitTok(t, "paho connect", pc.Connect())
	t.Cleanup(func() { pc.Disconnect(50) })
	return pc
}

func waitTok(t testing.TB, what string, tok paho.Token) {
	t.Helper()
	if !tok.WaitTimeout(waitTimeout) {
		t.Fatalf("%s: timed out", what)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func (c *pahoClient) sub(filter string, qos byte) {
	c.t.Helper()
	waitTok(c.t, "paho subscribe "+filter, c.Subscribe(filter, qos, nil))
}

func (c *pahoClient) pub(topic string, qos byte, retain bool, payload any) {
	c.t.Helper()
	waitTok(c.t, "paho publish "+topic, c.Publish(topic, qos, retain, payload))
}

func (c *pahoClient) next() mqttMsg {
	c.t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-time.After(waitTimeout):
		c.t.Fatalf("paho: no message within %v", waitTimeout)
		return mqttMsg{}
	}
}

// mqtt5Client is a raw MQTT 5 connection driven with the codec.
type mqtt5Client struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
}

func dialMQTT5(t testing.TB, addr string) *mqtt5Client {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &mqtt5Client{t: t, nc: nc, br: bufio.NewReader(nc)}
	c.send(&codec.Connect{ProtocolLevel: codec.V5, CleanStart: true, ClientID: uniqueID("m5"), KeepAlive: 60})
	if ack, ok := c.read().(*codec.Connack); !ok || ack.ReasonCode != 0 {
		t.Fatalf("MQTT 5 CONNACK: %+v", ack)
	}
	return c
}

func (c *mqtt5Client) send(p codec.Packet) {
	c.t.Helper()
	b, err := codec.Append(nil, p, codec.V5)
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

func (c *mqtt5Client) read() codec.Packet {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(waitTimeout))
	p, _, err := codec.ReadPacket(c.br, codec.V5, 0)
	if err != nil {
		c.t.Fatalf("MQTT 5 read: %v", err)
	}
	return p
}

// publish reads packets until a PUBLISH arrives.
func (c *mqtt5Client) publish() *codec.Publish {
	c.t.Helper()
	for {
		if p, ok := c.read().(*codec.Publish); ok {
			if p.QoS == 1 {
				c.send(&codec.Ack{Kind: codec.TypePuback, PacketID: p.PacketID})
			}
			return p
		}
	}
}

// rawStomp is a STOMP connection driven frame by frame.
type rawStomp struct {
	t  testing.TB
	nc net.Conn
	r  *frame.Reader
}

func dialRaw(t testing.TB, addr string) *rawStomp {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawStomp{t: t, nc: nc, r: frame.NewReader(nc)}
}

func (r *rawStomp) write(s string) {
	r.t.Helper()
	_ = r.nc.SetWriteDeadline(time.Now().Add(waitTimeout))
	if _, err := r.nc.Write([]byte(s)); err != nil {
		r.t.Fatalf("raw write: %v", err)
	}
}

// read returns the next frame, nil for a heart-beat.
func (r *rawStomp) read() (*frame.Frame, error) {
	_ = r.nc.SetReadDeadline(time.Now().Add(waitTimeout))
	return r.r.Read()
}

// expect reads frames, skipping heart-beats, until one arrives; it fails
// unless it has the command.
func (r *rawStomp) expect(cmd string) *frame.Frame {
	r.t.Helper()
	for {
		f, err := r.read()
		if err != nil {
			r.t.Fatalf("waiting for %s: %v", cmd, err)
		}
		if f == nil {
			continue
		}
		if f.Command != cmd {
			r.t.Fatalf("got %s %v %q, want %s", f.Command, f.Header, f.Body, cmd)
		}
		return f
	}
}

// connect sends CONNECT (1.2 by default) with extra headers "k:v" and
// returns CONNECTED.
func (r *rawStomp) connect(headers ...string) *frame.Frame {
	r.t.Helper()
	h := "accept-version:1.2\nhost:test\n"
	for _, x := range headers {
		h += x + "\n"
	}
	r.write("CONNECT\n" + h + "\n\x00")
	return r.expect(frame.CONNECTED)
}

// expectClosed waits for the server to close the connection, ignoring
// heart-beats.
func (r *rawStomp) expectClosed(why string) {
	r.t.Helper()
	for {
		f, err := r.read()
		if err == nil {
			if f != nil {
				r.t.Fatalf("%s: got %s %v instead of the connection closing", why, f.Command, f.Header)
			}
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			r.t.Fatalf("%s: connection still open after %v", why, waitTimeout)
		}
		return
	}
}

// expectError reads an ERROR frame whose message contains want, then the
// close.
func (r *rawStomp) expectError(want string) *frame.Frame {
	r.t.Helper()
	f := r.expect(frame.ERROR)
	if msg := f.Header.Get(frame.Message); !strings.Contains(msg, want) {
		r.t.Errorf("ERROR message %q, want it to contain %q (body %q)", msg, want, f.Body)
	}
	r.expectClosed("after ERROR")
	return f
}
