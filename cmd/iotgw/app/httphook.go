package app

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cast"
	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/iotgw/iotgw/core"
	"github.com/iotgw/iotgw/internal/auth/httphook"
)

// The HTTP hooks: auth.http, a backend of the authentication chain
// ("http" in auth.chain), and acl.http, asked about what the configured
// access rules leave undecided.

func init() {
	// After the password file and tokens, before the plaintext users: a
	// request to a service costs more than a local lookup.
	registerAuthBackend(authBackend{
		name: "http", order: 50,
		configured: func(c *Config) bool { return c.AuthHTTP.URL != "" },
		build: func(c *Config, log *zap.Logger) (core.ChainLink, error) {
			b, err := httphook.NewBackend(c.AuthHTTP, log.Named("http"))
			if err != nil {
				return core.ChainLink{}, fmt.Errorf("auth.http: %w", err)
			}
			onErr := core.OnErrorDeny
			if c.AuthHTTP.OnError == "ignore" {
				onErr = core.OnErrorIgnore
			}
			return core.ChainLink{Name: "http", Backend: b, OnError: onErr, Timeout: c.AuthHTTP.Timeout}, nil
		},
	})
}

// httpHookSettings are the rows of auth.http and acl.http, the same keys
// for both.
func httpHookSettings() []setting {
	var rows []setting
	for _, h := range []struct {
		prefix string
		f      func(c *Config) *httphook.Config
	}{
		{"auth.http", func(c *Config) *httphook.Config { return &c.AuthHTTP }},
		{"acl.http", func(c *Config) *httphook.Config { return &c.ACLHTTP }},
	} {
		d := httphook.DefaultConfig()
		f := h.f
		type hc = httphook.Config
		keys := []struct {
			name  string
			def   any
			apply func(c *hc, v any) error
		}{
			{"url", d.URL, str(func(c *hc) *string { return &c.URL })},
			{"method", d.Method, str(func(c *hc) *string { return &c.Method })},
			{"headers", map[string]any{}, strMap(h.prefix+".headers", func(c *hc) *map[string]string { return &c.Headers })},
			{"body", map[string]any{}, strMap(h.prefix+".body", func(c *hc) *map[string]string { return &c.Body })},
			{"timeout", d.Timeout.String(), duration(func(c *hc) *time.Duration { return &c.Timeout })},
			{"max_concurrency", d.MaxConcurrency, integer(func(c *hc) *int { return &c.MaxConcurrency })},
			{"queue_limit", d.QueueLimit, integer(func(c *hc) *int { return &c.QueueLimit })},
			{"cache_ttl", d.CacheTTL.String(), duration(func(c *hc) *time.Duration { return &c.CacheTTL })},
			{"cache_max_entries", d.CacheMaxEntries, integer(func(c *hc) *int { return &c.CacheMaxEntries })},
			{"breaker_failures", d.BreakerFailures, integer(func(c *hc) *int { return &c.BreakerFailures })},
			{"breaker_cooldown", d.BreakerCooldown.String(), duration(func(c *hc) *time.Duration { return &c.BreakerCooldown })},
			{"on_error", d.OnError, str(func(c *hc) *string { return &c.OnError })},
			{"ca_file", d.CAFile, str(func(c *hc) *string { return &c.CAFile })},
		}
		for _, k := range keys {
			rows = append(rows, setting{h.prefix + "." + k.name, k.def, func(c *Config, v any) error {
				if _, isMap := k.def.(map[string]any); isMap {
					v = hookValue{v, c}
				}
				return k.apply(f(c), v)
			}})
		}
	}
	return rows
}

// hookValue carries a map key's value with the configuration being
// built, whose raw YAML gives back the keys' case (see strMap).
type hookValue struct {
	v   any
	cfg *Config
}

// strMap sets a map of strings (headers, body) from a YAML map or, in an
// environment variable, a JSON object. The loader lowercases the keys of
// a YAML map; a body's field names are the hook's contract ("clientId"),
// so their spelling is taken back from the YAML document itself.
func strMap(key string, f func(c *httphook.Config) *map[string]string) func(*httphook.Config, any) error {
	return func(c *httphook.Config, v any) error {
		hv, _ := v.(hookValue)
		var m map[string]string
		switch x := hv.v.(type) {
		case nil:
		case string:
			if strings.TrimSpace(x) != "" {
				if err := json.Unmarshal([]byte(x), &m); err != nil {
					return fmt.Errorf("want a map of strings (a JSON object in the environment): %w", err)
				}
			}
		default:
			mm, err := cast.ToStringMapStringE(x)
			if err != nil {
				return fmt.Errorf("want a map of strings: %w", err)
			}
			if hv.cfg != nil {
				mm = restoreKeyCase(hv.cfg.rawYAML, key, mm)
			}
			m = mm
		}
		if len(m) == 0 {
			m = nil
		}
		*f(c) = m
		return nil
	}
}

// restoreKeyCase renames m's keys to their spelling in the map at the
// dotted key of the YAML document doc, where one differs only in case.
func restoreKeyCase(doc []byte, key string, m map[string]string) map[string]string {
	var root map[string]any
	if len(doc) == 0 || yaml.Unmarshal(doc, &root) != nil {
		return m
	}
	var node any = root
	for _, part := range strings.Split(key, ".") {
		mm, ok := node.(map[string]any)
		if !ok {
			return m
		}
		node = nil
		for k, v := range mm {
			if strings.EqualFold(k, part) {
				node = v
			}
		}
	}
	raw, ok := node.(map[string]any)
	if !ok {
		return m
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		name := k
		for rk := range raw {
			if strings.ToLower(rk) == k {
				name = rk
			}
		}
		out[name] = v
	}
	return out
}

// isMapKey reports whether key lies inside a map-valued setting
// ("auth.http.body.clientid"): the loader lists a map's entries as keys
// of their own.
func isMapKey(key string, all []setting) bool {
	for _, s := range all {
		if _, ok := s.def.(map[string]any); ok && strings.HasPrefix(key, s.key+".") {
			return true
		}
	}
	return false
}

// buildACLHook puts acl.http between the configured rules and acl.default,
// or returns nil when it is off.
func buildACLHook(c *Config, log *zap.Logger) (*httphook.Authorizer, error) {
	if c.ACLHTTP.URL == "" {
		return nil, nil
	}
	z, err := httphook.NewAuthorizer(c.ACLHTTP, log.Named("acl.http"))
	if err != nil {
		return nil, fmt.Errorf("acl.http: %w", err)
	}
	return z, nil
}

// hookClients returns the HTTP hooks in use with their $SYS names.
func hookClients(chain *core.Chain, aclHook *httphook.Authorizer) map[string]*httphook.Client {
	out := map[string]*httphook.Client{}
	if chain != nil {
		for _, l := range chain.Links() {
			if b, ok := l.Backend.(*httphook.Backend); ok {
				out["auth.http"] = b.Client
			}
		}
	}
	if aclHook != nil {
		out["acl.http"] = aclHook.Client
	}
	return out
}
