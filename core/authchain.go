package core

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Decision is an authentication backend's answer about one client.
type Decision uint8

// Decisions of a Backend.
const (
	// Ignore: not this backend's client (an unknown user name, no token);
	// the next backend is asked.
	Ignore Decision = iota
	// Allow: the client may connect, with the Grant of the result.
	Allow
	// Deny: the client is refused; no later backend is asked.
	Deny
)

// String returns the configuration spelling.
func (d Decision) String() string {
	switch d {
	case Allow:
		return "allow"
	case Deny:
		return "deny"
	}
	return "ignore"
}

// Grant is what authentication gave a client beyond entry; nil for most
// clients (ClientInfo.Grant). It is read on the publish path and never
// changed once attached: a re-authentication attaches a new one.
type Grant struct {
	// Backend names the backend that allowed the client.
	Backend string
	// Superuser skips every access rule.
	Superuser bool
	// ExpireAt ends the connection (MQTT 5: DISCONNECT 0xA0) unless the
	// client re-authenticates before; zero: no end.
	ExpireAt time.Time
	// Rules are the client's own access rules (a JWT's acl claim, an HTTP
	// hook's acl), checked before the configured ones: the first that
	// matches decides, and when none does the configured rules do.
	Rules []ACLRule
	// Attrs are client attributes a backend returned (for hooks and
	// logs).
	Attrs map[string]string
}

// AuthResult is one backend's answer, the same shape for all.
type AuthResult struct {
	Decision Decision
	// Grant goes with Allow (nil: nothing beyond entry).
	Grant *Grant
	// Err goes with Deny: the refusal the client is told
	// (ErrBadCredentials when nil; ErrNotAuthorized; ErrServerBusy...).
	Err error
}

// Backend is one link of the authentication chain: a password file, JWT,
// an HTTP service. Authenticate must honour ctx (the chain bounds each
// answer by the link's timeout) and may run on many goroutines at once. An
// error means the backend could not answer (timeout, 5xx, a bad reply); the
// link's OnError decides what that means for the client.
type Backend interface {
	Authenticate(ctx context.Context, c *ClientInfo) (AuthResult, error)
}

// OnError is what a backend failure means for the client.
type OnError uint8

// What a failed backend means.
const (
	// OnErrorDeny refuses the client (as "server unavailable": it may
	// retry), the safe default: an outage of the identity service must
	// not open the gateway.
	OnErrorDeny OnError = iota
	// OnErrorIgnore asks the next backend, as if this one had ignored the
	// client.
	OnErrorIgnore
)

// DefaultBackendTimeout bounds one backend's answer when its link sets
// no timeout.
const DefaultBackendTimeout = 5 * time.Second

// ChainLink is one backend in the chain with its policy.
type ChainLink struct {
	// Name is the backend's configuration name ("password_file", "jwt",
	// "http", "users"), in logs, counters and Grant.Backend.
	Name    string
	Backend Backend
	OnError OnError
	// Timeout bounds the backend's answer (DefaultBackendTimeout if 0).
	Timeout time.Duration
}

// Chain is the authentication chain of every protocol: its links are
// asked in order until one allows or denies; a client none of them
// decides is accepted only when it is anonymous (no user name, no
// password) and AllowAnonymous is set. It is the broker's Authenticator.
type Chain struct {
	links          []ChainLink
	allowAnonymous bool
	log            *zap.Logger
	counts         []linkCounts // parallel to links
}

// linkCounts are one link's answers, for $SYS and metrics.
type linkCounts struct {
	allowed, denied, ignored, failed atomic.Uint64
	lastFailLog                      atomic.Int64 // Unix ns of the last failure logged at warn
}

var _ Authenticator = (*Chain)(nil)

// NewChain builds the chain; links without a backend are an error.
func NewChain(links []ChainLink, allowAnonymous bool, log *zap.Logger) (*Chain, error) {
	if log == nil {
		log = zap.NewNop()
	}
	for i, l := range links {
		if l.Backend == nil {
			return nil, fmt.Errorf("auth.chain[%d] %q: no backend", i, l.Name)
		}
	}
	return &Chain{links: links, allowAnonymous: allowAnonymous, log: log, counts: make([]linkCounts, len(links))}, nil
}

// Links returns the chain's backends in order.
func (ch *Chain) Links() []ChainLink { return ch.links }

// failLogEvery bounds warnings about a failing backend: an outage would
// otherwise log once per connection attempt.
const failLogEvery = 10 * time.Second

// Authenticate asks the links in order. An allowing link's Grant is
// attached to c.
func (ch *Chain) Authenticate(ctx context.Context, c *ClientInfo) error {
	for i := range ch.links {
		l := &ch.links[i]
		n := &ch.counts[i]
		timeout := l.Timeout
		if timeout <= 0 {
			timeout = DefaultBackendTimeout
		}
		lctx, cancel := context.WithTimeout(ctx, timeout)
		r, err := l.Backend.Authenticate(lctx, c)
		cancel()
		if err != nil {
			n.failed.Add(1)
			ch.logFailure(l, n, c, err)
			if l.OnError == OnErrorIgnore {
				continue
			}
			return fmt.Errorf("%w: authentication backend %s failed: %v", ErrServerUnavailable, l.Name, err)
		}
		switch r.Decision {
		case Allow:
			n.allowed.Add(1)
			if r.Grant != nil {
				g := *r.Grant
				g.Backend = l.Name
				c.Grant = &g
			}
			return nil
		case Deny:
			n.denied.Add(1)
			reason := r.Err
			if reason == nil {
				reason = ErrBadCredentials
			}
			ch.log.Debug("authentication denied", zap.String("backend", l.Name), zap.String("client_id", c.ClientID),
				zap.String("username", c.Username), zap.String("remote", c.Remote), zap.Error(reason))
			return reason
		default:
			n.ignored.Add(1)
		}
	}
	if c.Username == "" {
		if ch.allowAnonymous && len(c.Password) == 0 {
			return nil
		}
		return ErrNotAuthorized
	}
	if len(ch.links) == 0 && ch.allowAnonymous {
		// No backend at all: nobody has credentials to check.
		return nil
	}
	return ErrBadCredentials
}

func (ch *Chain) logFailure(l *ChainLink, n *linkCounts, c *ClientInfo, err error) {
	now := time.Now().UnixNano()
	last := n.lastFailLog.Load()
	if now-last < int64(failLogEvery) || !n.lastFailLog.CompareAndSwap(last, now) {
		ch.log.Debug("authentication backend failed", zap.String("backend", l.Name), zap.String("client_id", c.ClientID), zap.Error(err))
		return
	}
	ch.log.Warn("authentication backend failed (further failures for 10 s at debug level)", zap.String("backend", l.Name),
		zap.String("client_id", c.ClientID), zap.Bool("denied", l.OnError == OnErrorDeny), zap.Uint64("failures", n.failed.Load()), zap.Error(err))
}

// SysSource returns the chain's counters for $SYS:
// $SYS/broker/auth/<backend>/{allowed,denied,ignored,failed}.
func (ch *Chain) SysSource() SysSource {
	return func(add func(topic, value string)) {
		for i, l := range ch.links {
			n := &ch.counts[i]
			p := "$SYS/broker/auth/" + l.Name + "/"
			add(p+"allowed", fmt.Sprint(n.allowed.Load()))
			add(p+"denied", fmt.Sprint(n.denied.Load()))
			add(p+"ignored", fmt.Sprint(n.ignored.Load()))
			add(p+"failed", fmt.Sprint(n.failed.Load()))
		}
	}
}

// ErrAuthExpired ends a connection whose credentials expired (a JWT's
// exp, a hook's expire_at) before the client re-authenticated; MQTT 5
// says DISCONNECT 0xA0 (maximum connect time).
var ErrAuthExpired = errors.New("authentication expired")

// grantAuthorizer applies a client's Grant before the configured
// authorizer: superusers pass, the client's own rules decide when one
// matches.
type grantAuthorizer struct{ next Authorizer }

func (g grantAuthorizer) Authorize(c *ClientInfo, a Access) bool {
	if gr := c.Grant; gr != nil {
		if gr.Superuser {
			return true
		}
		if len(gr.Rules) > 0 {
			if r := matchRules(gr.Rules, c, a); r != nil {
				return r.Allow
			}
		}
	}
	return g.next.Authorize(c, a)
}

// armAuthExpiry ends sink's connection at end (the grant's expiry or the
// connection's maximum lifetime; zero: never), unless a
// re-authentication moves it or another connection has taken the
// session over by then.
func (s *Session) armAuthExpiry(sink Sink, end time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.authTmr != nil {
		s.authTmr.Stop()
		s.authTmr = nil
	}
	if end.IsZero() {
		return
	}
	s.authTmr = time.AfterFunc(max(time.Until(end), 0), func() {
		s.mu.Lock()
		current := s.sink == sink
		s.mu.Unlock()
		if current {
			sink.Close(ErrAuthExpired)
		}
	})
}
