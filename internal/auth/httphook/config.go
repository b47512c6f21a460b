// Package httphook asks an operator's HTTP service who may connect
// (auth.http, a backend of the core's authentication chain) and what a
// client may publish or subscribe to (acl.http, an authorizer), with
// EMQX's HTTP authenticator and authorizer contract, so services written
// for EMQX work unchanged:
//
//   - the request is a POST with a JSON object (or a GET with the same
//     fields in the query) made from a template of placeholders
//     (${clientid}, ${username}, ${password}, ${topic}, ...);
//   - 204 allows; 200 carries {"result": "allow"|"deny"|"ignore",
//     "is_superuser", "expire_at", "acl", "client_attrs"}; any other
//     status, a timeout or a malformed body is a failure of the hook.
//
// A hook must never take the gateway down with it (emqx #12974, #11626;
// vernemq #612): requests are bounded in flight (max_concurrency) and in
// waiting (queue_limit, beyond which they fail at once), each has a
// timeout, connections are kept alive in a pool sized to the concurrency,
// answers are cached (cache_ttl, or the hook's Cache-Control max-age),
// and a circuit breaker stops asking a hook that keeps failing for a
// cooldown, failing fast instead.
package httphook

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"
)

// Kind is what a hook is asked: who may connect, or what a client may do.
type Kind uint8

// Kinds of hook.
const (
	// AuthKind is auth.http: one request per connect.
	AuthKind Kind = iota
	// ACLKind is acl.http: one request per publish or subscribe not
	// decided by a rule (and not cached).
	ACLKind
)

// Config is one hook (auth.http or acl.http).
type Config struct {
	// URL is the hook's http:// or https:// address (no placeholders).
	URL string
	// Method is "post" (JSON body) or "get" (query string).
	Method string
	// Headers are sent with every request (static values).
	Headers map[string]string
	// Body is the request template: field name → value with placeholders
	// (DefaultBody when empty).
	Body map[string]string
	// Timeout bounds one request, connection included.
	Timeout time.Duration
	// MaxConcurrency bounds the requests in flight, and so the
	// connections to the hook.
	MaxConcurrency int
	// QueueLimit bounds the requests waiting for a slot; beyond it a
	// request fails at once (a backend failure).
	QueueLimit int
	// CacheTTL keeps an answer per distinct request (0: only when the
	// hook sends Cache-Control max-age). A max-age in the reply replaces
	// it; no-store or max-age=0 keeps the answer out of the cache.
	CacheTTL time.Duration
	// CacheMaxEntries bounds the cache.
	CacheMaxEntries int
	// BreakerFailures consecutive failures open the circuit breaker
	// (0: never): for BreakerCooldown every request fails at once, then
	// one probe request is let through; its success closes the breaker.
	BreakerFailures int
	BreakerCooldown time.Duration
	// OnError is what a failure means: "deny" (the default) or "ignore"
	// (auth.http: the next backend is asked; acl.http: acl.default
	// decides).
	OnError string
	// CAFile verifies an https hook with these CAs instead of the
	// system's roots.
	CAFile string
}

// Defaults.
const (
	DefaultTimeout         = 5 * time.Second
	DefaultMaxConcurrency  = 32
	DefaultQueueLimit      = 1000
	DefaultCacheMaxEntries = 100_000
	DefaultBreakerFailures = 5
	DefaultBreakerCooldown = 10 * time.Second
)

// DefaultConfig is a hook that is off (no URL), with the defaults of
// every other key.
func DefaultConfig() Config {
	return Config{
		Method:          "post",
		Timeout:         DefaultTimeout,
		MaxConcurrency:  DefaultMaxConcurrency,
		QueueLimit:      DefaultQueueLimit,
		CacheMaxEntries: DefaultCacheMaxEntries,
		BreakerFailures: DefaultBreakerFailures,
		BreakerCooldown: DefaultBreakerCooldown,
		OnError:         "deny",
	}
}

// DefaultBody is the request template of a kind when Body is empty.
func DefaultBody(k Kind) map[string]string {
	b := map[string]string{
		"clientid": "${clientid}",
		"username": "${username}",
		"peerhost": "${peerhost}",
		"protocol": "${protocol}",
	}
	if k == AuthKind {
		b["password"] = "${password}"
	} else {
		b["topic"] = "${topic}"
		b["action"] = "${action}"
		b["qos"] = "${qos}"
		b["retain"] = "${retain}"
	}
	return b
}

// Placeholders returns the placeholder names a kind's template may use.
func Placeholders(k Kind) []string {
	p := []string{"clientid", "username", "peerhost", "protocol", "cert_common_name", "listener"}
	if k == AuthKind {
		return append(p, "password")
	}
	return append(p, "topic", "action", "qos", "retain")
}

// Validate reports every problem, each named by its key under prefix
// ("auth.http"), joined. A hook without a URL is off and valid.
func (c Config) Validate(prefix string, k Kind) error {
	if c.URL == "" {
		return nil
	}
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: %s", prefix, key, fmt.Sprintf(format, a...)))
	}
	if u, err := url.Parse(c.URL); err != nil {
		bad("url", "%v", err)
	} else if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("url", "%q is not an http:// or https:// URL", c.URL)
	} else if strings.Contains(c.URL, "${") {
		bad("url", "placeholders go in body, not in the URL")
	}
	if c.Method != "post" && c.Method != "get" {
		bad("method", "%q is not post or get", c.Method)
	}
	if c.Timeout <= 0 {
		bad("timeout", "must be positive")
	}
	if c.MaxConcurrency < 1 {
		bad("max_concurrency", "must be at least 1")
	}
	if c.QueueLimit < 0 {
		bad("queue_limit", "must not be negative")
	}
	if c.CacheTTL < 0 {
		bad("cache_ttl", "must not be negative")
	}
	if c.CacheMaxEntries < 0 {
		bad("cache_max_entries", "must not be negative")
	}
	if c.BreakerFailures < 0 {
		bad("breaker_failures", "must not be negative")
	}
	if c.BreakerFailures > 0 && c.BreakerCooldown <= 0 {
		bad("breaker_cooldown", "must be positive")
	}
	if c.OnError != "deny" && c.OnError != "ignore" {
		bad("on_error", "%q is not deny or ignore", c.OnError)
	}
	if c.CAFile != "" {
		if _, err := os.Stat(c.CAFile); err != nil {
			bad("ca_file", "%v", err)
		}
	}
	for name, v := range c.Body {
		if _, err := compileValue(v, k); err != nil {
			bad("body."+name, "%v", err)
		}
	}
	return errors.Join(errs...)
}
