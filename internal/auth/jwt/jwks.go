package jwt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// maxJWKSSize bounds a JWKS response: a set of a few keys is a few KiB.
const maxJWKSSize = 1 << 20

// jwksFailBackoff is the least time between two fetches while no set has
// ever been fetched (the identity provider was down at start): every
// connection attempt would otherwise start one.
const jwksFailBackoff = 2 * time.Second

// JWKS is a key set fetched from a URL and kept in memory. A set older than
// its refresh interval is fetched again in the background at its next use
// (an idle gateway does not poll); a token whose kid is not in the set
// triggers a fetch at once, but at most one per MinInterval, so a flood of
// made-up kids cannot hammer the identity provider. One fetch runs at a
// time and every waiting client shares it; a failed fetch keeps the last
// good set.
type JWKS struct {
	url         string
	client      *http.Client
	refresh     time.Duration
	minInterval time.Duration
	timeout     time.Duration
	log         *zap.Logger

	mu          sync.Mutex
	keys        []Key
	fetchedAt   time.Time     // of keys; zero: never fetched
	running     chan struct{} // closed when the fetch in progress ends; nil: none
	lastErr     error         // of the last fetch
	lastTry     time.Time     // start of the last fetch
	lastUnknown time.Time     // last fetch an unknown kid triggered

	fetches  atomic.Uint64
	failures atomic.Uint64
}

// NewJWKS prepares a set fetched from url; each fetch is bounded by
// timeout. It starts the first fetch in the background, so that the first
// client does not wait for it (or waits less).
func NewJWKS(url string, refresh, minInterval, timeout time.Duration, log *zap.Logger) *JWKS {
	if log == nil {
		log = zap.NewNop()
	}
	j := &JWKS{url: url, refresh: refresh, minInterval: minInterval, timeout: timeout, log: log,
		client: &http.Client{Timeout: timeout}}
	j.mu.Lock()
	j.startLocked()
	j.mu.Unlock()
	return j
}

// Fetches returns how many fetches were started and how many failed.
func (j *JWKS) Fetches() (started, failed uint64) { return j.fetches.Load(), j.failures.Load() }

// Keys returns the keys that may verify a token with header h: those of
// its kid (all of them without a kid) that allow its algorithm. An error
// means no set could be had (the provider is unreachable and nothing was
// ever fetched, or ctx ended while waiting): a backend failure, not a bad
// token. An empty answer without an error means the set has no such key.
func (j *JWKS) Keys(ctx context.Context, h Header) ([]Key, error) {
	now := time.Now()
	j.mu.Lock()
	if !j.fetchedAt.IsZero() {
		found := matching(j.keys, h)
		if len(found) > 0 || h.Kid == "" {
			// Stale: refresh for the next clients; after a failure, retry
			// no more often than refresh or minInterval allow.
			if now.Sub(j.fetchedAt) >= j.refresh && now.Sub(j.lastTry) >= min(j.refresh, j.minInterval) && j.running == nil {
				j.startLocked()
			}
			j.mu.Unlock()
			return found, nil
		}
		// An unknown kid: the provider may have rotated its keys.
		if j.running == nil {
			if !j.lastUnknown.IsZero() && now.Sub(j.lastUnknown) < j.minInterval {
				j.mu.Unlock()
				return nil, nil
			}
			j.lastUnknown = now
			j.startLocked()
		}
	} else if j.running == nil {
		if now.Sub(j.lastTry) < jwksFailBackoff {
			err := j.lastErr
			j.mu.Unlock()
			return nil, fmt.Errorf("JWKS %s not fetched: %w", j.url, err)
		}
		j.startLocked()
	}
	wait := j.running
	j.mu.Unlock()
	select {
	case <-wait:
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for JWKS %s: %w", j.url, ctx.Err())
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.fetchedAt.IsZero() {
		return nil, fmt.Errorf("JWKS %s not fetched: %w", j.url, j.lastErr)
	}
	return matching(j.keys, h), nil
}

func matching(keys []Key, h Header) []Key {
	var out []Key
	for _, k := range keys {
		if (h.Kid == "" || k.ID == h.Kid) && k.Allows(h.Alg) {
			out = append(out, k)
		}
	}
	return out
}

// startLocked starts a fetch; j.mu is held and none is running.
func (j *JWKS) startLocked() {
	done := make(chan struct{})
	j.running = done
	j.lastTry = time.Now()
	j.fetches.Add(1)
	go func() {
		keys, skipped, err := j.fetch()
		j.mu.Lock()
		j.lastErr = err
		if err == nil {
			j.keys, j.fetchedAt = keys, time.Now()
		}
		j.running = nil
		j.mu.Unlock()
		close(done)
		if err != nil {
			j.failures.Add(1)
			j.log.Warn("JWKS fetch failed; the last good key set stays in use", zap.String("url", j.url), zap.Error(err))
		} else {
			j.log.Debug("JWKS fetched", zap.String("url", j.url), zap.Int("keys", len(keys)), zap.Int("skipped", skipped))
		}
	}()
}

func (j *JWKS) fetch() ([]Key, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), j.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.url, nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := j.client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxJWKSSize))
		return nil, 0, fmt.Errorf("HTTP status %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSSize+1))
	if err != nil {
		return nil, 0, err
	}
	if len(body) > maxJWKSSize {
		return nil, 0, errors.New("JWKS larger than 1 MiB")
	}
	return ParseJWKS(body)
}
