package app

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/spf13/viper"
	"go.uber.org/zap"

	"github.com/iotgw/iotgw/core"
)

// aclFilePoll is how often acl.file is checked for changes (by content
// hash, so edits in place, renames over it and symlink swaps are all
// seen); SIGHUP re-reads it at once.
const aclFilePoll = 2 * time.Second

// aclFile is acl.file: access rules kept out of the main configuration,
// a YAML document "rules: [...]" with the shape of acl.rules. A new
// version that does not parse or validate is logged and the rules in use
// are kept.
type aclFile struct {
	path string
	ac   *core.AccessControl
	log  *zap.Logger

	mu   sync.Mutex // serialises reloads; guards hash
	hash [sha256.Size]byte
	quit chan struct{}
	done chan struct{}
}

// startACLFile loads the file (an error names acl.file and stops the
// start-up) and watches it.
func startACLFile(path string, ac *core.AccessControl, log *zap.Logger) (*aclFile, error) {
	f := &aclFile{path: path, ac: ac, log: log, quit: make(chan struct{}), done: make(chan struct{})}
	if _, err := f.reload(); err != nil {
		return nil, err
	}
	go f.watch()
	return f, nil
}

// readRules parses the rules of an acl.file document.
func readRules(path string, data []byte) ([]core.ACLRule, error) {
	v := viper.New()
	v.SetConfigType("yaml")
	if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
		return nil, fmt.Errorf("acl.file %s: %w", path, err)
	}
	for _, k := range v.AllKeys() {
		if k != "rules" {
			return nil, fmt.Errorf("acl.file %s: %s: unknown key (the file holds rules: [...])", path, k)
		}
	}
	rules, err := parseRules(v.Get("rules"))
	if err != nil {
		return nil, fmt.Errorf("acl.file %s: rules%w", path, err)
	}
	if err := core.ValidateRules("rules", rules); err != nil {
		return nil, fmt.Errorf("acl.file %s: %w", path, err)
	}
	return rules, nil
}

// reload re-reads the file; changed reports whether new rules took
// effect.
func (f *aclFile) reload() (changed bool, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	data, err := os.ReadFile(f.path)
	if err != nil {
		return false, fmt.Errorf("acl.file: %w", err)
	}
	h := sha256.Sum256(data)
	if h == f.hash {
		return false, nil
	}
	rules, err := readRules(f.path, data)
	if err != nil {
		return false, err
	}
	f.setLocked(rules, h)
	return true, nil
}

// set puts rules read from the file's content data in use (a reload
// that checked them).
func (f *aclFile) set(rules []core.ACLRule, data []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.setLocked(rules, sha256.Sum256(data))
}

func (f *aclFile) setLocked(rules []core.ACLRule, h [sha256.Size]byte) {
	f.ac.SetFileRules(rules)
	f.hash = h
	f.log.Info("access rules loaded", zap.String("acl.file", f.path), zap.Int("rules", len(rules)))
}

func (f *aclFile) watch() {
	defer close(f.done)
	t := time.NewTicker(aclFilePoll)
	defer t.Stop()
	var lastErr string
	for {
		select {
		case <-f.quit:
			return
		case <-t.C:
			if _, err := f.reload(); err != nil {
				// Logged once per distinct problem, not every poll.
				if err.Error() != lastErr {
					f.log.Warn("acl.file not reloaded; the rules in use are kept", zap.Error(err))
				}
				lastErr = err.Error()
			} else {
				lastErr = ""
			}
		}
	}
}

func (f *aclFile) close() {
	if f == nil {
		return
	}
	close(f.quit)
	<-f.done
}
