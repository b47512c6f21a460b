package app

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/iotgw/iotgw/core"
	"github.com/iotgw/iotgw/internal/auth/passwd"
	"github.com/iotgw/iotgw/internal/mgmt"
	"github.com/iotgw/iotgw/internal/mgmt/api"
)

// HTTPConfig is the management listener's section (http).
type HTTPConfig struct {
	Listen            string
	TLS               bool
	APIKeysFile       string
	AdminUsers        []string
	TokenTTL          time.Duration
	AuthFailures      int
	AuthFailureWindow time.Duration
	MaxBody           int
}

func httpSettings() []setting {
	rows := []setting{
		{"http.listen", "127.0.0.1:18083", str(func(c *Config) *string { return &c.HTTP.Listen })},
		{"http.tls", false, boolean(func(c *Config) *bool { return &c.HTTP.TLS })},
		{"http.api_keys_file", "", str(func(c *Config) *string { return &c.HTTP.APIKeysFile })},
		{"http.admin_users", []any{}, strList(func(c *Config) *[]string { return &c.HTTP.AdminUsers })},
		{"http.token_ttl", "1h", duration(func(c *Config) *time.Duration { return &c.HTTP.TokenTTL })},
		{"http.auth_failures", 10, integer(func(c *Config) *int { return &c.HTTP.AuthFailures })},
		{"http.auth_failure_window", "1m", duration(func(c *Config) *time.Duration { return &c.HTTP.AuthFailureWindow })},
		{"http.max_body", 1 << 20, integer(func(c *Config) *int { return &c.HTTP.MaxBody })},
	}
	return rows
}

// validate checks the http section.
func (h HTTPConfig) validate(c *Config) error {
	var errs []string
	if h.TokenTTL <= 0 {
		errs = append(errs, "http.token_ttl: must be > 0")
	}
	if h.AuthFailures < 0 {
		errs = append(errs, "http.auth_failures: must be >= 0")
	}
	if h.AuthFailureWindow <= 0 {
		errs = append(errs, "http.auth_failure_window: must be > 0")
	}
	if h.MaxBody < 1024 {
		errs = append(errs, "http.max_body: must be at least 1024 bytes")
	}
	if len(h.AdminUsers) > 0 && c.PasswordFile.File == "" {
		errs = append(errs, "http.admin_users: needs auth.password_file (their passwords are checked there)")
	}
	if h.TLS && h.Listen != "" && c.TLSFor("http.tls_config").CertFile == "" {
		errs = append(errs, "http.tls: needs a certificate (tls.cert_file or http.tls_config.cert_file)")
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%s", strings.Join(errs, "\n"))
}

// setupHTTP starts the management listener, when http.listen is set.
func (g *Gateway) setupHTTP(cfg *Config, chain *core.Chain) error {
	if cfg.HTTP.Listen == "" {
		return nil
	}
	mc := mgmt.Config{Listen: cfg.HTTP.Listen, KeysFile: cfg.HTTP.APIKeysFile, AdminUsers: cfg.HTTP.AdminUsers,
		TokenTTL: cfg.HTTP.TokenTTL, AuthFailures: cfg.HTTP.AuthFailures, AuthFailureWindow: cfg.HTTP.AuthFailureWindow,
		MaxBody: int64(cfg.HTTP.MaxBody)}
	if pf := passwordBackend(chain); pf != nil {
		mc.Password = func(ctx context.Context, user, password string) bool {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			res, err := pf.Authenticate(ctx, &core.ClientInfo{Username: user, Password: []byte(password)})
			return err == nil && res.Decision == core.Allow
		}
	}
	if cfg.HTTP.TLS {
		tc := cfg.TLSFor("http.tls_config")
		src, err := g.tlsSource(tc)
		if err != nil {
			return err
		}
		sc, err := src.ServerConfig("h2", "http/1.1")
		if err != nil {
			return err
		}
		mc.TLS = sc
		g.secured = append(g.secured, securedListener{key: "http", src: src})
	}
	s, err := mgmt.New(mc, g.log.Named("http"))
	if err != nil {
		return err
	}
	api.Register(s, g.Broker, g)
	if err := s.Start(); err != nil {
		return err
	}
	g.HTTP = s
	return nil
}

// passwordBackend returns the chain's password file backend, if any.
func passwordBackend(chain *core.Chain) *passwd.Backend {
	if chain == nil {
		return nil
	}
	for _, l := range chain.Links() {
		if pf, ok := l.Backend.(*passwd.Backend); ok {
			return pf
		}
	}
	return nil
}

// listenerKeys are the listeners' configuration keys, in the order the
// API lists them.
var listenerKeys = []string{"mqtt.tcp", "mqtt.ws", "mqtt.tls", "mqtt.wss", "stomp.tcp", "stomp.ws", "stomp.tls", "stomp.wss",
	"mqttsn.udp", "mqttsn.dtls", "coap.udp", "coap.dtls"}

// Listeners returns every listener's state, and the management
// listener's (api.Gateway).
func (g *Gateway) Listeners() []api.Listener {
	counts := g.Broker.ConnectedBy()
	secured := map[string]bool{"coap.dtls": true, "mqttsn.dtls": true}
	for _, l := range g.secured {
		secured[l.key] = true
	}
	var out []api.Listener
	for _, k := range listenerKeys {
		proto, _, _ := strings.Cut(k, ".")
		l := api.Listener{Name: k, Protocol: proto, TLS: secured[k], Connections: counts[k]}
		if a := g.Addr(k); a != nil {
			l.Addr, l.Running = a.String(), true
		}
		out = append(out, l)
	}
	if g.HTTP != nil {
		out = append(out, api.Listener{Name: "http", Protocol: "http", Addr: g.HTTP.Addr().String(), Running: true, TLS: secured["http"]})
	}
	return out
}

// secretKey reports whether a configuration key's value is a secret the
// running configuration must not show.
func secretKey(key string) bool {
	last := key[strings.LastIndexByte(key, '.')+1:]
	switch {
	case strings.HasSuffix(last, "_file"), strings.HasSuffix(last, "_ttl"), strings.HasSuffix(last, "_claim"):
		return false
	case strings.Contains(last, "secret"), strings.Contains(last, "password"), last == "headers", last == "token":
		return true
	}
	return false
}

const masked = "******"

// RunningConfig returns every key's value in use, secrets masked
// (api.Gateway).
func (g *Gateway) RunningConfig() map[string]any {
	g.cfgMu.Lock()
	vals := g.cfg.values
	g.cfgMu.Unlock()
	out := make(map[string]any, len(vals))
	keys := make([]string, 0, len(vals))
	for k := range vals {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := vals[k]
		switch {
		case k == "auth.users":
			var users []map[string]string
			for _, u := range g.cfg.Users {
				users = append(users, map[string]string{"username": u.Username, "password": masked})
			}
			v = users
		case secretKey(k):
			if s, ok := v.(string); !ok || s != "" {
				v = masked
			}
		}
		out[k] = v
	}
	return out
}

// logHTTPStop stops the management listener (first, so no call runs
// while the broker stops).
func (g *Gateway) stopHTTP(ctx context.Context) {
	if g.HTTP == nil {
		return
	}
	if err := g.HTTP.Close(ctx); err != nil {
		g.log.Warn("management listener did not stop cleanly", zap.Error(err))
	}
}
