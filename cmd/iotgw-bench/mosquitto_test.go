package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// startMosquitto runs Debian's mosquitto on a free loopback port, or skips
// the test when it is not installed (apt-get install -y mosquitto).
func startMosquitto(t *testing.T) (addr string, pid int) {
	t.Helper()
	port := freeTCPPort(t)
	body := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\nmax_connections -1\nlog_type error\nlog_type warning\n", port)
	return runMosquitto(t, body, port)
}

// runMosquitto starts mosquitto with the configuration body, waits until
// it answers MQTT on the plaintext port and returns that address. It
// skips the test when mosquitto is not installed.
func runMosquitto(t *testing.T, body string, port int) (addr string, pid int) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts an external broker")
	}
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		// /usr/sbin is not on every user's PATH.
		if _, serr := os.Stat("/usr/sbin/mosquitto"); serr != nil {
			t.Skip("mosquitto not installed")
		}
		bin = "/usr/sbin/mosquitto"
	}
	conf := filepath.Join(t.TempDir(), "mosquitto.conf")
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", conf)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addr = fmt.Sprintf("127.0.0.1:%d", port)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := probe(ctx, config{addr: addr, pubProto: protoMQTT, subProto: protoMQTT, keepAlive: time.Minute}); err != nil {
		t.Fatal(err)
	}
	return addr, cmd.Process.Pid
}

// TestAgainstMosquitto runs every scenario against a real broker. The window
// stays at 20 because mosquitto's default max_inflight_messages (20) also
// caps unreleased incoming QoS 2 messages per client, and it silently drops
// the excess while still answering PUBREC; at 20 any loss is our bug.
func TestAgainstMosquitto(t *testing.T) {
	addr, pid := startMosquitto(t)
	for _, sc := range []string{"pairs", "fanin", "fanout"} {
		for qos := 0; qos <= 2; qos++ {
			cfg := testConfig(addr, sc, qos, 3, 500)
			cfg.window = 20
			cfg.e2e = true // keep the single fan-in subscriber within the broker's queue limit
			res := runCfg(t, cfg)
			if res.Unique != res.Expected || res.Dups != 0 || res.Foreign != 0 || res.BadAcks != 0 {
				t.Errorf("%s qos %d: %+v", sc, qos, res)
			}
		}
	}
	// MQTT 5 (properties, v5 SUBACK/PUBACK forms) and a fixed-rate run.
	for qos := 0; qos <= 2; qos++ {
		cfg := testConfig(addr, "pairs", qos, 3, 300)
		cfg.pubProto, cfg.subProto = protoMQTT5, protoMQTT5
		cfg.window = 20 // mosquitto's Receive Maximum
		res := runCfg(t, cfg)
		if res.Unique != res.Expected || res.Dups != 0 || res.BadAcks != 0 || res.Proto != protoMQTT5 {
			t.Errorf("mqtt5 qos %d: %+v", qos, res)
		}
	}
	cfg := testConfig(addr, "pairs", 1, 1, 10)
	cfg.pubProto = protoMQTT5
	cfg.window = 21
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := runMessaging(ctx, cfg); err == nil {
		t.Error("a window above mosquitto's Receive Maximum (20) was accepted")
	}
	cfg = testConfig(addr, "latency", 1, 2, 100)
	cfg.rate = 2000
	if res := runCfg(t, cfg); res.Unique != res.Expected || res.PublishRate > 3000 {
		t.Errorf("latency: %+v", res)
	}

	// quiet, and the ordering probe's control (publish after the SUBACK),
	// which no broker should miss.
	checkQuiet(t, runMany(t, quietConfig("quiet", "mosquitto="+addr)), []string{"mosquitto"})
	qc := quietConfig("order", "mosquitto="+addr)
	qc.orderProtos, qc.orderSuback = "mqtt,mqtt5", true
	for _, r := range runMany(t, qc) {
		if r.Trials != 4 || misses(r) != 0 || r.Errors != 0 {
			t.Errorf("order, suback first: %+v", r)
		}
	}

	cfg = testConfig(addr, "idle", 1, 300, 1)
	cfg.brokerPID = pid
	cfg.settle = 100 * time.Millisecond
	res := runCfg(t, cfg)
	if res.Conns != 300 || res.RSSAfterKiB == 0 || res.RSSBeforeKiB == 0 {
		t.Errorf("idle: %+v", res)
	}
}
