package store

import (
	"encoding/binary"
	"math"
	"time"
)

// Value encoding. Every value starts with a version byte (valueVersion);
// fields follow in a fixed order as uvarints, zig-zag varints, single
// bytes, and length-prefixed strings and byte strings. A time is a uvarint
// holding 0 for the zero time, else zigzag(UnixNano)+1. Fields the key
// already holds (client id, filter, sequence, …) are not repeated, except
// a retained message's topic, which is checked against its key.
//
// The decoder never panics and never allocates more than its input can
// justify: every length and count is checked against the bytes left. Any
// malformed value, unknown flag bit or trailing byte is ErrCorrupt.
const valueVersion byte = 1

const (
	msgRetain byte = 1 << iota
	msgKnownFlags
)

const (
	sessHasWill byte = 1 << iota
	sessKnownFlags
)

const (
	subNoLocal byte = 1 << iota
	subRetainAsPublished
	subKnownFlags
)

const (
	smRetain byte = 1 << iota
	smHasMsg
	smKnownFlags
)

func appendStr(dst []byte, s string) []byte {
	return append(binary.AppendUvarint(dst, uint64(len(s))), s...)
}

func appendBytes(dst, b []byte) []byte {
	return append(binary.AppendUvarint(dst, uint64(len(b))), b...)
}

func appendTime(dst []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(dst, 0)
	}
	n := t.UnixNano()
	return binary.AppendUvarint(dst, uint64(n<<1^n>>63)+1)
}

func appendMessage(dst []byte, m *Message) []byte {
	var flags byte
	if m.Retain {
		flags |= msgRetain
	}
	dst = append(dst, flags, m.QoS, m.PayloadFormat)
	dst = appendStr(dst, m.Topic)
	dst = appendBytes(dst, m.Payload)
	dst = appendStr(dst, m.ContentType)
	dst = appendTime(dst, m.ExpiresAt)
	dst = appendStr(dst, m.ResponseTopic)
	dst = appendBytes(dst, m.CorrelationData)
	dst = binary.AppendUvarint(dst, uint64(len(m.UserProps)))
	for _, p := range m.UserProps {
		dst = appendStr(dst, p.Key)
		dst = appendStr(dst, p.Value)
	}
	dst = appendTime(dst, m.Created)
	dst = appendStr(dst, m.Origin.Protocol)
	dst = appendStr(dst, m.Origin.ClientID)
	dst = appendStr(dst, m.Origin.Username)
	return appendStr(dst, m.Origin.Listener)
}

func encodeSession(dst []byte, s *Session) []byte {
	var flags byte
	if s.Will != nil {
		flags |= sessHasWill
	}
	dst = append(dst, valueVersion, flags)
	dst = appendStr(dst, s.Protocol)
	dst = appendStr(dst, s.Username)
	dst = binary.AppendVarint(dst, int64(s.Expiry))
	dst = appendTime(dst, s.DisconnectedAt)
	if s.Will != nil {
		dst = binary.AppendVarint(dst, int64(s.Will.Delay))
		dst = appendMessage(dst, &s.Will.Msg)
	}
	return dst
}

func encodeSubscription(dst []byte, s *Subscription) []byte {
	var flags byte
	if s.NoLocal {
		flags |= subNoLocal
	}
	if s.RetainAsPublished {
		flags |= subRetainAsPublished
	}
	dst = append(dst, valueVersion, flags, s.QoS, s.RetainHandling)
	return binary.AppendUvarint(dst, uint64(s.ID))
}

func encodeSessionMessage(dst []byte, m *SessionMessage) []byte {
	var flags byte
	if m.Retain {
		flags |= smRetain
	}
	if m.Msg != nil {
		flags |= smHasMsg
	}
	dst = append(dst, valueVersion, flags, byte(m.State), m.QoS)
	dst = binary.AppendUvarint(dst, uint64(m.PacketID))
	dst = binary.AppendUvarint(dst, uint64(len(m.SubIDs)))
	for _, id := range m.SubIDs {
		dst = binary.AppendUvarint(dst, uint64(id))
	}
	dst = appendStr(dst, m.Filter)
	dst = appendStr(dst, m.Share)
	if m.Msg != nil {
		dst = appendMessage(dst, m.Msg)
	}
	return dst
}

func encodeTimedMessage(dst []byte, due time.Time, m *Message) []byte {
	dst = append(dst, valueVersion)
	dst = appendTime(dst, due)
	return appendMessage(dst, m)
}

// decoder reads a value; the first error sticks and later reads return
// zero values.
type decoder struct {
	b    []byte
	err  error
	what string
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = corruptf("malformed %s value", d.what)
		d.b = nil
	}
}

func (d *decoder) byte() byte {
	if len(d.b) == 0 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a list length, each element taking at least min bytes.
func (d *decoder) count(min int) int {
	n := d.uvarint()
	if n > uint64(len(d.b)/min) {
		d.fail()
		return 0
	}
	return int(n)
}

func (d *decoder) raw() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	b := d.b[:n]
	d.b = d.b[n:]
	return b
}

func (d *decoder) str() string { return string(d.raw()) }

// bytes returns a copy (the input may be an engine's reused buffer); an
// empty byte string is nil.
func (d *decoder) bytes() []byte {
	b := d.raw()
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}

func (d *decoder) time() time.Time {
	u := d.uvarint()
	if u == 0 {
		return time.Time{}
	}
	u--
	return time.Unix(0, int64(u>>1)^-int64(u&1)).UTC()
}

func (d *decoder) flags(known byte) byte {
	f := d.byte()
	if f&^(known-1) != 0 {
		d.fail()
	}
	return f
}

func (d *decoder) version() {
	if v := d.byte(); d.err == nil && v != valueVersion {
		d.err = corruptf("%s value has unsupported version %d", d.what, v)
	}
}

// done reports the sticky error, or trailing bytes as corruption.
func (d *decoder) done() error {
	if d.err == nil && len(d.b) != 0 {
		d.err = corruptf("%d trailing bytes in %s value", len(d.b), d.what)
	}
	return d.err
}

func (d *decoder) message(m *Message) {
	flags := d.flags(msgKnownFlags)
	m.Retain = flags&msgRetain != 0
	m.QoS = d.byte()
	m.PayloadFormat = d.byte()
	m.Topic = d.str()
	m.Payload = d.bytes()
	m.ContentType = d.str()
	m.ExpiresAt = d.time()
	m.ResponseTopic = d.str()
	m.CorrelationData = d.bytes()
	if n := d.count(2); n > 0 {
		m.UserProps = make([]UserProperty, n)
		for i := range m.UserProps {
			m.UserProps[i] = UserProperty{Key: d.str(), Value: d.str()}
		}
	}
	m.Created = d.time()
	m.Origin.Protocol = d.str()
	m.Origin.ClientID = d.str()
	m.Origin.Username = d.str()
	m.Origin.Listener = d.str()
}

// decodeRecord decodes the value stored under the key ki describes.
func decodeRecord(ki keyInfo, val []byte) (Record, error) {
	d := &decoder{b: val, what: ki.kind.String()}
	d.version()
	var r Record
	switch ki.kind {
	case KindSession:
		s := &Session{ClientID: ki.clientID}
		flags := d.flags(sessKnownFlags)
		s.Protocol = d.str()
		s.Username = d.str()
		s.Expiry = time.Duration(d.varint())
		s.DisconnectedAt = d.time()
		if flags&sessHasWill != 0 {
			s.Will = &Will{Delay: time.Duration(d.varint())}
			d.message(&s.Will.Msg)
		}
		r = s
	case KindSubscription:
		s := &Subscription{ClientID: ki.clientID, Filter: ki.name}
		flags := d.flags(subKnownFlags)
		s.NoLocal = flags&subNoLocal != 0
		s.RetainAsPublished = flags&subRetainAsPublished != 0
		s.QoS = d.byte()
		s.RetainHandling = d.byte()
		if id := d.uvarint(); id <= math.MaxUint32 {
			s.ID = uint32(id)
		} else {
			d.fail()
		}
		r = s
	case KindInbound:
		r = &Inbound{ClientID: ki.clientID, PacketID: uint16(ki.num)}
	case KindRegistration:
		r = &Registration{ClientID: ki.clientID, Adapter: ki.name, Data: d.bytes()}
	case KindMessage:
		r = decodeSessionMessage(d, ki)
	case KindRetained:
		rt := &Retained{}
		d.message(&rt.Msg)
		if d.err == nil && rt.Msg.Topic != ki.name {
			return nil, corruptf("retained message for %q stored under %q", rt.Msg.Topic, ki.name)
		}
		r = rt
	case KindWill:
		w := &PendingWill{ClientID: ki.clientID, Due: d.time()}
		d.message(&w.Msg)
		r = w
	case KindDelayed:
		dl := &Delayed{ID: ki.num, Due: d.time()}
		d.message(&dl.Msg)
		r = dl
	case KindBan:
		r = &Ban{Field: ki.banKind, Value: ki.name, Until: d.time(), Created: d.time(), Reason: d.str()}
	default:
		return nil, corruptf("no record kind %d", ki.kind)
	}
	if err := d.done(); err != nil {
		return nil, err
	}
	return r, nil
}

func decodeSessionMessage(d *decoder, ki keyInfo) *SessionMessage {
	m := &SessionMessage{ClientID: ki.clientID, Seq: ki.num}
	flags := d.flags(smKnownFlags)
	m.Retain = flags&smRetain != 0
	m.State = State(d.byte())
	m.QoS = d.byte()
	if id := d.uvarint(); id <= math.MaxUint16 {
		m.PacketID = uint16(id)
	} else {
		d.fail()
	}
	if n := d.count(1); n > 0 {
		m.SubIDs = make([]uint32, n)
		for i := range m.SubIDs {
			id := d.uvarint()
			if id > math.MaxUint32 {
				d.fail()
			}
			m.SubIDs[i] = uint32(id)
		}
	}
	m.Filter = d.str()
	m.Share = d.str()
	if flags&smHasMsg != 0 {
		m.Msg = &Message{}
		d.message(m.Msg)
	}
	if d.err == nil && !validState(m.State, m.Msg != nil) {
		d.err = corruptf("message %d of %q in state %v with body %v", m.Seq, m.ClientID, m.State, m.Msg != nil)
	}
	return m
}

// validState: queued and sent messages carry their body; a received one
// may have dropped it.
func validState(s State, hasMsg bool) bool {
	switch s {
	case StateQueued, StateSent:
		return hasMsg
	case StateReceived:
		return true
	}
	return false
}
