package app

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/iotgw/iotgw/internal/tlsconf"
)

func TestTLSDefaults(t *testing.T) {
	cfg, err := Load(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg.TLS, tlsconf.DefaultConfig()) {
		t.Fatalf("tls %+v", cfg.TLS)
	}
	if !reflect.DeepEqual(cfg.TLSFor("mqtt.tls_config"), cfg.TLS) {
		t.Fatal("a section that sets nothing is not the shared one")
	}
}

func TestTLSKeysAreAllInTheTable(t *testing.T) {
	keys := map[string]bool{}
	for _, k := range Keys() {
		keys[k] = true
	}
	for _, k := range tlsconf.Keys() {
		if !keys["tls."+k] {
			t.Errorf("tls.%s: not a configuration key", k)
		}
	}
	if len(tlsKeys()) != len(tlsconf.Keys()) {
		t.Errorf("%d rows for %d keys", len(tlsKeys()), len(tlsconf.Keys()))
	}
}

func TestTLSFromYAMLAndEnvironment(t *testing.T) {
	doc := []byte(`
tls:
  cert_file: /etc/iotgw/server.pem
  key_file: /etc/iotgw/server-key.pem
  ca_file: /etc/iotgw/ca.pem
  client_auth: require
  identity: cn
  min_version: 1.3
  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]
  reload_interval: 0
`)
	cfg, err := Load(doc, []string{"IOTGW_TLS_ALPN=mqtt, x-test", "IOTGW_TLS_HANDSHAKE_TIMEOUT=3"})
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.TLS
	if c.CertFile != "/etc/iotgw/server.pem" || c.ClientAuth != "require" || c.Identity != "cn" || c.MinVersion != "1.3" ||
		!reflect.DeepEqual(c.CipherSuites, []string{"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"}) ||
		!reflect.DeepEqual(c.ALPN, []string{"mqtt", "x-test"}) || c.HandshakeTimeout != 3*time.Second || c.ReloadInterval != 0 {
		t.Fatalf("tls %+v", c)
	}
}

func TestTLSErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct {
		doc  string
		env  []string
		want string
	}{
		{"tls:\n  min_version: 1.1\n", nil, "tls.min_version"},
		{"tls:\n  min_version: 1.0\n", nil, "tls.min_version"},
		{"", []string{"IOTGW_TLS_CIPHER_SUITES=TLS_RSA_WITH_RC4_128_SHA"}, "tls.cipher_suites"},
		{"tls:\n  client_auth: require\n", nil, "tls.ca_file"},
		{"tls:\n  bogus: 1\n", nil, "tls.bogus"},
		{"tls:\n  cipher_suites: {a: 1}\n", nil, "tls.cipher_suites"},
	} {
		_, err := Load([]byte(tc.doc), tc.env)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q %v: error %v, want one naming %s", tc.doc, tc.env, err, tc.want)
		}
	}
}

// TestTLSOverrideSection: a listener's own section replaces the keys it sets, inherits
// the others, takes environment variables and names its own keys in
// errors.
func TestTLSOverrideSection(t *testing.T) {
	all := settings()
	doc := []byte(`
tls:
  cert_file: shared.pem
  key_file: shared-key.pem
  ca_file: ca.pem
mqtt:
  tls_config:
    cert_file: mqtt.pem
    alpn: [mqtt]
`)
	cfg, err := load(doc, []string{"IOTGW_MQTT_TLS_CONFIG_KEY_FILE=mqtt-key.pem"}, all)
	if err != nil {
		t.Fatal(err)
	}
	m := cfg.TLSFor("mqtt.tls_config")
	if m.CertFile != "mqtt.pem" || m.KeyFile != "mqtt-key.pem" || m.CAFile != "ca.pem" || !reflect.DeepEqual(m.ALPN, []string{"mqtt"}) || m.MinVersion != "1.2" {
		t.Fatalf("merged %+v", m)
	}
	if cfg.TLS.CertFile != "shared.pem" || cfg.TLSFor("stomp.tls_config").CertFile != "shared.pem" {
		t.Fatal("the shared section changed")
	}
	if m.Key("cert_file") != "mqtt.tls_config.cert_file" || m.Key("ca_file") != "tls.ca_file" {
		t.Fatalf("keys %s %s", m.Key("cert_file"), m.Key("ca_file"))
	}

	_, err = load([]byte("mqtt:\n  tls_config:\n    bogus: 2\n"), nil, all)
	if err == nil || !strings.Contains(err.Error(), "mqtt.tls_config.bogus: unknown") {
		t.Fatalf("error %v", err)
	}
	_, err = load([]byte("tls:\n  min_version: 1.1\nmqtt:\n  tls_config:\n    client_auth: require\n"), nil, all)
	if err == nil || strings.Count(err.Error(), "tls.min_version") != 1 || !strings.Contains(err.Error(), "tls.ca_file: not set, but mqtt.tls_config.client_auth is require") {
		t.Fatalf("error %v: want tls.min_version once and the merged ca_file problem", err)
	}
}

// TestEnvironmentNamesAreUnique: every key has its own IOTGW_ name.
func TestEnvironmentNamesAreUnique(t *testing.T) {
	seen := map[string]string{}
	for _, s := range settings() {
		env := strings.ReplaceAll(s.key, ".", "_")
		if other, dup := seen[env]; dup {
			t.Errorf("%s and %s share IOTGW_%s", s.key, other, strings.ToUpper(env))
		}
		seen[env] = s.key
	}
}
