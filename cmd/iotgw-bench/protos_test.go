package main

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/iotgw/iotgw/internal/testutil"
)

// startIotgw runs a whole gateway in-process, every adapter on 127.0.0.1:0,
// and returns each protocol's address as the load generator takes it.
func startIotgw(t *testing.T) map[string]string {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a gateway")
	}
	// No per-address rate limit on new MQTT-SN sessions: every client of
	// the tests comes from 127.0.0.1.
	g := testutil.Start(t, "mqttsn:\n  new_session_rate: 0\n")
	return map[string]string{
		protoMQTT: g.MQTTAddr(), protoMQTT5: g.MQTTAddr(),
		protoMQTTWS: g.WSURL(), protoMQTT5WS: g.WSURL(),
		protoMQTTSN: g.MQTTSNAddr(), protoCoAP: g.CoAPAddr(),
		protoSTOMP: g.STOMPAddr(), protoSTOMPWS: g.STOMPWSURL(),
	}
}

// protoConfig is a small bounded run from pub to sub.
func protoConfig(addrs map[string]string, pub, sub, scenario string, qos, n, msgs int) config {
	cfg := testConfig("", scenario, qos, n, msgs)
	cfg.pubProto, cfg.subProto = pub, sub
	cfg.pubAddr, cfg.subAddr = addrs[pub], addrs[sub]
	// End-to-end credit keeps every subscriber's backlog small: iotgw's
	// MQTT-SN and CoAP subscribers take one QoS 1 message per round trip,
	// and the point here is the clients, not the gateway's queue limits.
	cfg.e2e = true
	if isUDP(pub) || isUDP(sub) {
		cfg.window = 5
	}
	return cfg
}

// checkDelivery asserts what a run over iotgw must show: at QoS 1 every
// message exactly once; at QoS 0 no duplicates and, over TCP only, no loss
// (a UDP datagram may be dropped; QoS 0 allows it).
func checkDelivery(t *testing.T, cfg config, res result) {
	t.Helper()
	if res.Dups != 0 || res.Foreign != 0 || res.BadAcks != 0 {
		t.Errorf("dups %d foreign %d bad acks %d: %+v", res.Dups, res.Foreign, res.BadAcks, res)
	}
	lossy := cfg.qos == 0 && (isUDP(cfg.pubProto) || isUDP(cfg.subProto))
	if res.Unique != res.Expected && !lossy {
		t.Errorf("received %d of %d: %+v", res.Unique, res.Expected, res)
	}
	if lossy && res.LossPct > 5 {
		t.Errorf("QoS 0 loss %.1f%% on loopback: %+v", res.LossPct, res)
	}
	if res.Rate <= 0 || res.P50us <= 0 || res.P50us > res.P99us || res.P99us > res.MaxUs {
		t.Errorf("implausible rate/latency: %+v", res)
	}
}

// TestProtocolsAgainstIotgw runs pairs over every protocol at QoS 0 and 1
// (MQTT-SN, whose QoS 2 handshake is the client's own, at 2 as well).
func TestProtocolsAgainstIotgw(t *testing.T) {
	addrs := startIotgw(t)
	for _, p := range protocols {
		for qos := 0; qos <= 1; qos++ {
			cfg := protoConfig(addrs, p, p, "pairs", qos, 2, 200)
			res := runCfg(t, cfg)
			t.Logf("%s qos %d: %.0f msg/s, p99 %s", p, qos, res.Rate, fmtUs(res.P99us))
			checkDelivery(t, cfg, res)
		}
	}
	cfg := protoConfig(addrs, protoMQTTSN, protoMQTTSN, "pairs", 2, 2, 100)
	checkDelivery(t, cfg, runCfg(t, cfg))
}

// TestCrossProtocols publishes on one protocol and subscribes on another,
// and covers the wildcard paths: MQTT-SN subscribers are REGISTERed each
// concrete topic by the gateway, CoAP notifications carry Location-Path.
func TestCrossProtocols(t *testing.T) {
	addrs := startIotgw(t)
	for _, c := range []struct {
		pub, sub, scenario string
		qos                int
	}{
		{protoMQTTSN, protoMQTT, "pairs", 1},
		{protoCoAP, protoMQTT, "pairs", 1},
		{protoCoAP, protoSTOMP, "pairs", 1},
		{protoMQTT5, protoMQTTSN, "pairs", 1},
		{protoSTOMPWS, protoCoAP, "pairs", 1},
		{protoMQTTWS, protoSTOMPWS, "pairs", 0},
		{protoMQTTSN, protoMQTTSN, "fanin", 1},
		{protoCoAP, protoCoAP, "fanin", 1},
		{protoSTOMP, protoSTOMP, "fanin", 1},
		{protoMQTT, protoCoAP, "fanout", 1},
	} {
		cfg := protoConfig(addrs, c.pub, c.sub, c.scenario, c.qos, 3, 100)
		res := runCfg(t, cfg)
		if res.Proto != c.pub || res.SubProto != c.sub && c.sub != c.pub {
			t.Errorf("result names protocols %q/%q", res.Proto, res.SubProto)
		}
		checkDelivery(t, cfg, res)
	}
}

// TestLatencyScenario offers a fixed rate: the publishers keep to it, and
// nothing is lost at QoS 1.
func TestLatencyScenario(t *testing.T) {
	addrs := startIotgw(t)
	cfg := protoConfig(addrs, protoMQTT, protoMQTT, "latency", 1, 4, 100)
	cfg.e2e = false
	cfg.rate = 2000 // 500 msg/s per publisher: 0.2 s
	res := runCfg(t, cfg)
	checkDelivery(t, cfg, res)
	if res.OfferedRate != 2000 || res.PublishRate < 1000 || res.PublishRate > 3000 {
		t.Errorf("offered %.0f msg/s, published at %.0f msg/s", res.OfferedRate, res.PublishRate)
	}
	if res.WindowSec < 0.15 {
		t.Errorf("400 messages at 2000 msg/s took %.3fs", res.WindowSec)
	}
}

// TestIdleEveryProtocol opens idle subscribed clients of each protocol and
// reads this process's RSS (the gateway runs in-process).
func TestIdleEveryProtocol(t *testing.T) {
	addrs := startIotgw(t)
	for _, p := range protocols {
		cfg := protoConfig(addrs, p, p, "idle", 1, 20, 1)
		cfg.addr = addrs[p]
		cfg.brokerPID = os.Getpid()
		cfg.settle = time.Millisecond
		res := runCfg(t, cfg)
		if res.Conns != 20 || res.Proto != p || res.RSSAfterKiB == 0 {
			t.Errorf("%s: %+v", p, res)
		}
	}
	// probe speaks the publishers' protocol.
	for _, p := range protocols {
		cfg := protoConfig(addrs, p, p, "probe", 0, 1, 1)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := probe(ctx, cfg)
		cancel()
		if err != nil {
			t.Errorf("probe %s: %v", p, err)
		}
	}
}
