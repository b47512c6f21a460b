// Package filewatch tells its owner when files it reads may have changed:
// after file events in their directories (settled, so a writer's burst
// makes one call), and on a periodic check, which catches the symlink
// swaps of Kubernetes secrets and certbot that events on the file itself
// miss. It never reads the files: the owner's check function does, and
// decides by a hash whether anything changed. TLS material, password files
// and access files share it.
package filewatch

import (
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"
)

// DefaultSettle is how long a file event waits before check runs: tools
// write related files one after the other (a certificate, then its key;
// a temporary file, then the rename), and a check between the two would
// see a half-done change.
const DefaultSettle = 100 * time.Millisecond

// Options configure a Watcher.
type Options struct {
	// Paths are the files to watch; their directories (and those of the
	// files their symlinks point to) get the events. Empty entries are
	// skipped.
	Paths []string
	// Interval is the periodic check's period; 0 turns it off.
	Interval time.Duration
	// NoEvents relies on the periodic check alone (and the owner's own
	// reloads), for tests and systems without inotify.
	NoEvents bool
	// Settle overrides DefaultSettle.
	Settle time.Duration
	// Log gets watch errors; What names the files in it ("TLS files",
	// "password file") and Fields are added to every line.
	Log    *zap.Logger
	What   string
	Fields []zap.Field
}

// Watcher runs check on its own goroutine until Close. Calls to check
// never overlap.
type Watcher struct {
	o       Options
	check   func()
	watcher *fsnotify.Watcher // nil when events are off or unavailable
	quit    chan struct{}
	done    chan struct{}
	once    sync.Once
}

// Start starts watching. Being out of inotify instances is not an error:
// the periodic check still runs, and the owner is told by a warning.
func Start(o Options, check func()) *Watcher {
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.Settle <= 0 {
		o.Settle = DefaultSettle
	}
	w := &Watcher{o: o, check: check, quit: make(chan struct{}), done: make(chan struct{})}
	if !o.NoEvents {
		fw, err := fsnotify.NewWatcher()
		if err != nil {
			o.Log.Warn(o.What+" not watched for changes; relying on the periodic check and SIGHUP", append(o.Fields, zap.Error(err))...)
		} else {
			w.watcher = fw
			w.addWatches()
		}
	}
	go w.run()
	return w
}

// Close stops watching and waits for a running check to return.
func (w *Watcher) Close() {
	w.once.Do(func() {
		close(w.quit)
		<-w.done
	})
}

func (w *Watcher) run() {
	defer close(w.done)
	var tick <-chan time.Time
	if w.o.Interval > 0 {
		t := time.NewTicker(w.o.Interval)
		defer t.Stop()
		tick = t.C
	}
	var events <-chan fsnotify.Event
	var errs <-chan error
	if w.watcher != nil {
		defer w.watcher.Close()
		events, errs = w.watcher.Events, w.watcher.Errors
	}
	var settle *time.Timer
	var settled <-chan time.Time
	for {
		select {
		case <-w.quit:
			if settle != nil {
				settle.Stop()
			}
			return
		case <-tick:
			w.check()
		case _, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			// Any change in a watched directory: the owner's hash tells
			// whether one of its files changed, and a burst of events (an
			// atomic writer's rename dance) makes one check.
			if settled == nil {
				settle = time.NewTimer(w.o.Settle)
				settled = settle.C
			}
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			w.o.Log.Warn(w.o.What+" watch error; the periodic check goes on", append(w.o.Fields, zap.Error(err))...)
		case <-settled:
			settled = nil
			w.check()
			// A symlink swap may have pointed a file into a new
			// directory: watch it too.
			w.addWatches()
		}
	}
}

// addWatches watches the directory of every file and of the file a
// symlink points to. Directories rather than files, because renewals and
// editors replace files (rename, symlink swap) and a watch on the old
// inode would go quiet.
func (w *Watcher) addWatches() {
	if w.watcher == nil {
		return
	}
	for _, p := range w.o.Paths {
		if p == "" {
			continue
		}
		dirs := []string{filepath.Dir(p)}
		if real, err := filepath.EvalSymlinks(p); err == nil {
			dirs = append(dirs, filepath.Dir(real))
		}
		for _, d := range dirs {
			// Adding a watched directory again is harmless; one that
			// vanished is simply not watched (the periodic check remains).
			_ = w.watcher.Add(d)
		}
	}
}
