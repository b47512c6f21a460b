package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iotgw/iotgw/internal/testutil"
)

// withTLS makes every connection of the test dial TLS trusting ca, as
// -tls-ca does, and restores plaintext afterwards.
func withTLS(t *testing.T, ca string) {
	t.Helper()
	cfg, v, err := tlsFlags{caFile: ca}.clientTLS()
	if err != nil {
		t.Fatal(err)
	}
	benchTLS, benchVerifier = cfg, v
	t.Cleanup(func() { benchTLS, benchVerifier = nil, nil })
}

// TestTLSAgainstIotgw runs the connect, pairs and idle scenarios over
// iotgw's secured listeners (MQTT over TLS, MQTT and STOMP over wss, STOMP
// over TLS), and checks that a certificate of another CA is refused.
func TestTLSAgainstIotgw(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a gateway")
	}
	pki := testutil.NewPKI(t, "bench")
	g := testutil.Start(t, pki.TLSYAML(pki.Server("server")))
	withTLS(t, pki.CAFile)
	addrs := map[string]string{protoMQTT: g.MQTTTLSAddr(), protoMQTT5: g.MQTTTLSAddr(),
		protoMQTTWS: g.Addr("mqtt.wss").String(), protoSTOMP: g.STOMPTLSAddr(), protoSTOMPWS: g.Addr("stomp.wss").String()}
	for _, p := range []string{protoMQTT, protoMQTT5, protoMQTTWS, protoSTOMP, protoSTOMPWS} {
		cfg := protoConfig(addrs, p, p, "pairs", 1, 2, 200)
		res := runCfg(t, cfg)
		if !res.TLS || protoLabel(res) != p+"+tls" {
			t.Errorf("%s: result not marked TLS: %q", p, protoLabel(res))
		}
		checkDelivery(t, cfg, res)
	}

	cfg := testConfig(g.MQTTTLSAddr(), "connect", 0, 50, 1)
	cfg.parallel = 4
	ctx, cancel := context.WithTimeout(context.Background(), cfg.duration)
	defer cancel()
	res, err := runConnect(ctx, cfg)
	if err != nil || res.Error != "" || res.Conns != 50 {
		t.Fatalf("connect: %v %+v", err, res)
	}
	if res.ConnectRate <= 0 || res.P50us <= 0 || res.P50us > res.MaxUs || protoLabel(res) != "mqtt+tls" {
		t.Errorf("implausible connect result: %+v", res)
	}
	if line := connectLine(res, ""); !strings.Contains(line, "mqtt+tls conns=50/50") {
		t.Errorf("connect line %q", line)
	}

	idle := runCfg(t, testConfig(g.MQTTTLSAddr(), "idle", 1, 20, 1))
	if idle.Conns != 20 || !idle.TLS {
		t.Errorf("idle over TLS: %+v", idle)
	}

	// The verifier checks the chain: another CA's certificate fails.
	other := testutil.NewPKI(t, "other")
	withTLS(t, other.CAFile)
	_, err = dialWire(dialOpts{proto: protoMQTT, addr: g.MQTTTLSAddr(), clientID: "untrusted", keepAlive: time.Minute,
		deadline: time.Now().Add(5 * time.Second), sz: bufSizes{read: 512, write: 512}})
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a server certificate of another CA: %v, want a verification error", err)
	}
	// Nor is a UDP protocol accepted under TLS.
	if err := validate(testConfig("x", "pairs", 0, 1, 1)); err != nil {
		t.Fatal(err)
	}
	udp := testConfig("x", "pairs", 0, 1, 1)
	udp.pubProto = protoCoAP
	if err := validate(udp); err == nil || !strings.Contains(err.Error(), "DTLS") {
		t.Errorf("coap under -tls: %v", err)
	}
}

// TestTLSAgainstMosquitto runs connect and pairs against mosquitto with a
// TLS listener on the test CA's certificate (skipped without mosquitto).
func TestTLSAgainstMosquitto(t *testing.T) {
	pki := testutil.NewPKI(t, "bench-mosquitto")
	srv := pki.Server("server")
	plain, secure := freeTCPPort(t), freeTCPPort(t)
	// As root mosquitto would switch to its own user, which cannot read
	// the test's 0600 key files; "user" is ignored when not root.
	runMosquitto(t, fmt.Sprintf("user %s\nper_listener_settings false\nallow_anonymous true\nlog_type error\n"+
		"listener %d 127.0.0.1\nlistener %d 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\n",
		currentUser(), plain, secure, pki.CAFile, srv.CertFile, srv.KeyFile), plain)
	withTLS(t, pki.CAFile)
	addr := fmt.Sprintf("127.0.0.1:%d", secure)
	cfg := testConfig(addr, "connect", 0, 30, 1)
	cctx, ccancel := context.WithTimeout(context.Background(), cfg.duration)
	defer ccancel()
	res, err := runConnect(cctx, cfg)
	if err != nil || res.Error != "" || res.Conns != 30 {
		t.Fatalf("connect over TLS to mosquitto: %v %+v", err, res)
	}
	pairs := runCfg(t, testConfig(addr, "pairs", 1, 2, 200))
	if pairs.Unique != pairs.Expected || !pairs.TLS {
		t.Errorf("pairs over TLS to mosquitto: %+v", pairs)
	}
}

// freeTCPPort returns a loopback TCP port that was free a moment ago.
func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// currentUser is the user name mosquitto should keep running as.
func currentUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return "root"
}

// TestReportConnectTable: connect rows get their own table, with the
// rate and CPU ratios; TLS rows are told apart from plaintext ones.
func TestReportConnectTable(t *testing.T) {
	lines := []result{
		{Label: "iotgw", Scenario: "connect", Proto: protoMQTT, TLS: true, N: 100, Window: 8, Conns: 100, ConnectRate: 3000, P50us: 2000, P99us: 9000, CPUusPerMsg: 300},
		{Label: "mosquitto", Scenario: "connect", Proto: protoMQTT, TLS: true, N: 100, Window: 8, Conns: 100, ConnectRate: 1500, P50us: 4000, P99us: 8000, CPUusPerMsg: 600},
		{Label: "iotgw", Scenario: "connect", Proto: protoMQTT, N: 100, Window: 8, Conns: 100, ConnectRate: 9000, P50us: 500, P99us: 900},
	}
	out := reportOf(t, lines)
	for _, want := range []string{
		"parallel 8 mqtt+tls 100 3,000 1,500 2.00 2.00ms 9.00ms 4.00ms 8.00ms 300 600 0.50",
		"parallel 8 mqtt 100 9,000 - - 500µs 900µs - - - - -",
	} {
		found := false
		for _, line := range strings.Split(out, "\n") {
			found = found || strings.Join(strings.Fields(line), " ") == want
		}
		if !found {
			t.Errorf("no row %q in:\n%s", want, out)
		}
	}
}

// reportOf is -report's output for the given result lines.
func reportOf(t *testing.T, lines []result) string {
	t.Helper()
	var in bytes.Buffer
	for _, r := range lines {
		b, _ := json.Marshal(r)
		in.Write(append(b, '\n'))
	}
	path := filepath.Join(t.TempDir(), "r.jsonl")
	if err := os.WriteFile(path, in.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := printReport(&out, path, "iotgw", "mosquitto"); err != nil {
		t.Fatal(err)
	}
	return out.String()
}
