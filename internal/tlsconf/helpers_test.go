package tlsconf

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// testPKI is a CA made for one test, with helpers to issue and write
// certificates into the test's directory.
type testPKI struct {
	t   *testing.T
	dir string
	ca  *keyPair
}

func newPKI(t *testing.T) *testPKI {
	t.Helper()
	now := time.Now()
	ca, err := newCA("test CA", now.Add(-time.Hour), now.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return &testPKI{t: t, dir: t.TempDir(), ca: ca}
}

// server issues a server certificate for 127.0.0.1 and localhost with the
// given serial.
func (p *testPKI) server(serial int64) *keyPair {
	p.t.Helper()
	kp, err := p.ca.issue(&x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		p.t.Fatal(err)
	}
	return kp
}

// client issues a client certificate from tmpl (Subject, SANs, validity).
func (p *testPKI) client(tmpl x509.Certificate) *keyPair {
	p.t.Helper()
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	kp, err := p.ca.issue(&tmpl)
	if err != nil {
		p.t.Fatal(err)
	}
	return kp
}

// crl is a PEM CRL of the CA revoking kps.
func (p *testPKI) crl(kps ...*keyPair) []byte {
	p.t.Helper()
	var entries []x509.RevocationListEntry
	for _, kp := range kps {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: kp.cert.SerialNumber, RevocationTime: time.Now()})
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:                    big.NewInt(1),
		ThisUpdate:                time.Now().Add(-time.Minute),
		NextUpdate:                time.Now().Add(time.Hour),
		RevokedCertificateEntries: entries,
	}, p.ca.cert, p.ca.key)
	if err != nil {
		p.t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
}

// write writes data to name in the test's directory and returns the path.
func (p *testPKI) write(name string, data []byte) string {
	p.t.Helper()
	path := filepath.Join(p.dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		p.t.Fatal(err)
	}
	return path
}

// config is a Config with the server pair kp written as server.pem and
// server-key.pem and the CA as ca.pem.
func (p *testPKI) config(kp *keyPair) Config {
	c := DefaultConfig()
	c.CertFile = p.write("server.pem", kp.certPEM())
	c.KeyFile = p.write("server-key.pem", kp.keyPEM())
	p.write("ca.pem", p.ca.certPEM())
	c.ReloadInterval = 0
	return c
}

// pool is a pool of the CA, for clients.
func (p *testPKI) pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(p.ca.cert)
	return pool
}

// tlsCert is kp as a tls.Certificate, for clients.
func (kp *keyPair) tlsCert() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{kp.cert.Raw}, PrivateKey: kp.key, Leaf: kp.cert}
}

// observed is a logger whose entries the test reads.
func observed() (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zap.DebugLevel)
	return zap.New(core), logs
}

// newTestSource is NewSource for tests, failing the test on an error.
func newTestSource(t *testing.T, c Config, opts sourceOptions) (*Source, *observer.ObservedLogs) {
	t.Helper()
	log, logs := observed()
	s, err := newSource(c, log, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, logs
}

// tlsServer is an echo server on 127.0.0.1:0 with cfg; each handshake's
// result goes to states (the state, or the error).
type tlsServer struct {
	addr   string
	states chan serverResult
}

type serverResult struct {
	state tls.ConnectionState
	err   error
}

func startTLSServer(t *testing.T, cfg *tls.Config) *tlsServer {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	srv := &tlsServer{addr: ln.Addr().String(), states: make(chan serverResult, 16)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c *tls.Conn) {
				defer c.Close()
				if err := c.Handshake(); err != nil {
					srv.states <- serverResult{err: err}
					return
				}
				srv.states <- serverResult{state: c.ConnectionState()}
				_, _ = io.Copy(c, c)
			}(c.(*tls.Conn))
		}
	}()
	return srv
}

// dial connects a client with cfg and checks one echo round trip (in
// TLS 1.3 a refused client certificate shows only when reading).
func (srv *tlsServer) dial(t *testing.T, cfg *tls.Config) (*tls.Conn, error) {
	t.Helper()
	c, err := tls.Dial("tcp", srv.addr, cfg)
	if err != nil {
		return nil, err
	}
	if err := echo(c); err != nil {
		c.Close()
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	return c, nil
}

// echo writes a line and reads it back.
func echo(c net.Conn) error {
	msg := []byte("ping\n")
	if _, err := c.Write(msg); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != string(msg) {
		return errors.New("echo mismatch")
	}
	return nil
}

// result waits for the server's view of the next handshake.
func (srv *tlsServer) result(t *testing.T) serverResult {
	t.Helper()
	select {
	case r := <-srv.states:
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("no handshake reached the server")
	}
	return serverResult{}
}

// waitFor polls cond until it holds, failing the test after a generous
// deadline (the machine is shared and noisy; nothing here measures time).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// wantErr checks err names every one of want.
func wantErr(t *testing.T, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want one naming %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
}

// zapNop is a logger that drops everything.
func zapNop() *zap.Logger { return zap.NewNop() }
