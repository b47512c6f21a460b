package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble"
	"go.uber.org/zap"
)

// pebbleStore is the on-disk engine: a Pebble database whose WAL is the
// recovery log. Every Commit goes through one commit goroutine (commit.go)
// that applies concurrent batches as one write and shares one WAL sync
// among them.
type pebbleStore struct {
	db   *pebble.DB
	dir  string
	log  *zap.Logger
	lock io.Closer
	mode string
	win  time.Duration

	// reqs feeds the commit goroutine; senders hold sendMu for reading
	// so that Close (writing) knows when no send can still happen.
	reqs   chan *request
	sendMu sync.RWMutex
	closed bool
	quit   chan struct{}
	done   chan struct{}

	closeOnce sync.Once
	closeErr  error
	// noFlushOnClose leaves the memtable to WAL replay, as a crash would
	// (tests and the load benchmark).
	noFlushOnClose bool

	commits, groups, syncs, bytes atomic.Uint64
}

// lockFile is the name of the lock file in the store's directory.
const lockFile = "iotgw.lock"

// memTableSize: most QoS 1/2 messages are acknowledged and deleted while
// still in the memtable, so a larger one means less flushed garbage; it
// is also what a crash recovery replays from the WAL at most (twice over,
// with the stop-writes threshold).
const memTableSize = 32 << 20

func openPebble(cfg Config, log *zap.Logger) (*pebbleStore, error) {
	dir := filepath.Clean(cfg.Dir)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("store: create %s: %w", dir, err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	plog := log.Named("pebble")
	opts := &pebble.Options{
		Logger:             pebbleLogger{plog.Sugar()},
		MemTableSize:       memTableSize,
		FormatMajorVersion: pebble.FormatNewest,
		EventListener: &pebble.EventListener{
			BackgroundError: func(err error) { plog.Error("background error", zap.String("dir", dir), zap.Error(err)) },
			DiskSlow: func(i pebble.DiskSlowInfo) {
				plog.Warn("disk slow", zap.String("path", i.Path), zap.Duration("duration", i.Duration))
			},
			WriteStallBegin: func(i pebble.WriteStallBeginInfo) {
				plog.Warn("write stall", zap.String("reason", i.Reason))
			},
			WriteStallEnd: func() { plog.Info("write stall ended") },
		},
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		lock.Close()
		if pebble.IsCorruptionError(err) {
			return nil, fmt.Errorf("%w: open %s: %v", ErrCorrupt, dir, err)
		}
		return nil, fmt.Errorf("store: open %s: %w", dir, err)
	}
	s := &pebbleStore{db: db, dir: dir, log: log, lock: lock, mode: cfg.Fsync, win: cfg.BatchWindow,
		reqs: make(chan *request, 1024), quit: make(chan struct{}), done: make(chan struct{})}
	if err := s.checkFormat(); err != nil {
		db.Close()
		lock.Close()
		return nil, err
	}
	go s.run()
	return s, nil
}

// checkFormat writes the format marker into a new store and checks it in
// an existing one, so that a directory of another program, or of a future
// incompatible version, is refused rather than misread.
func (s *pebbleStore) checkFormat() error {
	v, closer, err := s.db.Get(formatKey)
	switch {
	case err == nil:
		defer closer.Close()
		if len(v) != 1 || v[0] != formatVersion {
			return fmt.Errorf("%w: %s has format %x, this version reads %d", ErrCorrupt, s.dir, v, formatVersion)
		}
		return nil
	case errors.Is(err, pebble.ErrNotFound):
	case pebble.IsCorruptionError(err):
		return fmt.Errorf("%w: %s: %v", ErrCorrupt, s.dir, err)
	default:
		return fmt.Errorf("store: read format of %s: %w", s.dir, err)
	}
	it, err := s.db.NewIter(nil)
	if err != nil {
		return fmt.Errorf("store: %s: %w", s.dir, err)
	}
	empty := !it.First()
	if err := it.Close(); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrCorrupt, s.dir, err)
	}
	if !empty {
		return fmt.Errorf("%w: %s holds data without an iotgw format marker", ErrCorrupt, s.dir)
	}
	if err := s.db.Set(formatKey, []byte{formatVersion}, pebble.Sync); err != nil {
		return fmt.Errorf("store: initialise %s: %w", s.dir, err)
	}
	return nil
}

func (s *pebbleStore) Load(ctx context.Context, fn func(Record) error) error {
	s.sendMu.RLock()
	closed := s.closed
	s.sendMu.RUnlock()
	if closed {
		return ErrClosed
	}
	it, err := s.db.NewIter(nil)
	if err != nil {
		return s.readErr(err)
	}
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		if n++; n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				it.Close()
				return err
			}
		}
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return s.readErr(err)
		}
		r, err := decodeKV(it.Key(), v)
		if err != nil {
			it.Close()
			return fmt.Errorf("%s: %w", s.dir, err)
		}
		if r == nil {
			continue
		}
		if err := fn(r); err != nil {
			it.Close()
			return err
		}
	}
	if err := it.Close(); err != nil {
		return s.readErr(err)
	}
	return nil
}

// readErr reports an engine error; a checksum failure is ErrCorrupt.
func (s *pebbleStore) readErr(err error) error {
	if pebble.IsCorruptionError(err) {
		return fmt.Errorf("%w: %s: %v", ErrCorrupt, s.dir, err)
	}
	return fmt.Errorf("store: read %s: %w", s.dir, err)
}

func (s *pebbleStore) Stats() Stats {
	return Stats{Commits: s.commits.Load(), Groups: s.groups.Load(), Syncs: s.syncs.Load(), Bytes: s.bytes.Load()}
}

// Close stops the commit goroutine after it has written every request
// already handed to it, syncs, flushes the memtable (so the next start-up
// reads tables instead of replaying the WAL), and releases the lock.
func (s *pebbleStore) Close() error {
	first := false
	s.closeOnce.Do(func() {
		first = true
		s.sendMu.Lock()
		s.closed = true
		s.sendMu.Unlock()
		close(s.quit)
		<-s.done
		var errs []error
		if !s.noFlushOnClose {
			if err := s.db.Flush(); err != nil {
				errs = append(errs, fmt.Errorf("store: flush %s: %w", s.dir, err))
			}
		}
		if err := s.db.Close(); err != nil {
			errs = append(errs, fmt.Errorf("store: close %s: %w", s.dir, err))
		}
		if err := s.lock.Close(); err != nil {
			errs = append(errs, fmt.Errorf("store: unlock %s: %w", s.dir, err))
		}
		s.closeErr = errors.Join(errs...)
	})
	if !first {
		return ErrClosed
	}
	return s.closeErr
}

// pebbleLogger routes Pebble's log lines to zap. Pebble calls Fatalf for
// errors it cannot recover from (a failed WAL write); like Pebble's own
// default, that ends the process: continuing could acknowledge messages
// that are not stored.
type pebbleLogger struct{ l *zap.SugaredLogger }

func (p pebbleLogger) Infof(format string, args ...any)  { p.l.Debugf(format, args...) }
func (p pebbleLogger) Errorf(format string, args ...any) { p.l.Errorf(format, args...) }
func (p pebbleLogger) Fatalf(format string, args ...any) { p.l.Fatalf(format, args...) }
