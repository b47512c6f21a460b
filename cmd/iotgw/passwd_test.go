package main

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// passwdRun runs "iotgw passwd args" in process with stdin.
func passwdRun(t *testing.T, stdin string, args ...string) (code int, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = runPasswd(args, strings.NewReader(stdin), &out, &errb)
	return code, errb.String()
}

func users(t *testing.T, file string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if u, h, ok := strings.Cut(l, ":"); ok && !strings.HasPrefix(l, "#") {
			m[u] = h
		}
	}
	return m
}

func TestPasswdCLI(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "users.txt")
	// -c -b: a new file, 0600, argon2id.
	if code, e := passwdRun(t, "", "-c", "-b", file, "alice", "secret"); code != 0 {
		t.Fatalf("-c -b: %d %s", code, e)
	}
	if st, _ := os.Stat(file); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	if h := users(t, file)["alice"]; !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("alice: %q", h)
	}
	// The prompt path: two equal lines on standard input.
	if code, e := passwdRun(t, "pw b\npw b\n", file, "bob"); code != 0 || !strings.Contains(e, "Password: ") || !strings.Contains(e, "Reenter password: ") {
		t.Fatalf("prompt: %d %q", code, e)
	}
	if code, e := passwdRun(t, "one\ntwo\n", file, "carol"); code != 1 || !strings.Contains(e, "do not match") {
		t.Errorf("mismatch: %d %q", code, e)
	}
	if code, e := passwdRun(t, "", file, "carol"); code != 1 || !strings.Contains(e, "no password") {
		t.Errorf("no input: %d %q", code, e)
	}
	if code, e := passwdRun(t, "\n\n", file, "carol"); code != 1 || !strings.Contains(e, "empty password") {
		t.Errorf("empty password: %d %q", code, e)
	}
	// Other hashes, by mosquitto_passwd's -H names.
	for kind, prefix := range map[string]string{"bcrypt": "$2a$10$", "sha512-pbkdf2": "$7$101$", "sha512": "$6$"} {
		if code, e := passwdRun(t, "", "-H", kind, "-b", file, "h-"+kind, "x"); code != 0 {
			t.Fatalf("-H %s: %d %s", kind, code, e)
		}
		if h := users(t, file)["h-"+kind]; !strings.HasPrefix(h, prefix) {
			t.Errorf("-H %s: %q", kind, h)
		}
	}
	// Changing a password replaces the line where it stands.
	before := users(t, file)["alice"]
	if code, _ := passwdRun(t, "", "-b", file, "alice", "new"); code != 0 || users(t, file)["alice"] == before {
		t.Error("alice's password not changed")
	}
	data, _ := os.ReadFile(file)
	if !strings.HasPrefix(string(data), "alice:") {
		t.Errorf("alice moved:\n%s", data)
	}
	// -D.
	if code, _ := passwdRun(t, "", "-D", file, "bob"); code != 0 {
		t.Error("-D bob")
	}
	if _, ok := users(t, file)["bob"]; ok {
		t.Error("bob still there")
	}
	if code, e := passwdRun(t, "", "-D", file, "bob"); code != 1 || !strings.Contains(e, "not in") {
		t.Errorf("-D unknown: %d %q", code, e)
	}
	// -c replaces the file.
	if code, _ := passwdRun(t, "", "-c", "-b", file, "zed", "z"); code != 0 || len(users(t, file)) != 1 {
		t.Errorf("-c did not replace: %v", users(t, file))
	}
	// Errors: usage 2, the rest 1.
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-c", "-D", file, "x"}, 2, "cannot be used together"},
		{[]string{"-b", "-D", file, "x", "y"}, 2, "cannot be used together"},
		{[]string{"-b", file, "x"}, 2, "want 3 arguments"},
		{[]string{file, "x", "y"}, 2, "want 2 arguments"},
		{[]string{"-H", "md5", "-b", file, "x", "y"}, 2, "not one of"},
		{[]string{"-b", file, "a:b", "y"}, 1, "must not contain ':'"},
		{[]string{"-b", filepath.Join(t.TempDir(), "none"), "x", "y"}, 1, "no such file"},
		{[]string{"-x"}, 2, "flag provided but not defined"},
	} {
		if code, e := passwdRun(t, "", tc.args...); code != tc.code || !strings.Contains(e, tc.want) {
			t.Errorf("%v: %d %q, want %d %q", tc.args, code, e, tc.code, tc.want)
		}
	}
	// A file with a bad line is not touched; the error names the line.
	if err := os.WriteFile(file, []byte("zed:$7$1$bad\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, e := passwdRun(t, "", "-b", file, "x", "y"); code != 1 || !strings.Contains(e, "line 1") {
		t.Errorf("bad file: %d %q", code, e)
	}
	if code, _ := passwdRun(t, "", "-h"); code != 0 {
		t.Error("-h")
	}
}

// TestPasswdFilesWorkInMosquitto: the $7$ and $6$ lines `iotgw passwd -H`
// writes are accepted by Mosquitto 2.0 itself, so a file can go back.
func TestPasswdFilesWorkInMosquitto(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"mosquitto", "mosquitto_pub"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skip(tool + " not installed")
		}
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "users.txt")
	if code, e := passwdRun(t, "", "-c", "-H", "sha512-pbkdf2", "-b", file, "seven", "s 7"); code != 0 {
		t.Fatal(e)
	}
	if code, e := passwdRun(t, "", "-H", "sha512", "-b", file, "six", "s6"); code != 0 {
		t.Fatal(e)
	}
	// mosquitto reads the file as its own user (it drops root).
	if err := os.Chmod(file, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{dir, filepath.Dir(dir)} { // t.TempDir and its parent are 0700
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// A free port: listen on 0, close, give it to mosquitto.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	conf := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(conf, []byte("listener "+port+" 127.0.0.1\nallow_anonymous false\npassword_file "+file+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("mosquitto", "-v", "-c", conf)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "running") {
				close(ready)
				break
			}
		}
		for sc.Scan() { // drain
		}
	}()
	select {
	case <-ready:
	case <-time.After(20 * time.Second):
		t.Fatal("mosquitto did not start")
	}
	pub := func(user, pw string) error {
		return exec.Command("mosquitto_pub", "-h", "127.0.0.1", "-p", port, "-u", user, "-P", pw, "-t", "t", "-m", "x").Run()
	}
	if err := pub("seven", "s 7"); err != nil {
		t.Errorf("$7$ line refused by mosquitto: %v", err)
	}
	if err := pub("six", "s6"); err != nil {
		t.Errorf("$6$ line refused by mosquitto: %v", err)
	}
	if err := pub("six", "wrong"); err == nil {
		t.Error("mosquitto accepted a wrong password")
	}
}

// mqttConnect sends a 3.1.1 CONNECT with a user name and password and
// returns the CONNACK return code.
func mqttConnect(t *testing.T, addr, user, pw string) byte {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	str := func(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }
	body := append([]byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0xC2, 0, 60}, str("")...) // user, password, clean
	body = append(append(body, str(user)...), str(pw)...)
	if _, err := nc.Write(append([]byte{0x10, byte(len(body))}, body...)); err != nil {
		t.Fatal(err)
	}
	ack := make([]byte, 4)
	_ = nc.SetReadDeadline(time.Now().Add(15 * time.Second))
	if _, err := io.ReadFull(nc, ack); err != nil || ack[0] != 0x20 {
		t.Fatalf("CONNACK % x %v", ack, err)
	}
	return ack[3]
}

// TestPasswordFileBinary: the real binary exits 2 on a bad line at
// start-up, naming the key and the line; running, SIGHUP re-reads the
// file (its failure is logged again on every SIGHUP, where the watcher
// logs one failure once).
func TestPasswordFileBinary(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "users.txt")
	env := append(os.Environ(), "IOTGW_MQTT_TCP=127.0.0.1:0", "IOTGW_MQTT_WS=", "IOTGW_HTTP_LISTEN=", "IOTGW_STOMP_TCP=", "IOTGW_STOMP_WS=",
		"IOTGW_MQTTSN_UDP=", "IOTGW_COAP_UDP=", "IOTGW_SYS_INTERVAL=0", "IOTGW_STORE_ENGINE=memory",
		"IOTGW_AUTH_ALLOW_ANONYMOUS=false", "IOTGW_AUTH_PASSWORD_FILE="+file, "IOTGW_AUTH_PASSWORD_FILE_RELOAD_INTERVAL=1s")

	if err := os.WriteFile(file, []byte("# users\nalice\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Dir, cmd.Env = dir, env
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "auth.password_file: ") ||
		!strings.Contains(string(out), "line 2") {
		t.Fatalf("bad line at start-up: %v\n%s", err, out)
	}

	if code, e := passwdRun(t, "", "-c", "-H", "sha512-pbkdf2", "-b", file, "alice", "a"); code != 0 {
		t.Fatal(e)
	}
	cmd = exec.Command(bin)
	cmd.Dir, cmd.Env = dir, env
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addrCh := make(chan string, 1)
	failed := make(chan struct{}, 4)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			l := sc.Text()
			if m := listenRE.FindStringSubmatch(l); m != nil {
				addrCh <- m[1]
			}
			if strings.Contains(l, "password file reload failed") && strings.Contains(l, "line 2") {
				failed <- struct{}{}
			}
		}
	}()
	var addr string
	select {
	case addr = <-addrCh:
	case <-time.After(20 * time.Second):
		t.Fatal("no listening line")
	}
	if rc := mqttConnect(t, addr, "alice", "a"); rc != 0 {
		t.Fatalf("alice: CONNACK %d", rc)
	}
	if rc := mqttConnect(t, addr, "alice", "b"); rc != 4 {
		t.Fatalf("wrong password: CONNACK %d, want 4", rc)
	}
	// A bad line: the watcher reports it once; each SIGHUP again.
	good, _ := os.ReadFile(file)
	if err := os.WriteFile(file, append(good, "bob:nohash\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	wait := func(what string) {
		select {
		case <-failed:
		case <-time.After(20 * time.Second):
			t.Fatal(what + ": no reload failure logged")
		}
	}
	wait("file change")
	_ = cmd.Process.Signal(syscall.SIGHUP)
	wait("SIGHUP")
	if rc := mqttConnect(t, addr, "alice", "a"); rc != 0 {
		t.Errorf("alice after the bad file: CONNACK %d (old file not kept)", rc)
	}
}
