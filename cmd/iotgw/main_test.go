package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The binary is built once for all the tests of a run (each build costs
// seconds of the two cores the suite shares) and removed by TestMain.
var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

// buildBinary builds iotgw once per test run.
func buildBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "iotgw-test-bin"); binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "iotgw")
		if out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput(); err != nil {
			binErr = fmt.Errorf("%v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatalf("build: %v", binErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

var listenRE = regexp.MustCompile(`"transport": "tcp", "addr": "([^"]+)"`)

// TestRunAndSignal starts the real binary on port 0, waits for its
// listener, connects, and checks SIGTERM makes it exit 0 promptly.
func TestRunAndSignal(t *testing.T) {
	bin := buildBinary(t)
	wd := t.TempDir() // the default store.dir "data" is created in it
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		cmd := exec.Command(bin)
		cmd.Dir = wd
		cmd.Env = append(os.Environ(), "IOTGW_MQTT_TCP=127.0.0.1:0", "IOTGW_MQTT_WS=", "IOTGW_HTTP_LISTEN=", "IOTGW_STOMP_TCP=", "IOTGW_STOMP_WS=", "IOTGW_MQTTSN_UDP=", "IOTGW_COAP_UDP=", "IOTGW_SYS_INTERVAL=0")
		stderr, _ := cmd.StderrPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		addrCh := make(chan string, 1)
		go func() {
			sc := bufio.NewScanner(stderr)
			for sc.Scan() {
				if m := listenRE.FindStringSubmatch(sc.Text()); m != nil {
					addrCh <- m[1]
				}
			}
		}()
		var addr string
		select {
		case addr = <-addrCh:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			t.Fatal("no listening line")
		}
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		// A 3.1.1 CONNECT: the broker must answer with CONNACK 0.
		nc.Write([]byte{0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 60, 0, 0})
		ack := make([]byte, 4)
		nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := nc.Read(ack); err != nil || ack[0] != 0x20 || ack[3] != 0 {
			t.Fatalf("CONNACK % x %v", ack, err)
		}
		cmd.Process.Signal(sig)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%v: exit %v, want 0", sig, err)
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("%v: still running", sig)
		}
		// The connection was closed by the shutdown.
		nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := nc.Read(ack); err == nil {
			t.Fatal("connection still open after shutdown")
		}
		nc.Close()
	}
	if fi, err := os.Stat(filepath.Join(wd, "data")); err != nil || !fi.IsDir() {
		t.Fatalf("default store directory not created: %v", err)
	}
}

func TestConfigErrorsExit2(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("mqtt:\n  tcp: \"1.2.3.4:99999\"\n  nope: 1\n"), 0o644)
	for _, tc := range []struct {
		args []string
		env  []string
		want string
	}{
		{[]string{"--config", bad}, nil, "mqtt.nope"},
		{nil, []string{"IOTGW_SESSION_MAX_INFLIGHT=zero"}, "session.max_inflight"},
		{[]string{"--config", filepath.Join(dir, "missing.yaml")}, nil, "missing.yaml"},
	} {
		cmd := exec.Command(bin, tc.args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), append(tc.env, "IOTGW_MQTT_TCP=127.0.0.1:0", "IOTGW_MQTT_WS=", "IOTGW_HTTP_LISTEN=", "IOTGW_STOMP_TCP=", "IOTGW_STOMP_WS=", "IOTGW_MQTTSN_UDP=", "IOTGW_COAP_UDP=")...)
		out, err := cmd.CombinedOutput()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 2 {
			t.Errorf("%v %v: exit %v, want 2; output %s", tc.args, tc.env, err, out)
			continue
		}
		if !strings.Contains(string(out), tc.want) {
			t.Errorf("output %q does not name %q", out, tc.want)
		}
	}
}

// TestStoreDirErrorsExit2 checks that a store directory in use by another
// gateway, or a corrupt one, stops start-up with exit code 2 and an error
// naming store.dir, rather than running without the data.
func TestStoreDirErrorsExit2(t *testing.T) {
	bin := buildBinary(t)
	dir := filepath.Join(t.TempDir(), "store")
	env := append(os.Environ(), "IOTGW_STORE_DIR="+dir, "IOTGW_MQTT_TCP=127.0.0.1:0", "IOTGW_MQTT_WS=", "IOTGW_HTTP_LISTEN=", "IOTGW_STOMP_TCP=",
		"IOTGW_STOMP_WS=", "IOTGW_MQTTSN_UDP=", "IOTGW_COAP_UDP=", "IOTGW_SYS_INTERVAL=0")
	first := exec.Command(bin)
	first.Env = env
	stderr, _ := first.StderrPipe()
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	up := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "iotgw started") {
				close(up)
			}
		}
	}()
	select {
	case <-up:
	case <-time.After(20 * time.Second):
		first.Process.Kill()
		t.Fatal("first gateway did not start")
	}
	expectExit2 := func(what string) {
		t.Helper()
		second := exec.Command(bin)
		second.Env = env
		out, err := second.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
			t.Fatalf("%s: exit %v, want 2; output %s", what, err, out)
		}
		if !strings.Contains(string(out), "store.dir") || !strings.Contains(string(out), dir) {
			t.Fatalf("%s: output does not name store.dir %s: %s", what, dir, out)
		}
	}
	expectExit2("locked")
	first.Process.Signal(syscall.SIGTERM)
	if err := first.Wait(); err != nil {
		t.Fatalf("first gateway: %v", err)
	}
	// Corrupt every table and manifest: the store must refuse to open.
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if n := e.Name(); strings.HasPrefix(n, "MANIFEST") || strings.HasSuffix(n, ".sst") {
			os.WriteFile(filepath.Join(dir, n), []byte("not a pebble file"), 0o644)
		}
	}
	expectExit2("corrupt")
}
