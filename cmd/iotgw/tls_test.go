package main

// The real binary with TLS (issue 15): SIGHUP reloads replaced files,
// TLS start-up errors exit 2 naming their key, and an expired server
// certificate is a warning with its date.

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
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

	"github.com/iotgw/iotgw/internal/testutil"
)

// tlsGatewayYAML runs MQTT on plaintext and TLS on loopback port 0 and
// nothing else, on the memory store, with the tls section given and
// mqttKeys (indented lines) added to the mqtt section.
func tlsGatewayYAML(tlsSection string, mqttKeys ...string) string {
	return "http:\n  listen: \"\"\nmqtt:\n" + strings.Join(mqttKeys, "") + `  tcp: 127.0.0.1:0
  ws: ""
  tls: 127.0.0.1:0
  wss: ""
stomp:
  tcp: ""
  ws: ""
  tls: ""
  wss: ""
mqttsn:
  udp: ""
coap:
  udp: ""
sys:
  interval: 0
store:
  engine: memory
` + tlsSection
}

// tlsRun is one run of the binary with a TLS listener.
type tlsRun struct {
	cmd     *exec.Cmd
	tlsAddr string
	mu      sync.Mutex
	lines   []string
}

var tlsListenRE = regexp.MustCompile(`\tmqtt\t.*\tlistening\t\{"transport": "tls", "addr": "([^"]+)"`)

// startTLSGateway runs the binary on the configuration yaml and waits for
// it to start; it is stopped when the test ends.
func startTLSGateway(t *testing.T, bin, yaml string) *tlsRun {
	t.Helper()
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "iotgw.yaml")
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	r := &tlsRun{cmd: exec.Command(bin, "--config", cfgFile)}
	r.cmd.Dir = dir
	stderr, _ := r.cmd.StderrPipe()
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	started, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(stderr)
		up := false
		for sc.Scan() {
			line := sc.Text()
			r.mu.Lock()
			r.lines = append(r.lines, line)
			if m := tlsListenRE.FindStringSubmatch(line); m != nil {
				r.tlsAddr = m[1]
			}
			r.mu.Unlock()
			if !up && strings.Contains(line, "\tiotgw started\t") {
				up = true
				close(started)
			}
		}
	}()
	t.Cleanup(func() {
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- r.cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("gateway exit: %v", err)
			}
		case <-time.After(20 * time.Second):
			_ = r.cmd.Process.Kill()
			t.Error("gateway still running 20 s after SIGTERM")
		}
	})
	select {
	case <-started:
	case <-exited:
		t.Fatalf("gateway exited at start-up:\n%s", r.log())
	case <-time.After(30 * time.Second):
		t.Fatalf("gateway did not start:\n%s", r.log())
	}
	if r.tlsAddr == "" {
		t.Fatalf("no TLS listening line:\n%s", r.log())
	}
	return r
}

func (r *tlsRun) log() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.lines, "\n")
}

// logged reports whether a log line contains every one of parts.
func (r *tlsRun) logged(parts ...string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range r.lines {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(l, p)
		}
		if all {
			return true
		}
	}
	return false
}

// servedSerial returns the serial of the certificate a new handshake
// with addr gets.
func servedSerial(t *testing.T, addr string, pki *testutil.PKI) string {
	t.Helper()
	nc, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, pki.ClientConfig(nil))
	if err != nil {
		t.Fatalf("TLS dial %s: %v", addr, err)
	}
	defer nc.Close()
	return fmt.Sprintf("%X", nc.ConnectionState().PeerCertificates[0].SerialNumber)
}

// certDir writes c's files into dir/name/ as cert.pem and key.pem.
func certDir(t *testing.T, dir, name string, c *testutil.Cert) string {
	t.Helper()
	d := filepath.Join(dir, name)
	if err := os.Mkdir(d, 0o700); err != nil {
		t.Fatal(err)
	}
	for src, dst := range map[string]string{c.CertFile: "cert.pem", c.KeyFile: "key.pem"} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, dst), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// TestTLSSIGHUPReloads: the certificate directory is a symlink swapped to
// a new version (dir/live -> v1, then -> v2, as certbot-like tools do).
// With the periodic check off and the swap outside the watched
// directories, nothing but SIGHUP reloads; after it, new handshakes get
// the new certificate and the connected client keeps working.
func TestTLSSIGHUPReloads(t *testing.T) {
	bin := buildBinary(t)
	pki := testutil.NewPKI(t, "sighup")
	first, second := pki.Server("server-1"), pki.Server("server-2")
	dir := t.TempDir()
	certDir(t, dir, "v1", first)
	live := filepath.Join(dir, "live")
	if err := os.Symlink("v1", live); err != nil {
		t.Fatal(err)
	}
	r := startTLSGateway(t, bin, tlsGatewayYAML("tls:\n  cert_file: "+filepath.Join(live, "cert.pem")+
		"\n  key_file: "+filepath.Join(live, "key.pem")+"\n  reload_interval: 0\n"))
	firstSerial, secondSerial := fmt.Sprintf("%X", first.Leaf.SerialNumber), fmt.Sprintf("%X", second.Leaf.SerialNumber)
	if got := servedSerial(t, r.tlsAddr, pki); got != firstSerial {
		t.Fatalf("serial %s at start, want %s", got, firstSerial)
	}
	// A client connected over TLS before the renewal.
	nc, err := tls.Dial("tcp", r.tlsAddr, pki.ClientConfig(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ping := func(when string) {
		t.Helper()
		_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := nc.Write([]byte{0xc0, 0}); err != nil { // PINGREQ
			t.Fatalf("%s: %v", when, err)
		}
		b := make([]byte, 2)
		if _, err := nc.Read(b); err != nil || b[0] != 0xd0 {
			t.Fatalf("%s: PINGRESP % x %v", when, b, err)
		}
	}
	nc.Write([]byte{0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 60, 0, 0}) // CONNECT 3.1.1
	ack := make([]byte, 4)
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := nc.Read(ack); err != nil || ack[0] != 0x20 || ack[3] != 0 {
		t.Fatalf("CONNACK % x %v", ack, err)
	}

	certDir(t, dir, "v2", second)
	tmp := filepath.Join(dir, "live.tmp")
	if err := os.Symlink("v2", tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, live); err != nil {
		t.Fatal(err)
	}
	if got := servedSerial(t, r.tlsAddr, pki); got != firstSerial {
		t.Fatalf("serial %s before SIGHUP: reloaded without it, so this test would not test SIGHUP", got)
	}
	if err := r.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() bool { return servedSerial(t, r.tlsAddr, pki) == secondSerial },
		"the new serial after SIGHUP")
	// The log arrives through a pipe: it may trail the handshake.
	deadline := time.Now().Add(10 * time.Second)
	for !r.logged("SIGHUP: reloading TLS material") || !r.logged("TLS material reloaded", `"serial": "`+secondSerial+`"`, `"old_serial": "`+firstSerial+`"`) {
		if time.Now().After(deadline) {
			t.Fatalf("log does not show the SIGHUP reload:\n%s", r.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
	ping("after the reload")
}

// TestTLSStartupErrorsExit2: TLS material that cannot be used stops
// start-up with exit code 2 and a message naming the key at fault.
func TestTLSStartupErrorsExit2(t *testing.T) {
	bin := buildBinary(t)
	pki := testutil.NewPKI(t, "startup")
	server, other := pki.Server("server"), pki.Server("other")
	dir := t.TempDir()
	noCA := filepath.Join(dir, "no-ca.pem")
	if err := os.WriteFile(noCA, []byte("# the CA bundle went missing in the build\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	section := func(cert, key string, extra ...string) string {
		s := "tls:\n  cert_file: " + cert + "\n  key_file: " + key + "\n"
		for _, e := range extra {
			s += "  " + e + "\n"
		}
		return s
	}
	type startupCase struct {
		name, yaml string
		mqtt       string // lines of the mqtt section
		want       []string
	}
	cases := []startupCase{
		{"missing_cert_file", section(filepath.Join(dir, "nope.pem"), server.KeyFile), "",
			[]string{"tls.cert_file", "nope.pem", "no such file"}},
		{"key_of_another_certificate", section(server.CertFile, other.KeyFile), "",
			[]string{"tls.key_file", "is not the private key of the certificate"}},
		{"ca_file_without_certificates", section(server.CertFile, server.KeyFile, "ca_file: "+noCA, "client_auth: require"), "",
			[]string{"tls.ca_file", "no PEM CERTIFICATE block"}},
		// An override names its own section.
		{"override_missing_key", section(server.CertFile, server.KeyFile), "  tls_config:\n    key_file: " + filepath.Join(dir, "gone.pem") + "\n",
			[]string{"mqtt.tls_config.key_file", "gone.pem"}},
	}
	if _, err := exec.LookPath("openssl"); err == nil {
		enc := filepath.Join(dir, "encrypted-key.pem")
		if out, err := exec.Command("openssl", "pkey", "-in", server.KeyFile, "-aes256", "-passout", "pass:secret", "-out", enc).CombinedOutput(); err != nil {
			t.Fatalf("openssl pkey -aes256: %v\n%s", err, out)
		}
		cases = append(cases, startupCase{"encrypted_key", section(server.CertFile, enc), "",
			[]string{"tls.key_file", "encrypted with a passphrase"}})
	} else {
		t.Log("openssl not on PATH: the encrypted key case is skipped")
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfgFile := filepath.Join(t.TempDir(), "iotgw.yaml")
			if err := os.WriteFile(cfgFile, []byte(tlsGatewayYAML(tc.yaml, tc.mqtt)), 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(bin, "--config", cfgFile)
			cmd.Dir = t.TempDir()
			out, err := cmd.CombinedOutput()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
				t.Fatalf("exit %v, want 2; output:\n%s", err, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output does not say %q:\n%s", w, out)
				}
			}
		})
	}
}

// TestTLSExpiredServerCertificateWarns: the gateway starts with an
// expired server certificate (refusing would turn a renewal late by a
// minute into an outage; clients refuse it anyway) and warns with the
// date and the key.
func TestTLSExpiredServerCertificateWarns(t *testing.T) {
	bin := buildBinary(t)
	pki := testutil.NewPKI(t, "expired")
	notAfter := time.Now().Add(-30 * time.Hour).Truncate(time.Second)
	expired := pki.Issue("expired", x509.Certificate{
		Subject:     pkix.Name{CommonName: "localhost"},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		NotBefore:   notAfter.Add(-24 * time.Hour), NotAfter: notAfter,
	})
	r := startTLSGateway(t, bin, tlsGatewayYAML("tls:\n  cert_file: "+expired.CertFile+"\n  key_file: "+expired.KeyFile+"\n"))
	date := notAfter.UTC().Format(time.RFC3339)
	if !r.logged("WARN", "tls.cert_file", "expired on "+date) {
		t.Errorf("no warning naming tls.cert_file and the date %s:\n%s", date, r.log())
	}
	// Clients refuse it, as the warning says.
	_, err := tls.Dial("tcp", r.tlsAddr, pki.ClientConfig(nil))
	if err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("a client trusting the CA: %v, want an expired certificate error", err)
	}
}
