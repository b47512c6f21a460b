package coap_test

// CoAP over DTLS (coap.dtls) from real clients: libcoap's coap-client
// (OpenSSL build) with a pre-shared key and with certificates, go-coap's
// DTLS client (PUT, GET, Observe) and openssl s_client's handshake; an
// MQTT subscriber on the other side. The PSK identity is the user name
// acl.rules %u sees, and a bad key or an untrusted certificate is refused
// at the handshake. The libcoap and openssl tests skip when the binaries
// are not installed (Debian: libcoap3-bin, openssl).

import (
	"bytes"
	"context"
	"encoding/hex"
	"os/exec"
	"strings"
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"
	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/options"

	"github.com/iotgw/iotgw/internal/testutil"
)

const (
	dtlsIdentity = "sensor1"
	dtlsKey      = "sensor1-secret-key" // ASCII: coap-client's -k takes the key as text
)

// dtlsACL lets a client publish only under dev/<user name>/ and anyone
// subscribe.
const dtlsACL = `
auth:
  allow_anonymous: true
acl:
  default: deny
  rules:
    - {permission: allow, action: publish, topic: "dev/%u/#"}
    - {permission: allow, action: subscribe, topic: "#"}
`

func lookBin(t *testing.T, name string) string {
	t.Helper()
	bin, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed", name)
	}
	return bin
}

// run runs a client to completion within waitTimeout and returns its
// output and error.
func run(bin string, stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func pskGateway(t *testing.T, extra string) (*testutil.Gateway, *testutil.PKI) {
	t.Helper()
	pki := testutil.NewPKI(t, "dtls-psk")
	psk := pki.PSKFile("keys.psk", map[string][]byte{dtlsIdentity: []byte(dtlsKey)})
	// pion notices a wrong key only when the client's Finished does not
	// decrypt, which it drops as noise: such a handshake fails at the
	// timeout, kept short here.
	g := testutil.Start(t, "tls:\n  psk_file: "+psk+"\n  handshake_timeout: 1s\n"+extra)
	if g.Addr("coap.dtls") == nil {
		t.Fatal("coap.dtls is off with a PSK file configured")
	}
	return g, pki
}

func TestDTLSLibcoapPSK(t *testing.T) {
	bin := lookBin(t, "coap-client-openssl")
	g, _ := pskGateway(t, dtlsACL)
	sub := (&gateway{mqttURL: g.MQTTURL()}).mqttClient(t)
	sub.subscribe("dev/#", 1)
	u := "coaps://" + g.CoAPDTLSAddr()

	out, err := run(bin, "", "-B", "5", "-k", dtlsKey, "-u", dtlsIdentity, "-m", "put", "-e", "21.5", u+"/ps/dev/sensor1/temp")
	if err != nil {
		t.Fatalf("coap-client: %v\n%s", err, out)
	}
	if m := sub.next(); m.Topic != "dev/sensor1/temp" || m.Payload != "21.5" {
		t.Fatalf("MQTT got %+v", m)
	}
	// The PSK identity is the user name: another device's topics are
	// not this one's, whatever user name the query claims.
	out, _ = run(bin, "", "-B", "5", "-k", dtlsKey, "-u", dtlsIdentity, "-m", "put", "-e", "x", u+"/ps/dev/other/temp?username=other")
	if !strings.HasPrefix(out, "4.03") {
		t.Fatalf("publish outside dev/%%u/: %q", out)
	}

	st := g.CoAP.DTLSStats()
	before := st.HandshakeFailures.Load()
	out, _ = run(bin, "", "-B", "1", "-k", "wrong-key", "-u", dtlsIdentity, "-m", "put", "-e", "x", u+"/ps/dev/sensor1/temp")
	if strings.HasPrefix(out, "2.") {
		t.Fatalf("a wrong key was accepted: %q", out)
	}
	testutil.Eventually(t, waitTimeout, func() bool { return st.HandshakeFailures.Load() > before }, "bad key counted as a handshake failure")
	select {
	case m := <-sub.msgs:
		t.Fatalf("a message got through: %+v", m)
	default:
	}
}

func TestDTLSLibcoapCertificates(t *testing.T) {
	bin := lookBin(t, "coap-client-openssl")
	pki := testutil.NewPKI(t, "dtls-pki")
	g := testutil.Start(t, pki.TLSYAML(pki.Server("server"), "client_auth: require", "identity: cn")+dtlsACL)
	sub := (&gateway{mqttURL: g.MQTTURL()}).mqttClient(t)
	sub.subscribe("dev/#", 1)
	u := "coaps://" + g.CoAPDTLSAddr()
	dev := pki.Client("dev", "meter7")
	out, err := run(bin, "", "-B", "5", "-c", dev.CertFile, "-j", dev.KeyFile, "-R", pki.CAFile, "-m", "post", "-e", "42", u+"/ps/dev/meter7/kwh")
	if err != nil {
		t.Fatalf("coap-client: %v\n%s", err, out)
	}
	if m := sub.next(); m.Topic != "dev/meter7/kwh" || m.Payload != "42" {
		t.Fatalf("MQTT got %+v", m)
	}
	// A certificate of another CA is refused at the handshake.
	stranger := testutil.NewPKI(t, "stranger").Client("x", "meter7")
	st := g.CoAP.DTLSStats()
	before := st.HandshakeFailures.Load()
	out, _ = run(bin, "", "-B", "3", "-c", stranger.CertFile, "-j", stranger.KeyFile, "-R", pki.CAFile, "-m", "post", "-e", "x", u+"/ps/dev/meter7/kwh")
	if strings.HasPrefix(out, "2.") {
		t.Fatalf("an untrusted certificate was accepted: %q", out)
	}
	testutil.Eventually(t, waitTimeout, func() bool { return st.HandshakeFailures.Load() > before }, "untrusted certificate counted")
}

func TestDTLSOpenSSLHandshake(t *testing.T) {
	bin := lookBin(t, "openssl")
	pki := testutil.NewPKI(t, "dtls-openssl")
	psk := pki.PSKFile("keys.psk", map[string][]byte{dtlsIdentity: []byte(dtlsKey)})
	g := testutil.Start(t, pki.TLSYAML(pki.Server("server"), "psk_file: "+psk))
	for _, addr := range []string{g.CoAPDTLSAddr(), g.MQTTSNDTLSAddr()} {
		out, err := run(bin, "", "s_client", "-dtls1_2", "-connect", addr, "-psk_identity", dtlsIdentity,
			"-psk", hex.EncodeToString([]byte(dtlsKey)), "-cipher", "PSK-AES128-CCM8:PSK-AES128-GCM-SHA256")
		if err != nil || !strings.Contains(out, "Cipher is PSK") {
			t.Fatalf("s_client -psk %s: %v\n%s", addr, err, out)
		}
		out, err = run(bin, "", "s_client", "-dtls1_2", "-connect", addr, "-CAfile", pki.CAFile, "-verify_return_error")
		if err != nil || !strings.Contains(out, "Verify return code: 0 (ok)") {
			t.Fatalf("s_client certificate %s: %v\n%s", addr, err, out)
		}
	}
}

// TestDTLSGoCoAPClient: go-coap's DTLS client (pion under it) does PUT,
// GET of the retained message and an observation with a notification.
func TestDTLSGoCoAPClient(t *testing.T) {
	g, _ := pskGateway(t, "")
	// go-coap v3.5.1's DTLS client takes pion's *Config.
	//lint:ignore SA1019 go-coap's dtls.Dial has no options form.
	cfg := &piondtls.Config{
		PSK:             func([]byte) ([]byte, error) { return []byte(dtlsKey), nil },
		PSKIdentityHint: []byte(dtlsIdentity),
		CipherSuites:    []piondtls.CipherSuiteID{piondtls.TLS_PSK_WITH_AES_128_CCM_8},
	}
	cc, err := coapdtls.Dial(g.CoAPDTLSAddr(), cfg, options.WithErrors(func(error) {}))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	resp, err := cc.Put(ctx, "/ps/go/temp", message.TextPlain, bytes.NewReader([]byte("1")), message.Option{ID: message.URIQuery, Value: []byte("retain=true")})
	if err != nil || resp.Code().String() != "Changed" {
		t.Fatalf("PUT: %v %v", resp, err)
	}
	resp, err = cc.Get(ctx, "/ps/go/temp")
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	if body, _ := resp.ReadBody(); string(body) != "1" {
		t.Fatalf("GET body %q", body)
	}
	notes := make(chan string, 8)
	obs, err := cc.Observe(ctx, "/ps/go/#", func(m *pool.Message) {
		// A wildcard observation's registration response has no body;
		// the retained message follows it as a notification.
		if body, err := m.ReadBody(); err == nil && len(body) > 0 {
			notes <- string(body)
		}
	})
	if err != nil {
		t.Fatalf("observe: %v", err)
	}
	defer func() { _ = obs.Cancel(context.Background()) }()
	next := func() string {
		select {
		case n := <-notes:
			return n
		case <-time.After(waitTimeout):
			t.Fatal("no notification")
		}
		return ""
	}
	if n := next(); n != "1" {
		t.Fatalf("first notification %q, want the retained message", n)
	}
	pub := (&gateway{mqttURL: g.MQTTURL()}).mqttClient(t)
	pub.publish("go/temp", 1, false, "2")
	if n := next(); n != "2" {
		t.Fatalf("notification %q", n)
	}
}
