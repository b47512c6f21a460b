package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"github.com/pion/dtls/v3"
	"github.com/pion/logging"
	"go.uber.org/zap"
)

// cidLength is the length of the connection IDs the server asks peers to
// send (RFC 9146): 8 random bytes make a collision among a listener's
// sessions negligible and cost 8 bytes per record.
const cidLength = 8

// Default DTLS suites: AEAD only (no CBC), with CoAP's mandatory ones
// (RFC 7252 §9.1.3: TLS_PSK_WITH_AES_128_CCM_8 for pre-shared keys,
// TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8 for certificates).
var (
	defaultDTLSCertSuites = []dtls.CipherSuiteID{
		dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, dtls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		dtls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, dtls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		dtls.TLS_ECDHE_ECDSA_WITH_AES_128_CCM, dtls.TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8,
	}
	defaultDTLSPSKSuites = []dtls.CipherSuiteID{
		dtls.TLS_PSK_WITH_AES_128_GCM_SHA256, dtls.TLS_PSK_WITH_AES_128_CCM,
		dtls.TLS_PSK_WITH_AES_128_CCM_8, dtls.TLS_PSK_WITH_AES_256_CCM_8,
	}
)

// dtlsParts is a DTLS server configuration, built once and handed out
// as a *dtls.Config or as options.
type dtlsParts struct {
	getCert    func(*dtls.ClientHelloInfo) (*tls.Certificate, error)
	psk        dtls.PSKCallback
	clientAuth dtls.ClientAuthType
	verify     func([][]byte, [][]*x509.Certificate) error
	suites     []dtls.CipherSuiteID
	cid        func() []byte
	protos     []string
	logger     logging.LoggerFactory
}

// DTLSConfig returns a pion/dtls server configuration for one DTLS
// listener (dtls.Listen, dtls.Server, go-coap's DTLS server). alpn is as
// for ServerConfig (CoAP and MQTT-SN offer none).
//
// The certificate is served through GetCertificate and the pre-shared
// keys through the PSK callback, both reading the current material, so a
// reload reaches new handshakes. Client certificates are verified here,
// against the current CA pool and CRL, rather than by pion with a fixed
// ClientCAs pool, for the same reason. Extended master secret is
// required; connection IDs are offered when connection_id is true (the
// listener must then route datagrams by CID, as dtls.Listen does). pion
// sends a cookie (HelloVerifyRequest) before any handshake state, so the
// listener cannot amplify; bounding handshakes per address
// (max_handshakes_per_addr) and their time (handshake_timeout) is the
// listener's part. Do not add a SessionStore without more work: pion's
// resumed sessions carry no peer certificate, so they would skip the
// checks above and lose the identity.
//
//lint:ignore SA1019 go-coap v3.5.1's DTLS server takes a *dtls.Config; DTLSServerOptions is the options form.
func (s *Source) DTLSConfig(alpn ...string) (*dtls.Config, error) {
	p, err := s.dtlsParts(alpn)
	if err != nil {
		return nil, err
	}
	//lint:ignore SA1019 go-coap v3.5.1's DTLS server takes a *dtls.Config; DTLSServerOptions is the options form.
	return &dtls.Config{
		GetCertificate:        p.getCert,
		PSK:                   p.psk,
		ClientAuth:            p.clientAuth,
		VerifyPeerCertificate: p.verify,
		CipherSuites:          p.suites,
		ExtendedMasterSecret:  dtls.RequireExtendedMasterSecret,
		ConnectionIDGenerator: p.cid,
		SupportedProtocols:    p.protos,
		LoggerFactory:         p.logger,
	}, nil
}

// DTLSServerOptions is DTLSConfig as options, for dtls.ListenWithOptions
// and dtls.ServerWithOptions.
func (s *Source) DTLSServerOptions(alpn ...string) ([]dtls.ServerOption, error) {
	p, err := s.dtlsParts(alpn)
	if err != nil {
		return nil, err
	}
	opts := []dtls.ServerOption{
		dtls.WithClientAuth(p.clientAuth),
		dtls.WithCipherSuites(p.suites...),
		dtls.WithExtendedMasterSecret(dtls.RequireExtendedMasterSecret),
		dtls.WithLoggerFactory(p.logger),
	}
	if p.getCert != nil {
		opts = append(opts, dtls.WithGetCertificate(p.getCert))
	}
	if p.psk != nil {
		opts = append(opts, dtls.WithPSK(p.psk))
	}
	if p.verify != nil {
		opts = append(opts, dtls.WithVerifyPeerCertificate(p.verify))
	}
	if p.cid != nil {
		opts = append(opts, dtls.WithConnectionIDGenerator(p.cid))
	}
	if len(p.protos) > 0 {
		opts = append(opts, dtls.WithSupportedProtocols(p.protos...))
	}
	return opts, nil
}

func (s *Source) dtlsParts(alpn []string) (dtlsParts, error) {
	c := s.cfg
	if _, err := tlsVersion(c.MinVersion); err != nil {
		return dtlsParts{}, c.errorf("min_version", "%v", err)
	}
	if c.MinVersion == "1.3" {
		return dtlsParts{}, c.errorf("min_version", "1.3: pion/dtls implements DTLS 1.2 only; set min_version 1.2 in this listener's own section")
	}
	p := dtlsParts{logger: zapPionLogger{s.log.Named("dtls")}}
	hasCert, hasPSK := c.CertFile != "", c.PSKFile != ""
	if hasCert {
		p.getCert = func(*dtls.ClientHelloInfo) (*tls.Certificate, error) {
			return s.cur.Load().cert, nil
		}
	}
	if hasPSK {
		p.psk = func(identity []byte) ([]byte, error) {
			key, ok := s.cur.Load().psk[string(identity)]
			if !ok {
				return nil, fmt.Errorf("unknown PSK identity %q", identity)
			}
			return key, nil
		}
	}
	switch c.ClientAuth {
	case ClientAuthRequest:
		// pion only asks; verify below checks what is sent.
		p.clientAuth = dtls.RequestClientCert
	case ClientAuthRequire:
		p.clientAuth = dtls.RequireAnyClientCert
	}
	if c.ClientAuth != ClientAuthNone {
		p.verify = s.verifyDTLSClient
	}
	var err error
	if p.suites, err = s.dtlsSuites(hasCert, hasPSK); err != nil {
		return dtlsParts{}, err
	}
	if c.ConnectionID {
		p.cid = dtls.RandomCIDGenerator(cidLength)
	}
	p.protos = append([]string(nil), alpn...)
	if len(c.ALPN) > 0 {
		p.protos = append([]string(nil), c.ALPN...)
	}
	return p, nil
}

// dtlsSuites returns the configured suites pion implements (or the
// defaults), checking that certificates and PSKs each have one.
func (s *Source) dtlsSuites(hasCert, hasPSK bool) ([]dtls.CipherSuiteID, error) {
	c := s.cfg
	if len(c.CipherSuites) == 0 {
		var ids []dtls.CipherSuiteID
		if hasCert {
			ids = append(ids, defaultDTLSCertSuites...)
		}
		if hasPSK {
			ids = append(ids, defaultDTLSPSKSuites...)
		}
		return ids, nil
	}
	var ids []dtls.CipherSuiteID
	var skipped []string
	var certOK, pskOK bool
	for _, name := range c.CipherSuites {
		id, ok := dtlsSuites[name]
		if !ok {
			skipped = append(skipped, name) // TLS-only, in a shared section
			continue
		}
		ids = append(ids, id)
		if isPSKSuite(name) {
			pskOK = true
		} else {
			certOK = true
		}
	}
	var errs []error
	if hasCert && !certOK {
		errs = append(errs, c.errorf("cipher_suites", "no certificate suite pion/dtls implements among %v, but %s is set", c.CipherSuites, c.Key("cert_file")))
	}
	if hasPSK && !pskOK {
		errs = append(errs, c.errorf("cipher_suites", "no TLS_PSK_ suite among %v, but %s is set", c.CipherSuites, c.Key("psk_file")))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if len(skipped) > 0 {
		s.log.Info("cipher suites DTLS does not implement are skipped for this listener", zap.String("key", c.Key("cipher_suites")), zap.Strings("skipped", skipped))
	}
	return ids, nil
}

// isPSKSuite tells PSK suites (TLS_PSK_*, TLS_ECDHE_PSK_*) by name.
func isPSKSuite(name string) bool {
	return strings.HasPrefix(name, "TLS_PSK_") || strings.HasPrefix(name, "TLS_ECDHE_PSK_")
}

// verifyDTLSClient verifies a client's certificate chain against the
// current CA pool and CRL, with the checks crypto/tls makes for a server
// (client-auth extended key usage).
func (s *Source) verifyDTLSClient(raw [][]byte, _ [][]*x509.Certificate) error {
	if len(raw) == 0 {
		if s.cfg.ClientAuth == ClientAuthRequire {
			return errors.New("client certificate required")
		}
		return nil
	}
	certs := make([]*x509.Certificate, len(raw))
	for i, der := range raw {
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return fmt.Errorf("client certificate %d: %w", i+1, err)
		}
		certs[i] = cert
	}
	m := s.cur.Load()
	inter := x509.NewCertPool()
	for _, cert := range certs[1:] {
		inter.AddCert(cert)
	}
	chains, err := certs[0].Verify(x509.VerifyOptions{
		Roots:         m.clientCAs,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return fmt.Errorf("client certificate: %w", err)
	}
	return m.checkRevoked(chains)
}

// DTLSIdentity returns the user name of a DTLS connection: its PSK
// identity when a pre-shared key was used (the key proves it, whatever
// the identity key says), else the client certificate's name under the
// identity key. The certificate was verified during the handshake
// (verifyDTLSClient refuses any other), so it is only parsed here.
func (s *Source) DTLSIdentity(state *dtls.State) (string, bool) {
	if len(state.IdentityHint) > 0 && len(state.PeerCertificates) == 0 {
		return string(state.IdentityHint), true
	}
	if len(state.PeerCertificates) == 0 || s.cfg.ClientAuth == ClientAuthNone {
		return "", false
	}
	cert, err := x509.ParseCertificate(state.PeerCertificates[0])
	if err != nil {
		return "", false
	}
	return certIdentity(s.cfg.Identity, cert)
}

// zapPionLogger sends pion's log lines to zap. Its trace lines (one per
// record) are dropped and its debug lines go to debug, so they cost
// nothing at the default level.
type zapPionLogger struct{ log *zap.Logger }

// NewLogger implements logging.LoggerFactory.
func (z zapPionLogger) NewLogger(scope string) logging.LeveledLogger {
	return zapLeveled{z.log.Named(scope).Sugar()}
}

// zapLeveled implements pion's logging.LeveledLogger; each method logs
// at the zap level of its name.
type zapLeveled struct{ s *zap.SugaredLogger }

func (z zapLeveled) Trace(string)                 {}
func (z zapLeveled) Tracef(string, ...any)        {}
func (z zapLeveled) Debug(msg string)             { z.s.Debug(msg) }
func (z zapLeveled) Debugf(f string, args ...any) { z.s.Debugf(f, args...) }
func (z zapLeveled) Info(msg string)              { z.s.Info(msg) }
func (z zapLeveled) Infof(f string, args ...any)  { z.s.Infof(f, args...) }
func (z zapLeveled) Warn(msg string)              { z.s.Warn(msg) }
func (z zapLeveled) Warnf(f string, args ...any)  { z.s.Warnf(f, args...) }
func (z zapLeveled) Error(msg string)             { z.s.Error(msg) }
func (z zapLeveled) Errorf(f string, args ...any) { z.s.Errorf(f, args...) }
