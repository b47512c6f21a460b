package main

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iotgw/iotgw/cmd/iotgw/app"
)

// quietEnv turns off every listener but the ones a test sets again.
var quietEnv = []string{"IOTGW_MQTT_TCP=", "IOTGW_MQTT_WS=", "IOTGW_HTTP_LISTEN=", "IOTGW_STOMP_TCP=", "IOTGW_STOMP_WS=", "IOTGW_MQTTSN_UDP=", "IOTGW_COAP_UDP=", "IOTGW_SYS_INTERVAL=0"}

// runBin runs the binary to its end and returns its exit code, stdout and
// stderr.
func runBin(t *testing.T, dir string, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(buildBinary(t), args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), quietEnv...), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stdout.String(), stderr.String()
}

func TestHelp(t *testing.T) {
	for _, arg := range []string{"--help", "-h", "-help"} {
		code, out, errOut := runBin(t, t.TempDir(), nil, arg)
		if code != 0 || errOut != "" {
			t.Fatalf("%s: exit %d, stderr %q", arg, code, errOut)
		}
		for _, want := range []string{"multi-protocol IoT gateway", "-config", "-print-keys", "-version", "-pprof",
			"iotgw cert dev", "iotgw passwd", "IOTGW_<SECTION>_<KEY>", "configs/iotgw.yaml", "bare", "seconds", "Exit status"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: help does not mention %q:\n%s", arg, want, out)
			}
		}
	}
	code, _, errOut := runBin(t, t.TempDir(), nil, "--bogus")
	if code != 2 || !strings.HasPrefix(errOut, "iotgw: flag provided but not defined: -bogus") {
		t.Errorf("--bogus: exit %d, %q", code, errOut)
	}
}

// TestPrintKeys: one line per key, with the default and description of
// configs/iotgw.yaml.
func TestPrintKeys(t *testing.T) {
	code, out, errOut := runBin(t, t.TempDir(), nil, "--print-keys")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	keys := app.Keys()
	if len(lines) != len(keys) {
		t.Fatalf("%d lines for %d keys", len(lines), len(keys))
	}
	for i, k := range keys {
		if !strings.HasPrefix(lines[i], k+" = ") || !strings.Contains(lines[i], "  # ") {
			t.Errorf("line %q, want key %s = default  # description", lines[i], k)
		}
	}
	for _, want := range []string{`mqtt.tcp = ":1883"  # MQTT over TCP listen address`, "sys.interval = 10s  # "} {
		if !strings.Contains(out, want) {
			t.Errorf("no line %q", want)
		}
	}
}

// TestStartFailuresArePlain: whatever stops start-up is one plain
// "iotgw: <key>: ..." line, exit 2, with no colour codes (stderr is not a
// terminal here), in either log format.
func TestStartFailuresArePlain(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := t.TempDir()
	notDir := filepath.Join(dir, "file")
	os.WriteFile(notDir, []byte("x"), 0o644)
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{[]string{"IOTGW_MQTT_TCP=" + busy.Addr().String()}, "iotgw: mqtt.tcp: "},
		{[]string{"IOTGW_STOMP_TCP=" + busy.Addr().String(), "IOTGW_LOG_FORMAT=json"}, "iotgw: stomp.tcp: "},
		{[]string{"IOTGW_STORE_DIR=" + notDir}, "iotgw: store.dir "},
		{[]string{"IOTGW_MQTT_NOPE=1", "IOTGW_SESSION_MAX_INFLIGHT=x"}, "iotgw: session.max_inflight: "},
	} {
		code, _, errOut := runBin(t, dir, append(tc.env, "IOTGW_STORE_ENGINE=pebble"), nil...)
		if code != 2 {
			t.Errorf("%v: exit %d, want 2\n%s", tc.env, code, errOut)
		}
		if strings.Contains(errOut, "\x1b[") {
			t.Errorf("%v: colour codes on a pipe: %q", tc.env, errOut)
		}
		var failure []string
		for _, l := range strings.Split(strings.TrimSpace(errOut), "\n") {
			if strings.HasPrefix(l, "iotgw: ") {
				failure = append(failure, l)
			} else if strings.Contains(l, "ERROR") || strings.Contains(l, `"level":"error"`) {
				t.Errorf("%v: the failure is a log line too: %q", tc.env, l)
			}
		}
		if len(failure) == 0 || !strings.HasPrefix(failure[len(failure)-1], tc.want) {
			t.Errorf("%v: no line %q in %q", tc.env, tc.want, errOut)
		}
	}
	// log.format json stays JSON: every line before the failure parses.
	_, _, errOut := runBin(t, dir, []string{"IOTGW_LOG_FORMAT=json", "IOTGW_STORE_DIR=" + notDir})
	for _, l := range strings.Split(strings.TrimSpace(errOut), "\n") {
		if strings.HasPrefix(l, "iotgw: ") {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil || m["level"] == nil {
			t.Errorf("json log line %q: %v", l, err)
		}
	}
}
