package store

import (
	"context"
	"errors"
	"fmt"

	"go.uber.org/zap"
)

// Store is the broker's write-ahead recovery log: memory stays the
// authoritative state; every change that must survive a restart is
// committed here, and Load streams it all back at start-up.
type Store interface {
	// Commit applies b atomically, in the order of its operations and
	// after every Commit that returned before it began. With durable set
	// it returns once the write is durable by the fsync mode (always,
	// batch: synced to disk; off: not synced), so the caller may then
	// acknowledge what the batch holds. Without it, it returns once the
	// write is applied (a crash may lose it, never half of it, and never
	// without also losing every later commit); a later durable Commit (an
	// empty batch will do) makes it durable too.
	//
	// If ctx ends before the write is taken up, nothing is written and
	// ctx's error is returned; once taken up, Commit waits for the outcome.
	// After a failed write every later Commit fails with the same error:
	// the store's state on disk is then unknown and the process should
	// stop rather than acknowledge anything more.
	Commit(ctx context.Context, b *Batch, durable bool) error
	// CommitAsync is Commit without waiting: done receives the outcome,
	// and b must not be touched until then. It lets one connection keep
	// several writes in flight (each acknowledgement sent from done)
	// instead of one per round trip to the disk. done runs on the store's
	// commit goroutine, or before CommitAsync returns on the caller's
	// (the memory engine, an empty or invalid batch, a closed store), so
	// the caller must not hold a lock that done takes. done must be
	// quick, must not block and must not commit. The done calls of
	// durable commits come in commit order. CommitAsync itself may block
	// while the store's commit queue is full.
	CommitAsync(b *Batch, durable bool, done func(error))
	// Load calls fn for every stored record: each session's records
	// grouped together (session, subscriptions, inbound ids,
	// registrations, messages in Seq order), then retained messages,
	// pending wills, delayed messages. It stops at the first error fn
	// returns, or at corruption (ErrCorrupt). It is meant for start-up,
	// before any Commit; records committed while it runs may be missed.
	Load(ctx context.Context, fn func(Record) error) error
	// Stats returns the store's counters.
	Stats() Stats
	// Close waits for commits in progress, makes everything durable and
	// releases the store; later calls fail with ErrClosed.
	Close() error
}

// Stats are a store's counters since it was opened.
type Stats struct {
	Commits uint64 // Commit calls that wrote
	Groups  uint64 // writes to the engine (concurrent commits grouped)
	Syncs   uint64 // WAL syncs (fsync)
	Bytes   uint64 // encoded bytes committed
}

// Errors.
var (
	// ErrCorrupt marks data that cannot be read back: a checksum failure
	// in the engine, or a key or value this version cannot decode.
	ErrCorrupt = errors.New("store: corrupt data")
	// ErrLocked: another process (or another Store in this one) has the
	// directory open.
	ErrLocked = errors.New("store: directory in use")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store: closed")
)

// Open opens the store cfg describes; log may be nil.
func Open(cfg Config, log *zap.Logger) (Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	switch cfg.Engine {
	case EngineMemory:
		return NewMemory(), nil
	case EnginePebble:
		return openPebble(cfg, log)
	}
	return nil, fmt.Errorf("store.engine: unknown engine %q", cfg.Engine)
}

// decodeKV parses and decodes one stored key/value pair; the format marker
// yields a nil Record.
func decodeKV(k, v []byte) (Record, error) {
	ki, err := parseKey(k)
	if err != nil {
		return nil, err
	}
	if ki.kind == 0 {
		return nil, nil
	}
	r, err := decodeRecord(ki, v)
	if err != nil {
		return nil, fmt.Errorf("%w (key %q)", err, k)
	}
	return r, nil
}
