package mqtt_test

// Certificates renewed without a restart (issue 15): the certificate and
// key files are replaced in place, or by a symlink swap as Kubernetes
// mounts a secret (dir/cert.pem -> ..data/cert.pem, ..data -> a
// timestamped directory, swapped by renaming a new ..data link over the
// old one); the next handshake gets the new certificate, on every
// listener sharing the files, while connected clients keep working. A
// broken new file keeps the old material, and $SYS and TLSStatus say so.
// Gateway.ReloadTLS (SIGHUP) reloads at once.

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/iotgw/iotgw/internal/testutil"
)

// servedSerial returns the serial (upper-case hex, as $SYS shows it) of
// the certificate a new handshake with addr gets. Each call makes a full
// handshake: the client keeps no session to resume.
func servedSerial(t testing.TB, addr string, pki *testutil.PKI) string {
	t.Helper()
	nc, err := tls.DialWithDialer(&net.Dialer{Timeout: waitTimeout}, "tcp", addr, pki.ClientConfig(nil))
	if err != nil {
		t.Fatalf("TLS dial %s: %v", addr, err)
	}
	defer nc.Close()
	return serialOf(nc.ConnectionState().PeerCertificates[0].SerialNumber)
}

func serialOf(n *big.Int) string { return fmt.Sprintf("%X", n) }

// waitServed waits until new handshakes with every listener of addrs get
// the certificate c.
func waitServed(t *testing.T, pki *testutil.PKI, c *testutil.Cert, addrs ...string) {
	t.Helper()
	want := serialOf(c.Leaf.SerialNumber)
	for _, addr := range addrs {
		testutil.Eventually(t, waitTimeout, func() bool { return servedSerial(t, addr, pki) == want },
			fmt.Sprintf("%s serving serial %s", addr, want))
	}
}

// copyFile writes src's content over dst, in place (same inode, as an
// editor or cp does).
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	writeFile(t, dst, readFile(t, src))
}

// liveClients is a subscriber over TLS and a publisher over WSS,
// connected before a renewal, to show that they keep working after it.
type liveClients struct {
	t        *testing.T
	sub, pub *pahoClient
	n        int
}

func connectLive(t *testing.T, g *testutil.Gateway, pki *testutil.PKI) *liveClients {
	t.Helper()
	withTLS := func(o *paho.ClientOptions) { o.SetTLSConfig(pki.ClientConfig(nil)) }
	l := &liveClients{t: t}
	l.sub, _ = connectPaho(t, "ssl://"+g.MQTTTLSAddr(), uniqueID("live-sub"), withTLS)
	l.sub.subscribe("live/#", 1)
	l.pub, _ = connectPaho(t, g.WSSURL(), uniqueID("live-pub"), withTLS)
	l.check("before")
	return l
}

// check publishes one message from pub to sub, both ways of the
// connections.
func (l *liveClients) check(when string) {
	l.t.Helper()
	l.n++
	payload := fmt.Sprintf("%s #%d", when, l.n)
	l.pub.publish("live/x", 1, false, payload)
	if m := l.sub.next(); m.Payload != payload {
		l.t.Fatalf("%s: the connected subscriber got %+v, want %q", when, m, payload)
	}
	if err := l.sub.lostErr(); err != nil {
		l.t.Fatalf("%s: the connected subscriber lost its connection: %v", when, err)
	}
	if err := l.pub.lostErr(); err != nil {
		l.t.Fatalf("%s: the connected publisher lost its connection: %v", when, err)
	}
}

func TestTLSRenewalInPlace(t *testing.T) {
	t.Parallel()
	pki := testutil.NewPKI(t, "renew-in-place")
	first := pki.Server("server")
	g := testutil.Start(t, pki.TLSYAML(first, "reload_interval: 50ms"))
	addrs := []string{g.MQTTTLSAddr(), g.Addr("mqtt.wss").String(), g.STOMPTLSAddr(), g.Addr("stomp.wss").String()}
	waitServed(t, pki, first, addrs...)
	live := connectLive(t, g, pki)

	second := pki.Server("server-2")
	copyFile(t, second.KeyFile, first.KeyFile)
	copyFile(t, second.CertFile, first.CertFile)
	waitServed(t, pki, second, addrs...)
	live.check("after the renewal")
	if got := g.TLSStatus()["mqtt.tls"]; got.Serial != serialOf(second.Leaf.SerialNumber) || got.Reloads == 0 || got.LastError != "" {
		t.Errorf("TLSStatus after the renewal: %+v", got)
	}
	// A new client trusts it as it did the old one.
	c, _ := connectPaho(t, "ssl://"+g.MQTTTLSAddr(), uniqueID("new"), func(o *paho.ClientOptions) { o.SetTLSConfig(pki.ClientConfig(nil)) })
	c.publish("live/x", 1, false, "new client")
	if m := live.sub.next(); m.Payload != "new client" {
		t.Fatalf("got %+v", m)
	}
	// openssl sees it too: the certificate it prints has the new serial.
	if _, err := exec.LookPath("openssl"); err == nil {
		if got := opensslSerial(t, g.MQTTTLSAddr(), pki.CAFile); got.Cmp(second.Leaf.SerialNumber) != 0 {
			t.Errorf("openssl s_client | openssl x509 -serial: %X, want %X", got, second.Leaf.SerialNumber)
		}
	}
}

var serialRE = regexp.MustCompile(`(?m)^serial=([0-9A-F]+)$`)

// opensslSerial handshakes with openssl s_client and reads the serial of
// the certificate it printed with openssl x509 -serial.
func opensslSerial(t *testing.T, addr, caFile string) *big.Int {
	t.Helper()
	out, ok := sClient(t, addr, caFile)
	if !ok {
		t.Fatalf("openssl s_client failed:\n%s", out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	x509 := exec.CommandContext(ctx, "openssl", "x509", "-noout", "-serial")
	x509.Stdin = strings.NewReader(out) // it takes the first PEM certificate
	b, err := x509.CombinedOutput()
	m := serialRE.FindSubmatch(b)
	if err != nil || m == nil {
		t.Fatalf("openssl x509 -serial: %v\n%s", err, b)
	}
	n, _ := new(big.Int).SetString(string(m[1]), 16)
	return n
}

// k8sSecret lays out certificate files as a Kubernetes secret volume
// does: dir/cert.pem and dir/key.pem link into dir/..data, which links to
// the directory of the current version.
type k8sSecret struct {
	t       *testing.T
	dir     string
	version int
}

func newK8sSecret(t *testing.T, c *testutil.Cert) *k8sSecret {
	t.Helper()
	s := &k8sSecret{t: t, dir: t.TempDir()}
	s.swap(c)
	for _, f := range []string{"cert.pem", "key.pem"} {
		if err := os.Symlink(filepath.Join("..data", f), filepath.Join(s.dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// swap writes c into a new version directory and points ..data at it
// atomically (a new link renamed over the old one), then removes the old
// version, as the kubelet does.
func (s *k8sSecret) swap(c *testutil.Cert) {
	s.t.Helper()
	s.version++
	name := fmt.Sprintf("..2026_12_07_12_00_%02d.%d", s.version, s.version)
	if err := os.Mkdir(filepath.Join(s.dir, name), 0o700); err != nil {
		s.t.Fatal(err)
	}
	copyFile(s.t, c.CertFile, filepath.Join(s.dir, name, "cert.pem"))
	copyFile(s.t, c.KeyFile, filepath.Join(s.dir, name, "key.pem"))
	tmp := filepath.Join(s.dir, "..data_tmp")
	if err := os.Symlink(name, tmp); err != nil {
		s.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(s.dir, "..data")); err != nil {
		s.t.Fatal(err)
	}
	if s.version > 1 {
		old := fmt.Sprintf("..2026_12_07_12_00_%02d.%d", s.version-1, s.version-1)
		if err := os.RemoveAll(filepath.Join(s.dir, old)); err != nil {
			s.t.Fatal(err)
		}
	}
}

func (s *k8sSecret) yaml(pki *testutil.PKI, extra ...string) string {
	y := "tls:\n  cert_file: " + filepath.Join(s.dir, "cert.pem") + "\n  key_file: " + filepath.Join(s.dir, "key.pem") +
		"\n  ca_file: " + pki.CAFile + "\n"
	for _, e := range extra {
		y += "  " + e + "\n"
	}
	return y
}

func TestTLSRenewalBySymlinkSwap(t *testing.T) {
	t.Parallel()
	pki := testutil.NewPKI(t, "renew-symlink")
	first := pki.Server("server")
	secret := newK8sSecret(t, first)
	g := testutil.Start(t, secret.yaml(pki, "reload_interval: 50ms"))
	addrs := []string{g.MQTTTLSAddr(), g.STOMPTLSAddr()}
	waitServed(t, pki, first, addrs...)
	live := connectLive(t, g, pki)
	// Twice: the second swap replaces a version directory the gateway
	// found through the first.
	for i := 2; i <= 3; i++ {
		next := pki.Server(fmt.Sprintf("server-%d", i))
		secret.swap(next)
		waitServed(t, pki, next, addrs...)
		live.check(fmt.Sprintf("after swap %d", i-1))
	}
	if st := g.TLSStatus()["stomp.tls"]; st.Reloads < 2 || st.LastError != "" {
		t.Errorf("TLSStatus after two swaps: %+v", st)
	}
}

// sysWatcher collects the $SYS values of mqtt.tls's certificate.
type sysWatcher struct{ c *pahoClient }

func watchCertSys(t *testing.T, g *testutil.Gateway) *sysWatcher {
	t.Helper()
	c, _ := connectPaho(t, g.MQTTURL(), uniqueID("sys"), nil)
	c.subscribe("$SYS/broker/listeners/mqtt.tls/cert/#", 0)
	return &sysWatcher{c}
}

// until reads $SYS publications until the value of topic (below
// .../cert/) satisfies ok, and returns it.
func (w *sysWatcher) until(topic string, ok func(string) bool) string {
	w.c.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for time.Now().Before(deadline) {
		if m := w.c.next(); m.Topic == "$SYS/broker/listeners/mqtt.tls/cert/"+topic && ok(m.Payload) {
			return m.Payload
		}
	}
	w.c.t.Fatalf("$SYS .../cert/%s: no value as wanted within %v", topic, waitTimeout)
	return ""
}

func TestTLSRenewalBrokenFileKeepsOld(t *testing.T) {
	t.Parallel()
	pki := testutil.NewPKI(t, "renew-broken")
	first := pki.Server("server")
	g := testutil.Start(t, pki.TLSYAML(first, "reload_interval: 50ms")+"sys:\n  interval: 100ms\n")
	sys := watchCertSys(t, g)
	oldSerial := serialOf(first.Leaf.SerialNumber)
	sys.until("serial", func(v string) bool { return v == oldSerial })
	live := connectLive(t, g, pki)
	keep := func(what, key string) {
		t.Helper()
		testutil.Eventually(t, waitTimeout, func() bool {
			return strings.Contains(g.TLSStatus()["mqtt.tls"].LastError, key)
		}, what+": TLSStatus LastError naming "+key)
		if got := servedSerial(t, g.MQTTTLSAddr(), pki); got != oldSerial {
			t.Fatalf("%s: new handshakes get serial %s, want the old %s kept", what, got, oldSerial)
		}
		sys.until("last_error", func(v string) bool { return strings.Contains(v, key) })
		sys.until("reload_failures", func(v string) bool { return v != "0" })
		live.check(what)
	}

	// Garbage instead of a certificate.
	if err := os.WriteFile(first.CertFile, []byte("-----BEGIN GARBAGE-----\nnot a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	keep("garbage certificate", "tls.cert_file")
	// A valid certificate with the key of another one.
	second, third := pki.Server("server-2"), pki.Server("server-3")
	copyFile(t, second.CertFile, first.CertFile)
	copyFile(t, third.KeyFile, first.KeyFile)
	keep("key of another certificate", "tls.key_file")
	if e := g.TLSStatus()["mqtt.tls"].LastError; !strings.Contains(e, "is not the private key") {
		t.Errorf("LastError %q does not say the key does not match", e)
	}
	// ReloadTLS (SIGHUP) reports the failure too, and counts it.
	before := g.TLSStatus()["mqtt.tls"].Failures
	if err := g.ReloadTLS(); err == nil || !strings.Contains(err.Error(), "tls.key_file") {
		t.Errorf("ReloadTLS with a mismatched key: %v, want an error naming tls.key_file", err)
	}
	if after := g.TLSStatus()["mqtt.tls"].Failures; after <= before {
		t.Errorf("ReloadTLS failure not counted: failures %d, then %d", before, after)
	}

	// The matching key: the new certificate is served, the error cleared.
	copyFile(t, second.KeyFile, first.KeyFile)
	waitServed(t, pki, second, g.MQTTTLSAddr())
	sys.until("serial", func(v string) bool { return v == serialOf(second.Leaf.SerialNumber) })
	sys.until("last_error", func(v string) bool { return v == "" })
	if st := g.TLSStatus()["mqtt.tls"]; st.LastError != "" || st.Reloads == 0 {
		t.Errorf("TLSStatus after the good files: %+v", st)
	}
	live.check("after the good files")
}

// TestTLSReloadTLSAtOnce: with the periodic check off, ReloadTLS (what
// SIGHUP calls) has the new material in use when it returns.
func TestTLSReloadTLSAtOnce(t *testing.T) {
	t.Parallel()
	pki := testutil.NewPKI(t, "reload-now")
	first := pki.Server("server")
	g := testutil.Start(t, pki.TLSYAML(first, "reload_interval: 0"))
	live := connectLive(t, g, pki)
	second := pki.Server("server-2")
	copyFile(t, second.KeyFile, first.KeyFile)
	copyFile(t, second.CertFile, first.CertFile)
	if err := g.ReloadTLS(); err != nil {
		t.Fatalf("ReloadTLS: %v", err)
	}
	for _, addr := range []string{g.MQTTTLSAddr(), g.STOMPTLSAddr()} {
		if got, want := servedSerial(t, addr, pki), serialOf(second.Leaf.SerialNumber); got != want {
			t.Errorf("%s right after ReloadTLS: serial %s, want %s", addr, got, want)
		}
	}
	live.check("after ReloadTLS")
	// A missing file: the error names the key, the material stays.
	if err := os.Remove(first.KeyFile); err != nil {
		t.Fatal(err)
	}
	if err := g.ReloadTLS(); err == nil || !strings.Contains(err.Error(), "tls.key_file") {
		t.Errorf("ReloadTLS with the key file gone: %v, want an error naming tls.key_file", err)
	}
	if got, want := servedSerial(t, g.MQTTTLSAddr(), pki), serialOf(second.Leaf.SerialNumber); got != want {
		t.Errorf("after a failed ReloadTLS: serial %s, want %s kept", got, want)
	}
	live.check("after a failed ReloadTLS")
}

// connectErr connects to addr over TLS with cfg and sends a 3.1.1
// CONNECT: nil if the gateway accepts it, else the error (the handshake's
// alert, or what came instead of CONNACK 0).
func connectErr(addr string, cfg *tls.Config) error {
	nc, err := tls.DialWithDialer(&net.Dialer{Timeout: waitTimeout}, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(waitTimeout))
	if _, err := nc.Write([]byte{0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 60, 0, 0}); err != nil {
		return err
	}
	ack := make([]byte, 4)
	if _, err := io.ReadFull(nc, ack); err != nil {
		return err
	}
	if ack[0] != 0x20 || ack[3] != 0 {
		return fmt.Errorf("CONNACK % x", ack)
	}
	return nil
}

// TestTLSRenewalOfClientCAsAndCRL: the client CA file and the CRL are
// renewed like the certificate: a CA added to ca_file is trusted by the
// next handshake (a CA rotation), a certificate added to the CRL is
// refused by it, and a CA removed is no longer trusted.
func TestTLSRenewalOfClientCAsAndCRL(t *testing.T) {
	t.Parallel()
	oldCA, newCA := testutil.NewPKI(t, "ca-old"), testutil.NewPKI(t, "ca-new")
	clientOld, clientNew := oldCA.Client("dev-old", "dev-old"), newCA.Client("dev-new", "dev-new")
	crl := oldCA.CRL("crl")
	// The clients send no user name: anonymous access, which client
	// certificates turn off unless it is set explicitly.
	g := testutil.Start(t, oldCA.TLSYAML(oldCA.Server("server"), "client_auth: require", "crl_file: "+crl, "reload_interval: 50ms")+
		"auth:\n  allow_anonymous: true\n")
	addr := g.MQTTTLSAddr()
	cfgOld, cfgNew := oldCA.ClientConfigSending(clientOld), oldCA.ClientConfigSending(clientNew)
	if err := connectErr(addr, cfgOld); err != nil {
		t.Fatalf("client of the old CA: %v", err)
	}
	if err := connectErr(addr, cfgNew); err == nil || !strings.Contains(err.Error(), "unknown certificate authority") {
		t.Fatalf("client of the new CA before the rotation: %v, want the alert unknown certificate authority", err)
	}
	// Both CAs during the rotation.
	bundle := append(readFile(t, oldCA.CAFile), readFile(t, newCA.CAFile)...)
	writeFile(t, oldCA.CAFile, bundle)
	testutil.Eventually(t, waitTimeout, func() bool { return connectErr(addr, cfgNew) == nil }, "the new CA trusted")
	if err := connectErr(addr, cfgOld); err != nil {
		t.Fatalf("client of the old CA during the rotation: %v", err)
	}
	// The old client's certificate revoked.
	oldCA.CRL("crl", clientOld)
	testutil.Eventually(t, waitTimeout, func() bool {
		err := connectErr(addr, cfgOld)
		return err != nil && strings.Contains(err.Error(), "bad certificate")
	}, "the revoked certificate refused")
	if err := connectErr(addr, cfgNew); err != nil {
		t.Fatalf("client of the new CA after the revocation: %v", err)
	}
	// The old CA removed: the CRL is then of an issuer ca_file lacks (used,
	// with a warning), and the old CA's clients are strangers.
	writeFile(t, oldCA.CAFile, readFile(t, newCA.CAFile))
	testutil.Eventually(t, waitTimeout, func() bool {
		err := connectErr(addr, cfgOld)
		return err != nil && strings.Contains(err.Error(), "unknown certificate authority")
	}, "the old CA no longer trusted")
	if err := connectErr(addr, cfgNew); err != nil {
		t.Fatalf("client of the new CA at the end: %v", err)
	}
	if st := g.TLSStatus()["mqtt.tls"]; st.Reloads < 3 || st.LastError != "" {
		t.Errorf("TLSStatus: %+v, want 3 reloads or more and no error", st)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
