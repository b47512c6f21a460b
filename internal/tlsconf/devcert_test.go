package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
)

// TestDevCerts: the files WriteDevCerts makes load through the loader, a
// client trusting ca.pem connects to 127.0.0.1, ::1 and localhost, and
// mTLS with client.pem gives identity "dev-client".
func TestDevCerts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	f, err := WriteDevCerts(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{f.CAKey, f.ServerKey, f.ClientKey} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", p, fi.Mode(), err)
		}
	}
	c := DefaultConfig()
	c.CertFile, c.KeyFile, c.CAFile = f.Server, f.ServerKey, f.CA
	c.ClientAuth, c.Identity, c.ReloadInterval = ClientAuthRequire, IdentityCN, 0
	s, logs := newTestSource(t, c, sourceOptions{noEvents: true})
	if logs.FilterMessageSnippet("expired").Len() > 0 {
		t.Fatal("fresh dev certificate reported expired")
	}
	cfg, err := s.ServerConfig("mqtt")
	if err != nil {
		t.Fatal(err)
	}
	srv := startTLSServer(t, cfg)

	caPEM, _ := os.ReadFile(f.CA)
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("ca.pem")
	}
	client, err := tls.LoadX509KeyPair(f.Client, f.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"127.0.0.1", "::1", "localhost"} {
		if _, err := srv.dial(t, &tls.Config{RootCAs: roots, ServerName: name, Certificates: []tls.Certificate{client}}); err != nil {
			t.Fatalf("server name %s: %v", name, err)
		}
		r := srv.result(t)
		if id, ok := s.Identity(r.state); id != DevClientCN || !ok {
			t.Fatalf("identity %q %v", id, ok)
		}
	}
	if _, err := srv.dial(t, &tls.Config{RootCAs: roots, ServerName: "localhost"}); err == nil {
		t.Fatal("connected without the client certificate under require")
	}
	srv.result(t)

	// Nothing is overwritten unless asked.
	before, _ := os.ReadFile(f.CAKey)
	if _, err := WriteDevCerts(dir, false); err == nil {
		t.Fatal("existing files overwritten")
	}
	if after, _ := os.ReadFile(f.CAKey); string(after) != string(before) {
		t.Fatal("ca-key.pem changed")
	}
	if _, err := WriteDevCerts(dir, true); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(f.CAKey); string(after) == string(before) {
		t.Fatal("overwrite kept the old CA key")
	}
}
