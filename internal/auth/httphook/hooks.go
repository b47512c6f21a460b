package httphook

import (
	"context"
	"strconv"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/iotgw/iotgw/core"
)

// Backend is auth.http, a link of the authentication chain.
type Backend struct {
	*Client
}

var _ core.Backend = (*Backend)(nil)

// NewBackend builds the authentication hook.
func NewBackend(cfg Config, log *zap.Logger) (*Backend, error) {
	c, err := New(cfg, AuthKind, log)
	if err != nil {
		return nil, err
	}
	return &Backend{c}, nil
}

// Authenticate asks the hook (or the cache) about c within ctx. A deny is
// "not authorized", as in EMQX; an allow carries the reply's grant.
func (b *Backend) Authenticate(ctx context.Context, c *core.ClientInfo) (core.AuthResult, error) {
	a, err := b.ask(ctx, vars{c: c})
	if err != nil {
		return core.AuthResult{}, err
	}
	r := core.AuthResult{Decision: a.decision, Grant: a.grant}
	if a.decision == core.Deny {
		r.Err = core.ErrNotAuthorized
	}
	return r, nil
}

// Authorizer is acl.http: the configured rules (acl.rules) first, then the
// hook for what no rule matched, then acl.default for what the hook
// ignores. A client's own grant (superuser, rules from its token or its
// authentication hook) comes before all of them: the core wraps every
// authorizer in it.
//
// Authorize is synchronous and runs on the client's reader goroutine, so
// a request is bounded by the hook's timeout, and a hook that keeps
// failing is not asked at all while its breaker is open; cached answers
// cost a hash and a map read.
type Authorizer struct {
	*Client
	rules        *core.ACL
	ignoreErrors bool
	lastWarn     atomic.Int64 // Unix ns of the last failure logged at warn
}

var _ core.AccessAuthorizer = (*Authorizer)(nil)

// NewAuthorizer builds acl.http in front of rules (its Rules and
// DefaultAllow); rules may be nil: no rules, default allow.
func NewAuthorizer(cfg Config, rules *core.ACL, log *zap.Logger) (*Authorizer, error) {
	c, err := New(cfg, ACLKind, log)
	if err != nil {
		return nil, err
	}
	if rules == nil {
		rules = &core.ACL{DefaultAllow: true}
	}
	return &Authorizer{Client: c, rules: rules, ignoreErrors: cfg.OnError == "ignore"}, nil
}

// Authorize is AuthorizeAccess without a QoS and retain flag (an
// adapter's check before the broker's).
func (z *Authorizer) Authorize(c *core.ClientInfo, a core.Action, t string) bool {
	return z.AuthorizeAccess(c, core.Access{Action: a, Topic: t})
}

// AuthorizeAccess decides one publish or subscribe.
func (z *Authorizer) AuthorizeAccess(c *core.ClientInfo, acc core.Access) bool {
	if allow, matched := z.rules.Match(c, acc.Action, acc.Topic); matched {
		return allow
	}
	ctx, cancel := context.WithTimeout(context.Background(), z.cfg.Timeout)
	a, err := z.ask(ctx, vars{c: c, a: &acc})
	cancel()
	if err != nil {
		z.warn(c, acc, err)
		if z.ignoreErrors {
			return z.rules.DefaultAllow
		}
		return false
	}
	switch a.decision {
	case core.Allow:
		return true
	case core.Deny:
		return false
	}
	return z.rules.DefaultAllow
}

// failLogEvery bounds warnings about a failing hook: an outage would
// otherwise log once per message.
const failLogEvery = 10 * time.Second

func (z *Authorizer) warn(c *core.ClientInfo, acc core.Access, err error) {
	now := time.Now().UnixNano()
	last := z.lastWarn.Load()
	fields := []zap.Field{zap.String("client_id", c.ClientID), zap.String("action", acc.Action.String()),
		zap.String("topic", acc.Topic), zap.Bool("denied", !z.ignoreErrors || !z.rules.DefaultAllow), zap.Error(err)}
	if now-last < int64(failLogEvery) || !z.lastWarn.CompareAndSwap(last, now) {
		if ce := z.log.Check(zap.DebugLevel, "acl.http failed"); ce != nil {
			ce.Write(fields...)
		}
		return
	}
	z.log.Warn("acl.http failed (further failures for 10 s at debug level)", fields...)
}

// SysSource publishes the hook's counters under
// $SYS/broker/hooks/<name>/ (name: "auth.http", "acl.http"):
// requests, cache_hits, failures, rejected, breaker_opens, breaker_open
// (0/1), in_flight, waiting, cached.
func (c *Client) SysSource(name string) core.SysSource {
	return func(add func(topic, value string)) {
		s := c.Stats()
		p := "$SYS/broker/hooks/" + name + "/"
		open := "0"
		if s.BreakerOpen {
			open = "1"
		}
		add(p+"requests", strconv.FormatUint(s.Requests, 10))
		add(p+"cache_hits", strconv.FormatUint(s.CacheHits, 10))
		add(p+"failures", strconv.FormatUint(s.Failures, 10))
		add(p+"rejected", strconv.FormatUint(s.Rejected, 10))
		add(p+"breaker_opens", strconv.FormatUint(s.BreakerOpens, 10))
		add(p+"breaker_open", open)
		add(p+"in_flight", strconv.Itoa(s.InFlight))
		add(p+"waiting", strconv.Itoa(s.Waiting))
		add(p+"cached", strconv.Itoa(s.Cached))
	}
}
