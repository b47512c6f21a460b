package testutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// PKI is a certificate authority made for one test, writing its files
// into the test's temporary directory: server certificates for
// 127.0.0.1/localhost, client certificates (trusted, expired, revoked)
// and CRLs, for the secured listeners' black-box tests.
type PKI struct {
	t      testing.TB
	Dir    string
	CAFile string // PEM of the CA certificate
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	serial atomic.Int64
}

// Cert is an issued certificate and where its files are.
type Cert struct {
	Leaf     *x509.Certificate
	CertFile string
	KeyFile  string
	TLS      tls.Certificate
}

// NewPKI makes a CA called name (valid from an hour ago for a day).
func NewPKI(t testing.TB, name string) *PKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	p := &PKI{t: t, Dir: t.TempDir(), ca: ca, caKey: key}
	p.serial.Store(100)
	p.CAFile = p.write(name+"-ca.pem", pemBlock("CERTIFICATE", der))
	return p
}

// Pool returns a pool holding the CA, for clients' RootCAs.
func (p *PKI) Pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(p.ca)
	return pool
}

// Server issues a server certificate for 127.0.0.1, ::1 and localhost.
func (p *PKI) Server(name string) *Cert {
	return p.Issue(name, x509.Certificate{
		Subject:     pkix.Name{CommonName: "localhost"},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
}

// Client issues a client certificate with common name cn.
func (p *PKI) Client(name, cn string) *Cert {
	return p.Issue(name, x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
}

// Issue signs tmpl (its subject, SANs, usages; validity defaults to an
// hour ago until tomorrow, serial to the next one) and writes name.pem and
// name-key.pem.
func (p *PKI) Issue(name string, tmpl x509.Certificate) *Cert {
	p.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		p.t.Fatal(err)
	}
	now := time.Now()
	if tmpl.SerialNumber == nil {
		tmpl.SerialNumber = big.NewInt(p.serial.Add(1))
	}
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = now.Add(-time.Hour)
	}
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = now.Add(24 * time.Hour)
	}
	tmpl.KeyUsage |= x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		p.t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		p.t.Fatal(err)
	}
	c := &Cert{Leaf: leaf}
	c.CertFile = p.write(name+".pem", pemBlock("CERTIFICATE", der))
	c.KeyFile = p.write(name+"-key.pem", pemBlock("EC PRIVATE KEY", kder))
	c.TLS = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
	return c
}

// CRL writes a revocation list (PEM) naming the given certificates and
// returns its path.
func (p *PKI) CRL(name string, revoked ...*Cert) string {
	p.t.Helper()
	now := time.Now()
	var entries []x509.RevocationListEntry
	for _, c := range revoked {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: c.Leaf.SerialNumber, RevocationTime: now.Add(-time.Minute)})
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(p.serial.Add(1)), ThisUpdate: now.Add(-time.Hour), NextUpdate: now.Add(24 * time.Hour),
		RevokedCertificateEntries: entries,
	}, p.ca, p.caKey)
	if err != nil {
		p.t.Fatal(err)
	}
	return p.write(name+".pem", pemBlock("X509 CRL", der))
}

// ClientConfig returns a client *tls.Config trusting the CA, presenting
// cert when it is not nil.
func (p *PKI) ClientConfig(cert *Cert) *tls.Config {
	cfg := &tls.Config{RootCAs: p.Pool(), ServerName: "localhost"}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{cert.TLS}
	}
	return cfg
}

// ClientConfigSending is ClientConfig presenting cert whatever the
// server asks for. A Go client otherwise sends only a certificate issued
// by a CA the server names as acceptable, so one from another CA would
// not be sent at all, and a test of its refusal would test nothing.
func (p *PKI) ClientConfigSending(cert *Cert) *tls.Config {
	cfg := p.ClientConfig(nil)
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert.TLS, nil }
	return cfg
}

// IdentityACL is YAML for the tests of tls.identity: anonymous clients
// refused, each user may publish and subscribe below devices/<user>/
// (acl %u) and nowhere else, and the plaintext user watcher (password
// secret) may do anything.
const IdentityACL = `
auth:
  allow_anonymous: false
  users: [{username: watcher, password: secret}]
acl:
  default: deny
  rules:
    - {permission: allow, action: all, topic: "#", username: watcher}
    - {permission: allow, action: publish, topic: "devices/%u/#"}
    - {permission: allow, action: subscribe, topic: "devices/%u/#"}
`

func (p *PKI) write(name string, data []byte) string {
	p.t.Helper()
	path := filepath.Join(p.Dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		p.t.Fatal(err)
	}
	return path
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// TLSYAML returns the tls section for a server certificate, with the CA
// as client CA and extra lines (indented keys like "client_auth: require")
// appended.
func (p *PKI) TLSYAML(server *Cert, extra ...string) string {
	s := "tls:\n  cert_file: " + server.CertFile + "\n  key_file: " + server.KeyFile + "\n  ca_file: " + p.CAFile + "\n"
	for _, e := range extra {
		s += "  " + e + "\n"
	}
	return s
}

// PSKFile writes a pre-shared key file (tls.psk_file) of identity:hexkey
// lines and returns its path; keys maps identities to keys.
func (p *PKI) PSKFile(name string, keys map[string][]byte) string {
	var b strings.Builder
	for id, key := range keys {
		b.WriteString(id + ":" + hex.EncodeToString(key) + "\n")
	}
	return p.write(name, []byte(b.String()))
}
