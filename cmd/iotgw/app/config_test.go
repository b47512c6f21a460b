package app

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestLoadDefaults(t *testing.T) {
	cfg, err := Load(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MQTT.TCP != ":1883" || cfg.MQTT.WS != ":8083" || cfg.MQTT.WSPath != "/mqtt" {
		t.Fatalf("listeners %+v", cfg.MQTT)
	}
	if cfg.Core.SysInterval != 10*time.Second || !cfg.ACL.DefaultAllow || !cfg.AllowAnonymous {
		t.Fatalf("defaults %+v", cfg)
	}
}

func TestLoadYAMLAndEnvironment(t *testing.T) {
	doc := []byte(`
mqtt:
  tcp: 127.0.0.1:1999
  max_keepalive: 60
session:
  default_expiry: 90      # bare number: seconds
acl:
  default: deny
  rules:
    - {permission: allow, action: all, topic: "devices/%c/#"}
auth:
  users:
    - {username: alice, password: secret}
`)
	cfg, err := Load(doc, []string{"IOTGW_MQTT_WS=", "IOTGW_SYS_INTERVAL=1m", "IOTGW_MQTT_WS_PATH=/x", "PATH=/bin"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MQTT.TCP != "127.0.0.1:1999" || cfg.MQTT.WS != "" || cfg.MQTT.WSPath != "/x" || cfg.MQTT.MaxKeepAlive != 60 {
		t.Fatalf("mqtt %+v", cfg.MQTT)
	}
	if cfg.Core.DefaultExpiry != 90*time.Second || cfg.Core.SysInterval != time.Minute {
		t.Fatalf("durations %v %v", cfg.Core.DefaultExpiry, cfg.Core.SysInterval)
	}
	if cfg.ACL.DefaultAllow || len(cfg.ACL.Rules) != 1 || !cfg.ACL.Rules[0].Allow || cfg.ACL.Rules[0].Topic != "devices/%c/#" {
		t.Fatalf("acl %+v", cfg.ACL)
	}
	if len(cfg.Users) != 1 || cfg.Users[0].Username != "alice" {
		t.Fatalf("users %+v", cfg.Users)
	}
}

func TestLoadErrorsNameTheKey(t *testing.T) {
	cases := []struct {
		doc  string
		env  []string
		want []string
	}{
		{"mqtt:\n  bogus: 1\n", nil, []string{"mqtt.bogus"}},
		{"mqtt:\n  tcp: \"localhost:99999\"\n", nil, []string{"mqtt.tcp"}},
		{"mqtt:\n  tcp: nonsense\n", nil, []string{"mqtt.tcp"}},
		{"session:\n  max_inflight: lots\n", nil, []string{"session.max_inflight"}},
		{"log:\n  level: loud\n", nil, []string{"log.level"}},
		{"acl:\n  rules:\n    - {permission: maybe, topic: a}\n", nil, []string{"acl.rules", "permission"}},
		{"", []string{"IOTGW_MQTT_NOPE=1"}, []string{"IOTGW_MQTT_NOPE"}},
		{"shared:\n  strategy: best\n", nil, []string{"shared.strategy"}},
	}
	for _, tc := range cases {
		_, err := Load([]byte(tc.doc), tc.env)
		if err == nil {
			t.Errorf("%q %v: no error", tc.doc, tc.env)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%q: error %q does not name %q", tc.doc, err, w)
			}
		}
	}
}

func TestKeysDocumented(t *testing.T) {
	// Every key must be documented in configs/iotgw.yaml and README.md.
	for _, file := range []string{"../../../configs/iotgw.yaml", "../../../README.md"} {
		doc, err := readFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range Keys() {
			// A listener's own tls section has the keys of tls: the
			// section is documented once, not key by key.
			for _, section := range tlsSections {
				if strings.HasPrefix(k, section+".") {
					k = section
				}
			}
			if file[len(file)-4:] == "yaml" {
				// Nested keys (a listener's tls_config.cert_file) are
				// indented one more level each.
				parts := strings.Split(k, ".")
				ok := strings.Contains(doc, "\n"+parts[0]+":")
				for i, p := range parts[1:] {
					ok = ok && strings.Contains(doc, strings.Repeat("  ", i+1)+p+":")
				}
				if !ok {
					t.Errorf("%s: key %s not documented", file, k)
				}
			} else if !strings.Contains(doc, "`"+k+"`") {
				t.Errorf("%s: key %s not documented", file, k)
			}
		}
	}
}

func TestShippedConfigLoadsAsDefaults(t *testing.T) {
	doc, err := readFile("../../../configs/iotgw.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Load([]byte(doc), nil)
	if err != nil {
		t.Fatal(err)
	}
	def, _ := Load(nil, nil)
	cfg.anonymousExplicit = false // the file spells the default out
	// Where each came from, and the raw values (the file writes 1m as 1m,
	// the defaults as 1m0s), are not the configuration.
	cfg.values, def.values, cfg.doc, def.doc = nil, nil, nil, nil
	if !reflect.DeepEqual(cfg, def) {
		t.Fatalf("configs/iotgw.yaml differs from the embedded defaults:\n%+v\n%+v", cfg, def)
	}
}

// TestAnonymousOffOnceCredentialsAreConfigured: configuring a backend or
// client certificates turns anonymous access off unless
// auth.allow_anonymous is set explicitly.
func TestAnonymousOffOnceCredentialsAreConfigured(t *testing.T) {
	for _, tc := range []struct {
		doc  string
		env  []string
		want bool
	}{
		{"", nil, true},
		{"auth:\n  users: [{username: a, password: b}]\n", nil, false},
		{"auth:\n  allow_anonymous: true\n  users: [{username: a, password: b}]\n", nil, true},
		{"auth:\n  users: [{username: a, password: b}]\n", []string{"IOTGW_AUTH_ALLOW_ANONYMOUS=true"}, true},
		{"tls:\n  cert_file: c.pem\n  key_file: k.pem\n  ca_file: ca.pem\n  client_auth: require\n", nil, false},
		{"tls:\n  cert_file: c.pem\n  key_file: k.pem\n", nil, true},
	} {
		cfg, err := Load([]byte(tc.doc), tc.env)
		if err != nil {
			t.Fatalf("%q: %v", tc.doc, err)
		}
		if cfg.AllowAnonymous != tc.want {
			t.Errorf("%q %v: allow_anonymous %v, want %v", tc.doc, tc.env, cfg.AllowAnonymous, tc.want)
		}
	}
}

// TestKeyDocs: --print-keys describes every key from configs/iotgw.yaml
// (embedded), with the file's default; a key without a comment fails.
func TestKeyDocs(t *testing.T) {
	docs, err := KeyDocs()
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != len(Keys()) {
		t.Fatalf("%d descriptions for %d keys", len(docs), len(Keys()))
	}
	for _, d := range docs {
		if d.Key == "mqtt.tcp" && (d.Default != `":1883"` || !strings.Contains(d.Description, "listen address")) {
			t.Errorf("mqtt.tcp: %+v", d)
		}
		if d.Description == "" {
			t.Errorf("%s: no description", d.Key)
		}
	}
	doc := []byte("log:\n  level: info   # debug | info\n  format: console\nmqtt:\n  tls_config: {}  # own keys\n")
	_, err = keyDocs(doc, []string{"log.level", "log.format", "mqtt.tls_config.cert_file", "coap.udp"})
	for _, want := range []string{"log.format: no description", "tls.cert_file not in", "coap.udp: not in"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not say %q", err, want)
		}
	}
	if err != nil && strings.Contains(err.Error(), "log.level") {
		t.Errorf("log.level is described: %v", err)
	}
}
