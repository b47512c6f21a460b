package mqttsn_test

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/zap/zaptest"

	"github.com/iotgw/iotgw/adapters/mqtt"
	"github.com/iotgw/iotgw/adapters/mqttsn"
	"github.com/iotgw/iotgw/adapters/mqttsn/sntest"
	"github.com/iotgw/iotgw/core"
)

const waitTimeout = sntest.Timeout

// gateway is a broker with the MQTT and MQTT-SN adapters on loopback.
type gateway struct {
	b      *core.Broker
	sn     *mqttsn.Server
	mqtt   *mqtt.Server
	snAddr net.Addr
	url    string
}

// testConfig is the MQTT-SN configuration of most tests: short timers so
// retransmission tests run fast, and two predefined topics.
func testConfig() mqttsn.Config {
	cfg := mqttsn.DefaultConfig()
	cfg.UDP = "127.0.0.1:0"
	cfg.RetryInterval = 300 * time.Millisecond
	cfg.MaxRetries = 2
	cfg.NewSessionRate = 0
	cfg.Predefined = []mqttsn.PredefinedTopic{{ID: 1, Topic: "pre/one"}, {ID: 2, Topic: "pre/two"}}
	return cfg
}

func startGateway(t *testing.T, cfg mqttsn.Config, opts ...core.Option) *gateway {
	t.Helper()
	g, stop := launchGateway(t, cfg, opts...)
	t.Cleanup(stop)
	return g
}

// launchGateway starts a gateway (recovering the broker's store, if one
// is given) and returns the function that stops it.
func launchGateway(t *testing.T, cfg mqttsn.Config, opts ...core.Option) (*gateway, func()) {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := zaptest.NewLogger(t)
	ccfg := core.DefaultConfig()
	ccfg.SysInterval = 0
	b, err := core.New(ccfg, log, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	b.Start()
	mcfg := mqtt.DefaultConfig()
	mcfg.TCP, mcfg.WS = "127.0.0.1:0", ""
	ms := mqtt.New(mcfg, log)
	ctx := context.Background()
	if err := ms.Start(ctx, b); err != nil {
		t.Fatal(err)
	}
	sn := mqttsn.New(cfg, log)
	if err := sn.Start(ctx, b); err != nil {
		t.Fatal(err)
	}
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := sn.Stop(ctx); err != nil {
			t.Errorf("mqttsn stop: %v", err)
		}
		if err := ms.Stop(ctx); err != nil {
			t.Errorf("mqtt stop: %v", err)
		}
		b.Close()
	}
	return &gateway{b: b, sn: sn, mqtt: ms, snAddr: sn.UDPAddr(), url: "tcp://" + ms.TCPAddr().String()}, stop
}

var seq atomic.Uint64

func uniqueID(prefix string) string { return fmt.Sprintf("%s-%d", prefix, seq.Add(1)) }

// received is one message as paho saw it.
type received struct {
	topic   string
	payload string
	qos     byte
	retain  bool
}

// pahoClient is a paho MQTT 3.1.1 client collecting what it receives.
type pahoClient struct {
	paho.Client
	t    *testing.T
	msgs chan received
}

func connectPaho(t *testing.T, g *gateway) *pahoClient {
	t.Helper()
	pc := &pahoClient{t: t, msgs: make(chan received, 256)}
	opts := paho.NewClientOptions().AddBroker(g.url).SetClientID(uniqueID("paho")).
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false).SetOrderMatters(true).
		SetConnectTimeout(waitTimeout).SetWriteTimeout(waitTimeout).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
			pc.msgs <- received{topic: m.Topic(), payload: string(m.Payload()), qos: m.Qos(), retain: m.Retained()}
		})
	pc.Client = paho.NewClient(opts)
	wait(t, "paho connect", pc.Connect())
	t.Cleanup(func() { pc.Disconnect(50) })
	return pc
}

func wait(t *testing.T, what string, tok paho.Token) {
	t.Helper()
	if !tok.WaitTimeout(waitTimeout) {
		t.Fatalf("%s: timed out", what)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func (p *pahoClient) sub(filter string, qos byte) {
	p.t.Helper()
	wait(p.t, "subscribe "+filter, p.Subscribe(filter, qos, nil))
}

func (p *pahoClient) pub(topic string, qos byte, retain bool, payload string) {
	p.t.Helper()
	wait(p.t, "publish "+topic, p.Publish(topic, qos, retain, payload))
}

// expect waits for the next message and checks it.
func (p *pahoClient) expect(topic, payload string, qos byte, retain bool) {
	p.t.Helper()
	select {
	case m := <-p.msgs:
		want := received{topic, payload, qos, retain}
		if m != want {
			p.t.Fatalf("paho got %+v, want %+v", m, want)
		}
	case <-time.After(waitTimeout):
		p.t.Fatalf("paho: no message on %s", topic)
	}
}
