package tlsconf

import (
	"reflect"
	"strings"
	"testing"
)

func TestDefaultConfigIsValid(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestValidateNamesTheKey(t *testing.T) {
	cases := []struct {
		name string
		edit func(c *Config)
		want []string
	}{
		{"tls 1.0", func(c *Config) { c.MinVersion = "1.0" }, []string{"tls.min_version", "refused"}},
		{"tls 1.1", func(c *Config) { c.MinVersion = "1.1" }, []string{"tls.min_version", "refused"}},
		{"bad version", func(c *Config) { c.MinVersion = "2" }, []string{"tls.min_version", "not 1.2 or 1.3"}},
		{"insecure suite", func(c *Config) { c.CipherSuites = []string{"TLS_RSA_WITH_RC4_128_SHA"} }, []string{"tls.cipher_suites", "TLS_RSA_WITH_RC4_128_SHA", "insecure"}},
		{"insecure cbc256", func(c *Config) { c.CipherSuites = []string{"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256"} }, []string{"tls.cipher_suites", "insecure"}},
		{"unknown suite", func(c *Config) { c.CipherSuites = []string{"TLS_FOO"} }, []string{"tls.cipher_suites", "TLS_FOO", "known:"}},
		{"tls 1.3 suite", func(c *Config) { c.CipherSuites = []string{"TLS_AES_128_GCM_SHA256"} }, []string{"tls.cipher_suites", "TLS 1.3"}},
		{"client_auth", func(c *Config) { c.ClientAuth = "maybe" }, []string{"tls.client_auth", "maybe"}},
		{"require without ca", func(c *Config) { c.ClientAuth = ClientAuthRequire }, []string{"tls.ca_file", "tls.client_auth"}},
		{"identity without client auth", func(c *Config) { c.Identity = IdentityCN }, []string{"tls.identity", "tls.client_auth"}},
		{"identity", func(c *Config) { c.Identity = "dn" }, []string{"tls.identity", "dn"}},
		{"crl without client auth", func(c *Config) { c.CRLFile = "x.crl" }, []string{"tls.crl_file"}},
		{"cert without key", func(c *Config) { c.CertFile = "a.pem" }, []string{"tls.key_file"}},
		{"key without cert", func(c *Config) { c.KeyFile = "a.pem" }, []string{"tls.cert_file"}},
		{"alpn", func(c *Config) { c.ALPN = []string{""} }, []string{"tls.alpn"}},
		{"handshakes", func(c *Config) { c.MaxHandshakesPerAddr = -1 }, []string{"tls.max_handshakes_per_addr"}},
		{"handshake timeout", func(c *Config) { c.HandshakeTimeout = 0 }, []string{"tls.handshake_timeout"}},
		{"reload interval", func(c *Config) { c.ReloadInterval = -1 }, []string{"tls.reload_interval"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.edit(&c)
			wantErr(t, c.Validate(), tc.want...)
		})
	}
}

func TestValidateAcceptsSecureSuitesOfBoth(t *testing.T) {
	c := DefaultConfig()
	c.CipherSuites = []string{"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_PSK_WITH_AES_128_CCM_8", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"}
	c.MinVersion = "1.3"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := DefaultConfig()
	c.MinVersion, c.ClientAuth, c.Identity = "1.1", "sometimes", "x"
	err := c.Validate()
	wantErr(t, err, "tls.min_version", "tls.client_auth", "tls.identity")
	if n := strings.Count(err.Error(), "\n") + 1; n != 3 {
		t.Errorf("%d lines, want 3: %v", n, err)
	}
}

func TestMergeOverridesSetKeysAndNamesThem(t *testing.T) {
	shared := DefaultConfig()
	shared.CertFile, shared.KeyFile, shared.CAFile = "shared.pem", "shared-key.pem", "ca.pem"
	shared.ALPN = []string{"x"}
	o := Override{Section: "mqtt.tls_config", Set: map[string]bool{"cert_file": true, "min_version": true, "client_auth": true}}
	o.Values.CertFile, o.Values.MinVersion, o.Values.ClientAuth = "mqtt.pem", "1.1", ClientAuthRequire
	o.Values.KeyFile = "ignored: not in Set"
	m := shared.Merge(o)
	if m.CertFile != "mqtt.pem" || m.KeyFile != "shared-key.pem" || m.CAFile != "ca.pem" || m.ClientAuth != ClientAuthRequire {
		t.Fatalf("merged %+v", m)
	}
	if m.Key("cert_file") != "mqtt.tls_config.cert_file" || m.Key("key_file") != "tls.key_file" {
		t.Fatalf("keys %s %s", m.Key("cert_file"), m.Key("key_file"))
	}
	// The error is about the override's line, not the shared one.
	err := m.Validate()
	wantErr(t, err, "mqtt.tls_config.min_version")
	if strings.Contains(err.Error(), "tls.min_version") && !strings.Contains(err.Error(), "mqtt.tls_config.min_version") {
		t.Fatalf("names the shared key: %v", err)
	}
	// The shared section is not changed by the merge.
	m.ALPN[0] = "changed"
	if shared.ALPN[0] != "x" || shared.Key("cert_file") != "tls.cert_file" {
		t.Fatal("Merge changed its receiver")
	}
}

func TestKeysCoverEveryField(t *testing.T) {
	// Every key can be overridden: a Set of all keys copies every field.
	src := Config{CertFile: "a", KeyFile: "b", CAFile: "c", ClientAuth: "d", MinVersion: "e", CipherSuites: []string{"f"},
		ALPN: []string{"g"}, Identity: "h", CRLFile: "i", PSKFile: "j", ConnectionID: true, MaxHandshakesPerAddr: 7,
		HandshakeTimeout: 8, ReloadInterval: 9}
	set := map[string]bool{}
	for _, k := range Keys() {
		set[k] = true
	}
	m := Config{}.Merge(Override{Section: "x", Values: src, Set: set})
	m.from = nil
	if !reflect.DeepEqual(m, src) {
		t.Fatalf("merge of every key:\n%+v\nwant\n%+v", m, src)
	}
}
