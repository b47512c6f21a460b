package passwd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/iotgw/iotgw/core"
	"github.com/iotgw/iotgw/internal/filewatch"
)

// Config is the password file backend's configuration.
type Config struct {
	// File is the password file (auth.password_file).
	File string
	// ReloadInterval is the period of the check for changes that file
	// events miss, such as a symlink swapped by a secret store
	// (auth.password_file_reload_interval); 0 turns it off.
	ReloadInterval time.Duration
	// CacheTTL is how long a successful verification is remembered
	// (auth.password_cache_ttl); 0 turns the cache off.
	CacheTTL time.Duration
	// CacheSize bounds the cache's entries; 0 means DefaultCacheSize.
	CacheSize int
	// MaxConcurrent bounds the verifications in flight; more wait for a
	// slot within their deadline. 0 means GOMAXPROCS: a slow hash is
	// pure CPU, so more at once only adds memory (19 MiB each for
	// iotgw's argon2id) and makes every one of them late.
	MaxConcurrent int
	// noEvents relies on the periodic check and Reload (tests).
	noEvents bool
}

// DefaultCacheSize bounds the cache when Config.CacheSize is 0: 10,000
// entries of about 150 bytes.
const DefaultCacheSize = 10000

// DefaultConfig returns the defaults: a check every 10 s (as VerneMQ's
// password_reload_interval and HiveMQ's TLS store poll), a five-minute
// cache of up to DefaultCacheSize verifications.
func DefaultConfig() Config {
	return Config{ReloadInterval: 10 * time.Second, CacheTTL: 5 * time.Minute, CacheSize: DefaultCacheSize}
}

// Validate reports every problem, joined.
func (c Config) Validate() error {
	var errs []error
	if c.File == "" {
		errs = append(errs, errors.New("no file"))
	}
	if c.ReloadInterval < 0 {
		errs = append(errs, fmt.Errorf("reload interval %v is negative", c.ReloadInterval))
	}
	if c.CacheTTL < 0 {
		errs = append(errs, fmt.Errorf("cache ttl %v is negative", c.CacheTTL))
	}
	if c.CacheSize < 0 || c.MaxConcurrent < 0 {
		errs = append(errs, errors.New("cache size and concurrency must not be negative"))
	}
	return errors.Join(errs...)
}

// Backend checks user names and passwords against a password file: a
// user not in the file is ignored (the next backend may know it), a
// wrong password denied. It re-reads the file when it changes (file
// events, the periodic check, Reload on SIGHUP); a file that does not
// parse is logged with its line and the users in use are kept. Clients
// already connected are not affected by a reload, as in Mosquitto.
type Backend struct {
	cfg   Config
	log   *zap.Logger
	cur   atomic.Pointer[table]
	sem   chan struct{}
	cache *cache // nil when off

	mu       sync.Mutex // serialises reloads; guards the fields below
	loaded   time.Time
	reloads  uint64
	failures uint64
	lastErr  error

	watch *filewatch.Watcher
}

var _ core.Backend = (*Backend)(nil)

// New reads the file and starts watching it. An error names the file and
// the bad line; the gateway does not start on it.
func New(cfg Config, log *zap.Logger) (*Backend, error) {
	if log == nil {
		log = zap.NewNop()
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(cfg.File)
	if err != nil {
		return nil, err
	}
	t, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.File, err)
	}
	n := cfg.MaxConcurrent
	if n == 0 {
		n = runtime.GOMAXPROCS(0)
	}
	b := &Backend{cfg: cfg, log: log, sem: make(chan struct{}, n), loaded: time.Now()}
	if cfg.CacheTTL > 0 {
		size := cfg.CacheSize
		if size == 0 {
			size = DefaultCacheSize
		}
		b.cache = newCache(cfg.CacheTTL, size)
	}
	b.cur.Store(t)
	warnMode(log, cfg.File)
	log.Info("password file loaded", zap.String("file", cfg.File), zap.Int("users", len(t.users)))
	b.watch = filewatch.Start(filewatch.Options{
		Paths: []string{cfg.File}, Interval: cfg.ReloadInterval, NoEvents: cfg.noEvents,
		Log: log, What: "password file", Fields: []zap.Field{zap.String("file", cfg.File)},
	}, func() { _ = b.reload(false) })
	return b, nil
}

// warnMode warns about a file others may read: offline guessing against
// a leaked hash is what the slow hashes only delay.
func warnMode(log *zap.Logger, path string) {
	if st, err := os.Stat(path); err == nil && st.Mode().Perm()&0o004 != 0 {
		log.Warn("password file is readable by every user; chmod 600 it", zap.String("file", path),
			zap.String("mode", st.Mode().Perm().String()))
	}
}

// Authenticate answers for one client: Ignore without a user name or for
// a name not in the file (after checking a decoy hash, so that a
// probe for names costs and takes what a wrong password does), Allow for
// the right password, Deny with ErrBadCredentials otherwise. The hash is
// checked on its own goroutine within ctx, one slot of MaxConcurrent: a
// client whose deadline passes while it waits or while its hash runs
// gets ctx's error (a backend failure: the link's on_error decides).
func (b *Backend) Authenticate(ctx context.Context, c *core.ClientInfo) (core.AuthResult, error) {
	if c.Username == "" {
		return core.AuthResult{Decision: core.Ignore}, nil
	}
	t := b.cur.Load()
	e := t.users[c.Username]
	if e == nil {
		if _, err := b.check(ctx, t.decoy, c.Password); err != nil {
			return core.AuthResult{}, err
		}
		return core.AuthResult{Decision: core.Ignore}, nil
	}
	var key [sha256.Size]byte
	if b.cache != nil {
		key = b.cache.sum(c.Username, c.Password)
		if b.cache.hit(key, e.stored) {
			return core.AuthResult{Decision: core.Allow}, nil
		}
	}
	ok, err := b.check(ctx, e.v, c.Password)
	if err != nil {
		return core.AuthResult{}, err
	}
	if !ok {
		return core.AuthResult{Decision: core.Deny, Err: core.ErrBadCredentials}, nil
	}
	if b.cache != nil {
		b.cache.put(key, e.stored)
	}
	return core.AuthResult{Decision: core.Allow}, nil
}

// check runs v.verify in a slot, within ctx.
func (b *Backend) check(ctx context.Context, v verifier, password []byte) (bool, error) {
	select {
	case b.sem <- struct{}{}:
	case <-ctx.Done():
		return false, fmt.Errorf("password check waited too long for a slot (%d in flight): %w", cap(b.sem), ctx.Err())
	}
	// The caller may reuse its buffer once we return on a deadline; the
	// goroutine keeps its own copy.
	pw := bytes.Clone(password)
	res := make(chan bool, 1)
	go func() {
		defer func() { <-b.sem }()
		res <- v.verify(pw)
	}()
	select {
	case ok := <-res:
		return ok, nil
	case <-ctx.Done():
		return false, fmt.Errorf("password check too slow: %w", ctx.Err())
	}
}

// Reload re-reads the file now (SIGHUP). It returns nil when the file
// loads or did not change; otherwise the error (also logged), and the
// users in use stay.
func (b *Backend) Reload() error { return b.reload(true) }

// Close stops watching the file; Authenticate keeps answering from the
// last file read.
func (b *Backend) Close() error {
	b.watch.Close()
	return nil
}

// Status describes the file in use, for $SYS and tests.
type Status struct {
	File      string
	Users     int
	Loaded    time.Time
	Reloads   uint64
	Failures  uint64
	LastError string
}

// Status returns the users in use and the reload counters.
func (b *Backend) Status() Status {
	t := b.cur.Load()
	b.mu.Lock()
	defer b.mu.Unlock()
	st := Status{File: b.cfg.File, Users: len(t.users), Loaded: b.loaded, Reloads: b.reloads, Failures: b.failures}
	if b.lastErr != nil {
		st.LastError = b.lastErr.Error()
	}
	return st
}

// reload reads the file and swaps it in if it changed and parses.
// explicit (Reload) logs every failure; the watcher's checks log one
// failure once until the file changes again.
func (b *Backend) reload(explicit bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	old := b.cur.Load()
	data, err := os.ReadFile(b.cfg.File)
	if err == nil && sha256.Sum256(data) == old.sum {
		if b.lastErr != nil {
			b.log.Info("password file is back to the users in use", zap.String("file", b.cfg.File))
			b.lastErr = nil
		}
		return nil
	}
	var t *table
	if err == nil {
		t, err = parse(data)
	}
	if err != nil {
		err = fmt.Errorf("%s: %w", b.cfg.File, err)
		repeated := b.lastErr != nil && b.lastErr.Error() == err.Error()
		b.lastErr = err
		if !repeated || explicit {
			b.failures++
			b.log.Error("password file reload failed; the users in use are kept", zap.String("file", b.cfg.File),
				zap.Int("users", len(old.users)), zap.Error(err))
		}
		return err
	}
	added, removed, changed := diff(old, t)
	b.cur.Store(t)
	b.loaded = time.Now()
	b.reloads++
	b.lastErr = nil
	warnMode(b.log, b.cfg.File)
	b.log.Info("password file reloaded; new logins use it", zap.String("file", b.cfg.File), zap.Int("users", len(t.users)),
		zap.Int("added", added), zap.Int("removed", removed), zap.Int("changed", changed))
	return nil
}

// diff counts the users a reload added, removed and gave a new hash.
func diff(old, cur *table) (added, removed, changed int) {
	for u, e := range cur.users {
		switch o := old.users[u]; {
		case o == nil:
			added++
		case o.stored != e.stored:
			changed++
		}
	}
	for u := range old.users {
		if cur.users[u] == nil {
			removed++
		}
	}
	return added, removed, changed
}
