package store

import (
	"context"
	"encoding/binary"
	"slices"
	"sync"
	"sync/atomic"
)

// memoryStore keeps the encoded records in a map, so that it behaves
// exactly like the disk engine (same encoding, same ordering, loaded
// records are fresh copies) without touching the disk. Nothing survives
// the process. Commit applies under one mutex; durable is meaningless.
type memoryStore struct {
	mu        sync.Mutex
	kv        map[string][]byte
	bySession map[string]map[string]struct{} // session prefix → its keys
	closed    bool

	commits, bytes atomic.Uint64
}

// NewMemory returns an empty in-memory Store (store.engine: memory).
func NewMemory() Store {
	return &memoryStore{kv: make(map[string][]byte), bySession: make(map[string]map[string]struct{})}
}

// sessionPrefix returns the session prefix of a session-space key.
func sessionPrefix(k []byte) (string, bool) {
	if len(k) == 0 || k[0] != spaceSession {
		return "", false
	}
	n, w := binary.Uvarint(k[1:])
	if w <= 0 || n > uint64(len(k)-1-w) {
		return "", false
	}
	return string(k[:1+w+int(n)]), true
}

func (m *memoryStore) Commit(ctx context.Context, b *Batch, durable bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if b.err != nil {
		return b.err
	}
	if err := b.each(func(batchOp) error { return nil }); err != nil {
		return err // nothing applied: a batch is all or nothing
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if b.n == 0 {
		return nil
	}
	_ = b.each(func(o batchOp) error {
		switch o.op {
		case opPut:
			k := string(o.key)
			m.kv[k] = slices.Clone(o.val)
			if p, ok := sessionPrefix(o.key); ok {
				keys := m.bySession[p]
				if keys == nil {
					keys = make(map[string]struct{})
					m.bySession[p] = keys
				}
				keys[k] = struct{}{}
			}
		case opDelete:
			k := string(o.key)
			delete(m.kv, k)
			if p, ok := sessionPrefix(o.key); ok {
				if keys := m.bySession[p]; keys != nil {
					delete(keys, k)
					if len(keys) == 0 {
						delete(m.bySession, p)
					}
				}
			}
		case opDeletePrefix:
			p := string(o.key)
			for k := range m.bySession[p] {
				delete(m.kv, k)
			}
			delete(m.bySession, p)
		}
		return nil
	})
	m.commits.Add(1)
	m.bytes.Add(uint64(len(b.buf)))
	return nil
}

func (m *memoryStore) CommitAsync(b *Batch, durable bool, done func(error)) {
	done(m.Commit(context.Background(), b, durable))
}

func (m *memoryStore) Load(ctx context.Context, fn func(Record) error) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	keys := make([]string, 0, len(m.kv))
	for k := range m.kv {
		keys = append(keys, k)
	}
	vals := make([][]byte, len(keys))
	slices.Sort(keys)
	for i, k := range keys {
		vals[i] = m.kv[k] // never modified in place, only replaced
	}
	m.mu.Unlock()
	for i, k := range keys {
		if i%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		r, err := decodeKV([]byte(k), vals[i])
		if err != nil {
			return err
		}
		if r == nil {
			continue
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

func (m *memoryStore) Stats() Stats {
	c := m.commits.Load()
	return Stats{Commits: c, Groups: c, Bytes: m.bytes.Load()}
}

func (m *memoryStore) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	m.closed = true
	return nil
}
