package store

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Batch collects writes that Commit applies atomically and in order (a
// Put after a Delete of the same record in one batch wins, and vice
// versa). Records are encoded when they are put, so the caller may reuse
// or change them right away; the Batch itself must not be touched while a
// Commit of it runs. The zero value is an empty batch ready to use; Reset
// empties one for reuse.
//
// A record the store cannot represent faithfully (an unknown message
// state, a queued or sent message without its body) makes the whole batch
// fail at Commit with ErrInvalid; nothing of it is written.
type Batch struct {
	buf []byte // ops: op byte, uvarint key length, key, uvarint value length, value
	n   int
	err error
}

// Operations in Batch.buf.
const (
	opPut byte = iota + 1
	opDelete
	opDeletePrefix // key is a prefix; every key starting with it goes
)

// ErrInvalid marks a batch holding a record the store cannot represent.
var ErrInvalid = errors.New("store: invalid record")

// Len returns the number of operations in the batch.
func (b *Batch) Len() int { return b.n }

// Size returns the batch's encoded size in bytes.
func (b *Batch) Size() int { return len(b.buf) }

// Reset empties the batch, keeping its buffer.
func (b *Batch) Reset() {
	b.buf, b.n, b.err = b.buf[:0], 0, nil
}

// Err returns the first invalid record's error, if any; Commit returns it.
func (b *Batch) Err() error { return b.err }

// mark reserves a one-byte length in front of a field about to be
// appended and returns its position for seal.
func (b *Batch) mark() int {
	b.buf = append(b.buf, 0)
	return len(b.buf) - 1
}

// seal writes the length of the field appended since mark(at) as a
// uvarint, shifting the field only for the rare multi-byte length.
func (b *Batch) seal(at int) {
	n := len(b.buf) - at - 1
	if n < 0x80 {
		b.buf[at] = byte(n)
		return
	}
	var hdr [binary.MaxVarintLen64]byte
	w := binary.PutUvarint(hdr[:], uint64(n))
	b.buf = append(b.buf, hdr[:w-1]...)
	copy(b.buf[at+w:], b.buf[at+1:at+1+n])
	copy(b.buf[at:], hdr[:w])
}

// begin starts an operation and its key; key ends the key (and, for a
// delete, the empty value) and, for a put, starts the value, which val
// ends.
func (b *Batch) begin(op byte) int {
	b.buf = append(b.buf, op)
	b.n++
	return b.mark()
}

func (b *Batch) key(at int, op byte) int {
	b.seal(at)
	if op != opPut {
		b.buf = append(b.buf, 0)
		return 0
	}
	return b.mark()
}

func (b *Batch) val(at int) { b.seal(at) }

func (b *Batch) invalid(format string, args ...any) {
	if b.err == nil {
		b.err = fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
	}
}

// PutSession writes a session's own record (not its subscriptions,
// messages, inbound ids or registrations, which have their own Puts).
func (b *Batch) PutSession(s *Session) {
	at := b.begin(opPut)
	b.buf = appendSessionKey(b.buf, s.ClientID, subSession)
	at = b.key(at, opPut)
	b.buf = encodeSession(b.buf, s)
	b.val(at)
}

// DeleteSession removes everything stored under clientID as one range:
// the session record, subscriptions, inbound ids, registrations and
// messages. A PendingWill is not removed (DeleteWill does that).
func (b *Batch) DeleteSession(clientID string) {
	at := b.begin(opDeletePrefix)
	b.buf = appendSessionPrefix(b.buf, clientID)
	b.key(at, opDeletePrefix)
}

// PutSubscription adds or replaces one subscription of s.ClientID.
func (b *Batch) PutSubscription(s *Subscription) {
	at := b.begin(opPut)
	b.buf = append(appendSessionKey(b.buf, s.ClientID, subSubscription), s.Filter...)
	at = b.key(at, opPut)
	b.buf = encodeSubscription(b.buf, s)
	b.val(at)
}

// DeleteSubscription removes the subscription of clientID to filter (as
// subscribed).
func (b *Batch) DeleteSubscription(clientID, filter string) {
	at := b.begin(opDelete)
	b.buf = append(appendSessionKey(b.buf, clientID, subSubscription), filter...)
	b.key(at, opDelete)
}

// PutMessage writes one queued or inflight message, or its new state.
func (b *Batch) PutMessage(m *SessionMessage) {
	if !validState(m.State, m.Msg != nil) {
		b.invalid("message %d of %q in state %v with body %v", m.Seq, m.ClientID, m.State, m.Msg != nil)
		return
	}
	at := b.begin(opPut)
	b.buf = appendMessageKey(b.buf, m.ClientID, m.Seq)
	at = b.key(at, opPut)
	b.buf = encodeSessionMessage(b.buf, m)
	b.val(at)
}

// DeleteMessage removes a session's message (acknowledged, expired or
// dropped).
func (b *Batch) DeleteMessage(clientID string, seq uint64) {
	at := b.begin(opDelete)
	b.buf = appendMessageKey(b.buf, clientID, seq)
	b.key(at, opDelete)
}

// PutInbound records an inbound QoS 2 packet id awaiting PUBREL.
func (b *Batch) PutInbound(clientID string, packetID uint16) {
	at := b.begin(opPut)
	b.buf = appendInboundKey(b.buf, clientID, packetID)
	at = b.key(at, opPut)
	b.buf = append(b.buf, valueVersion)
	b.val(at)
}

// DeleteInbound removes an inbound QoS 2 packet id (PUBREL received).
func (b *Batch) DeleteInbound(clientID string, packetID uint16) {
	at := b.begin(opDelete)
	b.buf = appendInboundKey(b.buf, clientID, packetID)
	b.key(at, opDelete)
}

// PutRegistration writes an adapter's opaque state for a session.
func (b *Batch) PutRegistration(r *Registration) {
	at := b.begin(opPut)
	b.buf = append(appendSessionKey(b.buf, r.ClientID, subRegistration), r.Adapter...)
	at = b.key(at, opPut)
	b.buf = appendBytes(append(b.buf, valueVersion), r.Data)
	b.val(at)
}

// DeleteRegistration removes an adapter's state for a session.
func (b *Batch) DeleteRegistration(clientID, adapter string) {
	at := b.begin(opDelete)
	b.buf = append(appendSessionKey(b.buf, clientID, subRegistration), adapter...)
	b.key(at, opDelete)
}

// PutRetained sets the retained message of m.Topic.
func (b *Batch) PutRetained(m *Message) {
	at := b.begin(opPut)
	b.buf = append(append(b.buf, spaceRetained), m.Topic...)
	at = b.key(at, opPut)
	b.buf = appendMessage(append(b.buf, valueVersion), m)
	b.val(at)
}

// DeleteRetained removes the retained message of topic.
func (b *Batch) DeleteRetained(topic string) {
	at := b.begin(opDelete)
	b.buf = append(append(b.buf, spaceRetained), topic...)
	b.key(at, opDelete)
}

// PutWill writes the pending will of w.ClientID, replacing any.
func (b *Batch) PutWill(w *PendingWill) {
	at := b.begin(opPut)
	b.buf = append(append(b.buf, spaceWill), w.ClientID...)
	at = b.key(at, opPut)
	b.buf = encodeTimedMessage(b.buf, w.Due, &w.Msg)
	b.val(at)
}

// DeleteWill removes the pending will of clientID (published, or
// cancelled by a reconnect).
func (b *Batch) DeleteWill(clientID string) {
	at := b.begin(opDelete)
	b.buf = append(append(b.buf, spaceWill), clientID...)
	b.key(at, opDelete)
}

// PutDelayed writes a pending delayed message.
func (b *Batch) PutDelayed(m *Delayed) {
	at := b.begin(opPut)
	b.buf = appendDelayedKey(b.buf, m.ID)
	at = b.key(at, opPut)
	b.buf = encodeTimedMessage(b.buf, m.Due, &m.Msg)
	b.val(at)
}

// DeleteDelayed removes a delayed message (published).
func (b *Batch) DeleteDelayed(id uint64) {
	at := b.begin(opDelete)
	b.buf = appendDelayedKey(b.buf, id)
	b.key(at, opDelete)
}

// PutBan adds or replaces a ban (by field and value). A field other than
// clientid, username or address makes the batch invalid.
func (b *Batch) PutBan(r *Ban) {
	k, ok := banKinds[r.Field]
	if !ok {
		b.invalid("ban field %q", r.Field)
		return
	}
	at := b.begin(opPut)
	b.buf = append(append(b.buf, spaceBan, k), r.Value...)
	at = b.key(at, opPut)
	b.buf = append(b.buf, valueVersion)
	b.buf = appendTime(b.buf, r.Until)
	b.buf = appendTime(b.buf, r.Created)
	b.buf = appendStr(b.buf, r.Reason)
	b.val(at)
}

// DeleteBan removes the ban of field and value (lifted or expired).
func (b *Batch) DeleteBan(field, value string) {
	k, ok := banKinds[field]
	if !ok {
		b.invalid("ban field %q", field)
		return
	}
	at := b.begin(opDelete)
	b.buf = append(append(b.buf, spaceBan, k), value...)
	b.key(at, opDelete)
}

// batchOp is one decoded operation of a batch's buffer; key and val alias
// the buffer.
type batchOp struct {
	op       byte
	key, val []byte
}

// each calls f for every operation in order. The buffer is produced only
// by this file, so a malformed one is a bug, reported as an error rather
// than a panic.
func (b *Batch) each(f func(batchOp) error) error {
	buf := b.buf
	field := func() ([]byte, bool) {
		n, w := binary.Uvarint(buf)
		if w <= 0 || n > uint64(len(buf)-w) {
			return nil, false
		}
		v := buf[w : w+int(n)]
		buf = buf[w+int(n):]
		return v, true
	}
	for len(buf) > 0 {
		var o batchOp
		var ok1, ok2 bool
		o.op, buf = buf[0], buf[1:]
		o.key, ok1 = field()
		o.val, ok2 = field()
		if !ok1 || !ok2 || o.op < opPut || o.op > opDeletePrefix {
			return errors.New("store: malformed batch")
		}
		if err := f(o); err != nil {
			return err
		}
	}
	return nil
}
