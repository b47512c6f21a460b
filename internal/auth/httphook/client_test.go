package httphook

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iotgw/iotgw/core"
)

// hookServer is a test hook: it records every request and answers with
// reply.
type hookServer struct {
	*httptest.Server
	mu       sync.Mutex
	bodies   []map[string]string
	requests atomic.Int64
	inFlight atomic.Int64
	maxIn    atomic.Int64
	reply    func(w http.ResponseWriter, r *http.Request)
}

func newHookServer(t *testing.T, reply func(w http.ResponseWriter, r *http.Request)) *hookServer {
	h := &hookServer{reply: reply}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.requests.Add(1)
		n := h.inFlight.Add(1)
		defer h.inFlight.Add(-1)
		for {
			m := h.maxIn.Load()
			if n <= m || h.maxIn.CompareAndSwap(m, n) {
				break
			}
		}
		fields := map[string]string{}
		if r.Method == http.MethodGet {
			for k, v := range r.URL.Query() {
				fields[k] = v[0]
			}
		} else {
			b, _ := io.ReadAll(r.Body)
			_ = json.Unmarshal(b, &fields)
		}
		fields["_method"] = r.Method
		fields["_content_type"] = r.Header.Get("Content-Type")
		fields["_x"] = r.Header.Get("X-Api-Key")
		h.mu.Lock()
		h.bodies = append(h.bodies, fields)
		h.mu.Unlock()
		h.reply(w, r)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hookServer) last() map[string]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.bodies) == 0 {
		return nil
	}
	return h.bodies[len(h.bodies)-1]
}

func jsonReply(s string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, s)
	}
}

func testConfig(u string) Config {
	c := DefaultConfig()
	c.URL = u
	c.Timeout = 2 * time.Second
	return c
}

func newBackend(t *testing.T, cfg Config) *Backend {
	t.Helper()
	if err := cfg.Validate("auth.http", AuthKind); err != nil {
		t.Fatal(err)
	}
	b, err := NewBackend(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

var alice = &core.ClientInfo{Protocol: "mqtt", ClientID: "c1", Username: "alice", Password: []byte("pw"), Remote: "10.1.2.3:5555", Listener: "mqtt.tcp"}

func TestRepliesAndGrant(t *testing.T) {
	exp := time.Now().Add(time.Hour).Unix()
	cases := []struct {
		name   string
		reply  func(http.ResponseWriter, *http.Request)
		want   core.Decision
		fail   bool
		checkG func(t *testing.T, g *core.Grant)
	}{
		{name: "204", reply: func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }, want: core.Allow},
		{name: "allow", reply: jsonReply(`{"result":"allow"}`), want: core.Allow},
		{name: "deny", reply: jsonReply(`{"result":"deny"}`), want: core.Deny},
		{name: "ignore", reply: jsonReply(`{"result":"ignore"}`), want: core.Ignore},
		{name: "no result", reply: jsonReply(`{}`), want: core.Ignore},
		{name: "500", reply: func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(500) }, fail: true},
		{name: "403", reply: func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(403) }, fail: true},
		{name: "not json", reply: jsonReply(`allow`), fail: true},
		{name: "empty 200", reply: jsonReply(``), fail: true},
		{name: "bad result", reply: jsonReply(`{"result":"yes"}`), fail: true},
		{name: "expire in ms", reply: jsonReply(`{"result":"allow","expire_at":1999999999000}`), fail: true},
		{name: "expired", reply: jsonReply(`{"result":"allow","expire_at":1000}`), fail: true},
		{name: "grant", reply: jsonReply(`{"result":"allow","is_superuser":true,"expire_at":` + jsonInt(exp) +
			`,"client_attrs":{"role":"sensor"},"acl":[{"permission":"allow","action":"publish","topic":"up/${clientid}"},` +
			`{"permission":"deny","action":"all","topics":["a/#","b"]},{"permission":"allow","action":"subscribe","topic":"q","qos":[1]},` +
			`{"permission":"allow","topic":"eq x/#"},{"permission":"deny","topic":"r/#","retain":true}]}`),
			want: core.Allow, checkG: func(t *testing.T, g *core.Grant) {
				if g == nil || !g.Superuser || g.ExpireAt.Unix() != exp || g.Attrs["role"] != "sensor" {
					t.Fatalf("grant %+v", g)
				}
				// Conditions, eq and placeholders map onto the core's rules
				// as they are.
				yes := true
				want := []core.ACLRule{{Allow: true, Action: "publish", Topic: "up/${clientid}"},
					{Action: "all", Topic: "a/#"}, {Action: "all", Topic: "b"},
					{Allow: true, Action: "subscribe", Topic: "q", QoS: []byte{1}},
					{Allow: true, Action: "all", Topic: "eq x/#"}, {Action: "all", Topic: "r/#", Retain: &yes}}
				if !reflect.DeepEqual(g.Rules, want) {
					t.Fatalf("rules %+v", g.Rules)
				}
			}},
		{name: "object acl", reply: jsonReply(`{"result":"allow","acl":{"pub":["up/%c"],"sub":["down/#"]}}`),
			want: core.Allow, checkG: func(t *testing.T, g *core.Grant) {
				want := []core.ACLRule{{Allow: true, Action: "publish", Topic: "up/%c"},
					{Allow: true, Action: "subscribe", Topic: "down/#"}, {Action: "all", Topic: "#"}}
				if g == nil || !reflect.DeepEqual(g.Rules, want) {
					t.Fatalf("grant %+v", g)
				}
			}},
		{name: "bad acl", reply: jsonReply(`{"result":"allow","acl":[{"permission":"maybe","topic":"x"}]}`), fail: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHookServer(t, tc.reply)
			b := newBackend(t, testConfig(h.URL))
			r, err := b.Authenticate(context.Background(), alice)
			if tc.fail {
				if err == nil {
					t.Fatalf("want a failure, got %+v", r)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Decision != tc.want {
				t.Fatalf("decision %v, want %v", r.Decision, tc.want)
			}
			if tc.want == core.Deny && !errors.Is(r.Err, core.ErrNotAuthorized) {
				t.Fatalf("deny reason %v", r.Err)
			}
			if tc.checkG != nil {
				tc.checkG(t, r.Grant)
			} else if r.Grant != nil {
				t.Fatalf("unexpected grant %+v", r.Grant)
			}
		})
	}
}

func jsonInt(n int64) string { b, _ := json.Marshal(n); return string(b) }

func TestTemplatePostAndGet(t *testing.T) {
	for _, method := range []string{"post", "get"} {
		t.Run(method, func(t *testing.T) {
			h := newHookServer(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) })
			cfg := testConfig(h.URL + "/auth?static=1")
			cfg.Method = method
			cfg.Headers = map[string]string{"X-Api-Key": "k1"}
			cfg.Body = map[string]string{"clientid": "${clientid}", "user": "u=${username}&", "password": "${password}",
				"host": "${peerhost}", "proto": "${protocol}", "cn": "${cert_common_name}", "listener": "${listener}"}
			b := newBackend(t, cfg)
			c := *alice
			c.CertCN = "dev-7"
			if _, err := b.Authenticate(context.Background(), &c); err != nil {
				t.Fatal(err)
			}
			got := h.last()
			want := map[string]string{"clientid": "c1", "user": "u=alice&", "password": "pw", "host": "10.1.2.3",
				"proto": "mqtt", "cn": "dev-7", "listener": "mqtt.tcp", "_x": "k1"}
			if method == "get" {
				want["_method"], want["_content_type"], want["static"] = "GET", "", "1"
			} else {
				want["_method"], want["_content_type"] = "POST", "application/json"
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("hook saw %v\nwant %v", got, want)
			}
		})
	}
}

func TestTemplateErrors(t *testing.T) {
	cfg := testConfig("http://127.0.0.1:1/")
	cfg.Body = map[string]string{"a": "${nope}", "b": "${clientid"}
	cfg.Method = "put"
	err := cfg.Validate("auth.http", AuthKind)
	for _, want := range []string{"auth.http.body.a: unknown placeholder ${nope}", "auth.http.body.b", "auth.http.method"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("error %v lacks %q", err, want)
		}
	}
	cfg = testConfig("http://127.0.0.1:1/")
	cfg.Body = map[string]string{"t": "${topic}"}
	if err := cfg.Validate("auth.http", AuthKind); err == nil {
		t.Fatal("${topic} accepted for authentication")
	}
	if err := cfg.Validate("acl.http", ACLKind); err != nil {
		t.Fatal(err)
	}
}

func TestCache(t *testing.T) {
	t.Run("cache_ttl", func(t *testing.T) {
		h := newHookServer(t, jsonReply(`{"result":"allow"}`))
		cfg := testConfig(h.URL)
		cfg.CacheTTL = time.Minute
		b := newBackend(t, cfg)
		for range 3 {
			if r, err := b.Authenticate(context.Background(), alice); err != nil || r.Decision != core.Allow {
				t.Fatal(r, err)
			}
		}
		other := *alice
		other.Password = []byte("other")
		if _, err := b.Authenticate(context.Background(), &other); err != nil {
			t.Fatal(err)
		}
		if n := h.requests.Load(); n != 2 {
			t.Fatalf("%d requests for two distinct clients, want 2", n)
		}
		if s := b.Stats(); s.CacheHits != 2 || s.Cached != 2 {
			t.Fatalf("stats %+v", s)
		}
	})
	t.Run("max-age", func(t *testing.T) {
		h := newHookServer(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "private, max-age=60")
			w.WriteHeader(204)
		})
		b := newBackend(t, testConfig(h.URL)) // cache_ttl 0: only max-age caches
		for range 2 {
			if _, err := b.Authenticate(context.Background(), alice); err != nil {
				t.Fatal(err)
			}
		}
		if n := h.requests.Load(); n != 1 {
			t.Fatalf("%d requests, want 1 (max-age=60)", n)
		}
	})
	t.Run("no-store", func(t *testing.T) {
		h := newHookServer(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(204)
		})
		cfg := testConfig(h.URL)
		cfg.CacheTTL = time.Minute
		b := newBackend(t, cfg)
		for range 2 {
			if _, err := b.Authenticate(context.Background(), alice); err != nil {
				t.Fatal(err)
			}
		}
		if n := h.requests.Load(); n != 2 {
			t.Fatalf("%d requests, want 2 (no-store)", n)
		}
	})
	t.Run("failures not cached", func(t *testing.T) {
		h := newHookServer(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) })
		cfg := testConfig(h.URL)
		cfg.CacheTTL = time.Minute
		b := newBackend(t, cfg)
		for range 2 {
			if _, err := b.Authenticate(context.Background(), alice); err == nil {
				t.Fatal("503 accepted")
			}
		}
		if n := h.requests.Load(); n != 2 {
			t.Fatalf("%d requests, want 2", n)
		}
	})
}

func TestCacheTTLHeader(t *testing.T) {
	for _, tc := range []struct {
		h    string
		want time.Duration
	}{{"", 5 * time.Second}, {"max-age=7", 7 * time.Second}, {"public, MAX-AGE=\"3\"", 3 * time.Second},
		{"no-cache", 0}, {"max-age=0", 0}, {"max-age=x", 5 * time.Second}} {
		if got := cacheTTL(tc.h, 5*time.Second); got != tc.want {
			t.Errorf("cacheTTL(%q) = %v, want %v", tc.h, got, tc.want)
		}
	}
}

func TestTimeout(t *testing.T) {
	release := make(chan struct{})
	h := newHookServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
		w.WriteHeader(204)
	})
	defer close(release)
	cfg := testConfig(h.URL)
	cfg.Timeout = 100 * time.Millisecond
	b := newBackend(t, cfg)
	_, err := b.Authenticate(context.Background(), alice)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want a deadline", err)
	}
	if s := b.Stats(); s.Failures != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestBreaker(t *testing.T) {
	var healthy atomic.Bool
	h := newHookServer(t, func(w http.ResponseWriter, r *http.Request) {
		if healthy.Load() {
			w.WriteHeader(204)
			return
		}
		w.WriteHeader(502)
	})
	cfg := testConfig(h.URL)
	cfg.BreakerFailures = 3
	cfg.BreakerCooldown = time.Hour
	b := newBackend(t, cfg)
	for range 3 {
		if _, err := b.Authenticate(context.Background(), alice); err == nil || errors.Is(err, ErrBreakerOpen) {
			t.Fatalf("err %v, want the hook's failure", err)
		}
	}
	for range 50 {
		if _, err := b.Authenticate(context.Background(), alice); !errors.Is(err, ErrBreakerOpen) {
			t.Fatalf("err %v, want breaker open", err)
		}
	}
	if n := h.requests.Load(); n != 3 {
		t.Fatalf("%d requests reached the hook, want 3", n)
	}
	if s := b.Stats(); !s.BreakerOpen || s.BreakerOpens != 1 || s.Rejected != 50 {
		t.Fatalf("stats %+v", s)
	}
	// The cooldown passes: one probe, which fails, reopens; the next
	// probe succeeds and closes.
	b.brk.mu.Lock()
	b.brk.openUntil = time.Time{}
	b.brk.mu.Unlock()
	if _, err := b.Authenticate(context.Background(), alice); err == nil || errors.Is(err, ErrBreakerOpen) {
		t.Fatalf("probe: %v", err)
	}
	if _, err := b.Authenticate(context.Background(), alice); !errors.Is(err, ErrBreakerOpen) {
		t.Fatalf("after a failed probe: %v", err)
	}
	healthy.Store(true)
	b.brk.mu.Lock()
	b.brk.openUntil = time.Time{}
	b.brk.mu.Unlock()
	for range 3 {
		if _, err := b.Authenticate(context.Background(), alice); err != nil {
			t.Fatalf("after a good probe: %v", err)
		}
	}
	if s := b.Stats(); s.BreakerOpen || s.BreakerOpens != 2 {
		t.Fatalf("stats %+v", s)
	}
}

func TestHalfOpenLetsOneProbe(t *testing.T) {
	br := breaker{threshold: 1, cooldown: time.Hour}
	now := time.Now()
	br.done(false, false, now)
	if _, ok := br.allow(now); ok {
		t.Fatal("open breaker let a request through")
	}
	later := now.Add(2 * time.Hour)
	probe, ok := br.allow(later)
	if !ok || !probe {
		t.Fatal("no probe after the cooldown")
	}
	if _, ok := br.allow(later); ok {
		t.Fatal("a second request went through while probing")
	}
	br.abandon(probe)
	if probe, ok := br.allow(later); !ok || !probe {
		t.Fatal("an abandoned probe blocked the next")
	}
}

func TestConcurrencyBound(t *testing.T) {
	h := newHookServer(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(2 * time.Millisecond)
		w.WriteHeader(204)
	})
	cfg := testConfig(h.URL)
	cfg.MaxConcurrency = 4
	cfg.Timeout = 20 * time.Second
	b := newBackend(t, cfg)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := *alice
			c.ClientID = "c" + url.QueryEscape(jsonInt(int64(i)))
			if _, err := b.Authenticate(context.Background(), &c); err != nil {
				failed.Add(1)
			}
		}()
	}
	wg.Wait()
	if failed.Load() != 0 || h.requests.Load() != 200 {
		t.Fatalf("%d failed, %d requests", failed.Load(), h.requests.Load())
	}
	if m := h.maxIn.Load(); m > 4 {
		t.Fatalf("%d requests in flight at once, max_concurrency 4", m)
	}

	// No queue: what finds every slot taken fails at once.
	block := make(chan struct{})
	h2 := newHookServer(t, func(w http.ResponseWriter, r *http.Request) {
		<-block
		w.WriteHeader(204)
	})
	cfg = testConfig(h2.URL)
	cfg.MaxConcurrency, cfg.QueueLimit = 2, 0
	b2 := newBackend(t, cfg)
	var wg2 sync.WaitGroup
	for range 2 {
		wg2.Add(1)
		go func() { defer wg2.Done(); _, _ = b2.Authenticate(context.Background(), alice) }()
	}
	for h2.inFlight.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	if _, err := b2.Authenticate(context.Background(), alice); !errors.Is(err, ErrOverloaded) {
		t.Fatalf("err %v, want overloaded", err)
	}
	close(block)
	wg2.Wait()
}

// BenchmarkAsk is one authentication through the hook: a request to a
// local httptest server, or a cache hit.
func BenchmarkAsk(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }))
	defer srv.Close()
	for _, ttl := range []time.Duration{0, time.Minute} {
		name := "request"
		if ttl > 0 {
			name = "cached"
		}
		b.Run(name, func(b *testing.B) {
			cfg := testConfig(srv.URL)
			cfg.CacheTTL = ttl
			be, err := NewBackend(cfg, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer be.Close()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := be.Authenticate(context.Background(), alice); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// TestBreakerStopsTheQueue: requests queued while the breaker opens do
// not reach the hook once they get their slot.
func TestBreakerStopsTheQueue(t *testing.T) {
	h := newHookServer(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(50 * time.Millisecond)
		w.WriteHeader(502)
	})
	cfg := testConfig(h.URL)
	cfg.MaxConcurrency, cfg.BreakerFailures, cfg.BreakerCooldown = 1, 1, time.Hour
	b := newBackend(t, cfg)
	var wg sync.WaitGroup
	var open atomic.Int64
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := b.Authenticate(context.Background(), alice); errors.Is(err, ErrBreakerOpen) {
				open.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := h.requests.Load(); n != 1 || open.Load() != 19 {
		t.Fatalf("%d requests reached the hook, %d failed fast; want 1 and 19", n, open.Load())
	}
}

// TestHTTPS: an https hook is verified against ca_file (here the test
// server's own certificate); without it, against the system roots, which
// do not know the test CA.
func TestHTTPS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }))
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(srv.URL)
	cfg.CAFile = ca
	if r, err := newBackend(t, cfg).Authenticate(context.Background(), alice); err != nil || r.Decision != core.Allow {
		t.Fatalf("with ca_file: %+v %v", r, err)
	}
	var unknown *tls.CertificateVerificationError
	if _, err := newBackend(t, testConfig(srv.URL)).Authenticate(context.Background(), alice); !errors.As(err, &unknown) {
		t.Fatalf("without ca_file: %v, want a certificate verification error", err)
	}
}
