package jwt_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iotgw/iotgw/core"
	"github.com/iotgw/iotgw/internal/auth/jwt"
	"github.com/iotgw/iotgw/internal/auth/jwt/jwttest"
)

// jwksServer serves a JWK Set that the test can replace or break, and
// counts requests.
type jwksServer struct {
	*httptest.Server
	mu     sync.Mutex
	body   []byte
	status int
	hits   atomic.Int64
}

func newJWKSServer(t *testing.T, signers ...*jwttest.Signer) *jwksServer {
	s := &jwksServer{body: jwttest.JWKS(signers...), status: http.StatusOK}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		body, status := s.body, s.status
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) serve(status int, signers ...*jwttest.Signer) {
	s.mu.Lock()
	s.body, s.status = jwttest.JWKS(signers...), status
	s.mu.Unlock()
}

// waitFirstFetch waits for the fetch a new backend starts: Keys waits for
// a fetch in progress when there is no set yet.
func waitFirstFetch(t *testing.T, j *jwt.JWKS) {
	t.Helper()
	if _, err := j.Keys(context.Background(), jwt.Header{Alg: "RS256"}); err != nil {
		t.Fatal(err)
	}
}

// concurrently authenticates a client with each token at once and
// returns how many answers were not want (or failed).
func concurrently(b *jwt.Backend, toks []string, want core.Decision) int64 {
	var wg sync.WaitGroup
	var other atomic.Int64
	for _, tok := range toks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := b.Authenticate(context.Background(), &core.ClientInfo{ClientID: "c", Password: []byte(tok)})
			if err != nil || r.Decision != want {
				other.Add(1)
			}
		}()
	}
	wg.Wait()
	return other.Load()
}

// TestJWKSRotation: the key set is fetched once at start; a token of a
// new kid (the provider rotated) triggers one fetch and is accepted; a
// flood of made-up kids then triggers none (jwks_min_interval), and is
// refused.
func TestJWKSRotation(t *testing.T) {
	t.Parallel()
	k1, k2, k3 := jwttest.RSA(t, "k1"), jwttest.EC(t, "k2"), jwttest.Ed25519(t, "k3")
	srv := newJWKSServer(t, k1)
	b := newBackend(t, func(c *jwt.Config) {
		c.JWKSURL = srv.URL
		c.JWKSMinInterval = time.Hour
	})
	claims := jwttest.ExpiresIn(time.Hour, nil)
	if r := auth(t, b, "c", "", k1.Token(t, claims)); r.Decision != core.Allow {
		t.Fatalf("k1: %v %v", r.Decision, r.Err)
	}
	if n := srv.hits.Load(); n != 1 {
		t.Fatalf("%d JWKS requests after the first token, want 1", n)
	}
	srv.serve(http.StatusOK, k1, k2, k3)
	if r := auth(t, b, "c", "", k2.Token(t, claims)); r.Decision != core.Allow {
		t.Fatalf("k2 after rotation: %v %v", r.Decision, r.Err)
	}
	if r := auth(t, b, "c", "", k3.Token(t, claims)); r.Decision != core.Allow {
		t.Fatalf("k3 (Ed25519 JWK) after rotation: %v %v", r.Decision, r.Err)
	}
	// A JWK's alg is the only one it verifies: k1 is RS256, not PS256.
	if r := auth(t, b, "c", "", k1.WithAlg("PS256").Token(t, claims)); r.Decision != core.Deny {
		t.Fatalf("PS256 token of an RS256 JWK: %v", r.Decision)
	}
	if n := srv.hits.Load(); n != 2 {
		t.Fatalf("%d JWKS requests after the rotation, want 2", n)
	}
	bogus := make([]jwttest.Claims, 20)
	for i := range bogus {
		bogus[i] = claims
	}
	if n := concurrently(b, jwttest.RSA(t, "bogus").Tokens(t, bogus...), core.Deny); n != 0 {
		t.Fatalf("%d tokens of an unknown kid not denied", n)
	}
	if n := srv.hits.Load(); n != 2 {
		t.Fatalf("%d JWKS requests after 20 unknown kids, want still 2 (rate limited)", n)
	}
}

// TestJWKSUnknownKidSharesOneFetch: many clients presenting the same new
// kid at once cause one fetch, not one each.
func TestJWKSUnknownKidSharesOneFetch(t *testing.T) {
	t.Parallel()
	k1, k2 := jwttest.RSA(t, "k1"), jwttest.RSA(t, "k2")
	srv := newJWKSServer(t, k1)
	b := newBackend(t, func(c *jwt.Config) { c.JWKSURL = srv.URL; c.JWKSMinInterval = 0 })
	waitFirstFetch(t, b.JWKS())
	srv.serve(http.StatusOK, k1, k2)
	tok := k2.Token(t, jwttest.ExpiresIn(time.Hour, nil))
	toks := make([]string, 16)
	for i := range toks {
		toks[i] = tok
	}
	if n := concurrently(b, toks, core.Allow); n != 0 {
		t.Fatalf("%d of 16 refused", n)
	}
	// With no rate limit each unknown-kid miss may fetch, but concurrent
	// misses share the fetch in progress: far fewer than 16.
	if n := srv.hits.Load(); n > 4 {
		t.Errorf("%d JWKS requests for 16 concurrent clients of one new kid", n)
	}
}

// TestJWKSKeepsLastGoodSet: when the provider fails (500, garbage), the
// periodic refresh keeps the set it had; tokens keep verifying.
func TestJWKSKeepsLastGoodSet(t *testing.T) {
	t.Parallel()
	k1 := jwttest.EC(t, "k1")
	srv := newJWKSServer(t, k1)
	b := newBackend(t, func(c *jwt.Config) {
		c.JWKSURL = srv.URL
		c.JWKSRefresh = time.Millisecond // every use refreshes
		c.JWKSMinInterval = 0
	})
	tok := k1.Token(t, jwttest.ExpiresIn(time.Hour, nil))
	waitFirstFetch(t, b.JWKS())
	srv.mu.Lock()
	srv.status = http.StatusInternalServerError
	srv.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if r := auth(t, b, "c", "", tok); r.Decision != core.Allow {
			t.Fatalf("with the provider failing: %v %v", r.Decision, r.Err)
		}
		if _, failed := b.JWKS().Fetches(); failed >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no failed refresh seen")
		}
		time.Sleep(5 * time.Millisecond)
	}
	srv.mu.Lock()
	srv.status, srv.body = http.StatusOK, []byte("not json")
	srv.mu.Unlock()
	_, failed := b.JWKS().Fetches()
	for {
		if r := auth(t, b, "c", "", tok); r.Decision != core.Allow {
			t.Fatalf("with the provider answering garbage: %v %v", r.Decision, r.Err)
		}
		if _, f := b.JWKS().Fetches(); f > failed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no failed refresh seen")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestJWKSUnreachable: with no set ever fetched, a token is a backend
// failure (on_error decides), not a refusal; a provider that hangs is cut
// by the timeout.
func TestJWKSUnreachable(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); hang.Close() })
	b := newBackend(t, func(c *jwt.Config) { c.JWKSURL = hang.URL; c.Timeout = 200 * time.Millisecond })
	tok := jwttest.RSA(t, "k").Token(t, jwttest.ExpiresIn(time.Hour, nil))
	_, err := b.Authenticate(context.Background(), &core.ClientInfo{ClientID: "c", Password: []byte(tok)})
	if err == nil {
		t.Fatal("no error with the JWKS unreachable")
	}
	// The chain bounds the answer by its ctx even if the fetch were slower.
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	if _, err := b.Authenticate(ctx, &core.ClientInfo{ClientID: "c", Password: []byte(tok)}); err == nil {
		t.Fatal("no error with ctx over")
	}
}
