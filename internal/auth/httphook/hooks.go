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

// Authorizer is acl.http, asked by the gateway's access control
// (core.AccessControl) about a publish or subscribe that no rule matched:
// acl.rules and acl.file come first, then the hook, then acl.default for
// what the hook ignores. A client's own grant (superuser, rules from its
// token or its authentication hook) comes before all of them: the core
// wraps every authorizer in it.
//
// Decide is synchronous and runs on the client's reader goroutine, so a
// request is bounded by the hook's timeout, and a hook that keeps failing
// is not asked at all while its breaker is open; cached answers cost a
// hash and a map read.
type Authorizer struct {
	*Client
	ignoreErrors bool
	lastWarn     atomic.Int64 // Unix ns of the last failure logged at warn
}

var _ core.AccessHook = (*Authorizer)(nil)

// NewAuthorizer builds acl.http.
func NewAuthorizer(cfg Config, log *zap.Logger) (*Authorizer, error) {
	c, err := New(cfg, ACLKind, log)
	if err != nil {
		return nil, err
	}
	return &Authorizer{Client: c, ignoreErrors: cfg.OnError == "ignore"}, nil
}

// Decide asks the hook; decided is false when it ignores the request (or
// fails under on_error: ignore), which leaves it to acl.default.
func (z *Authorizer) Decide(c *core.ClientInfo, acc core.Access) (allow, decided bool) {
	ctx, cancel := context.WithTimeout(context.Background(), z.cfg.Timeout)
	a, err := z.ask(ctx, vars{c: c, a: &acc})
	cancel()
	if err != nil {
		z.warn(c, acc, err)
		return false, !z.ignoreErrors
	}
	switch a.decision {
	case core.Allow:
		return true, true
	case core.Deny:
		return false, true
	}
	return false, false
}

// failLogEvery bounds warnings about a failing hook: an outage would
// otherwise log once per message.
const failLogEvery = 10 * time.Second

func (z *Authorizer) warn(c *core.ClientInfo, acc core.Access, err error) {
	now := time.Now().UnixNano()
	last := z.lastWarn.Load()
	fields := []zap.Field{zap.String("client_id", c.ClientID), zap.String("action", acc.Action.String()),
		zap.String("topic", acc.Topic), zap.Bool("denied", !z.ignoreErrors), zap.Error(err)}
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
