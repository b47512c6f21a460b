package main

// TLS for the stream protocols (-tls, -tls-ca): MQTT and STOMP over TLS,
// and their WebSocket variants over wss://.

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
)

// benchTLS is the client TLS configuration of every TCP and WebSocket
// connection (-tls, -tls-ca); nil dials plaintext. benchVerifier checks
// the servers' certificates.
var (
	benchTLS      *tls.Config
	benchVerifier *verifier
)

// tlsFlags are the TLS options as parsed.
type tlsFlags struct {
	on         bool
	caFile     string
	serverName string
}

// clientTLS builds benchTLS from the flags: nil without -tls or -tls-ca.
//
// Every connection makes a full handshake (no session cache: the cost of
// a device that connects for the first time, or whose ticket expired).
// The key exchange is X25519 alone: Go's defaults would pick the
// post-quantum hybrid X25519MLKEM768 with a Go broker and X25519 with
// OpenSSL 3.0 (Debian's mosquitto), so the brokers would not do the same
// work. The server's certificate chain is verified against -tls-ca once
// per distinct certificate, then recognised by its bytes: the load
// generator shares a machine with the brokers, and repeating the chain's
// signature checks for every connection would spend its CPU time, not
// theirs (the handshake's own signature is still checked every time).
func (f tlsFlags) clientTLS() (*tls.Config, *verifier, error) {
	if !f.on && f.caFile == "" {
		return nil, nil, nil
	}
	var roots *x509.CertPool
	if f.caFile != "" {
		pem, err := os.ReadFile(f.caFile)
		if err != nil {
			return nil, nil, fmt.Errorf("-tls-ca: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("-tls-ca %s: no PEM certificate in it", f.caFile)
		}
	} else {
		var err error
		if roots, err = x509.SystemCertPool(); err != nil {
			return nil, nil, fmt.Errorf("-tls without -tls-ca: system roots: %w", err)
		}
	}
	return &tls.Config{
		ServerName:       f.serverName,
		CurvePreferences: []tls.CurveID{tls.X25519},
		// Verification is the verifier's (tlsFor), against roots.
		InsecureSkipVerify: true,
		MinVersion:         tls.VersionTLS12,
	}, &verifier{roots: roots}, nil
}

// verifier checks server certificates against roots and remembers the
// leaf certificates it has accepted, by their bytes and server name.
type verifier struct {
	roots *x509.CertPool
	mu    sync.Mutex
	ok    map[string]bool // server name + leaf DER
}

// verify checks the server's certificate for the server name (a host
// name or an IP address: no SNI carries an IP, so it is not read from cs).
func (v *verifier) verify(cs tls.ConnectionState, name string) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("tls: the server sent no certificate")
	}
	leaf := cs.PeerCertificates[0]
	key := name + "\x00" + string(leaf.Raw)
	v.mu.Lock()
	known := v.ok[key]
	v.mu.Unlock()
	if known {
		return nil
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: v.roots, Intermediates: inter, DNSName: name}); err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	v.mu.Lock()
	if v.ok == nil {
		v.ok = map[string]bool{}
	}
	v.ok[key] = true
	v.mu.Unlock()
	return nil
}

// tlsFor returns benchTLS for a connection to addr (host:port): with the
// host as server name unless -tls-server-name set one.
func tlsFor(addr string) *tls.Config {
	cfg := benchTLS.Clone()
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr
		}
		cfg.ServerName = host
	}
	name, v := cfg.ServerName, benchVerifier
	cfg.VerifyConnection = func(cs tls.ConnectionState) error { return v.verify(cs, name) }
	return cfg
}

// handshakeTLS runs the client handshake on nc, bounded by nc's deadline.
func handshakeTLS(nc net.Conn, addr string) (net.Conn, error) {
	tc := tls.Client(nc, tlsFor(addr))
	if err := tc.Handshake(); err != nil {
		nc.Close()
		return nil, fmt.Errorf("TLS handshake with %s: %w", addr, err)
	}
	return tc, nil
}
