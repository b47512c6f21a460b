// Package tlsconf is the TLS and DTLS material of iotgw's secured
// listeners: which files hold the certificate, key, client CAs, CRL and
// pre-shared keys, how they are loaded (with errors that name the
// configuration key), how they are renewed without a restart (Source),
// and the *tls.Config and pion/dtls configuration built from them.
//
// One Config serves every secured listener (the gateway's "tls" section);
// a listener may override some keys in a section of its own
// (mqtt.tls_config, coap.dtls_config, ...), merged with Config.Merge.
// Keys marked DTLS-only below are ignored by TLS listeners.
package tlsconf

import (
	"crypto/tls"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/pion/dtls/v3"
)

// Client authentication modes (the client_auth key).
const (
	ClientAuthNone    = "none"
	ClientAuthRequest = "request" // a certificate is asked for and verified if sent
	ClientAuthRequire = "require" // no verified certificate, no connection
)

// Identity modes (the identity key): which name of a verified client
// certificate becomes the user name authentication and ACL %u see.
const (
	IdentityNone     = "none"
	IdentityCN       = "cn"
	IdentitySANDNS   = "san_dns"
	IdentitySANEmail = "san_email"
)

// Config is one tls section: the shared one ("tls") or a listener's
// merged with its override.
type Config struct {
	// CertFile and KeyFile are the PEM server certificate (chain, leaf
	// first) and its unencrypted private key.
	CertFile string
	KeyFile  string
	// CAFile holds the PEM CA certificates client certificates are
	// verified against (client_auth request/require).
	CAFile string
	// ClientAuth is none, request or require.
	ClientAuth string
	// MinVersion is "1.2" or "1.3"; 1.0 and 1.1 are refused.
	MinVersion string
	// CipherSuites are IANA names (TLS_ECDHE_...); empty means Go's
	// secure defaults for TLS and ours for DTLS. TLS 1.3 suites are not
	// configurable in Go and are refused here rather than ignored.
	CipherSuites []string
	// ALPN replaces the protocols a listener offers by default ("mqtt"
	// for MQTT over TLS); empty keeps the listener's default.
	ALPN []string
	// Identity is none, cn, san_dns or san_email.
	Identity string
	// CRLFile holds PEM or DER certificate revocation lists; a client
	// certificate revoked by one is refused at the handshake.
	CRLFile string
	// PSKFile (DTLS-only) holds lines "identity:hexkey"; the PSK
	// identity becomes the user name.
	PSKFile string
	// ConnectionID (DTLS-only) offers RFC 9146 connection IDs, so a peer
	// behind a NAT keeps its session when its address changes.
	ConnectionID bool
	// MaxHandshakesPerAddr bounds handshakes in flight from one source
	// IP address (TLS and DTLS); 0 is unlimited. Enforced by the listener.
	MaxHandshakesPerAddr int
	// HandshakeTimeout is how long a listener waits for a handshake to
	// finish before dropping the peer. Enforced by the listener.
	HandshakeTimeout time.Duration
	// ReloadInterval is the period of the hash check that catches files
	// replaced without a file event (symlink swaps); 0 turns it off
	// (file events and Reload still work).
	ReloadInterval time.Duration

	// Section is the configuration section these values come from, for
	// error messages ("tls" unless set).
	Section string
	// from names, after Merge, the section of each key an override set.
	from map[string]string
}

// DefaultConfig returns the defaults of the tls section: no files (no
// secured listener can start), TLS 1.2 and up, no client certificates.
func DefaultConfig() Config {
	return Config{
		ClientAuth:           ClientAuthNone,
		MinVersion:           "1.2",
		Identity:             IdentityNone,
		ConnectionID:         true,
		MaxHandshakesPerAddr: 16,
		HandshakeTimeout:     10 * time.Second,
		ReloadInterval:       10 * time.Second,
		Section:              "tls",
	}
}

// field is one key of the section and how an override's value is copied.
type field struct {
	key  string
	copy func(dst, src *Config)
}

// fields lists every key in documentation order; Merge and Keys use it,
// so an override can set exactly the keys the shared section has.
var fields = []field{
	{"cert_file", func(d, s *Config) { d.CertFile = s.CertFile }},
	{"key_file", func(d, s *Config) { d.KeyFile = s.KeyFile }},
	{"ca_file", func(d, s *Config) { d.CAFile = s.CAFile }},
	{"client_auth", func(d, s *Config) { d.ClientAuth = s.ClientAuth }},
	{"min_version", func(d, s *Config) { d.MinVersion = s.MinVersion }},
	{"cipher_suites", func(d, s *Config) { d.CipherSuites = append([]string(nil), s.CipherSuites...) }},
	{"alpn", func(d, s *Config) { d.ALPN = append([]string(nil), s.ALPN...) }},
	{"identity", func(d, s *Config) { d.Identity = s.Identity }},
	{"crl_file", func(d, s *Config) { d.CRLFile = s.CRLFile }},
	{"psk_file", func(d, s *Config) { d.PSKFile = s.PSKFile }},
	{"connection_id", func(d, s *Config) { d.ConnectionID = s.ConnectionID }},
	{"max_handshakes_per_addr", func(d, s *Config) { d.MaxHandshakesPerAddr = s.MaxHandshakesPerAddr }},
	{"handshake_timeout", func(d, s *Config) { d.HandshakeTimeout = s.HandshakeTimeout }},
	{"reload_interval", func(d, s *Config) { d.ReloadInterval = s.ReloadInterval }},
}

// Keys returns the section's key names ("cert_file", ...), the same for
// the shared section and every override.
func Keys() []string {
	ks := make([]string, len(fields))
	for i, f := range fields {
		ks[i] = f.key
	}
	return ks
}

// Override is a listener's own section (mqtt.tls_config, ...): the keys
// it sets replace the shared section's, the others are inherited.
type Override struct {
	// Section is the override's configuration key, e.g. "mqtt.tls_config".
	Section string
	// Values holds the overriding values; only the keys in Set count.
	Values Config
	// Set names the keys (as Keys returns them) the override sets.
	Set map[string]bool
}

// Merge returns c with o's set keys replacing c's. Errors about a
// replaced key name o's section, the others c's, so a user is sent to the
// line that is wrong.
func (c Config) Merge(o Override) Config {
	out := c
	out.CipherSuites = append([]string(nil), c.CipherSuites...)
	out.ALPN = append([]string(nil), c.ALPN...)
	out.from = make(map[string]string, len(c.from)+len(o.Set))
	for k, v := range c.from {
		out.from[k] = v
	}
	for _, f := range fields {
		if o.Set[f.key] {
			f.copy(&out, &o.Values)
			out.from[f.key] = o.Section
		}
	}
	return out
}

// Key returns the full configuration key of name ("cert_file" →
// "tls.cert_file", or "mqtt.tls_config.cert_file" when an override set
// it), as every error of this package names it.
func (c Config) Key(name string) string {
	if s, ok := c.from[name]; ok {
		return s + "." + name
	}
	if c.Section == "" {
		return "tls." + name
	}
	return c.Section + "." + name
}

// errorf formats an error that starts with the full key of name.
func (c Config) errorf(name, format string, args ...any) error {
	return fmt.Errorf("%s: %s", c.Key(name), fmt.Sprintf(format, args...))
}

// Validate checks the values (not the files: NewSource reads them) and
// returns every problem joined, each naming its key.
func (c Config) Validate() error {
	var errs []error
	if c.CertFile != "" && c.KeyFile == "" {
		errs = append(errs, c.errorf("key_file", "not set, but %s is", c.Key("cert_file")))
	}
	if c.KeyFile != "" && c.CertFile == "" {
		errs = append(errs, c.errorf("cert_file", "not set, but %s is", c.Key("key_file")))
	}
	switch c.ClientAuth {
	case ClientAuthNone:
	case ClientAuthRequest, ClientAuthRequire:
		if c.CAFile == "" {
			errs = append(errs, c.errorf("ca_file", "not set, but %s is %s: client certificates need the CAs to verify them against", c.Key("client_auth"), c.ClientAuth))
		}
	default:
		errs = append(errs, c.errorf("client_auth", "%q is not none, request or require", c.ClientAuth))
	}
	if _, err := tlsVersion(c.MinVersion); err != nil {
		errs = append(errs, c.errorf("min_version", "%v", err))
	}
	for _, name := range c.CipherSuites {
		if err := checkSuiteName(name); err != nil {
			errs = append(errs, c.errorf("cipher_suites", "%v", err))
		}
	}
	for _, p := range c.ALPN {
		if p == "" || len(p) > 255 {
			errs = append(errs, c.errorf("alpn", "%q: a protocol name is 1 to 255 bytes", p))
		}
	}
	switch c.Identity {
	case IdentityNone:
	case IdentityCN, IdentitySANDNS, IdentitySANEmail:
		if c.ClientAuth == ClientAuthNone {
			errs = append(errs, c.errorf("identity", "%s needs %s request or require (no client certificate is asked for)", c.Identity, c.Key("client_auth")))
		}
	default:
		errs = append(errs, c.errorf("identity", "%q is not none, cn, san_dns or san_email", c.Identity))
	}
	if c.CRLFile != "" && c.ClientAuth == ClientAuthNone {
		errs = append(errs, c.errorf("crl_file", "set, but %s is none: a CRL is checked against client certificates", c.Key("client_auth")))
	}
	if c.MaxHandshakesPerAddr < 0 {
		errs = append(errs, c.errorf("max_handshakes_per_addr", "%d is negative (0 is unlimited)", c.MaxHandshakesPerAddr))
	}
	if c.HandshakeTimeout <= 0 {
		errs = append(errs, c.errorf("handshake_timeout", "%v must be positive", c.HandshakeTimeout))
	}
	if c.ReloadInterval < 0 {
		errs = append(errs, c.errorf("reload_interval", "%v is negative (0 turns the hash check off)", c.ReloadInterval))
	}
	return errors.Join(errs...)
}

// tlsVersion maps a min_version value to crypto/tls's constant.
func tlsVersion(v string) (uint16, error) {
	switch strings.TrimPrefix(strings.ToLower(v), "tls") {
	case "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	case "1", "1.0", "1.1":
		// RFC 8996 deprecates both; every anchor's current default refuses them too.
		return 0, fmt.Errorf("%q refused: TLS 1.0 and 1.1 are insecure (RFC 8996); use 1.2 or 1.3", v)
	}
	return 0, fmt.Errorf("%q is not 1.2 or 1.3", v)
}

// tlsSuites maps the names crypto/tls implements and calls secure, for
// TLS 1.2 (1.3 suites are not configurable), to their ids.
var tlsSuites, tls13Suites, insecureSuites = func() (map[string]uint16, map[string]bool, map[string]bool) {
	secure := map[string]uint16{}
	only13 := map[string]bool{}
	for _, s := range tls.CipherSuites() {
		if len(s.SupportedVersions) == 1 && s.SupportedVersions[0] == tls.VersionTLS13 {
			only13[s.Name] = true
			continue
		}
		secure[s.Name] = s.ID
	}
	insecure := map[string]bool{}
	for _, s := range tls.InsecureCipherSuites() {
		insecure[s.Name] = true
	}
	return secure, only13, insecure
}()

// dtlsSuites maps the names pion/dtls implements to their ids.
var dtlsSuites = func() map[string]dtls.CipherSuiteID {
	m := map[string]dtls.CipherSuiteID{}
	for _, id := range []dtls.CipherSuiteID{
		dtls.TLS_ECDHE_ECDSA_WITH_AES_128_CCM, dtls.TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8,
		dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, dtls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		dtls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, dtls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		dtls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, dtls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
		dtls.TLS_PSK_WITH_AES_128_CCM, dtls.TLS_PSK_WITH_AES_128_CCM_8, dtls.TLS_PSK_WITH_AES_256_CCM_8,
		dtls.TLS_PSK_WITH_AES_128_GCM_SHA256, dtls.TLS_PSK_WITH_AES_128_CBC_SHA256,
		dtls.TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA256,
	} {
		m[dtls.CipherSuiteName(id)] = id
	}
	return m
}()

// checkSuiteName accepts a name that TLS or DTLS implements and that Go
// does not list as insecure. Which of the two a name is for is checked
// when a listener's configuration is built (ServerConfig, DTLSConfig).
func checkSuiteName(name string) error {
	switch {
	case insecureSuites[name]:
		return fmt.Errorf("%s refused: Go lists it as insecure (tls.InsecureCipherSuites)", name)
	case tls13Suites[name]:
		return fmt.Errorf("%s is a TLS 1.3 suite: Go always offers all of them and lets none be configured", name)
	}
	if _, ok := tlsSuites[name]; ok {
		return nil
	}
	if _, ok := dtlsSuites[name]; ok {
		return nil
	}
	return fmt.Errorf("%s is not a cipher suite Go or pion/dtls implements (known: %s)", name, strings.Join(knownSuites(), ", "))
}

// knownSuites lists every accepted name, sorted, for error messages.
func knownSuites() []string {
	seen := map[string]bool{}
	var out []string
	for n := range tlsSuites {
		seen[n] = true
		out = append(out, n)
	}
	for n := range dtlsSuites {
		if !seen[n] {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}
