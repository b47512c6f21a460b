package main

import (
	"context"
	"fmt"
	"net"
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
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	conf := filepath.Join(t.TempDir(), "mosquitto.conf")
	body := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\nmax_connections -1\nlog_type error\nlog_type warning\n", port)
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
	if err := probe(ctx, config{addr: addr, keepAlive: time.Minute}); err != nil {
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
	cfg := testConfig(addr, "idle", 1, 300, 1)
	cfg.brokerPID = pid
	cfg.settle = 100 * time.Millisecond
	res := runCfg(t, cfg)
	if res.Conns != 300 || res.RSSAfterKiB == 0 || res.RSSBeforeKiB == 0 {
		t.Errorf("idle: %+v", res)
	}
}
