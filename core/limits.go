package core

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/iotgw/iotgw/internal/ratelimit"
)

// LimitsConfig are the limits per client and per source (the limits.client_*,
// limits.connect_*, limits.login_*, limits.ban_time and
// limits.max_connection_lifetime keys). A rate of 0 is no limit; a burst
// of 0 is one second's worth of the rate.
type LimitsConfig struct {
	// ClientMsgRate bounds the PUBLISH/SEND messages per second of one
	// connection. Stream protocols (MQTT, STOMP) pause the connection's
	// reader, so TCP flow control slows the client rather than anything
	// being dropped; datagram protocols answer "congestion" (MQTT-SN
	// return code 0x01, CoAP 4.29) and drop QoS 0.
	ClientMsgRate  float64
	ClientMsgBurst int
	// ClientBytesRate bounds one connection's payload bytes per second,
	// the same way.
	ClientBytesRate  float64
	ClientBytesBurst int
	// ConnectRate bounds the connections per second each listener
	// accepts (mqtt tcp, mqtt ws, stomp tls, coap udp, ... each its own).
	ConnectRate  float64
	ConnectBurst int
	// ConnectRatePerAddr bounds the connections per second from one
	// source address (an IPv6 address by its /64) over every listener.
	ConnectRatePerAddr  float64
	ConnectBurstPerAddr int
	// LoginFailures failed logins from one address or for one user name
	// (a failure count is forgotten after LoginWindow without a failure,
	// a user name's at its next successful login) throttle that source:
	// each later attempt waits LoginDelay, doubling with every failure up
	// to LoginDelayMax, and only one attempt is checked at a time (others
	// are refused as rate limited). 0 disables it.
	LoginFailures int
	LoginWindow   time.Duration
	LoginDelay    time.Duration
	LoginDelayMax time.Duration
	// LoginBanFailures failures (at least LoginFailures) ban the address
	// or user name for BanTime (0: never ban).
	LoginBanFailures int
	BanTime          time.Duration
	// MaxConnectionLifetime ends every connection this long after it
	// authenticated (MQTT 5: DISCONNECT 0xA0), forcing a fresh
	// authentication; 0: no limit.
	MaxConnectionLifetime time.Duration
}

// DefaultLimits returns the documented defaults: login throttling on,
// everything else off.
func DefaultLimits() LimitsConfig {
	return LimitsConfig{LoginFailures: 10, LoginWindow: 5 * time.Minute, LoginDelay: time.Second,
		LoginDelayMax: 30 * time.Second, BanTime: 15 * time.Minute}
}

func (c LimitsConfig) validate() []error {
	var errs []error
	for _, r := range []struct {
		key  string
		rate float64
		b    int
	}{{"client_msg", c.ClientMsgRate, c.ClientMsgBurst}, {"client_bytes", c.ClientBytesRate, c.ClientBytesBurst},
		{"connect", c.ConnectRate, c.ConnectBurst}, {"connect_per_addr", c.ConnectRatePerAddr, c.ConnectBurstPerAddr}} {
		if r.rate < 0 || math.IsNaN(r.rate) || math.IsInf(r.rate, 0) {
			errs = append(errs, fmt.Errorf("limits: rate of %s: %v is not a rate (0 = off)", r.key, r.rate))
		}
		if r.b < 0 {
			errs = append(errs, fmt.Errorf("limits: burst of %s: %d is negative", r.key, r.b))
		}
	}
	if c.LoginFailures < 0 || c.LoginBanFailures < 0 {
		errs = append(errs, errors.New("limits.login_failures and limits.login_ban_failures must not be negative"))
	}
	if c.LoginBanFailures > 0 && c.LoginBanFailures < c.LoginFailures {
		errs = append(errs, fmt.Errorf("limits.login_ban_failures: %d is below limits.login_failures %d", c.LoginBanFailures, c.LoginFailures))
	}
	if c.LoginFailures > 0 && (c.LoginWindow <= 0 || c.LoginDelay <= 0 || c.LoginDelayMax < c.LoginDelay) {
		errs = append(errs, errors.New("limits: with login_failures set, login_window and login_delay must be positive and login_delay_max at least login_delay"))
	}
	if c.LoginBanFailures > 0 && c.BanTime <= 0 {
		errs = append(errs, errors.New("limits.ban_time must be positive when limits.login_ban_failures is set"))
	}
	if c.MaxConnectionLifetime < 0 {
		errs = append(errs, fmt.Errorf("limits.max_connection_lifetime: %v is negative", c.MaxConnectionLifetime))
	}
	return errs
}

// burstOf is a configured burst, or one second's worth of rate.
func burstOf(rate float64, burst int) int {
	if burst > 0 {
		return burst
	}
	return max(1, int(math.Ceil(rate)))
}

// Rate-limit errors.
var (
	// ErrBanned refuses a client on the ban list (MQTT 5 0x8A).
	ErrBanned = errors.New("banned")
	// ErrRateLimited refuses what a client or a source sends faster than
	// its limit (MQTT 5 0x9F at connect, MQTT-SN 0x01, CoAP 4.29).
	ErrRateLimited = errors.New("rate limited")
)

// RetryError is a refusal that names when a retry may pass (CoAP Max-Age).
type RetryError struct {
	Err   error
	After time.Duration
}

func (e *RetryError) Error() string {
	return e.Err.Error() + " (retry in " + e.After.Round(time.Millisecond).String() + ")"
}

// Unwrap returns the sentinel.
func (e *RetryError) Unwrap() error { return e.Err }

// RetryAfter returns the wait a refusal names, 0 for none.
func RetryAfter(err error) time.Duration {
	var re *RetryError
	if errors.As(err, &re) {
		return re.After
	}
	return 0
}

// noWaitKey marks a context whose caller must not be held (NoWait).
type noWaitKey struct{}

// NoWait marks ctx for a caller that serves many clients on one
// goroutine (a datagram read loop): a throttled login is then refused as
// rate limited, with the wait in a RetryError, instead of holding the
// caller for the delay.
func NoWait(ctx context.Context) context.Context { return context.WithValue(ctx, noWaitKey{}, true) }

// maxTrackedSources bounds each per-source table (addresses, user names).
const maxTrackedSources = 1 << 16

// guard enforces LimitsConfig (bans are Bans'): per-listener and
// per-address connection rates and failed-login throttling.
type guard struct {
	b      *Broker
	cfg    LimitsConfig
	client ratelimit.ClientConfig

	listenersMu sync.Mutex
	listeners   map[string]*ratelimit.Shared
	perAddr     *ratelimit.Keyed[netip.Addr]

	loginMu  sync.Mutex
	byAddr   *ratelimit.Table[netip.Addr, loginRec]
	byUser   *ratelimit.Table[string, loginRec]
	lastFail atomic.Int64 // ratelimit.Now of the last failed login, 0: none

	n limitCounts
}

// limitCounts are the guard's counters, for $SYS.
type limitCounts struct {
	refusedListener, refusedAddr, refusedBanned atomic.Uint64
	throttled, throttledNs                      atomic.Uint64
	rejected, dropped                           atomic.Uint64
	loginFailures, loginDelayed, loginRefused   atomic.Uint64
	loginBans                                   atomic.Uint64
}

// loginRec is one source's run of failed logins.
type loginRec struct {
	count    int
	lastFail int64
	next     int64 // no attempt checked before (ratelimit.Now)
	busy     bool  // an attempt is being checked
}

func newGuard(b *Broker, cfg LimitsConfig) *guard {
	now := ratelimit.Now()
	g := &guard{b: b, cfg: cfg, listeners: make(map[string]*ratelimit.Shared),
		client: ratelimit.ClientConfig{
			MsgRate: cfg.ClientMsgRate, MsgBurst: burstOf(cfg.ClientMsgRate, cfg.ClientMsgBurst),
			BytesRate: cfg.ClientBytesRate, BytesBurst: burstOf(cfg.ClientBytesRate, cfg.ClientBytesBurst)},
		perAddr: ratelimit.NewKeyed[netip.Addr](cfg.ConnectRatePerAddr, burstOf(cfg.ConnectRatePerAddr, cfg.ConnectBurstPerAddr), maxTrackedSources),
	}
	if cfg.LoginFailures > 0 {
		g.byAddr = ratelimit.NewTable[netip.Addr, loginRec](maxTrackedSources, cfg.LoginWindow, now)
		g.byUser = ratelimit.NewTable[string, loginRec](maxTrackedSources, cfg.LoginWindow, now)
	}
	return g
}

// AdmitConnection decides, before anything is read from it, whether a
// new connection from remote on a listener may proceed: not from a
// banned address (ErrBanned), not beyond limits.connect_rate_per_addr
// (ErrRateLimited) or the listener's limits.connect_rate (ErrServerBusy),
// both in a RetryError. Stream adapters close a refused connection at
// accept; datagram adapters answer it as their protocol says.
func (b *Broker) AdmitConnection(protocol, listener string, remote net.Addr) error {
	g := b.guard
	addr, hasAddr := ratelimit.AddrOf(remote)
	if hasAddr && b.bans.n.Load() > 0 {
		if ban := b.bans.matchAddr(addr); ban != nil {
			g.n.refusedBanned.Add(1)
			return ErrBanned
		}
	}
	now := ratelimit.Now()
	if g.perAddr != nil && hasAddr {
		if ok, wait := g.perAddr.Allow(ratelimit.AddrKey(addr), now); !ok {
			g.n.refusedAddr.Add(1)
			return &RetryError{Err: ErrRateLimited, After: wait}
		}
	}
	if g.cfg.ConnectRate > 0 {
		if ok, wait := g.listener(protocol + " " + listener).Allow(now); !ok {
			g.n.refusedListener.Add(1)
			return &RetryError{Err: ErrServerBusy, After: wait}
		}
	}
	return nil
}

// listener returns a listener's connection bucket, made on first use.
func (g *guard) listener(name string) *ratelimit.Shared {
	g.listenersMu.Lock()
	defer g.listenersMu.Unlock()
	l := g.listeners[name]
	if l == nil {
		l = ratelimit.NewShared(g.cfg.ConnectRate, burstOf(g.cfg.ConnectRate, g.cfg.ConnectBurst))
		g.listeners[name] = l
	}
	return l
}

// ClientLimit is one connection's budget of messages and payload bytes
// per second (limits.client_*). It belongs to the connection's reader.
type ClientLimit struct {
	c ratelimit.Client
	n *limitCounts
}

// NewClientLimit returns a connection's budget, or nil when no client
// rate is configured: the adapter's per-message cost is then one nil
// check.
func (b *Broker) NewClientLimit() *ClientLimit {
	c := ratelimit.NewClient(b.guard.client, ratelimit.Now())
	if c == nil {
		return nil
	}
	return &ClientLimit{c: *c, n: &b.guard.n}
}

// Pause takes one message of size payload bytes and returns how long the
// reader must pause before handling it (0: at once); a stream adapter
// waits it out (streamconn.Conn.Pause), so the client is slowed by TCP
// flow control and nothing is dropped.
func (l *ClientLimit) Pause(size int) time.Duration {
	d := l.c.Reserve(ratelimit.Now(), size)
	if d > 0 {
		l.n.throttled.Add(1)
		l.n.throttledNs.Add(uint64(d))
	}
	return d
}

// Admit is the datagram protocols' check: it takes one message of size
// bytes if the budget has room, else reports the wait until it would
// have; a refused message is counted as rejected (answered with the
// protocol's congestion code) or, with drop, as dropped (QoS 0, which
// nothing acknowledges).
func (l *ClientLimit) Admit(size int, drop bool) (bool, time.Duration) {
	ok, wait := l.c.Allow(ratelimit.Now(), size)
	if !ok {
		if drop {
			l.n.dropped.Add(1)
		} else {
			l.n.rejected.Add(1)
		}
	}
	return ok, wait
}

// loginHeld marks which sources' records an attempt holds (busy).
type loginHeld uint8

const (
	heldAddr loginHeld = 1 << iota
	heldUser
)

// loginDelay is the wait after count failures (count ≥ LoginFailures).
func (g *guard) loginDelay(count int) time.Duration {
	shift := count - g.cfg.LoginFailures
	d := g.cfg.LoginDelay
	for i := 0; i < shift && d < g.cfg.LoginDelayMax; i++ {
		d *= 2
	}
	return min(d, g.cfg.LoginDelayMax)
}

// loginSources are the keys of an attempt.
func loginSources(info *ClientInfo) (addr netip.Addr, hasAddr bool, user string) {
	if a, ok := ratelimit.ParseAddr(info.Remote); ok {
		addr, hasAddr = ratelimit.AddrKey(a), true
	}
	return addr, hasAddr, info.Username
}

// fresh returns rec unless its failures are older than the window.
func (g *guard) fresh(rec *loginRec, now int64) *loginRec {
	if rec != nil && !rec.busy && now-rec.lastFail > int64(g.cfg.LoginWindow) {
		*rec = loginRec{}
	}
	return rec
}

// loginBegin holds a login attempt from a throttled source for its
// delay, or refuses it: when another attempt of the source is being
// checked, or the caller may not wait (NoWait).
func (g *guard) loginBegin(ctx context.Context, info *ClientInfo) (loginHeld, error) {
	if g.byAddr == nil {
		return 0, nil
	}
	now := ratelimit.Now()
	if last := g.lastFail.Load(); last == 0 || now-last > int64(g.cfg.LoginWindow) {
		return 0, nil // no failure lately: nobody is throttled
	}
	addr, hasAddr, user := loginSources(info)
	noWait, _ := ctx.Value(noWaitKey{}).(bool)
	var held loginHeld
	var wait time.Duration
	recs := [2]*loginRec{}
	g.loginMu.Lock()
	if hasAddr {
		recs[0] = g.fresh(g.byAddr.Get(addr, now), now)
	}
	if user != "" {
		recs[1] = g.fresh(g.byUser.Get(user, now), now)
	}
	for i, rec := range recs {
		if rec == nil || rec.count < g.cfg.LoginFailures {
			continue
		}
		if rec.busy {
			after := g.loginDelay(rec.count)
			g.loginMu.Unlock()
			g.n.loginRefused.Add(1)
			return 0, &RetryError{Err: ErrRateLimited, After: after}
		}
		wait = max(wait, time.Duration(rec.next-now))
		held |= loginHeld(1 << i)
	}
	if noWait && wait > 0 {
		g.loginMu.Unlock()
		g.n.loginRefused.Add(1)
		return 0, &RetryError{Err: ErrRateLimited, After: wait}
	}
	for i, rec := range recs {
		if held&loginHeld(1<<i) != 0 {
			rec.busy = true
		}
	}
	g.loginMu.Unlock()
	if wait > 0 {
		g.n.loginDelayed.Add(1)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			g.loginEnd(info, held, ctx.Err())
			return 0, fmt.Errorf("%w: %v", ErrServerUnavailable, ctx.Err())
		}
	}
	return held, nil
}

// isLoginFailure is whether an authentication error counts against the
// source: wrong credentials or an anonymous client refused, not a backend
// outage.
func isLoginFailure(err error) bool {
	return errors.Is(err, ErrBadCredentials) || (errors.Is(err, ErrNotAuthorized) && !errors.Is(err, ErrBanned))
}

// loginEnd records an attempt's outcome: a failure counts against its
// address and user name (and may ban them); a success forgives the user
// name (not the address, which an attacker holding one account could
// otherwise keep clean).
func (g *guard) loginEnd(info *ClientInfo, held loginHeld, err error) {
	if g.byAddr == nil {
		return
	}
	failed := isLoginFailure(err)
	now := ratelimit.Now()
	if failed {
		g.n.loginFailures.Add(1)
		g.lastFail.Store(now)
	} else if held == 0 {
		if last := g.lastFail.Load(); last == 0 || now-last > int64(g.cfg.LoginWindow) {
			return
		}
	}
	addr, hasAddr, user := loginSources(info)
	var banAddr, banUser bool
	var count int
	g.loginMu.Lock()
	update := func(rec *loginRec, held bool) (ban bool) {
		if held {
			rec.busy = false
		}
		if !failed {
			return false
		}
		rec.count++
		rec.lastFail = now
		count = max(count, rec.count)
		if rec.count >= g.cfg.LoginFailures {
			rec.next = now + int64(g.loginDelay(rec.count))
		}
		return g.cfg.LoginBanFailures > 0 && rec.count >= g.cfg.LoginBanFailures
	}
	if hasAddr {
		rec := g.fresh(g.byAddr.Get(addr, now), now)
		if rec == nil && failed {
			rec = &loginRec{}
			g.byAddr.Put(addr, rec, now)
		}
		if rec != nil && update(rec, held&heldAddr != 0) {
			banAddr = true
			g.byAddr.Delete(addr)
		}
	}
	if user != "" {
		rec := g.fresh(g.byUser.Get(user, now), now)
		switch {
		case !failed && err == nil:
			if (rec != nil && !rec.busy) || held&heldUser != 0 {
				g.byUser.Delete(user)
			}
		case rec == nil && failed:
			rec = &loginRec{}
			g.byUser.Put(user, rec, now)
			fallthrough
		case rec != nil:
			if update(rec, held&heldUser != 0) {
				banUser = true
				g.byUser.Delete(user)
			}
		}
	}
	g.loginMu.Unlock()
	reason := strconv.Itoa(count) + " failed logins"
	if banAddr {
		prefix := netip.PrefixFrom(addr, addr.BitLen())
		if addr.Is6() {
			prefix = netip.PrefixFrom(addr, 64)
		}
		g.tempBan(BanAddress, prefix.String(), reason)
	}
	if banUser {
		g.tempBan(BanUsername, user, reason)
	}
}

func (g *guard) tempBan(field, value, reason string) {
	if err := g.b.bans.addTemporary(Ban{Field: field, Value: value, Until: time.Now().Add(g.cfg.BanTime), Reason: reason}); err != nil {
		g.b.log.Warn("temporary ban not added", zap.String(field, value), zap.Error(err))
		return
	}
	g.n.loginBans.Add(1)
	g.b.log.Info("banned after failed logins", zap.String(field, value), zap.String("reason", reason), zap.Duration("for", g.cfg.BanTime))
}

// authenticate is every authentication through the chain: the ban list,
// then failed-login throttling around the Authenticator.
func (b *Broker) authenticate(ctx context.Context, info *ClientInfo) error {
	if err := b.checkBans(info); err != nil {
		return err
	}
	held, err := b.guard.loginBegin(ctx, info)
	if err != nil {
		return err
	}
	err = b.authn.Authenticate(ctx, info)
	b.guard.loginEnd(info, held, err)
	return err
}

// checkBans refuses a client on the ban list.
func (b *Broker) checkBans(info *ClientInfo) error {
	if b.bans.n.Load() == 0 {
		return nil
	}
	if ban := b.bans.match(info); ban != nil {
		b.guard.n.refusedBanned.Add(1)
		b.log.Debug("banned client refused", zap.String("client_id", info.ClientID), zap.String("username", info.Username),
			zap.String("remote", info.Remote), zap.String("ban", ban.Field+" "+ban.Value))
		return ErrBanned
	}
	return nil
}

// connectionEnd is when a connection authenticated at now must end: the
// grant's expiry or limits.max_connection_lifetime after now, whichever
// comes first (zero: never).
func (b *Broker) connectionEnd(g *Grant, now time.Time) time.Time {
	var end time.Time
	if g != nil {
		end = g.ExpireAt
	}
	if lt := b.cfg.Limits.MaxConnectionLifetime; lt > 0 {
		if l := now.Add(lt); end.IsZero() || l.Before(end) {
			end = l
		}
	}
	return end
}

// sysLimits adds the limits' counters to $SYS.
func (b *Broker) sysLimits(add func(topic, value string)) {
	n := &b.guard.n
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	p := "$SYS/broker/limits/"
	add(p+"connect/refused/listener", u(n.refusedListener.Load()))
	add(p+"connect/refused/address", u(n.refusedAddr.Load()))
	add(p+"connect/refused/banned", u(n.refusedBanned.Load()))
	add(p+"client/throttled", u(n.throttled.Load()))
	add(p+"client/throttled_ms", u(n.throttledNs.Load()/uint64(time.Millisecond)))
	add(p+"client/rejected", u(n.rejected.Load()))
	add(p+"client/dropped", u(n.dropped.Load()))
	add(p+"login/failures", u(n.loginFailures.Load()))
	add(p+"login/delayed", u(n.loginDelayed.Load()))
	add(p+"login/refused", u(n.loginRefused.Load()))
	add(p+"login/banned", u(n.loginBans.Load()))
	add("$SYS/broker/bans/count", strconv.Itoa(int(b.bans.n.Load())))
}
