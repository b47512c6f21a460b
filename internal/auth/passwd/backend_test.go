package passwd

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/iotgw/iotgw/core"
)

func writeFile(t testing.TB, path, data string) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func newBackend(t testing.TB, data string, mod func(*Config)) (*Backend, string, *observer.ObservedLogs) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "passwd")
	writeFile(t, path, data)
	cfg := DefaultConfig()
	cfg.File = path
	cfg.noEvents = true
	cfg.ReloadInterval = 0
	if mod != nil {
		mod(&cfg)
	}
	core, logs := observer.New(zap.InfoLevel)
	b, err := New(cfg, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b, path, logs
}

func auth(t testing.TB, b *Backend, user, password string) core.AuthResult {
	t.Helper()
	r, err := b.Authenticate(context.Background(), &core.ClientInfo{Username: user, Password: []byte(password)})
	if err != nil {
		t.Fatalf("%s: %v", user, err)
	}
	return r
}

func TestBackendDecisions(t *testing.T) {
	t.Parallel()
	m6, _ := Hash(KindSHA512, []byte("pw6"))
	b, _, _ := newBackend(t, toolLines[0].line+"\n"+toolLines[2].line+"\nsix:"+m6+"\n", nil)
	for _, tc := range []struct {
		user, pw string
		want     core.Decision
	}{
		{"u", "p", core.Allow},
		{"u", "P", core.Deny},
		{"u", "", core.Deny},
		{"alice", "secret", core.Allow},
		{"six", "pw6", core.Allow},
		{"six", "pw7", core.Deny},
		{"nobody", "p", core.Ignore},
		{"", "", core.Ignore},
	} {
		r := auth(t, b, tc.user, tc.pw)
		if r.Decision != tc.want {
			t.Errorf("%s/%s: %v, want %v", tc.user, tc.pw, r.Decision, tc.want)
		}
		if r.Decision == core.Deny && !errors.Is(r.Err, core.ErrBadCredentials) {
			t.Errorf("%s: deny with %v", tc.user, r.Err)
		}
	}
	if st := b.Status(); st.Users != 3 || st.Reloads != 0 {
		t.Errorf("status %+v", st)
	}
}

func TestBackendCache(t *testing.T) {
	t.Parallel()
	b, path, _ := newBackend(t, toolLines[0].line+"\n", nil)
	auth(t, b, "u", "p")
	auth(t, b, "u", "wrong")
	if n := b.cache.len(); n != 1 {
		t.Fatalf("%d cache entries after one success and one failure", n)
	}
	// A cached success needs no slot: with every slot taken it still
	// answers.
	for range cap(b.sem) {
		b.sem <- struct{}{}
	}
	if r := auth(t, b, "u", "p"); r.Decision != core.Allow {
		t.Fatalf("cached login: %v", r.Decision)
	}
	for range cap(b.sem) {
		<-b.sem
	}
	// A new password in the file misses the cache at once.
	h, _ := Hash(KindPBKDF2, []byte("p2"))
	writeFile(t, path, "u:"+h+"\n")
	if err := b.Reload(); err != nil {
		t.Fatal(err)
	}
	if r := auth(t, b, "u", "p"); r.Decision != core.Deny {
		t.Errorf("old password after the change: %v", r.Decision)
	}
	if r := auth(t, b, "u", "p2"); r.Decision != core.Allow {
		t.Errorf("new password: %v", r.Decision)
	}
	// Off.
	off, _, _ := newBackend(t, toolLines[0].line+"\n", func(c *Config) { c.CacheTTL = 0 })
	if auth(t, off, "u", "p"); off.cache != nil {
		t.Error("cache on with ttl 0")
	}
}

func TestCacheBounds(t *testing.T) {
	t.Parallel()
	c := newCache(time.Hour, 3)
	var keys [][32]byte
	for i := range 5 {
		k := c.sum("user", []byte{byte(i)})
		keys = append(keys, k)
		c.put(k, "h")
	}
	if c.len() != 3 {
		t.Errorf("%d entries, max 3", c.len())
	}
	if !c.hit(keys[4], "h") || c.hit(keys[4], "other hash") {
		t.Error("hit compares the stored hash")
	}
	if c.sum("ab", []byte("c")) == c.sum("a", []byte("bc")) {
		t.Error("user and password boundary not in the key")
	}
	exp := newCache(time.Nanosecond, 3)
	k := exp.sum("u", nil)
	exp.put(k, "h")
	for exp.hit(k, "h") {
		time.Sleep(time.Millisecond)
	}
	if exp.len() != 0 {
		t.Error("expired entry kept")
	}
}

// TestBackendDeadline: every slot busy, a client waits only as long as its
// context allows, and an unknown name waits as a known one does (the
// decoy takes a slot too).
func TestBackendDeadline(t *testing.T) {
	t.Parallel()
	b, _, _ := newBackend(t, toolLines[0].line+"\n", func(c *Config) { c.MaxConcurrent = 1; c.CacheTTL = 0 })
	b.sem <- struct{}{}
	for _, user := range []string{"u", "nobody"} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		_, err := b.Authenticate(ctx, &core.ClientInfo{Username: user, Password: []byte("p")})
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s with no slot free: %v", user, err)
		}
	}
	<-b.sem
	if r := auth(t, b, "u", "p"); r.Decision != core.Allow {
		t.Errorf("after the slot is free: %v", r.Decision)
	}
}

func TestBackendReload(t *testing.T) {
	t.Parallel()
	b, path, logs := newBackend(t, toolLines[0].line+"\n", nil)
	// A bad line: the error names it, the users in use stay.
	writeFile(t, path, toolLines[0].line+"\n"+toolLines[2].line+"\noops\n")
	err := b.Reload()
	if err == nil || !strings.Contains(err.Error(), "line 3") {
		t.Fatalf("bad file: %v", err)
	}
	if r := auth(t, b, "u", "p"); r.Decision != core.Allow {
		t.Errorf("old file not kept: %v", r.Decision)
	}
	if r := auth(t, b, "alice", "secret"); r.Decision != core.Ignore {
		t.Errorf("half-read file used: %v", r.Decision)
	}
	if logs.FilterMessage("password file reload failed; the users in use are kept").Len() != 1 {
		t.Errorf("failure not logged: %v", logs.All())
	}
	st := b.Status()
	if st.Failures != 1 || !strings.Contains(st.LastError, "line 3") {
		t.Errorf("status %+v", st)
	}
	// A missing file (mid-rename, say) is a failure too.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if b.Reload() == nil {
		t.Error("missing file reloaded")
	}
	writeFile(t, path, toolLines[2].line+"\n")
	if err := b.Reload(); err != nil {
		t.Fatal(err)
	}
	if r := auth(t, b, "u", "p"); r.Decision != core.Ignore {
		t.Errorf("removed user: %v", r.Decision)
	}
	if r := auth(t, b, "alice", "secret"); r.Decision != core.Allow {
		t.Errorf("added user: %v", r.Decision)
	}
	if st := b.Status(); st.Reloads != 1 || st.LastError != "" || st.Users != 1 {
		t.Errorf("status %+v", st)
	}
	// Unchanged: nothing happens.
	if err := b.Reload(); err != nil || b.Status().Reloads != 1 {
		t.Errorf("unchanged file reloaded: %v", err)
	}
}

// TestBackendWatch: file events and the periodic check both pick up a
// change.
func TestBackendWatch(t *testing.T) {
	t.Parallel()
	for _, events := range []bool{true, false} {
		b, path, _ := newBackend(t, toolLines[0].line+"\n", func(c *Config) {
			c.noEvents = !events
			if !events {
				c.ReloadInterval = 20 * time.Millisecond
			}
		})
		writeFile(t, path, toolLines[2].line+"\n")
		deadline := time.Now().Add(10 * time.Second)
		for auth(t, b, "alice", "secret").Decision != core.Allow {
			if time.Now().After(deadline) {
				t.Fatalf("events %v: change not seen", events)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := New(Config{File: filepath.Join(dir, "none")}, nil); err == nil {
		t.Error("missing file accepted")
	}
	bad := filepath.Join(dir, "bad")
	writeFile(t, bad, "# x\nalice:secret\n")
	_, err := New(Config{File: bad}, nil)
	if err == nil || !strings.Contains(err.Error(), bad+": line 2: user \"alice\"") {
		t.Errorf("bad file: %v", err)
	}
	if _, err := New(Config{}, nil); err == nil {
		t.Error("no file accepted")
	}
}
