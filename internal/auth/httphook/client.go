package httphook

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Errors of a hook request that never reached the hook.
var (
	// ErrBreakerOpen: the hook failed BreakerFailures times in a row and
	// its cooldown has not passed (or a probe is under way).
	ErrBreakerOpen = errors.New("http hook: circuit breaker open")
	// ErrOverloaded: MaxConcurrency requests are in flight and QueueLimit
	// more are waiting.
	ErrOverloaded = errors.New("http hook: too many requests waiting")
)

// maxReplyBytes bounds a reply body: an answer is a small JSON object.
const maxReplyBytes = 1 << 20

// Client sends a hook's requests: bounded, timed out, cached, behind a
// circuit breaker. It is safe for concurrent use.
type Client struct {
	cfg    Config
	kind   Kind
	url    *url.URL
	tmpl   template
	header http.Header
	tr     *http.Transport
	hc     *http.Client
	log    *zap.Logger

	// slots holds one token per request in flight; waiting counts the
	// requests queued for one.
	slots   chan struct{}
	waiting atomic.Int64

	brk   breaker
	cache cache

	requests, cacheHits, failures, rejected atomic.Uint64
}

// New builds the client of one hook; cfg must be valid (Validate).
func New(cfg Config, k Kind, log *zap.Logger) (*Client, error) {
	if log == nil {
		log = zap.NewNop()
	}
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("url: %w", err)
	}
	tmpl, err := compileTemplate(cfg.Body, k)
	if err != nil {
		return nil, err
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s: no PEM certificate", cfg.CAFile)
		}
		tlsCfg.RootCAs = pool
	}
	// A transport of its own: its pool of kept-alive connections is sized
	// to the concurrency, so a burst reuses connections instead of
	// opening (and leaving in TIME_WAIT) one per request, and never holds
	// more connections than requests can be in flight. No proxy from the
	// environment: a hook is the operator's own service.
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsCfg,
		TLSHandshakeTimeout:   cfg.Timeout,
		ResponseHeaderTimeout: cfg.Timeout,
		MaxIdleConns:          cfg.MaxConcurrency,
		MaxIdleConnsPerHost:   cfg.MaxConcurrency,
		MaxConnsPerHost:       cfg.MaxConcurrency,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	h := http.Header{}
	for k, v := range cfg.Headers {
		h.Set(k, v)
	}
	if h.Get("Accept") == "" {
		h.Set("Accept", "application/json")
	}
	if cfg.Method == "post" && h.Get("Content-Type") == "" {
		h.Set("Content-Type", "application/json")
	}
	c := &Client{
		cfg: cfg, kind: k, url: u, tmpl: tmpl, header: h, tr: tr, log: log,
		hc:    &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		slots: make(chan struct{}, cfg.MaxConcurrency),
		brk:   breaker{threshold: cfg.BreakerFailures, cooldown: cfg.BreakerCooldown},
		cache: cache{max: cfg.CacheMaxEntries, m: map[[32]byte]cacheEntry{}},
	}
	return c, nil
}

// Close drops the kept-alive connections.
func (c *Client) Close() { c.tr.CloseIdleConnections() }

// Stats are a hook's counters, for $SYS.
type Stats struct {
	// Requests sent to the hook; CacheHits answered from the cache.
	Requests, CacheHits uint64
	// Failures are requests that failed (timeout, refused, bad status or
	// body); Rejected never left (breaker open, queue full).
	Failures, Rejected uint64
	// BreakerOpens counts the times the breaker opened; BreakerOpen says
	// whether it is open now.
	BreakerOpens uint64
	BreakerOpen  bool
	// InFlight and Waiting are the requests under way and queued now.
	InFlight, Waiting int
	// Cached is the number of cached answers.
	Cached int
}

// Stats returns the counters.
func (c *Client) Stats() Stats {
	return Stats{
		Requests: c.requests.Load(), CacheHits: c.cacheHits.Load(),
		Failures: c.failures.Load(), Rejected: c.rejected.Load(),
		BreakerOpens: c.brk.opens.Load(), BreakerOpen: c.brk.isOpen(time.Now()),
		InFlight: len(c.slots), Waiting: int(c.waiting.Load()), Cached: c.cache.len(),
	}
}

// ask renders the request for v and returns the hook's answer: from the
// cache, or from the hook within ctx.
func (c *Client) ask(ctx context.Context, v vars) (answer, error) {
	fields := c.tmpl.render(v)
	payload := c.encode(fields)
	key := sha256.Sum256(payload) // no password kept in memory as a key
	now := time.Now()
	if a, ok := c.cache.get(key, now); ok {
		c.cacheHits.Add(1)
		return a, nil
	}
	probe, ok := c.brk.allow(now)
	if !ok {
		c.rejected.Add(1)
		return answer{}, ErrBreakerOpen
	}
	if err := c.acquire(ctx); err != nil {
		c.brk.abandon(probe)
		if errors.Is(err, ErrOverloaded) {
			c.rejected.Add(1)
		}
		return answer{}, err
	}
	if !probe && !c.brk.closed() {
		// The breaker opened while this request waited for a slot:
		// what waited must not pile onto the dead hook either.
		<-c.slots
		c.rejected.Add(1)
		return answer{}, ErrBreakerOpen
	}
	c.requests.Add(1)
	a, ttl, err := c.send(ctx, payload)
	<-c.slots
	if err != nil && ctx.Err() == context.Canceled {
		// The caller gave up (the client went away): no verdict on
		// the hook.
		c.brk.abandon(probe)
		return answer{}, err
	}
	c.brk.done(probe, err == nil, time.Now())
	if err != nil {
		c.failures.Add(1)
		return answer{}, err
	}
	if ttl > 0 {
		until := time.Now().Add(ttl)
		if a.grant != nil && !a.grant.ExpireAt.IsZero() && a.grant.ExpireAt.Before(until) {
			until = a.grant.ExpireAt
		}
		c.cache.put(key, cacheEntry{ans: a, until: until})
	}
	return a, nil
}

// acquire takes a slot for a request, waiting within ctx when all are
// taken, unless QueueLimit requests wait already.
func (c *Client) acquire(ctx context.Context) error {
	select {
	case c.slots <- struct{}{}:
		return nil
	default:
	}
	if c.waiting.Add(1) > int64(c.cfg.QueueLimit) {
		c.waiting.Add(-1)
		return ErrOverloaded
	}
	defer c.waiting.Add(-1)
	select {
	case c.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("http hook: waiting for a request slot: %w", ctx.Err())
	}
}

// encode makes the request's payload: a JSON object for POST, the query
// string for GET.
func (c *Client) encode(fields [][2]string) []byte {
	var b bytes.Buffer
	if c.cfg.Method == "get" {
		for i, f := range fields {
			if i > 0 {
				b.WriteByte('&')
			}
			b.WriteString(url.QueryEscape(f[0]))
			b.WriteByte('=')
			b.WriteString(url.QueryEscape(f[1]))
		}
		return b.Bytes()
	}
	b.WriteByte('{')
	for i, f := range fields {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(f[0])
		v, _ := json.Marshal(f[1])
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes()
}

// send makes one request; ttl is how long its answer may be cached.
func (c *Client) send(ctx context.Context, payload []byte) (a answer, ttl time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	var req *http.Request
	if c.cfg.Method == "get" {
		u := *c.url
		if u.RawQuery != "" {
			u.RawQuery += "&" + string(payload)
		} else {
			u.RawQuery = string(payload)
		}
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	} else {
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, c.url.String(), bytes.NewReader(payload))
	}
	if err != nil {
		return answer{}, 0, err
	}
	req.Header = c.header.Clone()
	resp, err := c.hc.Do(req)
	if err != nil {
		return answer{}, 0, fmt.Errorf("http hook: %w", err)
	}
	// Reading to the end (bounded) lets the connection be reused.
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxReplyBytes+1))
	resp.Body.Close()
	if err != nil {
		return answer{}, 0, fmt.Errorf("http hook: reading the reply: %w", err)
	}
	if len(body) > maxReplyBytes {
		return answer{}, 0, fmt.Errorf("http hook: reply over %d bytes", maxReplyBytes)
	}
	a, err = parseReply(resp.StatusCode, body, c.kind, time.Now())
	if err != nil {
		return answer{}, 0, err
	}
	return a, cacheTTL(resp.Header.Get("Cache-Control"), c.cfg.CacheTTL), nil
}

// cacheTTL is how long an answer may be kept: the reply's max-age when it
// has one (the hook knows best), none with no-store or no-cache, def
// otherwise.
func cacheTTL(cacheControl string, def time.Duration) time.Duration {
	if cacheControl == "" {
		return def
	}
	for _, d := range strings.Split(cacheControl, ",") {
		d = strings.ToLower(strings.TrimSpace(d))
		switch {
		case d == "no-store" || d == "no-cache":
			return 0
		case strings.HasPrefix(d, "max-age="):
			n, err := strconv.Atoi(strings.Trim(d[len("max-age="):], `"`))
			if err != nil || n < 0 {
				return def
			}
			return time.Duration(n) * time.Second
		}
	}
	return def
}

// breaker is the circuit breaker: threshold consecutive failures open it
// for cooldown; then one probe goes through, and its outcome closes or
// reopens it.
type breaker struct {
	threshold int
	cooldown  time.Duration
	mu        sync.Mutex
	fails     int
	openUntil time.Time
	probing   bool
	opens     atomic.Uint64
}

// allow reports whether a request may go; probe says it is the one
// request let through after the cooldown.
func (b *breaker) allow(now time.Time) (probe, ok bool) {
	if b.threshold <= 0 {
		return false, true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fails < b.threshold {
		return false, true
	}
	if now.Before(b.openUntil) || b.probing {
		return false, false
	}
	b.probing = true
	return true, true
}

// done records a request's outcome.
func (b *breaker) done(probe, success bool, now time.Time) {
	if b.threshold <= 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if probe {
		b.probing = false
	}
	if success {
		b.fails = 0
		return
	}
	b.fails++
	if b.fails >= b.threshold {
		if b.fails == b.threshold || probe {
			b.opens.Add(1)
		}
		b.openUntil = now.Add(b.cooldown)
	}
}

// abandon releases a probe that never got an answer.
func (b *breaker) abandon(probe bool) {
	if !probe {
		return
	}
	b.mu.Lock()
	b.probing = false
	b.mu.Unlock()
}

// closed reports whether requests other than a probe may go.
func (b *breaker) closed() bool {
	if b.threshold <= 0 {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.fails < b.threshold
}

func (b *breaker) isOpen(now time.Time) bool {
	if b.threshold <= 0 {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.fails >= b.threshold && now.Before(b.openUntil)
}

// cache keeps answers by the hash of their request until their time.
type cache struct {
	mu  sync.RWMutex
	m   map[[32]byte]cacheEntry
	max int
}

type cacheEntry struct {
	ans   answer
	until time.Time
}

func (c *cache) get(key [32]byte, now time.Time) (answer, bool) {
	c.mu.RLock()
	e, ok := c.m[key]
	c.mu.RUnlock()
	if !ok || !now.Before(e.until) {
		return answer{}, false
	}
	return e.ans, true
}

// put stores e; a full cache first drops what expired, and when nothing
// did, the answer is not kept (bounded memory before hit rate).
func (c *cache) put(key [32]byte, e cacheEntry) {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[key]; !ok && len(c.m) >= c.max {
		now := time.Now()
		for k, old := range c.m {
			if !now.Before(old.until) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= c.max {
			return
		}
	}
	c.m[key] = e
}

func (c *cache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}
