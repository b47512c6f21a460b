package mqtt_test

// Client certificates on mqtt.tls (issue 15): with client_auth require a
// client without a certificate, or with one from another CA, expired or
// revoked, is refused at the handshake, over TLS 1.2 and 1.3; a trusted
// one connects, and the identity key makes the name it carries (CN, DNS
// or email SAN) the user name acl.rules %u sees. With client_auth request
// and an identity, a client without a certificate completes the handshake
// and is refused at CONNECT.

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/iotgw/iotgw/adapters/mqtt/codec"
	"github.com/iotgw/iotgw/internal/testutil"
)

// dialRawTLS makes a TLS connection to addr with cfg and returns it as a
// raw MQTT client; the handshake must succeed.
func dialRawTLS(t testing.TB, addr string, cfg *tls.Config) *rawClient {
	t.Helper()
	nc, err := tls.DialWithDialer(&net.Dialer{Timeout: waitTimeout}, "tcp", addr, cfg)
	if err != nil {
		t.Fatalf("TLS dial %s: %v", addr, err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawClient{t: t, nc: nc, br: bufio.NewReader(nc)}
}

// tlsRefusal connects to addr with cfg and sends a CONNECT, expecting the
// server to refuse the client's certificate: under TLS 1.2 the client's
// handshake fails with the server's alert; under TLS 1.3 the client's
// side of the handshake completes before the server has checked the
// certificate, and the alert is what the first read gets. It returns
// that error; getting any MQTT byte fails the test.
func tlsRefusal(t *testing.T, addr string, cfg *tls.Config) error {
	t.Helper()
	nc, err := tls.DialWithDialer(&net.Dialer{Timeout: waitTimeout}, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(waitTimeout))
	b, err := codec.Append(nil, &codec.Connect{ProtocolLevel: codec.V311, ClientID: uniqueID("refused"), CleanStart: true}, codec.V311)
	if err != nil {
		t.Fatal(err)
	}
	// The write may fail first, when the alert and the close came before
	// it; the alert is still there to read.
	_, werr := nc.Write(b)
	buf := make([]byte, 64)
	n, err := nc.Read(buf)
	if werr != nil && (err == nil || !strings.Contains(err.Error(), "remote error")) {
		return werr
	}
	if n > 0 {
		t.Fatalf("the gateway answered a client it should have refused at the handshake: % x", buf[:n])
	}
	if err == nil {
		t.Fatal("read returned nothing and no error")
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("no alert within %v: the handshake neither failed nor went on", waitTimeout)
	}
	return err
}

// withVersion returns cfg limited to one TLS version.
func withVersion(cfg *tls.Config, v uint16) *tls.Config {
	cfg = cfg.Clone()
	cfg.MinVersion, cfg.MaxVersion = v, v
	return cfg
}

// badCertificate is a client configuration to be refused under
// client_auth require, and the server's TLS alert.
type badCertificate struct {
	name  string
	cfg   *tls.Config
	alert string
}

// badCertificates issues certificates for CN alice that are to be
// refused: one of another CA, an expired one and one to be revoked
// (returned, for the CRL the gateway is to be started with).
func badCertificates(t *testing.T, pki *testutil.PKI) (*testutil.Cert, []badCertificate) {
	t.Helper()
	revoked := pki.Client("revoked", "alice")
	expired := pki.Issue("expired", x509.Certificate{
		Subject:     pkix.Name{CommonName: "alice"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		NotBefore:   time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour),
	})
	stranger := testutil.NewPKI(t, "other").Client("stranger", "alice")
	return revoked, []badCertificate{
		{"untrusted_ca", pki.ClientConfigSending(stranger), "unknown certificate authority"},
		{"expired", pki.ClientConfigSending(expired), "expired certificate"},
		{"revoked", pki.ClientConfigSending(revoked), "bad certificate"},
	}
}

var tlsVersions = []struct {
	name string
	v    uint16
}{{"tls1.2", tls.VersionTLS12}, {"tls1.3", tls.VersionTLS13}}

func TestTLSClientAuthRequireRefusesAtHandshake(t *testing.T) {
	t.Parallel()
	pki := testutil.NewPKI(t, "require")
	alice := pki.Client("alice", "alice")
	revoked, bad := badCertificates(t, pki)
	crl := pki.CRL("crl", revoked)
	g := testutil.Start(t, pki.TLSYAML(pki.Server("server"), "client_auth: require", "identity: cn", "crl_file: "+crl)+testutil.IdentityACL)
	addr := g.MQTTTLSAddr()

	for _, tv := range tlsVersions {
		t.Run(tv.name, func(t *testing.T) {
			for _, tc := range append([]badCertificate{
				// TLS 1.3 has an alert of its own for it (RFC 8446 4.4.2.4).
				{"no_certificate", pki.ClientConfig(nil), map[uint16]string{
					tls.VersionTLS12: "handshake failure", tls.VersionTLS13: "certificate required"}[tv.v]},
			}, bad...) {
				err := tlsRefusal(t, addr, withVersion(tc.cfg, tv.v))
				if !strings.Contains(err.Error(), tc.alert) {
					t.Errorf("%s: %v, want the alert %q", tc.name, err, tc.alert)
				}
			}
			// The trusted certificate connects, its CN the user name.
			r := dialRawTLS(t, addr, withVersion(pki.ClientConfig(alice), tv.v))
			r.connectOK(&codec.Connect{ClientID: uniqueID("alice"), CleanStart: true,
				UsernameFlag: true, Username: "mallory", PasswordFlag: true, Password: []byte("x")})
			r.send(&codec.Subscribe{PacketID: 1, Subscriptions: []codec.Subscription{
				{Filter: "devices/alice/#", QoS: 1}, {Filter: "devices/mallory/#", QoS: 1}}})
			sa, ok := r.expect("SUBACK").(*codec.Suback)
			if !ok || len(sa.ReasonCodes) != 2 || sa.ReasonCodes[0] != 1 || sa.ReasonCodes[1] != 0x80 {
				t.Fatalf("SUBACK %+v, want [1 0x80]: the CN, not the CONNECT's user name, is %%u", sa)
			}
		})
	}
	if n := g.Broker.Stats().ClientsConnected.Load(); n > 2 {
		t.Errorf("%d clients connected, want at most the 2 trusted ones", n)
	}
}

// TestTLSIdentityFromSAN: identity san_dns and san_email take the first
// DNS or email SAN as the user name (not the CN); a certificate without
// one is refused at CONNECT, 3.1.1 return code 5 and MQTT 5 reason 0x87.
func TestTLSIdentityFromSAN(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		mode, name string
		tmpl       x509.Certificate
	}{
		{"san_dns", "dev-7.example", x509.Certificate{DNSNames: []string{"dev-7.example", "second.example"}}},
		{"san_email", "bob@example.com", x509.Certificate{EmailAddresses: []string{"bob@example.com"}}},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			t.Parallel()
			pki := testutil.NewPKI(t, tc.mode)
			g := testutil.Start(t, pki.TLSYAML(pki.Server("server"), "client_auth: require", "identity: "+tc.mode)+testutil.IdentityACL)
			tmpl := tc.tmpl
			tmpl.Subject = pkix.Name{CommonName: "the-cn"}
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
			named := pki.Issue("named", tmpl)
			r := dialRawTLS(t, g.MQTTTLSAddr(), pki.ClientConfigSending(named))
			r.connectOK(&codec.Connect{ClientID: uniqueID(tc.mode), CleanStart: true})
			r.send(&codec.Subscribe{PacketID: 1, Subscriptions: []codec.Subscription{
				{Filter: "devices/" + tc.name + "/#", QoS: 1}, {Filter: "devices/the-cn/#", QoS: 1}}})
			sa, ok := r.expect("SUBACK").(*codec.Suback)
			if !ok || len(sa.ReasonCodes) != 2 || sa.ReasonCodes[0] != 1 || sa.ReasonCodes[1] != 0x80 {
				t.Fatalf("SUBACK %+v, want [1 0x80]: %%u is %s", sa, tc.name)
			}
			// A trusted certificate without that kind of name: refused.
			cnOnly := pki.Client("cn-only", "the-cn")
			r = dialRawTLS(t, g.MQTTTLSAddr(), pki.ClientConfigSending(cnOnly))
			if ack := r.connect(&codec.Connect{ClientID: uniqueID("cn-only"), CleanStart: true,
				UsernameFlag: true, Username: tc.name}); ack.ReasonCode != codec.ConnRefusedNotAuthorized {
				t.Errorf("3.1.1 CONNECT with a certificate without %s: return code %#x, want 0x05", tc.mode, byte(ack.ReasonCode))
			}
			r5 := &v5Raw{dialRawTLS(t, g.MQTTTLSAddr(), pki.ClientConfigSending(cnOnly))}
			if ack := r5.connect(&codec.Connect{ClientID: uniqueID("cn-only"), CleanStart: true}); ack.ReasonCode != codec.NotAuthorized {
				t.Errorf("MQTT 5 CONNECT with a certificate without %s: reason %#x, want 0x87", tc.mode, byte(ack.ReasonCode))
			}
		})
	}
}

// TestTLSClientAuthRequest: client_auth request with identity cn lets a
// client without a certificate through the handshake, then refuses its
// CONNECT as not authorized (it has no name, and the name it claims is
// not trusted); a client with a certificate connects as its CN; one with
// an untrusted certificate is refused at the handshake (a certificate
// that is sent is verified).
func TestTLSClientAuthRequest(t *testing.T) {
	t.Parallel()
	pki := testutil.NewPKI(t, "request")
	g := testutil.Start(t, pki.TLSYAML(pki.Server("server"), "client_auth: request", "identity: cn")+testutil.IdentityACL)
	addr := g.MQTTTLSAddr()
	for _, tv := range tlsVersions {
		t.Run(tv.name, func(t *testing.T) {
			r := dialRawTLS(t, addr, withVersion(pki.ClientConfig(nil), tv.v))
			if ack := r.connect(&codec.Connect{ClientID: uniqueID("nocert"), CleanStart: true,
				UsernameFlag: true, Username: "alice", PasswordFlag: true, Password: []byte("x")}); ack.ReasonCode != codec.ConnRefusedNotAuthorized {
				t.Errorf("3.1.1 CONNECT without a certificate: return code %#x, want 0x05 (not authorized)", byte(ack.ReasonCode))
			}
			r.expectClosed("after the refusing CONNACK")
			r5 := &v5Raw{dialRawTLS(t, addr, withVersion(pki.ClientConfig(nil), tv.v))}
			if ack := r5.connect(&codec.Connect{ClientID: uniqueID("nocert"), CleanStart: true,
				UsernameFlag: true, Username: "alice"}); ack.ReasonCode != codec.NotAuthorized {
				t.Errorf("MQTT 5 CONNECT without a certificate: reason %#x, want 0x87 (not authorized)", byte(ack.ReasonCode))
			}

			alice := pki.Client("alice-"+tv.name, "alice")
			r = dialRawTLS(t, addr, withVersion(pki.ClientConfigSending(alice), tv.v))
			r.connectOK(&codec.Connect{ClientID: uniqueID("alice"), CleanStart: true})
			r.send(&codec.Subscribe{PacketID: 1, Subscriptions: []codec.Subscription{{Filter: "devices/alice/#", QoS: 1}}})
			if sa, ok := r.expect("SUBACK").(*codec.Suback); !ok || sa.ReasonCodes[0] != 1 {
				t.Fatalf("SUBACK %+v, want QoS 1 granted to alice's own topic", sa)
			}

			stranger := testutil.NewPKI(t, "other").Client("stranger", "alice")
			err := tlsRefusal(t, addr, withVersion(pki.ClientConfigSending(stranger), tv.v))
			if !strings.Contains(err.Error(), "unknown certificate authority") {
				t.Errorf("untrusted certificate under request: %v, want the alert unknown certificate authority", err)
			}
		})
	}
}

// TestTLSRevokedClientCannotResume: a client that resumes a TLS session
// (a session ticket, no certificate sent again) keeps the identity its
// certificate gave, and once that certificate is revoked it is refused
// like one making a full handshake: the CRL is checked against the
// chains the session was verified with.
func TestTLSRevokedClientCannotResume(t *testing.T) {
	t.Parallel()
	pki := testutil.NewPKI(t, "resume")
	alice := pki.Client("alice", "alice")
	crl := pki.CRL("crl")
	g := testutil.Start(t, pki.TLSYAML(pki.Server("server"), "client_auth: require", "identity: cn", "crl_file: "+crl,
		"reload_interval: 0")+testutil.IdentityACL)
	caches := map[uint16]tls.ClientSessionCache{}
	connect := func(v uint16) bool {
		t.Helper()
		cfg := withVersion(pki.ClientConfigSending(alice), v)
		cfg.ClientSessionCache = caches[v]
		r := dialRawTLS(t, g.MQTTTLSAddr(), cfg)
		// Reading the CONNACK reads the TLS 1.3 ticket sent before it.
		r.connectOK(&codec.Connect{ClientID: uniqueID("resume"), CleanStart: true})
		resumed := r.nc.(*tls.Conn).ConnectionState().DidResume
		// The user name is still the CN.
		r.send(&codec.Subscribe{PacketID: 1, Subscriptions: []codec.Subscription{{Filter: "devices/alice/#", QoS: 1}}})
		if sa, ok := r.expect("SUBACK").(*codec.Suback); !ok || sa.ReasonCodes[0] != 1 {
			t.Fatalf("resumed %v: SUBACK %+v, want alice's own topic granted", resumed, sa)
		}
		r.nc.Close()
		return resumed
	}
	for _, tv := range tlsVersions {
		caches[tv.v] = tls.NewLRUClientSessionCache(4)
		if connect(tv.v) {
			t.Fatalf("%s: the first connection resumed a session", tv.name)
		}
		if !connect(tv.v) {
			t.Fatalf("%s: the second connection did not resume its session: the test would not test resumption", tv.name)
		}
	}
	pki.CRL("crl", alice) // the same file, now revoking alice
	if err := g.ReloadTLS(); err != nil {
		t.Fatal(err)
	}
	for _, tv := range tlsVersions {
		cfg := withVersion(pki.ClientConfigSending(alice), tv.v)
		cfg.ClientSessionCache = caches[tv.v]
		if err := tlsRefusal(t, g.MQTTTLSAddr(), cfg); !strings.Contains(err.Error(), "bad certificate") {
			t.Errorf("%s: resuming with a revoked certificate: %v, want the alert bad certificate", tv.name, err)
		}
	}
}

// TestTLSClientCertificatesOverWSS: mqtt.wss checks client certificates
// as mqtt.tls does (mosquitto #3164 is the anchor that did not): under
// require, no certificate, an untrusted, expired or revoked one fail the
// handshake, before any HTTP; a trusted one connects as its CN. Under
// request, a client without one is refused at CONNECT.
func TestTLSClientCertificatesOverWSS(t *testing.T) {
	t.Parallel()
	pki := testutil.NewPKI(t, "wss-mtls")
	revoked, bad := badCertificates(t, pki)
	g := testutil.Start(t, pki.TLSYAML(pki.Server("server"), "client_auth: require", "identity: cn",
		"crl_file: "+pki.CRL("crl", revoked))+testutil.IdentityACL)
	for _, tc := range append([]badCertificate{{"no_certificate", pki.ClientConfig(nil), "certificate required"}}, bad...) {
		d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: waitTimeout, TLSClientConfig: tc.cfg}
		ws, _, err := d.Dial(g.WSSURL(), nil)
		if err == nil {
			ws.Close()
			t.Errorf("%s: the WebSocket opened", tc.name)
		} else if !strings.Contains(err.Error(), tc.alert) {
			t.Errorf("%s: %v, want the alert %q", tc.name, err, tc.alert)
		}
	}
	nc := testutil.DialWSS(t, g.WSSURL(), "mqtt", false, pki.ClientConfig(pki.Client("alice", "alice")))
	r := &rawClient{t: t, nc: nc, br: bufio.NewReader(nc)}
	r.connectOK(&codec.Connect{ClientID: uniqueID("wss-alice"), CleanStart: true, UsernameFlag: true, Username: "mallory"})
	r.send(&codec.Subscribe{PacketID: 1, Subscriptions: []codec.Subscription{
		{Filter: "devices/alice/#", QoS: 1}, {Filter: "devices/mallory/#", QoS: 1}}})
	if sa, ok := r.expect("SUBACK").(*codec.Suback); !ok || len(sa.ReasonCodes) != 2 || sa.ReasonCodes[0] != 1 || sa.ReasonCodes[1] != 0x80 {
		t.Fatalf("SUBACK %+v over wss, want [1 0x80]", sa)
	}

	// client_auth request: the handshake and the upgrade succeed without
	// a certificate, the CONNECT does not.
	req := testutil.NewPKI(t, "wss-request")
	g = testutil.Start(t, req.TLSYAML(req.Server("server"), "client_auth: request", "identity: cn")+testutil.IdentityACL)
	nc = testutil.DialWSS(t, g.WSSURL(), "mqtt", false, req.ClientConfig(nil))
	r = &rawClient{t: t, nc: nc, br: bufio.NewReader(nc)}
	if ack := r.connect(&codec.Connect{ClientID: uniqueID("wss-nocert"), CleanStart: true,
		UsernameFlag: true, Username: "watcher", PasswordFlag: true, Password: []byte("secret")}); ack.ReasonCode != codec.ConnRefusedNotAuthorized {
		t.Errorf("CONNECT over wss without a certificate under request: return code %#x, want 0x05", byte(ack.ReasonCode))
	}
}
