package core

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/iotgw/iotgw/core/store"
)

// passwordBroker accepts user "u" with password "good" only, under
// limits lim.
func passwordBroker(t *testing.T, lim LimitsConfig, st store.Store) *Broker {
	t.Helper()
	users, err := NewUsers([]User{{Username: "u", Password: "good"}, {Username: "v", Password: "good"}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.SysInterval = 0
	cfg.Limits = lim
	opts := []Option{WithAuthenticator(chainOf(t, false, ChainLink{Name: "users", Backend: users}))}
	if st != nil {
		opts = append(opts, WithStore(st))
	}
	b, err := New(cfg, nil, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

func login(b *Broker, ctx context.Context, id, user, pass, remote string) error {
	s, _, err := b.Connect(ctx, ConnectRequest{ClientID: id, Username: user, Password: []byte(pass),
		Protocol: ProtoMQTT, Remote: remote, CleanStart: true, Sink: &fakeSink{}})
	if err == nil {
		s.Disconnect(nil, DisconnectOptions{})
	}
	return err
}

func fastLogins() LimitsConfig {
	return LimitsConfig{LoginFailures: 3, LoginWindow: time.Minute, LoginDelay: 20 * time.Millisecond,
		LoginDelayMax: 80 * time.Millisecond, LoginBanFailures: 7, BanTime: time.Minute}
}

func TestLoginFailuresDelayThenBan(t *testing.T) {
	b := passwordBroker(t, fastLogins(), nil)
	ctx := context.Background()
	const attacker = "192.0.2.9:4000"
	for i := 0; i < 3; i++ {
		if err := login(b, ctx, "x", "u", "bad", attacker); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	// From now on each attempt waits; one that may not wait (a datagram
	// read loop) is refused with the wait instead.
	err := login(b, NoWait(ctx), "x", "u", "bad", attacker)
	if !errors.Is(err, ErrRateLimited) || RetryAfter(err) <= 0 {
		t.Fatalf("no-wait attempt while throttled: %v", err)
	}
	for i := 3; i < 7; i++ {
		if err := login(b, ctx, "x", "u", "bad", attacker); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	if got := b.guard.n.loginDelayed.Load(); got < 4 {
		t.Fatalf("%d attempts delayed, want 4", got)
	}
	// The seventh failure banned the address, and the user name: even
	// the right password is refused now.
	if err := login(b, ctx, "x", "u", "good", attacker); !errors.Is(err, ErrBanned) {
		t.Fatalf("after the ban: %v", err)
	}
	if err := login(b, ctx, "y", "v", "good", "192.0.2.9:4001"); !errors.Is(err, ErrBanned) {
		t.Fatalf("another user from the banned address: %v", err)
	}
	if err := login(b, ctx, "z", "v", "good", "198.51.100.1:1"); err != nil {
		t.Fatalf("another client elsewhere: %v", err)
	}
	bans := b.Bans().List()
	if len(bans) != 2 || bans[0].Field != BanAddress || bans[0].Value != "192.0.2.9/32" || bans[1].Field != BanUsername || bans[0].Until.IsZero() {
		t.Fatalf("bans %+v", bans)
	}
	if _, err := b.Bans().Remove(BanUsername, "u"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Bans().Remove(BanAddress, "192.0.2.9"); err != nil {
		t.Fatal(err)
	}
	if err := login(b, ctx, "x", "u", "good", attacker); err != nil {
		t.Fatalf("after lifting the bans: %v", err)
	}
}

func TestThrottledLoginsOneAtATime(t *testing.T) {
	lim := fastLogins()
	lim.LoginDelay, lim.LoginDelayMax, lim.LoginBanFailures = 200*time.Millisecond, 200*time.Millisecond, 0
	b := passwordBroker(t, lim, nil)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		_ = login(b, ctx, "x", "u", "bad", "192.0.2.1:1")
	}
	// Parallel attempts of a throttled source do not each get a guess
	// after the delay: one is checked, the others are refused at once.
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = login(b, ctx, "x", "v", "bad", "192.0.2.1:2")
		}()
	}
	wg.Wait()
	checked := 0
	for _, err := range errs {
		switch {
		case errors.Is(err, ErrBadCredentials):
			checked++
		case !errors.Is(err, ErrRateLimited):
			t.Fatalf("unexpected %v", err)
		}
	}
	if checked < 1 || checked > 2 {
		t.Fatalf("%d of 8 parallel attempts checked, want 1 (2 if one began after the first ended)", checked)
	}
}

func TestUserFailuresForgivenBySuccess(t *testing.T) {
	b := passwordBroker(t, fastLogins(), nil)
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		// Each from another address: only the user name's count grows.
		_ = login(b, ctx, "x", "u", "bad", net.JoinHostPort("192.0.2."+string(rune('1'+i)), "1"))
		if i == 1 {
			if err := login(b, ctx, "x", "u", "good", "198.51.100.7:1"); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := b.guard.n.loginDelayed.Load(); got != 0 {
		t.Fatalf("%d delayed: the success should have reset the user name's count", got)
	}
}

func TestBanListMatchesAndKicks(t *testing.T) {
	b := newTestBroker(t, nil)
	sink := &fakeSink{}
	s, _, err := b.Connect(context.Background(), ConnectRequest{ClientID: "dev1", Protocol: ProtoMQTT, Remote: "10.1.2.3:5", Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	if err := b.Bans().Add(Ban{Field: BanAddress, Value: "10.1.0.0/16", Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	sink.mu.Lock()
	closed := sink.closed
	sink.mu.Unlock()
	if !errors.Is(closed, ErrBanned) {
		t.Fatalf("connected client in the banned range: closed %v", closed)
	}
	tcp := &net.TCPAddr{IP: net.ParseIP("10.1.200.1"), Port: 9}
	if err := b.AdmitConnection(ProtoMQTT, "tcp", tcp); !errors.Is(err, ErrBanned) {
		t.Fatalf("accept from the banned range: %v", err)
	}
	if err := b.AdmitConnection(ProtoMQTT, "tcp", &net.TCPAddr{IP: net.ParseIP("10.2.0.1"), Port: 9}); err != nil {
		t.Fatalf("accept elsewhere: %v", err)
	}
	for _, bad := range []Ban{{Field: "ip", Value: "x"}, {Field: BanAddress, Value: "not-an-address"}, {Field: BanClientID}} {
		if err := b.Bans().Add(bad); !errors.Is(err, ErrBadBan) {
			t.Errorf("%+v: %v", bad, err)
		}
	}
	// An expired ban is dropped when it is met.
	if err := b.Bans().Add(Ban{Field: BanClientID, Value: "old", Until: time.Now().Add(-time.Second)}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.Connect(context.Background(), ConnectRequest{ClientID: "old", Protocol: ProtoMQTT, Sink: &fakeSink{}}); err != nil {
		t.Fatalf("expired ban refused: %v", err)
	}
	if n := len(b.Bans().List()); n != 1 {
		t.Fatalf("%d bans listed, want the range only", n)
	}
}

func TestBansSurviveRecovery(t *testing.T) {
	st := store.NewMemory()
	b := passwordBroker(t, LimitsConfig{}, st)
	for _, ban := range []Ban{{Field: BanUsername, Value: "mallory"}, {Field: BanAddress, Value: "2001:db8::1"},
		{Field: BanClientID, Value: "gone", Until: time.Now().Add(20 * time.Millisecond)}} {
		if err := b.Bans().Add(ban); err != nil {
			t.Fatal(err)
		}
	}
	b.Close()
	time.Sleep(30 * time.Millisecond) // the client id ban ends meanwhile
	b2 := passwordBroker(t, LimitsConfig{}, st)
	if err := b2.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	bans := b2.Bans().List()
	if len(bans) != 2 || bans[0].Value != "2001:db8::1/128" || bans[1].Value != "mallory" {
		t.Fatalf("recovered %+v", bans)
	}
	if err := login(b2, context.Background(), "c", "mallory", "x", ""); !errors.Is(err, ErrBanned) {
		t.Fatalf("banned user after recovery: %v", err)
	}
}

func TestConnectRates(t *testing.T) {
	b := newTestBroker(t, func(c *Config) {
		c.Limits.ConnectRatePerAddr, c.Limits.ConnectBurstPerAddr = 1, 2
		c.Limits.ConnectRate, c.Limits.ConnectBurst = 1, 3
	})
	a := &net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 1}
	for i := 0; i < 2; i++ {
		if err := b.AdmitConnection(ProtoMQTT, "tcp", a); err != nil {
			t.Fatal(err)
		}
	}
	err := b.AdmitConnection(ProtoMQTT, "tcp", a)
	if !errors.Is(err, ErrRateLimited) || RetryAfter(err) <= 0 {
		t.Fatalf("third from one address: %v", err)
	}
	// Another address is not limited by the first, but the listener's own
	// rate counts everyone.
	if err := b.AdmitConnection(ProtoMQTT, "tcp", &net.TCPAddr{IP: net.ParseIP("192.0.2.2"), Port: 1}); err != nil {
		t.Fatal(err)
	}
	if err := b.AdmitConnection(ProtoMQTT, "tcp", &net.TCPAddr{IP: net.ParseIP("192.0.2.3"), Port: 1}); !errors.Is(err, ErrServerBusy) {
		t.Fatalf("beyond the listener's burst: %v", err)
	}
	if err := b.AdmitConnection(ProtoSTOMP, "tcp", &net.TCPAddr{IP: net.ParseIP("192.0.2.3"), Port: 1}); err != nil {
		t.Fatalf("another listener: %v", err)
	}
}

func TestMaxConnectionLifetime(t *testing.T) {
	b := newTestBroker(t, func(c *Config) { c.Limits.MaxConnectionLifetime = 30 * time.Millisecond })
	sink := &fakeSink{}
	s, _, err := b.Connect(context.Background(), ConnectRequest{ClientID: "c", Protocol: ProtoMQTT, Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	deadline := time.Now().Add(5 * time.Second)
	for {
		sink.mu.Lock()
		closed := sink.closed
		sink.mu.Unlock()
		if errors.Is(closed, ErrAuthExpired) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("connection still open after its lifetime (closed %v)", closed)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestClientLimit(t *testing.T) {
	off := newTestBroker(t, nil)
	if off.NewClientLimit() != nil {
		t.Fatal("a client limit without rates")
	}
	b := newTestBroker(t, func(c *Config) { c.Limits.ClientMsgRate = 10 })
	l := b.NewClientLimit()
	var waited time.Duration
	for i := 0; i < 15; i++ {
		waited += l.Pause(10)
	}
	if waited <= 0 || b.guard.n.throttled.Load() == 0 {
		t.Fatalf("15 messages at 10/s with a burst of 10 never paused")
	}
	u := b.NewClientLimit()
	for i := 0; i < 10; i++ {
		u.Admit(1, false)
	}
	if ok, wait := u.Admit(1, true); ok || wait <= 0 {
		t.Fatalf("eleventh datagram: ok %v wait %v", ok, wait)
	}
	if b.guard.n.dropped.Load() != 1 {
		t.Fatal("drop not counted")
	}
}

func TestLimitsValidate(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Limits.ClientMsgRate = -1
	cfg.Limits.LoginBanFailures = 2 // below login_failures
	cfg.Limits.MaxConnectionLifetime = -time.Second
	if err := cfg.Validate(); err == nil {
		t.Fatal("bad limits accepted")
	}
}
