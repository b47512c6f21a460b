package tlsconf

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
)

// dtlsServer is a pion/dtls echo listener on 127.0.0.1:0; each
// handshake's outcome goes to results.
type dtlsServer struct {
	addr    *net.UDPAddr
	results chan dtlsResult
}

type dtlsResult struct {
	state *dtls.State
	err   error
}

// listenDTLS starts a listener from the source's DTLSConfig, or from its
// DTLSServerOptions: the two forms must behave the same.
func listenDTLS(t *testing.T, s *Source, useOptions bool) *dtlsServer {
	t.Helper()
	laddr := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}
	var ln net.Listener
	var err error
	if useOptions {
		opts, oerr := s.DTLSServerOptions()
		if oerr != nil {
			t.Fatal(oerr)
		}
		ln, err = dtls.ListenWithOptions("udp", laddr, opts...)
	} else {
		cfg, cerr := s.DTLSConfig()
		if cerr != nil {
			t.Fatal(cerr)
		}
		//lint:ignore SA1019 DTLSConfig is for consumers that take a *dtls.Config; this is one.
		ln, err = dtls.Listen("udp", laddr, cfg)
	}
	if err != nil {
		t.Fatal(err)
	}
	// Handshakes still running at the end (a peer that never finished)
	// end with the test.
	ctx, stop := context.WithCancel(context.Background())
	t.Cleanup(func() { stop(); ln.Close() })
	srv := &dtlsServer{addr: ln.Addr().(*net.UDPAddr), results: make(chan dtlsResult, 16)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c *dtls.Conn) {
				defer c.Close()
				hctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				defer cancel()
				if err := c.HandshakeContext(hctx); err != nil {
					srv.results <- dtlsResult{err: err}
					return
				}
				st, _ := c.ConnectionState()
				srv.results <- dtlsResult{state: &st}
				buf := make([]byte, 1500)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					if _, err := c.Write(buf[:n]); err != nil {
						return
					}
				}
			}(c.(*dtls.Conn))
		}
	}()
	return srv
}

// dial makes a DTLS handshake and one echo round trip with opts.
func (srv *dtlsServer) dial(t *testing.T, opts ...dtls.ClientOption) (*dtls.Conn, error) {
	t.Helper()
	return srv.dialWithin(t, 20*time.Second, opts...)
}

// dialWithin is dial with a handshake bound. A peer with a wrong key is
// never answered (DTLS drops records it cannot decrypt), so its refusal
// is a handshake that does not finish; a short bound keeps that test
// quick and cannot make a handshake that should fail pass.
func (srv *dtlsServer) dialWithin(t *testing.T, d time.Duration, opts ...dtls.ClientOption) (*dtls.Conn, error) {
	t.Helper()
	c, err := dtls.DialWithOptions("udp", srv.addr, opts...)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := c.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, err
	}
	if err := c.SetDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := echo(c); err != nil {
		c.Close()
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	return c, nil
}

// result waits for the server's side of the next handshake.
func (srv *dtlsServer) result(t *testing.T) dtlsResult {
	t.Helper()
	select {
	case r := <-srv.results:
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("no DTLS handshake reached the server")
	}
	return dtlsResult{}
}

// pskClient is a client holding one pre-shared key.
func pskClient(identity string, key []byte) []dtls.ClientOption {
	return []dtls.ClientOption{
		dtls.WithPSK(func([]byte) ([]byte, error) { return key, nil }),
		dtls.WithPSKIdentityHint([]byte(identity)),
		dtls.WithCipherSuites(dtls.TLS_PSK_WITH_AES_128_CCM_8),
		dtls.WithExtendedMasterSecret(dtls.RequireExtendedMasterSecret),
	}
}

// TestDTLSPSK: a pion client with a key from psk_file connects and its
// PSK identity is the user name; a wrong key and an unknown identity
// are refused; a new psk_file reaches the next handshake.
func TestDTLSPSK(t *testing.T) {
	for _, useOptions := range []bool{false, true} {
		t.Run(fmt.Sprintf("options=%v", useOptions), func(t *testing.T) {
			p := newPKI(t)
			c := DefaultConfig()
			c.PSKFile = p.write("psk.txt", []byte("# id:key\ndev1:000102030405060708090a0b0c0d0e0f\n"))
			s, _ := newTestSource(t, c, sourceOptions{noEvents: true})
			srv := listenDTLS(t, s, useOptions)
			key := []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}

			if _, err := srv.dial(t, pskClient("dev1", key)...); err != nil {
				t.Fatal(err)
			}
			r := srv.result(t)
			if r.err != nil {
				t.Fatal(r.err)
			}
			if name, ok := s.DTLSIdentity(r.state); name != "dev1" || !ok {
				t.Fatalf("identity %q %v", name, ok)
			}
			// On a listener of its own: its server side ends only with the test.
			if _, err := listenDTLS(t, s, useOptions).dialWithin(t, 2*time.Second, pskClient("dev1", []byte("wrong key......."))...); err == nil {
				t.Fatal("a wrong key connected")
			}
			if _, err := srv.dial(t, pskClient("dev2", key)...); err == nil {
				t.Fatal("an unknown identity connected")
			}
			if r := srv.result(t); r.err == nil || !strings.Contains(r.err.Error(), "unknown PSK identity") {
				t.Fatalf("server error %v", r.err)
			}

			p.write("psk.txt", []byte("dev2:000102030405060708090a0b0c0d0e0f\n"))
			if err := s.Reload(); err != nil {
				t.Fatal(err)
			}
			if _, err := srv.dial(t, pskClient("dev2", key)...); err != nil {
				t.Fatalf("after the psk_file reload: %v", err)
			}
			srv.result(t)
		})
	}
}

// TestDTLSCertificates: certificate handshakes with client_auth require
// and identity cn, against the current CA and CRL; a reloaded server
// certificate reaches the next handshake; connection IDs are offered.
func TestDTLSCertificates(t *testing.T) {
	for _, useOptions := range []bool{false, true} {
		t.Run(fmt.Sprintf("options=%v", useOptions), func(t *testing.T) {
			p := newPKI(t)
			revoked := p.client(x509.Certificate{Subject: pkix.Name{CommonName: "stolen"}})
			c := p.config(p.server(0x51))
			c.CAFile, c.ClientAuth, c.Identity = filepath.Join(p.dir, "ca.pem"), ClientAuthRequire, IdentityCN
			c.CRLFile = p.write("ca.crl", p.crl(revoked))
			s, _ := newTestSource(t, c, sourceOptions{noEvents: true})
			srv := listenDTLS(t, s, useOptions)
			client := func(certs ...*keyPair) []dtls.ClientOption {
				opts := []dtls.ClientOption{
					dtls.WithRootCAs(p.pool()),
					dtls.WithServerName("localhost"),
					dtls.WithExtendedMasterSecret(dtls.RequireExtendedMasterSecret),
					// Sends connection IDs the server asks for (RFC 9146).
					dtls.WithConnectionIDGenerator(dtls.OnlySendCIDGenerator()),
				}
				for _, kp := range certs {
					opts = append(opts, dtls.WithCertificates(kp.tlsCert()))
				}
				return opts
			}
			dev := p.client(x509.Certificate{Subject: pkix.Name{CommonName: "coap-dev-1"}})
			conn, err := srv.dial(t, client(dev)...)
			if err != nil {
				t.Fatal(err)
			}
			r := srv.result(t)
			if r.err != nil {
				t.Fatal(r.err)
			}
			if name, ok := s.DTLSIdentity(r.state); name != "coap-dev-1" || !ok {
				t.Fatalf("identity %q %v", name, ok)
			}
			st, _ := conn.ConnectionState()
			if got := serialOf(t, st.PeerCertificates[0]); got != "51" {
				t.Fatalf("serial %s", got)
			}

			stranger := newPKI(t)
			for name, opts := range map[string][]dtls.ClientOption{
				"no certificate": client(),
				"revoked":        client(revoked),
				"untrusted":      client(stranger.client(x509.Certificate{Subject: pkix.Name{CommonName: "x"}})),
			} {
				if _, err := srv.dial(t, opts...); err == nil {
					t.Fatalf("%s: connected", name)
				}
				if r := srv.result(t); r.err == nil {
					t.Fatalf("%s: the server saw no error", name)
				}
			}

			next := p.server(0x52)
			p.write("server.pem", next.certPEM())
			p.write("server-key.pem", next.keyPEM())
			if err := s.Reload(); err != nil {
				t.Fatal(err)
			}
			conn2, err := srv.dial(t, client(dev)...)
			if err != nil {
				t.Fatal(err)
			}
			srv.result(t)
			st2, _ := conn2.ConnectionState()
			if got := serialOf(t, st2.PeerCertificates[0]); got != "52" {
				t.Fatalf("serial after reload %s", got)
			}
			if err := echo(conn); err != nil {
				t.Fatalf("the connection made before the reload: %v", err)
			}
		})
	}
}

func serialOf(t *testing.T, der []byte) string {
	t.Helper()
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%X", cert.SerialNumber)
}

func TestDTLSConfigShape(t *testing.T) {
	p := newPKI(t)
	c := p.config(p.server(1))
	c.PSKFile = p.write("psk", []byte("a:01\n"))
	s, _ := newTestSource(t, c, sourceOptions{noEvents: true})
	cfg, err := s.DTLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ExtendedMasterSecret != dtls.RequireExtendedMasterSecret || cfg.ConnectionIDGenerator == nil || len(cfg.ConnectionIDGenerator()) != cidLength {
		t.Fatalf("config %+v", cfg)
	}
	if len(cfg.CipherSuites) != len(defaultDTLSCertSuites)+len(defaultDTLSPSKSuites) || cfg.GetCertificate == nil || cfg.PSK == nil {
		t.Fatalf("suites %v", cfg.CipherSuites)
	}
	if cfg.InsecureSkipVerifyHello {
		t.Fatal("cookie exchange off")
	}
	c.ConnectionID = false
	s2, _ := newTestSource(t, c, sourceOptions{noEvents: true})
	if cfg, _ := s2.DTLSConfig(); cfg.ConnectionIDGenerator != nil {
		t.Fatal("connection IDs offered with connection_id false")
	}

	c.MinVersion = "1.3"
	s3, _ := newTestSource(t, c, sourceOptions{noEvents: true})
	_, err = s3.DTLSConfig()
	wantErr(t, err, "tls.min_version", "DTLS 1.2")

	c.MinVersion = "1.2"
	c.CipherSuites = []string{"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"}
	s4, _ := newTestSource(t, c, sourceOptions{noEvents: true})
	_, err = s4.DTLSConfig()
	wantErr(t, err, "tls.cipher_suites", "TLS_PSK_", "tls.psk_file")
}
