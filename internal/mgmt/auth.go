package mgmt

import (
	"context"
	"crypto/sha256"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/iotgw/iotgw/internal/ratelimit"
)

// Identity is who made a request: a key's name (or a password-file
// user's) and its role.
type Identity struct {
	Name string
	Role Role
}

// PasswordCheck checks a user name and password against the gateway's
// users (the password file); it reports whether they match.
type PasswordCheck func(ctx context.Context, user, password string) bool

// maxTokens bounds the login tokens kept: each login makes one, and a
// login costs a valid credential, so this only guards against a script
// logging in in a loop.
const maxTokens = 10000

// CookieName is the session cookie a login sets for the dashboard's
// browser (EventSource cannot send an Authorization header).
const CookieName = "iotgw_session"

type token struct {
	id      Identity
	expires time.Time
}

// auth decides who a request is: API keys (Basic or Bearer), login
// tokens (Bearer or the session cookie), and, for admin_users, their
// password-file passwords. It throttles sources with many failures.
type auth struct {
	keys       atomic.Pointer[Keys]
	password   PasswordCheck
	adminUsers atomic.Pointer[map[string]bool]
	tokenTTL   time.Duration

	tmu    sync.Mutex
	tokens map[[sha256.Size]byte]token

	fmu      sync.Mutex
	fails    *ratelimit.Table[netip.Addr, failures]
	maxFails int
	window   time.Duration
}

type failures struct {
	n     int
	first int64 // ratelimit.Now of the first failure of the window
}

func newAuth(cfg *Config) *auth {
	a := &auth{password: cfg.Password, tokenTTL: cfg.TokenTTL, tokens: map[[sha256.Size]byte]token{},
		maxFails: cfg.AuthFailures, window: cfg.AuthFailureWindow,
		fails: ratelimit.NewTable[netip.Addr, failures](10000, cfg.AuthFailureWindow, ratelimit.Now())}
	a.setAdminUsers(cfg.AdminUsers)
	return a
}

func (a *auth) setAdminUsers(users []string) {
	m := make(map[string]bool, len(users))
	for _, u := range users {
		m[u] = true
	}
	a.adminUsers.Store(&m)
}

// throttled reports how long a source must wait before trying again (0:
// it may).
func (a *auth) throttled(addr netip.Addr) time.Duration {
	if a.maxFails <= 0 || !addr.IsValid() {
		return 0
	}
	now := ratelimit.Now()
	a.fmu.Lock()
	defer a.fmu.Unlock()
	f := a.fails.Get(ratelimit.AddrKey(addr), now)
	if f == nil || f.n < a.maxFails {
		return 0
	}
	left := time.Duration(f.first + int64(a.window) - now)
	if left <= 0 {
		f.n = 0
		return 0
	}
	return left
}

// failed counts a failed authentication of a source.
func (a *auth) failed(addr netip.Addr) {
	if a.maxFails <= 0 || !addr.IsValid() {
		return
	}
	now := ratelimit.Now()
	key := ratelimit.AddrKey(addr)
	a.fmu.Lock()
	defer a.fmu.Unlock()
	f := a.fails.Get(key, now)
	if f == nil || now-f.first >= int64(a.window) {
		f = &failures{first: now}
		a.fails.Put(key, f, now)
	}
	f.n++
}

// viaCookie reports that a request's credentials came from the session
// cookie: a mutating call must then also carry the X-Requested-With
// header, which a cross-site form or image cannot set (no CORS here), so
// another site cannot ride the operator's logged-in browser.
func viaCookie(r *http.Request) bool {
	if r.Header.Get("Authorization") != "" {
		return false
	}
	_, err := r.Cookie(CookieName)
	return err == nil
}

// identify returns the identity of a request's credentials; ok false when
// there are none or they are wrong (present tells which).
func (a *auth) identify(r *http.Request) (id Identity, present, ok bool) {
	h := r.Header.Get("Authorization")
	if h == "" {
		if c, err := r.Cookie(CookieName); err == nil {
			id, ok := a.checkToken(c.Value)
			return id, true, ok
		}
		return Identity{}, false, false
	}
	if user, pass, isBasic := r.BasicAuth(); isBasic {
		id, ok := a.checkPassword(r.Context(), user, pass)
		return id, true, ok
	}
	scheme, tok, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return Identity{}, true, false
	}
	tok = strings.TrimSpace(tok)
	if k, ok := a.keys.Load().Bearer(tok); ok {
		return Identity{Name: k.Name, Role: k.Role}, true, true
	}
	id, ok = a.checkToken(tok)
	return id, true, ok
}

// checkPassword checks a Basic user name and password: an API key's name
// and secret, or an admin user's password-file password.
func (a *auth) checkPassword(ctx context.Context, user, pass string) (Identity, bool) {
	if k, ok := a.keys.Load().Check(user, pass); k != nil {
		if !ok {
			return Identity{}, false
		}
		return Identity{Name: k.Name, Role: k.Role}, true
	}
	if a.password != nil && (*a.adminUsers.Load())[user] && a.password(ctx, user, pass) {
		return Identity{Name: "user:" + user, Role: RoleAdmin}, true
	}
	return Identity{}, false
}

// login makes a token for an identity.
func (a *auth) login(id Identity) (string, time.Time) {
	tok := NewSecret()
	now := time.Now()
	exp := now.Add(a.tokenTTL)
	a.tmu.Lock()
	defer a.tmu.Unlock()
	if len(a.tokens) >= maxTokens {
		for k, t := range a.tokens {
			if now.After(t.expires) {
				delete(a.tokens, k)
			}
		}
		if len(a.tokens) >= maxTokens {
			for k := range a.tokens { // the map's order: any one
				delete(a.tokens, k)
				break
			}
		}
	}
	a.tokens[sha256.Sum256([]byte(tok))] = token{id: id, expires: exp}
	return tok, exp
}

// logout forgets a token.
func (a *auth) logout(tok string) {
	a.tmu.Lock()
	delete(a.tokens, sha256.Sum256([]byte(tok)))
	a.tmu.Unlock()
}

func (a *auth) checkToken(tok string) (Identity, bool) {
	k := sha256.Sum256([]byte(tok))
	a.tmu.Lock()
	defer a.tmu.Unlock()
	t, ok := a.tokens[k]
	if !ok {
		return Identity{}, false
	}
	if time.Now().After(t.expires) {
		delete(a.tokens, k)
		return Identity{}, false
	}
	return t.id, true
}

// dropTokensOf forgets the tokens of identities no longer valid after a
// reload of the keys (a removed key, a changed role).
func (a *auth) dropTokensOf(valid func(Identity) bool) {
	a.tmu.Lock()
	defer a.tmu.Unlock()
	for k, t := range a.tokens {
		if !valid(t.id) {
			delete(a.tokens, k)
		}
	}
}
