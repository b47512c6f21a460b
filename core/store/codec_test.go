package store

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

var tc0 = time.Unix(1_700_000_000, 5).UTC()

func sampleMessage(topic string) Message {
	return Message{Topic: topic, Payload: []byte("p"), QoS: 2, Retain: true, ContentType: "ct", PayloadFormat: 1,
		ExpiresAt: tc0.Add(time.Hour), ResponseTopic: "rt", CorrelationData: []byte{1},
		UserProps: []UserProperty{{"k", "v"}, {"k", "w"}}, Created: tc0,
		Origin: Origin{Protocol: "mqttsn", ClientID: "p", Username: "u", Listener: "udp"}}
}

// samples is one record of each kind, some in several shapes.
func samples() []Record {
	m := sampleMessage("a/b")
	return []Record{
		&Session{ClientID: "c", Protocol: "mqtt", Username: "u", Expiry: math.MaxInt64, DisconnectedAt: tc0,
			Will: &Will{Msg: m, Delay: time.Second}},
		&Session{ClientID: "", Expiry: -1},
		&Subscription{ClientID: "c", Filter: "$share/g/#", QoS: 1, NoLocal: true, RetainAsPublished: true, RetainHandling: 2, ID: math.MaxUint32},
		&Inbound{ClientID: "c", PacketID: 65535},
		&Registration{ClientID: "c", Adapter: "mqttsn", Data: []byte{0, 1, 2}},
		&SessionMessage{ClientID: "c", Seq: math.MaxUint64, State: StateSent, PacketID: 3, QoS: 1, Retain: true,
			SubIDs: []uint32{1, 2}, Filter: "a/#", Share: "$share/g/a/#", Msg: &m},
		&SessionMessage{ClientID: "c", Seq: 1, State: StateReceived, PacketID: 4, QoS: 2},
		&Retained{Msg: m},
		&Retained{Msg: Message{Topic: ""}},
		&PendingWill{ClientID: "c", Due: tc0, Msg: m},
		&Delayed{ID: 42, Due: tc0.Add(-time.Hour), Msg: Message{Topic: "x", ExpiresAt: time.Unix(-5, 0).UTC()}},
		&Ban{Field: "address", Value: "2001:db8::/64", Until: tc0, Created: tc0, Reason: "r"},
		&Ban{Field: "username", Value: ""},
	}
}

// encodeRecord returns the key and value a Put of r writes.
func encodeRecord(t testing.TB, r Record) (key, val []byte) {
	var b Batch
	switch r := r.(type) {
	case *Session:
		b.PutSession(r)
	case *Subscription:
		b.PutSubscription(r)
	case *Inbound:
		b.PutInbound(r.ClientID, r.PacketID)
	case *Registration:
		b.PutRegistration(r)
	case *SessionMessage:
		b.PutMessage(r)
	case *Retained:
		b.PutRetained(&r.Msg)
	case *PendingWill:
		b.PutWill(r)
	case *Delayed:
		b.PutDelayed(r)
	case *Ban:
		b.PutBan(r)
	}
	if b.Err() != nil || b.Len() != 1 {
		t.Fatalf("put %T: %v (%d ops)", r, b.Err(), b.Len())
	}
	_ = b.each(func(o batchOp) error {
		key, val = bytes.Clone(o.key), bytes.Clone(o.val)
		return nil
	})
	return key, val
}

func TestCodecRoundTrip(t *testing.T) {
	for _, r := range samples() {
		k, v := encodeRecord(t, r)
		got, err := decodeKV(k, v)
		if err != nil {
			t.Fatalf("%T: %v", r, err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Fatalf("round trip of %T:\n got %+v\nwant %+v", r, got, r)
		}
	}
}

// Every proper prefix of a valid value, and every value with a byte
// appended, is corrupt: no field is optional and nothing may trail.
func TestCodecTruncatedAndTrailing(t *testing.T) {
	for _, r := range samples() {
		k, v := encodeRecord(t, r)
		for i := range len(v) {
			if _, err := decodeKV(k, v[:i]); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%T truncated to %d of %d bytes: %v", r, i, len(v), err)
			}
		}
		if _, err := decodeKV(k, append(bytes.Clone(v), 0)); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%T with a trailing byte: %v", r, err)
		}
		bad := bytes.Clone(v)
		bad[0] = valueVersion + 1
		if _, err := decodeKV(k, bad); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "version") {
			t.Fatalf("%T with a future version: %v", r, err)
		}
	}
}

func TestCodecRejects(t *testing.T) {
	msgKey := appendMessageKey(nil, "c", 1)
	cases := []struct {
		name string
		k, v []byte
	}{
		{"empty key", nil, []byte{valueVersion}},
		{"unknown space", []byte{0x7f}, []byte{valueVersion}},
		{"unknown meta", []byte{spaceMeta, 'x'}, nil},
		{"short delayed key", []byte{spaceDelayed, 1}, nil},
		{"ban key without kind", []byte{spaceBan}, []byte{valueVersion, 0, 0, 0}},
		{"unknown ban kind", []byte{spaceBan, 'z', 'x'}, []byte{valueVersion, 0, 0, 0}},
		{"ban trailing", []byte{spaceBan, 'c', 'x'}, []byte{valueVersion, 0, 0, 0, 0}},
		{"client id longer than key", []byte{spaceSession, 9, 'c', subSession}, nil},
		{"client id without sub-kind", []byte{spaceSession, 1, 'c'}, nil},
		{"unknown sub-kind", []byte{spaceSession, 1, 'c', 0x7f}, nil},
		{"session key trailing", []byte{spaceSession, 1, 'c', subSession, 0}, nil},
		{"short inbound key", []byte{spaceSession, 1, 'c', subInbound, 1}, nil},
		{"short message key", []byte{spaceSession, 1, 'c', subMessage, 1}, nil},
		{"unknown flag", msgKey, []byte{valueVersion, 0x80, 0, 1, 0, 0, 0, 0, 0}},
		{"sent without body", msgKey, []byte{valueVersion, 0, byte(StateSent), 1, 1, 0, 0, 0}},
		{"unknown state", msgKey, []byte{valueVersion, 0, 9, 1, 1, 0, 0, 0}},
		{"packet id over 16 bits", msgKey, []byte{valueVersion, 0, byte(StateReceived), 1, 0x80, 0x80, 0x04, 0, 0, 0}},
		{"count beyond input", msgKey, []byte{valueVersion, 0, byte(StateReceived), 1, 1, 0xff, 0x7f}},
		{"empty value", msgKey, nil},
	}
	for _, c := range cases {
		if _, err := decodeKV(c.k, c.v); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", c.name, err)
		}
	}
	// A retained message stored under another topic's key is corrupt.
	m := sampleMessage("a")
	_, v := encodeRecord(t, &Retained{Msg: m})
	if _, err := decodeKV(append([]byte{spaceRetained}, 'b'), v); !errors.Is(err, ErrCorrupt) {
		t.Errorf("retained under another topic: %v", err)
	}
	// The format marker is not a record.
	if r, err := decodeKV(formatKey, []byte{formatVersion}); r != nil || err != nil {
		t.Errorf("format key: %v, %v", r, err)
	}
}

func TestPrefixEnd(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"\x10\x01a", "\x10\x01b"},
		{"\x10\x01\xff", "\x10\x02"},
		{"\x10\xff\xff", "\x11"},
	} {
		if got := string(prefixEnd([]byte(c.in))); got != c.want {
			t.Errorf("prefixEnd(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestBatchLongFields(t *testing.T) {
	// Lengths of 127, 128 and 16384 bytes take one, two and three bytes
	// of length prefix; the in-place shift must keep the field intact.
	for _, n := range []int{0, 126, 127, 128, 16383, 16384, 1 << 20} {
		var b Batch
		m := Message{Topic: strings.Repeat("t", n), Payload: bytes.Repeat([]byte{7}, n)}
		b.PutRetained(&m)
		b.DeleteRetained(m.Topic)
		var ops []batchOp
		if err := b.each(func(o batchOp) error { ops = append(ops, o); return nil }); err != nil {
			t.Fatal(err)
		}
		if len(ops) != 2 || ops[0].op != opPut || ops[1].op != opDelete || !bytes.Equal(ops[0].key, ops[1].key) {
			t.Fatalf("n=%d: ops %+v", n, ops)
		}
		r, err := decodeKV(ops[0].key, ops[0].val)
		if err != nil || !reflect.DeepEqual(r.(*Retained).Msg.Payload, m.Payload) && n > 0 {
			t.Fatalf("n=%d: %v", n, err)
		}
	}
}

func TestBatchMalformed(t *testing.T) {
	b := Batch{buf: []byte{opPut, 5, 1}}
	if err := b.each(func(batchOp) error { return nil }); err == nil {
		t.Fatal("malformed batch accepted")
	}
}

// FuzzDecode feeds arbitrary keys and values to the decoder: it must not
// panic, and whatever it accepts must encode back to a value that decodes
// to the same record.
func FuzzDecode(f *testing.F) {
	for _, r := range samples() {
		k, v := encodeRecord(f, r)
		f.Add(k, v)
	}
	f.Add([]byte{spaceSession, 0x80}, []byte{valueVersion})
	f.Add(appendMessageKey(nil, "c", 1), []byte{valueVersion, 2, 0, 1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, k, v []byte) {
		r, err := decodeKV(k, v)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error not marked corrupt: %v", err)
			}
			return
		}
		if r == nil {
			return
		}
		k2, v2 := encodeRecord(t, r)
		if !bytes.Equal(k2, k) {
			t.Fatalf("key %q re-encodes as %q", k, k2)
		}
		r2, err := decodeKV(k2, v2)
		if err != nil {
			t.Fatalf("re-encoded %T does not decode: %v", r, err)
		}
		if !reflect.DeepEqual(r, r2) {
			t.Fatalf("re-encoding changed the record:\n%+v\n%+v", r, r2)
		}
	})
}
