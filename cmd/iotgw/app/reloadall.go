package app

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/iotgw/iotgw/core"
	"github.com/iotgw/iotgw/internal/mgmt"
	"github.com/iotgw/iotgw/internal/mgmt/api"
)

// liveKeys are the configuration keys a reload applies to the running
// gateway; a change of any other key is reported as needing a restart.
// acl.rules and acl.default apply only when access control is on (it is
// with any rule, a deny default, acl.file or acl.http at start).
var liveKeys = map[string]bool{
	"log.level":          true,
	"acl.rules":          true,
	"acl.default":        true,
	"http.api_keys_file": true,
	"http.admin_users":   true,
}

// Reload re-reads the configuration and every file it names (main calls
// it on SIGHUP); see ReloadAll. The error is the refusal, if any.
func (g *Gateway) Reload() error {
	rep := g.ReloadAll()
	if !rep.Applied {
		return errors.New(rep.Error)
	}
	return nil
}

// ReloadAll re-reads the configuration file (with the environment it was
// loaded with) and the files it names — TLS certificates, acl.file, the
// authentication backends' files (the password file), the API keys file
// — and applies them together: when anything does not load, nothing
// changes and the report says why. Connections stay up; new checks (a
// subscription, a publish, a login) see the new rules. Changed keys that
// only a restart applies (listen addresses, the store, limits) are
// listed as such and keep their running values.
func (g *Gateway) ReloadAll() api.ReloadReport {
	g.cfgMu.Lock()
	defer g.cfgMu.Unlock()
	rep, err := g.reloadLocked()
	if err != nil {
		rep = api.ReloadReport{Error: err.Error()}
		g.log.Warn("reload refused; the running configuration is kept", zap.Error(err))
	} else {
		g.log.Info("configuration reloaded", zap.Strings("reloaded", rep.Reloaded), zap.Strings("restart_needed", rep.RestartNeeded))
	}
	return rep
}

func (g *Gateway) reloadLocked() (api.ReloadReport, error) {
	old := g.cfg
	next := old
	if old.path != "" || len(old.doc) > 0 {
		doc := old.doc
		if old.path != "" {
			b, err := os.ReadFile(old.path)
			if err != nil {
				return api.ReloadReport{}, fmt.Errorf("config: %w", err)
			}
			doc = b
		}
		c, err := Load(doc, old.environ)
		if err != nil {
			return api.ReloadReport{}, err
		}
		c.path = old.path
		next = c
	}
	var restart, reloaded []string
	changed := func(k string) bool { return !reflect.DeepEqual(old.values[k], next.values[k]) }
	for k := range next.values {
		if !liveKeys[k] && changed(k) {
			restart = append(restart, k)
		}
	}
	for k := range old.values {
		if _, ok := next.values[k]; !ok && !liveKeys[k] {
			restart = append(restart, k)
		}
	}
	// Check everything before anything changes.
	var errs []error
	for _, s := range g.tlsSources {
		if err := s.Check(); err != nil {
			errs = append(errs, fmt.Errorf("tls (%s): %w", s.Config().Section, err))
		}
	}
	var aclRules []core.ACLRule
	var aclData []byte
	if g.aclFile != nil {
		data, err := os.ReadFile(g.aclFile.path)
		aclData = data
		if err == nil {
			aclRules, err = readRules(g.aclFile.path, data)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	var keys *mgmt.Keys
	if g.HTTP != nil {
		var err error
		if keys, err = mgmt.LoadKeys(next.HTTP.APIKeysFile); err != nil {
			errs = append(errs, err)
		}
	}
	lvl, err := zapcore.ParseLevel(next.LogLevel)
	if err != nil {
		errs = append(errs, fmt.Errorf("log.level: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return api.ReloadReport{}, err
	}
	// The authentication backends read their files as they reload and
	// keep theirs on failure, so they go first: a refusal there still
	// leaves everything else as it was.
	for _, r := range g.reloaders {
		if err := r.Reload(); err != nil {
			return api.ReloadReport{}, err
		}
	}
	if len(g.reloaders) > 0 {
		reloaded = append(reloaded, "auth files")
	}
	// From here nothing fails.
	for _, s := range g.tlsSources {
		_ = s.Reload() // checked above
	}
	if len(g.tlsSources) > 0 {
		reloaded = append(reloaded, "tls certificates")
	}
	if g.aclFile != nil {
		g.aclFile.set(aclRules, aclData)
		reloaded = append(reloaded, "acl.file")
	}
	values := make(map[string]any, len(old.values))
	for k, v := range old.values {
		values[k] = v
	}
	take := func(k string) {
		if v, ok := next.values[k]; ok {
			values[k] = v
		} else {
			delete(values, k)
		}
	}
	if g.ac != nil {
		g.ac.SetConfig(next.ACL)
		old.ACL = next.ACL
		take("acl.rules")
		take("acl.default")
		reloaded = append(reloaded, "acl.rules", "acl.default")
	} else if changed("acl.rules") || changed("acl.default") {
		restart = append(restart, "acl.rules", "acl.default")
	}
	if g.level != nil {
		g.level.SetLevel(lvl)
		old.LogLevel = next.LogLevel
		take("log.level")
		reloaded = append(reloaded, "log.level")
	} else if changed("log.level") {
		restart = append(restart, "log.level")
	}
	if g.HTTP != nil {
		g.HTTP.SetKeys(keys)
		g.HTTP.SetAdminUsers(next.HTTP.AdminUsers)
		old.HTTP.APIKeysFile, old.HTTP.AdminUsers = next.HTTP.APIKeysFile, next.HTTP.AdminUsers
		take("http.api_keys_file")
		take("http.admin_users")
		reloaded = append(reloaded, "http.api_keys_file", "http.admin_users")
	}
	old.values = values
	g.cfg = old
	sort.Strings(restart)
	restart = compactStrings(restart)
	if len(restart) > 0 {
		g.log.Warn("changed keys need a restart to apply", zap.String("keys", strings.Join(restart, ", ")))
	}
	return api.ReloadReport{Applied: true, Reloaded: reloaded, RestartNeeded: restart}, nil
}

// compactStrings drops adjacent repeats of a sorted list.
func compactStrings(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}
