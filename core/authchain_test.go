package core

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// fakeBackend answers with a fixed result, or fails, or waits for its
// context, and counts its calls.
type fakeBackend struct {
	result AuthResult
	err    error
	block  bool
	calls  atomic.Int32
}

func (f *fakeBackend) Authenticate(ctx context.Context, _ *ClientInfo) (AuthResult, error) {
	f.calls.Add(1)
	if f.block {
		<-ctx.Done()
		return AuthResult{}, ctx.Err()
	}
	return f.result, f.err
}

func chainOf(t *testing.T, anon bool, links ...ChainLink) *Chain {
	t.Helper()
	ch, err := NewChain(links, anon, nil)
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func TestChainAsksInOrderUntilOneDecides(t *testing.T) {
	ignore := &fakeBackend{result: AuthResult{Decision: Ignore}}
	allow := &fakeBackend{result: AuthResult{Decision: Allow, Grant: &Grant{Superuser: true}}}
	never := &fakeBackend{result: AuthResult{Decision: Deny}}
	ch := chainOf(t, false, ChainLink{Name: "a", Backend: ignore}, ChainLink{Name: "b", Backend: allow}, ChainLink{Name: "c", Backend: never})
	c := &ClientInfo{ClientID: "x", Username: "u", Password: []byte("p")}
	if err := ch.Authenticate(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if c.Grant == nil || !c.Grant.Superuser || c.Grant.Backend != "b" {
		t.Fatalf("grant %+v", c.Grant)
	}
	if ignore.calls.Load() != 1 || allow.calls.Load() != 1 || never.calls.Load() != 0 {
		t.Fatal("not asked in order, or asked past the deciding backend")
	}
}

func TestChainDenyStopsTheChain(t *testing.T) {
	deny := &fakeBackend{result: AuthResult{Decision: Deny, Err: ErrNotAuthorized}}
	allow := &fakeBackend{result: AuthResult{Decision: Allow}}
	ch := chainOf(t, true, ChainLink{Name: "deny", Backend: deny}, ChainLink{Name: "allow", Backend: allow})
	if err := ch.Authenticate(context.Background(), &ClientInfo{Username: "u"}); !errors.Is(err, ErrNotAuthorized) {
		t.Fatalf("err %v, want the backend's refusal", err)
	}
	deny.result.Err = nil
	if err := ch.Authenticate(context.Background(), &ClientInfo{Username: "u"}); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("err %v, want bad credentials by default", err)
	}
}

func TestChainNobodyDecides(t *testing.T) {
	ignore := &fakeBackend{result: AuthResult{Decision: Ignore}}
	for _, tc := range []struct {
		anon     bool
		user     string
		pass     string
		want     error
		wantNone bool
	}{
		{anon: true, wantNone: true},
		{anon: false, want: ErrNotAuthorized},
		{anon: true, user: "stranger", want: ErrBadCredentials},
		{anon: true, pass: "secret", want: ErrNotAuthorized},
	} {
		ch := chainOf(t, tc.anon, ChainLink{Name: "i", Backend: ignore})
		err := ch.Authenticate(context.Background(), &ClientInfo{Username: tc.user, Password: []byte(tc.pass)})
		if tc.wantNone && err != nil || !tc.wantNone && !errors.Is(err, tc.want) {
			t.Errorf("%+v: err %v", tc, err)
		}
	}
}

func TestChainBackendFailure(t *testing.T) {
	broken := &fakeBackend{err: errors.New("503 from hook")}
	allow := &fakeBackend{result: AuthResult{Decision: Allow}}
	// on_error deny (the default): refused as unavailable, next not asked.
	ch := chainOf(t, false, ChainLink{Name: "http", Backend: broken}, ChainLink{Name: "users", Backend: allow})
	if err := ch.Authenticate(context.Background(), &ClientInfo{Username: "u"}); !errors.Is(err, ErrServerUnavailable) {
		t.Fatalf("err %v, want server unavailable", err)
	}
	if allow.calls.Load() != 0 {
		t.Fatal("asked the next backend after a failure with on_error deny")
	}
	// on_error ignore: the next backend decides.
	ch = chainOf(t, false, ChainLink{Name: "http", Backend: broken, OnError: OnErrorIgnore}, ChainLink{Name: "users", Backend: allow})
	if err := ch.Authenticate(context.Background(), &ClientInfo{Username: "u"}); err != nil {
		t.Fatal(err)
	}
	// A backend that does not answer is bounded by its link's timeout.
	slow := &fakeBackend{block: true}
	ch = chainOf(t, false, ChainLink{Name: "slow", Backend: slow, Timeout: 20 * time.Millisecond})
	if err := ch.Authenticate(context.Background(), &ClientInfo{Username: "u"}); !errors.Is(err, ErrServerUnavailable) {
		t.Fatalf("err %v, want server unavailable after the timeout", err)
	}
	m := map[string]string{}
	ch.SysSource()(func(k, v string) { m[k] = v })
	if m["$SYS/broker/auth/slow/failed"] != "1" {
		t.Fatalf("$SYS %v", m)
	}
}

func TestGrantRulesAndSuperuser(t *testing.T) {
	base := &ACL{DefaultAllow: false, Rules: []ACLRule{{Allow: true, Action: "all", Topic: "public/#"}}}
	a := grantAuthorizer{next: base}
	plain := &ClientInfo{ClientID: "c", Username: "u"}
	if a.Authorize(plain, Access{Action: ActionPublish, Topic: "private/x"}) || !a.Authorize(plain, Access{Action: ActionPublish, Topic: "public/x"}) {
		t.Fatal("configured rules not applied to a client without a grant")
	}
	own := &ClientInfo{ClientID: "c", Username: "u", Grant: &Grant{Rules: []ACLRule{
		{Allow: true, Action: "publish", Topic: "private/%u/#"},
		{Allow: false, Action: "all", Topic: "public/secret"},
	}}}
	if !a.Authorize(own, Access{Action: ActionPublish, Topic: "private/u/t"}) {
		t.Fatal("the client's own rule did not allow")
	}
	if a.Authorize(own, Access{Action: ActionSubscribe, Topic: "public/secret"}) {
		t.Fatal("the client's own deny rule did not come first")
	}
	if !a.Authorize(own, Access{Action: ActionSubscribe, Topic: "public/other"}) {
		t.Fatal("no own rule matched, so the configured ones decide")
	}
	super := &ClientInfo{Grant: &Grant{Superuser: true}}
	if !a.Authorize(super, Access{Action: ActionPublish, Topic: "anything/at/all"}) {
		t.Fatal("superuser refused")
	}
}

// expirySink records the reason it was closed with.
type expirySink struct {
	fakeSink
	closed chan error
}

func (s *expirySink) Close(reason error) {
	select {
	case s.closed <- reason:
	default:
	}
}

func brokerWith(t *testing.T, opts ...Option) *Broker {
	t.Helper()
	cfg := DefaultConfig()
	cfg.SysInterval = 0
	b, err := New(cfg, nil, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

func TestGrantExpiryEndsTheConnection(t *testing.T) {
	at := time.Now().Add(50 * time.Millisecond)
	grant := &fakeBackend{result: AuthResult{Decision: Allow, Grant: &Grant{ExpireAt: at}}}
	ch := chainOf(t, false, ChainLink{Name: "jwt", Backend: grant})
	b := brokerWith(t, WithAuthenticator(ch))
	sink := &expirySink{closed: make(chan error, 1)}
	_, _, err := b.Connect(context.Background(), ConnectRequest{ClientID: "exp", Username: "u", Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case reason := <-sink.closed:
		if !errors.Is(reason, ErrAuthExpired) {
			t.Fatalf("closed with %v", reason)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the connection outlived its credentials")
	}

	// A re-authentication before the expiry moves it.
	grant.result.Grant = &Grant{ExpireAt: time.Now().Add(time.Hour)}
	sink2 := &expirySink{closed: make(chan error, 1)}
	s, _, err := b.Connect(context.Background(), ConnectRequest{ClientID: "exp2", Username: "u", Sink: sink2})
	if err != nil {
		t.Fatal(err)
	}
	grant.result.Grant = &Grant{ExpireAt: time.Now().Add(30 * time.Millisecond)}
	if err := b.Reauthenticate(context.Background(), s, []byte("fresh")); err != nil {
		t.Fatal(err)
	}
	select {
	case reason := <-sink2.closed:
		if !errors.Is(reason, ErrAuthExpired) {
			t.Fatalf("closed with %v", reason)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("re-authentication did not move the expiry")
	}
	// A failed re-authentication changes nothing.
	grant.result = AuthResult{Decision: Deny}
	if err := b.Reauthenticate(context.Background(), s, []byte("stale")); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("err %v", err)
	}
}
