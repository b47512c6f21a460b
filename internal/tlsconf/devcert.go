package tlsconf

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// DevClientCN is the common name of the client certificate WriteDevCerts
// makes (the user name with identity: cn).
const DevClientCN = "dev-client"

// devValidity is how long the throw-away certificates last: long enough
// for a development machine, short enough not to live on in production.
const devValidity = 365 * 24 * time.Hour

// DevFiles are the paths WriteDevCerts wrote.
type DevFiles struct {
	CA, CAKey         string // ca.pem, ca-key.pem
	Server, ServerKey string // server.pem, server-key.pem: 127.0.0.1, ::1, localhost
	Client, ClientKey string // client.pem, client-key.pem: CN dev-client
}

// WriteDevCerts writes a throw-away CA, a server certificate for
// 127.0.0.1, ::1 and localhost and a client certificate (CN dev-client)
// into dir, made if missing. Keys are ECDSA P-256, written unencrypted and
// readable by the owner only. Existing files are kept (an error) unless
// overwrite: one of them might be a real CA's key.
func WriteDevCerts(dir string, overwrite bool) (DevFiles, error) {
	f := DevFiles{
		CA: filepath.Join(dir, "ca.pem"), CAKey: filepath.Join(dir, "ca-key.pem"),
		Server: filepath.Join(dir, "server.pem"), ServerKey: filepath.Join(dir, "server-key.pem"),
		Client: filepath.Join(dir, "client.pem"), ClientKey: filepath.Join(dir, "client-key.pem"),
	}
	if !overwrite {
		for _, p := range []string{f.CA, f.CAKey, f.Server, f.ServerKey, f.Client, f.ClientKey} {
			if _, err := os.Lstat(p); err == nil {
				return f, fmt.Errorf("%s exists: not overwritten", p)
			}
		}
	}
	now := time.Now()
	ca, err := newCA("iotgw development CA", now.Add(-time.Hour), now.Add(devValidity))
	if err != nil {
		return f, err
	}
	server, err := ca.issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "localhost"},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return f, err
	}
	client, err := ca.issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: DevClientCN},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return f, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return f, err
	}
	var errs []error
	for _, w := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{f.CA, ca.certPEM(), 0o644}, {f.CAKey, ca.keyPEM(), 0o600},
		{f.Server, server.certPEM(), 0o644}, {f.ServerKey, server.keyPEM(), 0o600},
		{f.Client, client.certPEM(), 0o644}, {f.ClientKey, client.keyPEM(), 0o600},
	} {
		errs = append(errs, os.WriteFile(w.path, w.data, w.mode))
	}
	return f, errors.Join(errs...)
}

// keyPair is a certificate with its private key; WriteDevCerts and the
// tests make theirs with it.
type keyPair struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// newCA makes a self-signed CA valid from notBefore to notAfter.
func newCA(cn string, notBefore, notAfter time.Time) (*keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	return sign(tmpl, tmpl, key, key)
}

// issue signs a leaf certificate from tmpl with a new P-256 key. tmpl's
// serial and validity are filled in when zero (a random serial, the
// CA's validity).
func (ca *keyPair) issue(tmpl *x509.Certificate) (*keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	t := *tmpl
	if t.SerialNumber == nil {
		if t.SerialNumber, err = randomSerial(); err != nil {
			return nil, err
		}
	}
	if t.NotBefore.IsZero() {
		t.NotBefore = ca.cert.NotBefore
	}
	if t.NotAfter.IsZero() {
		t.NotAfter = ca.cert.NotAfter
	}
	if t.KeyUsage == 0 {
		t.KeyUsage = x509.KeyUsageDigitalSignature
	}
	return sign(&t, ca.cert, key, ca.key)
}

// sign makes the certificate tmpl for key, signed by parent's signer.
func sign(tmpl, parent *x509.Certificate, key, signer crypto.Signer) (*keyPair, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), signer)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &keyPair{cert: cert, key: key}, nil
}

// randomSerial is a 128-bit random serial number (RFC 5280 allows 20
// bytes; randomness keeps two dev CAs' serials apart).
func randomSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
}

// certPEM is the certificate as a PEM CERTIFICATE block.
func (k *keyPair) certPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: k.cert.Raw})
}

// keyPEM is the private key as an unencrypted PKCS#8 PEM block.
func (k *keyPair) keyPEM() []byte {
	der, err := x509.MarshalPKCS8PrivateKey(k.key)
	if err != nil {
		panic(err) // an ECDSA P-256 key always marshals
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}
