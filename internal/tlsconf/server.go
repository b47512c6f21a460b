package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"sync/atomic"

	"go.uber.org/zap"
)

// ServerConfig returns the *tls.Config of one TLS listener: for
// tls.NewListener, or an http.Server's TLSConfig for WSS. alpn is what
// the listener offers when the alpn key is unset ("mqtt" for MQTT over
// TLS, "http/1.1" for WSS; none for STOMP). The listener should bound
// each handshake by handshake_timeout and take the client's name from
// Identity.
//
// Every handshake takes the material current at its ClientHello
// (GetConfigForClient), so certificate, client CAs and CRL change together
// on a reload; live connections are untouched. Session tickets are the
// returned Config's (Go rotates their keys); Go refuses to resume a
// session whose client chain no longer ends in a current CA, and the CRL
// is checked on resumed sessions too (VerifyConnection sees the chains).
func (s *Source) ServerConfig(alpn ...string) (*tls.Config, error) {
	c := s.cfg
	if c.CertFile == "" {
		return nil, c.errorf("cert_file", "not set: a TLS listener needs a certificate")
	}
	minV, err := tlsVersion(c.MinVersion)
	if err != nil {
		return nil, c.errorf("min_version", "%v", err)
	}
	var suites, skipped []string
	var ids []uint16
	for _, name := range c.CipherSuites {
		id, ok := tlsSuites[name]
		if !ok {
			// A DTLS-only name (TLS_PSK_..., ..._CCM) in a section
			// shared by both kinds of listener.
			skipped = append(skipped, name)
			continue
		}
		suites = append(suites, name)
		ids = append(ids, id)
	}
	if len(c.CipherSuites) > 0 && len(ids) == 0 {
		return nil, c.errorf("cipher_suites", "none of %v is a TLS cipher suite (they are DTLS-only); list TLS ones for this listener", c.CipherSuites)
	}
	if len(skipped) > 0 {
		s.log.Info("cipher suites TLS does not implement are skipped for this listener", zap.String("key", c.Key("cipher_suites")), zap.Strings("skipped", skipped), zap.Strings("used", suites))
	}
	protos := alpn
	if len(c.ALPN) > 0 {
		protos = c.ALPN
	}
	st := &serverTLS{src: s, base: &tls.Config{
		MinVersion:   minV,
		CipherSuites: ids,
		NextProtos:   append([]string(nil), protos...),
		ClientAuth:   clientAuthTLS(c.ClientAuth),
	}}
	return &tls.Config{MinVersion: minV, NextProtos: st.base.NextProtos, GetConfigForClient: st.forClient}, nil
}

// serverTLS is one listener's configuration: the fixed part, and the
// full *tls.Config of the material last seen, rebuilt once per reload
// rather than per handshake.
type serverTLS struct {
	src   *Source
	base  *tls.Config
	built atomic.Pointer[builtTLS]
}

// builtTLS is the listener's *tls.Config for one material.
type builtTLS struct {
	m   *material
	cfg *tls.Config
}

// forClient is GetConfigForClient: the configuration of the current
// material. Two handshakes racing after a reload may both build it; the
// results are equal.
func (st *serverTLS) forClient(*tls.ClientHelloInfo) (*tls.Config, error) {
	m := st.src.cur.Load()
	if b := st.built.Load(); b != nil && b.m == m {
		return b.cfg, nil
	}
	cfg := st.base.Clone()
	cfg.Certificates = []tls.Certificate{*m.cert}
	cfg.ClientCAs = m.clientCAs
	if m.revoked != nil {
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			return m.checkRevoked(cs.VerifiedChains)
		}
	}
	st.built.Store(&builtTLS{m: m, cfg: cfg})
	return cfg, nil
}

// clientAuthTLS maps client_auth to crypto/tls's policy: both modes verify
// a certificate that is sent, against ca_file.
func clientAuthTLS(mode string) tls.ClientAuthType {
	switch mode {
	case ClientAuthRequest:
		return tls.VerifyClientCertIfGiven
	case ClientAuthRequire:
		return tls.RequireAndVerifyClientCert
	}
	return tls.NoClientCert
}

// Identity returns the user name a TLS connection's client certificate
// gives under the identity key: the verified leaf's CN, first DNS SAN or
// first email SAN. false means identity is none, no verified certificate
// was sent (client_auth request), or the certificate lacks that name; a
// listener with identity set should then refuse the client rather than
// fall back to the name the client claims, as Mosquitto's
// use_identity_as_username does.
func (s *Source) Identity(state tls.ConnectionState) (string, bool) {
	if len(state.VerifiedChains) == 0 || len(state.VerifiedChains[0]) == 0 {
		return "", false
	}
	return certIdentity(s.cfg.Identity, state.VerifiedChains[0][0])
}

// certIdentity picks the name mode asks for out of a verified certificate.
func certIdentity(mode string, cert *x509.Certificate) (string, bool) {
	switch mode {
	case IdentityCN:
		return cert.Subject.CommonName, cert.Subject.CommonName != ""
	case IdentitySANDNS:
		if len(cert.DNSNames) > 0 {
			return cert.DNSNames[0], true
		}
	case IdentitySANEmail:
		if len(cert.EmailAddresses) > 0 {
			return cert.EmailAddresses[0], true
		}
	}
	return "", false
}
