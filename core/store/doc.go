// Package store is iotgw's durable state: a write-ahead recovery log for
// the broker, not a database it queries. Memory (package core) stays the
// authoritative state; every change that must survive a restart or a
// crash is committed here, and Load streams it all back at start-up.
//
// # Records
//
// The store knows nothing of core's types (core imports store, never the
// reverse) and keeps protocol-agnostic records that core converts:
//
//   - Session: client id, protocol, username, expiry, disconnected-at and
//     the will with its delay.
//   - Subscription: one per filter as subscribed, with its options and
//     subscription identifier (its own key, so SUBSCRIBE writes one small
//     record rather than rewriting the session).
//   - SessionMessage: one queued or inflight QoS 1/2 message of a session,
//     with its ordering sequence, state (queued, sent, received awaiting
//     PUBCOMP), packet id and the full message (dropped once received).
//   - Inbound: an inbound QoS 2 packet id awaiting PUBREL.
//   - Registration: an adapter's opaque state for a persistent session
//     (the MQTT-SN topic registry).
//   - Retained, PendingWill, Delayed: broker-wide, with absolute due and
//     expiry times so that clocks keep running across restarts.
//   - Ban: one entry of the ban list (client id, user name or address
//     prefix) with its absolute end, zero for a permanent ban.
//
// # Writing
//
// A Batch collects puts and deletes of any records; Commit applies it
// atomically and returns once it is durable (durable=true) or applied
// (durable=false: for writes whose loss only costs a redelivery, such as
// deleting acknowledged messages). CommitAsync does the same without
// blocking, so one connection can keep many writes in flight. Deleting a
// session is one range delete of everything under its client id.
//
// # Engines
//
// NewMemory keeps encoded records in a map (store.engine: memory, for
// tests: same encoding and ordering, nothing on disk). The pebble engine
// (the default) writes to a Pebble database in Config.Dir. One commit
// goroutine applies all concurrent commits as one Pebble batch and
// shares one WAL sync among them (group commit); Config.Fsync chooses
// when durable commits return: always (sync every group, no added wait),
// batch (at most one sync per BatchWindow) or off (never synced while
// running). A lock file refuses a second process on the same directory;
// corrupt data is an error (ErrCorrupt) at Open or Load, never skipped.
//
// # Encoding
//
// Keys start with a byte naming the key space; a session's records share
// the prefix 0x10 uvarint(len(client id)) client id, followed by a
// sub-kind byte and the record's own key (filter, packet id, adapter, or
// big-endian sequence), so a session is one contiguous range that loads
// back grouped and ordered (see key.go). Values start with a version
// byte, then fixed-order fields as varints and length-prefixed strings
// (see codec.go); the decoder is fuzzed (FuzzDecode).
//
// The test suite every implementation passes is package storetest.
package store
