package store

import (
	"encoding/binary"
	"fmt"
)

// Key layout. The first byte names the key space; session-scoped records
// share one space ordered by client id, so that everything a session owns
// is one contiguous range (DeleteSession is a single range delete) and
// loads back grouped, session record first:
//
//	0x00 "iotgw"                              format marker (value: format version)
//	0x10 uvarint(len) clientID 0x01           Session
//	0x10 uvarint(len) clientID 0x02 filter    Subscription
//	0x10 uvarint(len) clientID 0x03 id(be16)  Inbound QoS 2 packet id
//	0x10 uvarint(len) clientID 0x04 adapter   Registration
//	0x10 uvarint(len) clientID 0x05 seq(be64) SessionMessage
//	0x20 topic                                Retained
//	0x30 clientID                             PendingWill
//	0x31 id(be64)                             Delayed
//	0x40 kind(1) value                        Ban (kind 'c' client id, 'u' user name, 'a' address)
//
// The client id is length-prefixed rather than terminated because client
// ids are arbitrary bytes to the store; uvarints are prefix-free, so no
// client's range contains another's. Big-endian integers keep numeric
// order in byte order.
const (
	spaceMeta     byte = 0x00
	spaceSession  byte = 0x10
	spaceRetained byte = 0x20
	spaceWill     byte = 0x30
	spaceDelayed  byte = 0x31
	spaceBan      byte = 0x40
)

// banKinds are the one-byte kinds of ban keys.
var banKinds = map[string]byte{"clientid": 'c', "username": 'u', "address": 'a'}

func banKindName(c byte) (string, bool) {
	for name, b := range banKinds {
		if b == c {
			return name, true
		}
	}
	return "", false
}

// Sub-kinds within one session's range; their order is Load's order.
const (
	subSession      byte = 0x01
	subSubscription byte = 0x02
	subInbound      byte = 0x03
	subRegistration byte = 0x04
	subMessage      byte = 0x05
)

// formatKey holds the on-disk format version; formatVersion changes only
// with an incompatible key layout (values carry their own version byte).
var formatKey = []byte{spaceMeta, 'i', 'o', 't', 'g', 'w'}

const formatVersion byte = 1

func appendSessionPrefix(dst []byte, clientID string) []byte {
	dst = append(dst, spaceSession)
	dst = binary.AppendUvarint(dst, uint64(len(clientID)))
	return append(dst, clientID...)
}

func appendSessionKey(dst []byte, clientID string, sub byte) []byte {
	return append(appendSessionPrefix(dst, clientID), sub)
}

func appendMessageKey(dst []byte, clientID string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(appendSessionKey(dst, clientID, subMessage), seq)
}

func appendInboundKey(dst []byte, clientID string, id uint16) []byte {
	return binary.BigEndian.AppendUint16(appendSessionKey(dst, clientID, subInbound), id)
}

func appendDelayedKey(dst []byte, id uint64) []byte {
	return binary.BigEndian.AppendUint64(append(dst, spaceDelayed), id)
}

// prefixEnd returns the smallest key greater than every key starting with
// prefix (the exclusive end of a prefix range); prefix must contain a byte
// below 0xff, as every key prefix here does (the space byte).
func prefixEnd(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// keyInfo is a parsed key.
type keyInfo struct {
	kind     Kind
	clientID string // session kinds and wills
	name     string // subscription filter, registration adapter, retained topic
	num      uint64 // message seq, inbound packet id, delayed id
	banKind  string
}

// parseKey splits a key into its parts; it never panics on arbitrary
// input. The format marker is not a record and is reported as kind 0.
func parseKey(k []byte) (keyInfo, error) {
	var ki keyInfo
	if len(k) == 0 {
		return ki, corruptf("empty key")
	}
	rest := k[1:]
	switch k[0] {
	case spaceMeta:
		if string(k) != string(formatKey) {
			return ki, corruptf("unknown meta key %q", k)
		}
		return ki, nil
	case spaceRetained:
		ki.kind, ki.name = KindRetained, string(rest)
		return ki, nil
	case spaceWill:
		ki.kind, ki.clientID = KindWill, string(rest)
		return ki, nil
	case spaceDelayed:
		if len(rest) != 8 {
			return ki, corruptf("delayed key of %d bytes", len(k))
		}
		ki.kind, ki.num = KindDelayed, binary.BigEndian.Uint64(rest)
		return ki, nil
	case spaceBan:
		if len(rest) == 0 {
			return ki, corruptf("ban key without a kind")
		}
		name, ok := banKindName(rest[0])
		if !ok {
			return ki, corruptf("unknown ban kind 0x%02x", rest[0])
		}
		ki.kind, ki.banKind, ki.name = KindBan, name, string(rest[1:])
		return ki, nil
	case spaceSession:
	default:
		return ki, corruptf("unknown key space 0x%02x", k[0])
	}
	n, w := binary.Uvarint(rest)
	// The length must also be minimally encoded: one record, one key.
	if w <= 0 || n >= uint64(len(rest)-w) || w != uvarintLen(n) {
		return ki, corruptf("bad client id length in key %q", k)
	}
	rest = rest[w:]
	ki.clientID = string(rest[:n])
	sub, rest := rest[n], rest[n+1:]
	switch sub {
	case subSession:
		if len(rest) != 0 {
			return ki, corruptf("session key with %d trailing bytes", len(rest))
		}
		ki.kind = KindSession
	case subSubscription:
		ki.kind, ki.name = KindSubscription, string(rest)
	case subInbound:
		if len(rest) != 2 {
			return ki, corruptf("inbound key with a %d-byte id", len(rest))
		}
		ki.kind, ki.num = KindInbound, uint64(binary.BigEndian.Uint16(rest))
	case subRegistration:
		ki.kind, ki.name = KindRegistration, string(rest)
	case subMessage:
		if len(rest) != 8 {
			return ki, corruptf("message key with a %d-byte sequence", len(rest))
		}
		ki.kind, ki.num = KindMessage, binary.BigEndian.Uint64(rest)
	default:
		return ki, corruptf("unknown session record 0x%02x", sub)
	}
	return ki, nil
}

func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

func uvarintLen(n uint64) int {
	w := 1
	for ; n >= 0x80; n >>= 7 {
		w++
	}
	return w
}
