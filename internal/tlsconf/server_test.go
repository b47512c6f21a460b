package tlsconf

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// clientTLS is a client configuration trusting p's CA, with certs.
func clientTLS(p *testPKI, certs ...*keyPair) *tls.Config {
	cfg := &tls.Config{RootCAs: p.pool(), ServerName: "localhost"}
	for _, kp := range certs {
		cfg.Certificates = append(cfg.Certificates, kp.tlsCert())
	}
	return cfg
}

func TestTLS10And11Refused(t *testing.T) {
	p := newPKI(t)
	s, _ := newTestSource(t, p.config(p.server(1)), sourceOptions{noEvents: true})
	cfg, err := s.ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	srv := startTLSServer(t, cfg)
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		c := clientTLS(p)
		c.MinVersion, c.MaxVersion = tls.VersionTLS10, v
		if _, err := srv.dial(t, c); err == nil {
			t.Fatalf("a client limited to %s connected", tls.VersionName(v))
		}
		if r := srv.result(t); r.err == nil || !strings.Contains(r.err.Error(), "version") {
			t.Fatalf("server side: %v", r.err)
		}
	}
	c := clientTLS(p)
	c.MaxVersion = tls.VersionTLS12
	if _, err := srv.dial(t, c); err != nil {
		t.Fatalf("TLS 1.2: %v", err)
	}
}

func TestMinVersion13(t *testing.T) {
	p := newPKI(t)
	c := p.config(p.server(1))
	c.MinVersion = "1.3"
	s, _ := newTestSource(t, c, sourceOptions{noEvents: true})
	cfg, _ := s.ServerConfig()
	srv := startTLSServer(t, cfg)
	cl := clientTLS(p)
	cl.MaxVersion = tls.VersionTLS12
	if _, err := srv.dial(t, cl); err == nil {
		t.Fatal("TLS 1.2 client connected to min_version 1.3")
	}
}

func TestCipherSuitesAndALPN(t *testing.T) {
	p := newPKI(t)
	c := p.config(p.server(1))
	// A DTLS-only name in the shared list is skipped for TLS.
	c.CipherSuites = []string{"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "TLS_PSK_WITH_AES_128_CCM_8"}
	s, logs := newTestSource(t, c, sourceOptions{noEvents: true})
	cfg, err := s.ServerConfig("mqtt")
	if err != nil {
		t.Fatal(err)
	}
	if logs.FilterMessageSnippet("skipped").Len() != 1 {
		t.Error("the skipped DTLS suite is not logged")
	}
	srv := startTLSServer(t, cfg)
	cl := clientTLS(p)
	cl.MaxVersion = tls.VersionTLS12
	cl.NextProtos = []string{"mqtt"}
	conn, err := srv.dial(t, cl)
	if err != nil {
		t.Fatal(err)
	}
	st := conn.ConnectionState()
	if st.CipherSuite != tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 || st.NegotiatedProtocol != "mqtt" {
		t.Fatalf("suite %s, ALPN %q", tls.CipherSuiteName(st.CipherSuite), st.NegotiatedProtocol)
	}
	// The alpn key replaces the listener's default.
	c.ALPN = []string{"x-test"}
	s2, _ := newTestSource(t, c, sourceOptions{noEvents: true})
	cfg2, _ := s2.ServerConfig("mqtt")
	srv2 := startTLSServer(t, cfg2)
	cl.NextProtos = []string{"x-test", "mqtt"}
	conn, err = srv2.dial(t, cl)
	if err != nil {
		t.Fatal(err)
	}
	if got := conn.ConnectionState().NegotiatedProtocol; got != "x-test" {
		t.Fatalf("ALPN %q", got)
	}
	// Only DTLS names: no TLS listener.
	c.CipherSuites = []string{"TLS_PSK_WITH_AES_128_CCM_8"}
	s3, _ := newTestSource(t, c, sourceOptions{noEvents: true})
	_, err = s3.ServerConfig()
	wantErr(t, err, "tls.cipher_suites", "DTLS-only")
}

// mtlsSetup is a require-mode listener with identity mode, and its PKI.
func mtlsSetup(t *testing.T, mode, clientAuth string, revoke ...func(p *testPKI) *keyPair) (*testPKI, *Source, *tlsServer) {
	t.Helper()
	p := newPKI(t)
	c := p.config(p.server(1))
	c.CAFile, c.ClientAuth, c.Identity = filepath.Join(p.dir, "ca.pem"), clientAuth, mode
	var revoked []*keyPair
	for _, r := range revoke {
		revoked = append(revoked, r(p))
	}
	if len(revoke) > 0 {
		c.CRLFile = p.write("ca.crl", p.crl(revoked...))
	}
	s, _ := newTestSource(t, c, sourceOptions{noEvents: true})
	cfg, err := s.ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	return p, s, startTLSServer(t, cfg)
}

// TestClientCertificatesRequire: with client_auth require, no
// certificate, an untrusted one, an expired one and a revoked one are
// refused at the handshake; a trusted one connects.
func TestClientCertificatesRequire(t *testing.T) {
	var revokedKP *keyPair
	p, _, srv := mtlsSetup(t, IdentityCN, ClientAuthRequire, func(p *testPKI) *keyPair {
		revokedKP = p.client(x509.Certificate{Subject: pkix.Name{CommonName: "stolen"}})
		return revokedKP
	})
	stranger := newPKI(t)
	untrusted := stranger.client(x509.Certificate{Subject: pkix.Name{CommonName: "stranger"}})
	now := time.Now()
	expired := p.client(x509.Certificate{Subject: pkix.Name{CommonName: "old"}, NotBefore: now.Add(-3 * time.Hour), NotAfter: now.Add(-2 * time.Hour)})
	for _, tc := range []struct {
		name  string
		certs []*keyPair
		want  string // in the server's handshake error
	}{
		{"no certificate", nil, "didn't provide a certificate"},
		{"untrusted", []*keyPair{untrusted}, "unknown authority"},
		{"expired", []*keyPair{expired}, "expired"},
		{"revoked", []*keyPair{revokedKP}, "revoked"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, maxV := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
				cl := clientTLS(p, tc.certs...)
				cl.MaxVersion = maxV
				if _, err := srv.dial(t, cl); err == nil {
					t.Fatalf("%s: connected", tls.VersionName(maxV))
				}
				if r := srv.result(t); r.err == nil || !strings.Contains(r.err.Error(), tc.want) {
					t.Fatalf("%s: server error %v, want %q", tls.VersionName(maxV), r.err, tc.want)
				}
			}
		})
	}
	good := p.client(x509.Certificate{Subject: pkix.Name{CommonName: "sensor-7"}})
	if _, err := srv.dial(t, clientTLS(p, good)); err != nil {
		t.Fatal(err)
	}
	if r := srv.result(t); r.err != nil {
		t.Fatal(r.err)
	}
}

// TestIdentity: each identity mode picks its name from the verified
// certificate; a missing name, a missing certificate and mode none give
// no identity.
func TestIdentity(t *testing.T) {
	tmpl := x509.Certificate{Subject: pkix.Name{CommonName: "dev-cn"}, DNSNames: []string{"dev.example", "b.example"}, EmailAddresses: []string{"dev@example.com"}}
	for _, tc := range []struct {
		mode string
		tmpl x509.Certificate
		want string
		ok   bool
	}{
		{IdentityCN, tmpl, "dev-cn", true},
		{IdentitySANDNS, tmpl, "dev.example", true},
		{IdentitySANEmail, tmpl, "dev@example.com", true},
		{IdentityNone, tmpl, "", false},
		{IdentitySANDNS, x509.Certificate{Subject: pkix.Name{CommonName: "only-cn"}}, "", false},
		{IdentityCN, x509.Certificate{DNSNames: []string{"no-cn.example"}}, "", false},
	} {
		t.Run(tc.mode+"/"+tc.want, func(t *testing.T) {
			clientAuth := ClientAuthRequire
			if tc.mode == IdentityNone {
				clientAuth = ClientAuthRequest
			}
			p, s, srv := mtlsSetup(t, tc.mode, clientAuth)
			if _, err := srv.dial(t, clientTLS(p, p.client(tc.tmpl))); err != nil {
				t.Fatal(err)
			}
			r := srv.result(t)
			if got, ok := s.Identity(r.state); got != tc.want || ok != tc.ok {
				t.Fatalf("Identity = %q, %v; want %q, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

// TestClientAuthRequest: a client without a certificate connects and has
// no identity; one with a trusted certificate has its name.
func TestClientAuthRequest(t *testing.T) {
	p, s, srv := mtlsSetup(t, IdentityCN, ClientAuthRequest)
	if _, err := srv.dial(t, clientTLS(p)); err != nil {
		t.Fatal(err)
	}
	if name, ok := s.Identity(srv.result(t).state); ok {
		t.Fatalf("identity %q without a certificate", name)
	}
	stranger := newPKI(t)
	if _, err := srv.dial(t, clientTLS(p, stranger.client(x509.Certificate{Subject: pkix.Name{CommonName: "x"}}))); err == nil {
		t.Fatal("an untrusted certificate is accepted under request")
	}
	srv.result(t)
}

// TestCRLReload: a certificate revoked by a new CRL is refused at the next
// handshake, including a resumed TLS session, while its open connection
// stays.
func TestCRLReload(t *testing.T) {
	p, s, srv := mtlsSetup(t, IdentityCN, ClientAuthRequire, func(p *testPKI) *keyPair {
		return p.client(x509.Certificate{Subject: pkix.Name{CommonName: "someone-else"}})
	})
	dev := p.client(x509.Certificate{Subject: pkix.Name{CommonName: "dev"}})
	cl := clientTLS(p, dev)
	cl.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	open, err := srv.dial(t, cl)
	if err != nil {
		t.Fatal(err)
	}
	srv.result(t)
	// A second connection resumes, so the refusal below must also hold
	// for a resumed session.
	if _, err := srv.dial(t, cl); err != nil {
		t.Fatal(err)
	}
	if r := srv.result(t); !r.state.DidResume {
		t.Log("no resumption happened; the resumed case is not exercised")
	}
	p.write("ca.crl", p.crl(dev))
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.dial(t, cl); err == nil {
		t.Fatal("a revoked certificate connected after the CRL reload")
	}
	if r := srv.result(t); r.err == nil || !strings.Contains(r.err.Error(), "revoked") {
		t.Fatalf("server error %v", r.err)
	}
	if err := echo(open); err != nil {
		t.Fatalf("the connection made before the revocation: %v", err)
	}
}

// TestOpenSSLClient runs openssl s_client against the listener when
// openssl is installed: TLS 1.1 fails, TLS 1.2 verifies with the CA file
// and shows the serial.
func TestOpenSSLClient(t *testing.T) {
	bin, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	p := newPKI(t)
	s, _ := newTestSource(t, p.config(p.server(0xABCD)), sourceOptions{noEvents: true})
	cfg, _ := s.ServerConfig()
	srv := startTLSServer(t, cfg)
	run := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append([]string{"s_client", "-connect", srv.addr}, args...)...)
		cmd.Stdin = strings.NewReader("")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}
	// SECLEVEL=0 lets openssl itself offer TLS 1.1, so the refusal is ours.
	if out, err := run("-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"); err == nil {
		t.Fatalf("openssl -tls1_1 connected:\n%s", out)
	}
	srv.result(t)
	out, err := run("-tls1_2", "-CAfile", filepath.Join(p.dir, "ca.pem"), "-verify_return_error", "-showcerts")
	if err != nil || !strings.Contains(out, "Verify return code: 0") {
		t.Fatalf("openssl -tls1_2: %v\n%s", err, out)
	}
	srv.result(t)
	begin := strings.Index(out, "-----BEGIN CERTIFICATE-----")
	end := strings.Index(out, "-----END CERTIFICATE-----")
	if begin < 0 || end < begin {
		t.Fatalf("no certificate in the output:\n%s", out)
	}
	x := exec.Command(bin, "x509", "-noout", "-serial")
	x.Stdin = strings.NewReader(out[begin:end+len("-----END CERTIFICATE-----")] + "\n")
	serial, err := x.Output()
	if err != nil || strings.TrimSpace(string(serial)) != "serial=ABCD" {
		t.Fatalf("openssl x509 -serial: %q %v", serial, err)
	}
}
