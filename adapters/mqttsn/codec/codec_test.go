package codec

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// golden pairs each message with its bytes, commented field by field
// from the specification's message formats (§5.4).
var golden = []struct {
	name string
	msg  Message
	raw  []byte
}{
	{"advertise", &Advertise{GatewayID: 7, Duration: 900},
		[]byte{5, 0x00, 7, 0x03, 0x84}}, // len, type, GwId, Duration=900
	{"searchgw", &SearchGW{Radius: 1}, []byte{3, 0x01, 1}},
	{"gwinfo", &GWInfo{GatewayID: 1}, []byte{3, 0x02, 1}},
	{"gwinfo with address", &GWInfo{GatewayID: 2, GatewayAddr: []byte{10, 0, 0, 1}},
		[]byte{7, 0x02, 2, 10, 0, 0, 1}},
	{"auth plain", &Auth{Method: "PLAIN", Data: []byte("\x00u\x00p")},
		[]byte{13, 0x03, 0, 5, 'P', 'L', 'A', 'I', 'N', 0, 'u', 0, 'p'}}, // reason, method len, method, data
	{"connect", &Connect{Flags: Flags{Will: true, CleanSession: true}, ProtocolID: 1, Duration: 60, ClientID: "s1"},
		[]byte{8, 0x04, 0x0C, 0x01, 0, 60, 's', '1'}}, // flags will|clean, protocol id, duration, client id
	{"connack", &ReturnOnly{Kind: TypeConnack, Code: Accepted}, []byte{3, 0x05, 0}},
	{"willtopicreq", &Bare{Kind: TypeWillTopicReq}, []byte{2, 0x06}},
	{"willtopic", &WillTopic{Kind: TypeWillTopic, Flags: Flags{QoS: 1, Retain: true}, Topic: "w"},
		[]byte{4, 0x07, 0x30, 'w'}}, // flags qos1|retain
	{"willtopic empty", &WillTopic{Kind: TypeWillTopic}, []byte{2, 0x07}},
	{"willmsgreq", &Bare{Kind: TypeWillMsgReq}, []byte{2, 0x08}},
	{"willmsg", &WillMsg{Kind: TypeWillMsg, Msg: []byte("bye")}, []byte{5, 0x09, 'b', 'y', 'e'}},
	{"register", &Register{TopicID: 0, MsgID: 5, TopicName: "a/b"},
		[]byte{9, 0x0A, 0, 0, 0, 5, 'a', '/', 'b'}}, // topic id, msg id, name
	{"regack", &Regack{TopicID: 0x1234, MsgID: 5, Code: Accepted}, []byte{7, 0x0B, 0x12, 0x34, 0, 5, 0}},
	{"publish qos1", &Publish{Flags: Flags{QoS: 1, Retain: true}, TopicID: 1, MsgID: 2, Data: []byte("hi")},
		[]byte{9, 0x0C, 0x30, 0, 1, 0, 2, 'h', 'i'}},
	{"publish qos-1 short dup", &Publish{Flags: Flags{DUP: true, QoS: QoSMinus1, TopicIDType: TopicShort}, TopicID: ShortTopicID("ab")},
		[]byte{7, 0x0C, 0xE2, 'a', 'b', 0, 0}}, // flags dup|qos -1|short
	{"puback invalid topic", &Puback{TopicID: 9, MsgID: 3, Code: InvalidTopicID}, []byte{7, 0x0D, 0, 9, 0, 3, 2}},
	{"pubcomp", &MsgIDOnly{Kind: TypePubcomp, MsgID: 1}, []byte{4, 0x0E, 0, 1}},
	{"pubrec", &MsgIDOnly{Kind: TypePubrec, MsgID: 1}, []byte{4, 0x0F, 0, 1}},
	{"pubrel", &MsgIDOnly{Kind: TypePubrel, MsgID: 1}, []byte{4, 0x10, 0, 1}},
	{"subscribe name", &Subscribe{Kind: TypeSubscribe, Flags: Flags{QoS: 2}, MsgID: 4, TopicName: "s/+"},
		[]byte{8, 0x12, 0x40, 0, 4, 's', '/', '+'}},
	{"subscribe predefined", &Subscribe{Kind: TypeSubscribe, Flags: Flags{QoS: 1, TopicIDType: TopicPredefined}, MsgID: 4, TopicID: 77},
		[]byte{7, 0x12, 0x21, 0, 4, 0, 77}},
	{"subscribe short", &Subscribe{Kind: TypeSubscribe, Flags: Flags{TopicIDType: TopicShort}, MsgID: 4, TopicName: "ab"},
		[]byte{7, 0x12, 0x02, 0, 4, 'a', 'b'}},
	{"suback", &Suback{Flags: Flags{QoS: 1}, TopicID: 3, MsgID: 4, Code: Accepted}, []byte{8, 0x13, 0x20, 0, 3, 0, 4, 0}},
	{"unsubscribe", &Subscribe{Kind: TypeUnsubscribe, MsgID: 6, TopicName: "x"}, []byte{6, 0x14, 0, 0, 6, 'x'}},
	{"unsuback", &MsgIDOnly{Kind: TypeUnsuback, MsgID: 6}, []byte{4, 0x15, 0, 6}},
	{"pingreq", &Pingreq{}, []byte{2, 0x16}},
	{"pingreq client id", &Pingreq{ClientID: "s1"}, []byte{4, 0x16, 's', '1'}},
	{"pingresp", &Bare{Kind: TypePingresp}, []byte{2, 0x17}},
	{"disconnect", &Disconnect{}, []byte{2, 0x18}},
	{"disconnect sleep", &Disconnect{HasDuration: true, Duration: 300}, []byte{4, 0x18, 0x01, 0x2C}},
	{"willtopicupd", &WillTopic{Kind: TypeWillTopicUpd, Flags: Flags{QoS: 2}, Topic: "w2"},
		[]byte{5, 0x1A, 0x40, 'w', '2'}},
	{"willtopicresp", &ReturnOnly{Kind: TypeWillTopicResp, Code: NotSupported}, []byte{3, 0x1B, 3}},
	{"willmsgupd", &WillMsg{Kind: TypeWillMsgUpd, Msg: []byte("x")}, []byte{3, 0x1C, 'x'}},
	{"willmsgresp", &ReturnOnly{Kind: TypeWillMsgResp}, []byte{3, 0x1D, 0}},
	{"encapsulated", &Encapsulated{Ctrl: 1, NodeID: []byte{0xAA, 0xBB}, Inner: []byte{2, 0x16}},
		[]byte{5, 0xFE, 1, 0xAA, 0xBB, 2, 0x16}}, // len covers the header only, then PINGREQ
}

func TestGolden(t *testing.T) {
	for _, g := range golden {
		t.Run(g.name, func(t *testing.T) {
			got, err := Encode(g.msg)
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			if !bytes.Equal(got, g.raw) {
				t.Fatalf("encode:\n got % X\nwant % X", got, g.raw)
			}
			m, err := Decode(g.raw)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !reflect.DeepEqual(m, g.msg) {
				t.Fatalf("decode:\n got %#v\nwant %#v", m, g.msg)
			}
			if m.Type() != Type(g.raw[1]) {
				t.Fatalf("type %v, want %v", m.Type(), Type(g.raw[1]))
			}
		})
	}
}

func TestLongLength(t *testing.T) {
	data := bytes.Repeat([]byte{'z'}, 300)
	p := &Publish{Flags: Flags{QoS: 1}, TopicID: 1, MsgID: 1, Data: data}
	raw, err := Encode(p)
	if err != nil {
		t.Fatal(err)
	}
	// 0x01, two-byte total length, type (§5.2.1).
	if raw[0] != 0x01 || int(raw[1])<<8|int(raw[2]) != len(raw) || raw[3] != byte(TypePublish) {
		t.Fatalf("long header % X, length %d", raw[:4], len(raw))
	}
	m, err := Decode(raw)
	if err != nil || !reflect.DeepEqual(m, p) {
		t.Fatalf("decode: %v %#v", err, m)
	}
	// A short message in the long form is still accepted.
	m, err = Decode([]byte{0x01, 0x00, 0x04, 0x16})
	if err != nil || !reflect.DeepEqual(m, &Pingreq{}) {
		t.Fatalf("long-form PINGREQ: %v %#v", err, m)
	}
	if _, err := Encode(&Publish{Data: make([]byte, MaxLength)}); !errors.Is(err, ErrTooLong) {
		t.Fatalf("oversized: %v", err)
	}
}

func TestFlagsRoundTrip(t *testing.T) {
	for b := 0; b < 256; b++ {
		if got := ParseFlags(byte(b)).Byte(); got != byte(b) {
			t.Fatalf("flags 0x%02X -> 0x%02X", b, got)
		}
	}
}

func TestShortTopic(t *testing.T) {
	if ShortTopicName(ShortTopicID("ab")) != "ab" {
		t.Fatal("short topic round trip")
	}
}

func TestInvalid(t *testing.T) {
	cases := []struct {
		name string
		raw  []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"one byte", []byte{2}, ErrMalformed},
		{"length zero", []byte{0, 0x16}, ErrMalformed},
		{"length exceeds datagram", []byte{5, 0x16, 'a'}, ErrMalformed},
		{"length below datagram", []byte{2, 0x16, 'a'}, ErrMalformed},
		{"truncated long length", []byte{1, 0}, ErrMalformed},
		{"long length too small", []byte{1, 0, 3, 0x16}, ErrMalformed},
		{"unknown type", []byte{2, 0x11}, ErrUnknownType},
		{"unknown type 0xFF", []byte{3, 0xFF, 0}, ErrUnknownType},
		{"short connect", []byte{4, 0x04, 0, 1}, ErrMalformed},
		{"short publish", []byte{6, 0x0C, 0, 0, 1, 0}, ErrMalformed},
		{"long regack", []byte{8, 0x0B, 0, 0, 0, 0, 0, 0}, ErrMalformed},
		{"disconnect 1 byte", []byte{3, 0x18, 0}, ErrMalformed},
		{"pingresp with body", []byte{3, 0x17, 0}, ErrMalformed},
		{"predefined subscribe of 3 bytes", []byte{8, 0x12, 0x01, 0, 1, 0, 0, 0}, ErrMalformed},
		{"short subscribe of 1 byte", []byte{6, 0x12, 0x02, 0, 1, 'a'}, ErrMalformed},
		{"auth method overrun", []byte{5, 0x03, 0, 9, 'P'}, ErrMalformed},
		{"encapsulated without message", []byte{3, 0xFE, 0}, ErrMalformed},
		{"encapsulated header overrun", []byte{9, 0xFE, 0, 1}, ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := Decode(c.raw)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %#v, %v; want %v", m, err, c.want)
			}
		})
	}
}

func TestTypeNames(t *testing.T) {
	if TypePublish.String() != "PUBLISH" || !strings.HasPrefix(Type(0x11).String(), "type(") {
		t.Fatal("type names")
	}
	if Type(0x11).Known() || !TypeEncapsulated.Known() {
		t.Fatal("Known")
	}
	if InvalidTopicID.Error() != "rejected: invalid topic ID" {
		t.Fatal("return code text")
	}
}
