package tlsconf

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
)

// TestLoadErrorsNameTheKey covers every start-up error of issue 15 item 5:
// the message names the configuration key and says what is wrong.
func TestLoadErrorsNameTheKey(t *testing.T) {
	p := newPKI(t)
	good := p.server(1)
	other := p.server(2)
	encPKCS8 := pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{0x30, 0x03, 0x02, 0x01, 0x00}})
	encLegacy := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,00112233445566778899AABBCCDDEEFF"}, Bytes: []byte{1, 2, 3}})
	cases := []struct {
		name string
		edit func(c *Config)
		want []string
	}{
		{"missing cert", func(c *Config) { c.CertFile = filepath.Join(p.dir, "nope.pem") }, []string{"tls.cert_file", "nope.pem", "no such file"}},
		{"unreadable cert", func(c *Config) { c.CertFile = p.dir }, []string{"tls.cert_file", "is a directory"}},
		{"missing key", func(c *Config) { c.KeyFile = filepath.Join(p.dir, "nokey.pem") }, []string{"tls.key_file", "nokey.pem"}},
		{"cert file holds a key", func(c *Config) { c.CertFile = p.write("swapped.pem", good.keyPEM()) }, []string{"tls.cert_file", "no PEM CERTIFICATE", "swapped?"}},
		{"cert file is not PEM", func(c *Config) { c.CertFile = p.write("junk.pem", []byte("hello")) }, []string{"tls.cert_file", "no PEM CERTIFICATE"}},
		{"key file holds a certificate", func(c *Config) { c.KeyFile = p.write("swapped-key.pem", good.certPEM()) }, []string{"tls.key_file", "no PEM PRIVATE KEY", "swapped?"}},
		{"encrypted PKCS#8 key", func(c *Config) { c.KeyFile = p.write("enc8.pem", encPKCS8) }, []string{"tls.key_file", "encrypted"}},
		{"encrypted legacy key", func(c *Config) { c.KeyFile = p.write("encl.pem", encLegacy) }, []string{"tls.key_file", "encrypted"}},
		{"key of another certificate", func(c *Config) { c.KeyFile = p.write("other-key.pem", other.keyPEM()) }, []string{"tls.key_file", "not the private key", "tls.cert_file"}},
		{"missing ca", func(c *Config) { c.CAFile = filepath.Join(p.dir, "noca.pem") }, []string{"tls.ca_file", "noca.pem"}},
		{"ca without certificates", func(c *Config) { c.CAFile = p.write("empty-ca.pem", good.keyPEM()) }, []string{"tls.ca_file", "no PEM CERTIFICATE"}},
		{"crl unparsable", func(c *Config) { c.CRLFile = p.write("bad.crl", []byte("not a crl")) }, []string{"tls.crl_file", "does not parse"}},
		{"crl pem of something else", func(c *Config) { c.CRLFile = p.write("bad2.crl", good.certPEM()) }, []string{"tls.crl_file", "no PEM X509 CRL"}},
		{"crl of another key", func(c *Config) { c.CRLFile = p.write("forged.crl", forgedCRL(t, p)) }, []string{"tls.crl_file", "not signed"}},
		{"psk not hex", func(c *Config) { c.PSKFile = p.write("psk1", []byte("# comment\n\ndev1:zz\n")) }, []string{"tls.psk_file", "line 3", "not hex"}},
		{"psk no colon", func(c *Config) { c.PSKFile = p.write("psk2", []byte("dev1\n")) }, []string{"tls.psk_file", "line 1", "identity:hexkey"}},
		{"psk duplicate", func(c *Config) { c.PSKFile = p.write("psk3", []byte("a:01\na:02\n")) }, []string{"tls.psk_file", "line 2", "twice"}},
		{"psk empty", func(c *Config) { c.PSKFile = p.write("psk4", []byte("# none\n")) }, []string{"tls.psk_file", "no identity:hexkey"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := p.config(good)
			c.CAFile, c.ClientAuth = filepath.Join(p.dir, "ca.pem"), ClientAuthRequire
			tc.edit(&c)
			_, err := NewSource(c, zapNop())
			wantErr(t, err, tc.want...)
		})
	}
}

func TestLoadPermissionDenied(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads every file")
	}
	p := newPKI(t)
	c := p.config(p.server(1))
	if err := os.Chmod(c.KeyFile, 0); err != nil {
		t.Fatal(err)
	}
	_, err := NewSource(c, zapNop())
	wantErr(t, err, "tls.key_file", "cannot read")
}

func TestLoadReportsEveryFile(t *testing.T) {
	p := newPKI(t)
	c := p.config(p.server(1))
	c.CertFile = filepath.Join(p.dir, "gone.pem")
	c.ClientAuth, c.CAFile = ClientAuthRequest, filepath.Join(p.dir, "gone-ca.pem")
	_, err := NewSource(c, zapNop())
	wantErr(t, err, "tls.cert_file", "tls.ca_file")
}

func TestNewSourceNeedsMaterial(t *testing.T) {
	_, err := NewSource(DefaultConfig(), zapNop())
	wantErr(t, err, "tls.cert_file", "not set")
}

// TestCertificateOutsideValidityWarns: an expired or not yet valid server
// certificate starts with a warning giving the date, not an error.
func TestCertificateOutsideValidityWarns(t *testing.T) {
	p := newPKI(t)
	now := time.Now()
	for _, tc := range []struct {
		name     string
		from, to time.Time
		want     string
	}{
		{"expired", now.Add(-48 * time.Hour), now.Add(-24 * time.Hour), "expired on " + now.Add(-24*time.Hour).UTC().Format("2006-01-02")},
		{"not yet valid", now.Add(24 * time.Hour), now.Add(48 * time.Hour), "not valid before " + now.Add(24*time.Hour).UTC().Format("2006-01-02")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kp, err := p.ca.issue(&x509.Certificate{Subject: pkix.Name{CommonName: "old"}, NotBefore: tc.from, NotAfter: tc.to,
				ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
			if err != nil {
				t.Fatal(err)
			}
			s, logs := newTestSource(t, p.config(kp), sourceOptions{noEvents: true})
			warns := logs.FilterLevelExact(zapcore.WarnLevel).All()
			if len(warns) != 1 || !strings.Contains(warns[0].Message, tc.want) || !strings.Contains(warns[0].Message, "tls.cert_file") {
				t.Fatalf("warnings %v, want one with %q", warns, tc.want)
			}
			if !s.Status().NotAfter.Equal(tc.to.Truncate(time.Second)) {
				t.Fatalf("NotAfter %v, want %v", s.Status().NotAfter, tc.to)
			}
		})
	}
}

// forgedCRL is a CRL naming the test CA as issuer but signed by another
// key.
func forgedCRL(t *testing.T, p *testPKI) []byte {
	t.Helper()
	impostor, err := newCA("test CA", p.ca.cert.NotBefore, p.ca.cert.NotAfter)
	if err != nil {
		t.Fatal(err)
	}
	q := &testPKI{t: t, dir: p.dir, ca: impostor}
	return q.crl(p.server(9))
}

func TestPSKFileFormat(t *testing.T) {
	p := newPKI(t)
	c := DefaultConfig()
	c.PSKFile = p.write("psk", []byte("# devices\ndev1:0102AABB\n  urn:dev:ops:2 : \n\nurn:dev:ops:3:cafe\n"))
	_, err := NewSource(c, zapNop())
	wantErr(t, err, "line 3", "empty") // a key of spaces only
	p.write("psk", []byte("# devices\ndev1:0102AABB\r\nurn:dev:ops:3:cafe\n"))
	s, _ := newTestSource(t, c, sourceOptions{noEvents: true})
	m := s.cur.Load()
	if string(m.psk["dev1"]) != "\x01\x02\xaa\xbb" || string(m.psk["urn:dev:ops:3"]) != "\xca\xfe" || len(m.psk) != 2 {
		t.Fatalf("psk %q", m.psk)
	}
}
