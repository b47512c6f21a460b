// Package codectest holds golden MQTT packets: raw bytes next to the packet
// struct they decode to, or the reason code decoding must fail with. It is
// an ordinary package, not a _test one, so that the server's tests can feed
// the same packets through a real connection.
package codectest

import (
	"bytes"

	"github.com/iotgw/iotgw/adapters/mqtt/codec"
)

// Golden is one packet of the table.
type Golden struct {
	// Name is unique and reads "<version>/<packet>[-variant]", with
	// "invalid/" after the version for packets that must be refused.
	Name string
	// Version is the protocol level to read the packet with: the
	// connection's level, or 0 for "before CONNECT".
	Version byte
	// Raw is the complete packet, fixed header included.
	Raw []byte
	// Packet is what Raw decodes to; nil for invalid entries.
	Packet codec.Packet
	// WantErr is the reason code decoding must fail with; 0 for valid
	// entries (no invalid packet is refused with code 0x00).
	WantErr codec.ReasonCode
	// DecodeOnly marks a valid but non-canonical encoding: Raw decodes to
	// Packet, but Append produces a different (shorter or reordered) form.
	DecodeOnly bool
	// MaxSize, when non-zero, is the maxSize to pass to ReadPacket.
	MaxSize int
}

// Valid reports whether g describes a packet that decodes successfully.
func (g Golden) Valid() bool { return g.WantErr == 0 }

// Goldens returns the whole table. Every call builds fresh values, so a
// caller may modify what it gets.
func Goldens() []Golden {
	var all []Golden
	all = append(all, v31()...)
	all = append(all, v311()...)
	all = append(all, v5()...)
	all = append(all, invalidCommon()...)
	all = append(all, invalidV5()...)
	return all
}

func v31() []Golden {
	return []Golden{
		{
			Name:    "v31/connect-minimal",
			Version: codec.V31,
			Raw: []byte{
				0x10, 0x10, // CONNECT, remaining length 16
				0x00, 0x06, 'M', 'Q', 'I', 's', 'd', 'p', // protocol name "MQIsdp"
				0x03,       // protocol level 3
				0x02,       // flags: clean session
				0x00, 0x3C, // keep alive 60
				0x00, 0x02, 'c', '1', // client id "c1"
			},
			Packet: &codec.Connect{ProtocolName: "MQIsdp", ProtocolLevel: codec.V31,
				CleanStart: true, KeepAlive: 60, ClientID: "c1"},
		},
		{
			Name:    "v31/connect-will-user-password",
			Version: codec.V31,
			Raw: []byte{
				0x10, 0x21, // CONNECT, remaining length 33
				0x00, 0x06, 'M', 'Q', 'I', 's', 'd', 'p', // protocol name
				0x03,       // protocol level 3
				0xEE,       // flags: user, password, will retain, will QoS 1, will, clean
				0x00, 0x0A, // keep alive 10
				0x00, 0x03, 'd', 'e', 'v', // client id "dev"
				0x00, 0x02, 'l', 'w', // will topic "lw"
				0x00, 0x03, 'b', 'y', 'e', // will message "bye"
				0x00, 0x01, 'u', // user name "u"
				0x00, 0x02, 'p', 'w', // password "pw"
			},
			Packet: &codec.Connect{ProtocolName: "MQIsdp", ProtocolLevel: codec.V31,
				CleanStart: true, KeepAlive: 10, ClientID: "dev",
				WillFlag: true, WillQoS: 1, WillRetain: true, WillTopic: "lw", WillPayload: []byte("bye"),
				UsernameFlag: true, Username: "u", PasswordFlag: true, Password: []byte("pw")},
		},
		{
			Name:    "v31/connack-identifier-rejected",
			Version: codec.V31,
			Raw: []byte{
				0x20, 0x02, // CONNACK, remaining length 2
				0x00, // acknowledge flags
				0x02, // return code 2: identifier rejected
			},
			Packet: &codec.Connack{ReasonCode: codec.ConnRefusedIdentifier},
		},
		{
			Name:    "v31/publish-qos1",
			Version: codec.V31,
			Raw: []byte{
				0x32, 0x09, // PUBLISH QoS 1, remaining length 9
				0x00, 0x03, 'a', '/', 'b', // topic "a/b"
				0x00, 0x07, // packet id 7
				'h', 'i', // payload
			},
			Packet: &codec.Publish{QoS: 1, Topic: "a/b", PacketID: 7, Payload: []byte("hi")},
		},
		{
			Name:       "v31/subscribe-dup-retransmission",
			Version:    codec.V31,
			DecodeOnly: true, // re-encoded without DUP, as 3.1.1 requires
			Raw: []byte{
				0x8A, 0x06, // SUBSCRIBE with DUP and QoS 1 (allowed by 3.1), remaining length 6
				0x00, 0x01, // packet id 1
				0x00, 0x01, '#', // filter "#"
				0x00, // requested QoS 0
			},
			Packet: &codec.Subscribe{PacketID: 1, Subscriptions: []codec.Subscription{{Filter: "#"}}},
		},
	}
}

func v311() []Golden {
	return []Golden{
		{
			Name:    "v311/connect-minimal",
			Version: codec.V311,
			Raw: []byte{
				0x10, 0x0C, // CONNECT, remaining length 12
				0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name "MQTT"
				0x04,       // protocol level 4
				0x02,       // flags: clean session
				0x00, 0x3C, // keep alive 60
				0x00, 0x00, // client id "" (server assigns one)
			},
			Packet: &codec.Connect{ProtocolName: "MQTT", ProtocolLevel: codec.V311,
				CleanStart: true, KeepAlive: 60},
		},
		{
			Name:    "v311/connect-full",
			Version: codec.V311,
			Raw: []byte{
				0x10, 0x2B, // CONNECT, remaining length 43
				0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name
				0x04,       // protocol level 4
				0xD4,       // flags: user, password, will QoS 2, will; session kept
				0x00, 0x00, // keep alive off
				0x00, 0x08, 'c', 'l', 'i', 'e', 'n', 't', '-', '1', // client id "client-1"
				0x00, 0x06, 'w', 'i', 'l', 'l', '/', 't', // will topic "will/t"
				0x00, 0x02, 0x00, 0xFF, // will message: binary 00 FF
				0x00, 0x04, 'u', 's', 'e', 'r', // user name "user"
				0x00, 0x03, 0x01, 0x02, 0x03, // password: binary 01 02 03
			},
			Packet: &codec.Connect{ProtocolName: "MQTT", ProtocolLevel: codec.V311,
				ClientID: "client-1", WillFlag: true, WillQoS: 2, WillTopic: "will/t",
				WillPayload: []byte{0x00, 0xFF}, UsernameFlag: true, Username: "user",
				PasswordFlag: true, Password: []byte{1, 2, 3}},
		},
		{
			Name:    "v311/connect-empty-password",
			Version: codec.V311,
			Raw: []byte{
				0x10, 0x12, // CONNECT, remaining length 18
				0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name
				0x04,       // protocol level 4
				0xC2,       // flags: user, password, clean
				0x00, 0x00, // keep alive off
				0x00, 0x01, 'x', // client id "x"
				0x00, 0x01, 'u', // user name "u"
				0x00, 0x00, // password: present but empty
			},
			Packet: &codec.Connect{ProtocolName: "MQTT", ProtocolLevel: codec.V311,
				CleanStart: true, ClientID: "x", UsernameFlag: true, Username: "u", PasswordFlag: true},
		},
		{
			Name:    "v311/connack-session-present",
			Version: codec.V311,
			Raw: []byte{
				0x20, 0x02, // CONNACK, remaining length 2
				0x01, // session present
				0x00, // accepted
			},
			Packet: &codec.Connack{SessionPresent: true},
		},
		{
			Name:    "v311/connack-bad-credentials",
			Version: codec.V311,
			Raw: []byte{
				0x20, 0x02, // CONNACK, remaining length 2
				0x00, // no session
				0x04, // return code 4: bad user name or password
			},
			Packet: &codec.Connack{ReasonCode: codec.ConnRefusedBadCredentials},
		},
		{
			Name:    "v311/publish-qos0",
			Version: codec.V311,
			Raw: []byte{
				0x30, 0x04, // PUBLISH QoS 0, remaining length 4
				0x00, 0x01, 't', // topic "t"
				'x', // payload
			},
			Packet: &codec.Publish{Topic: "t", Payload: []byte("x")},
		},
		{
			Name:    "v311/publish-qos1-dup-retain",
			Version: codec.V311,
			Raw: []byte{
				0x3B, 0x0E, // PUBLISH DUP, QoS 1, RETAIN; remaining length 14
				0x00, 0x05, 'a', '/', 'b', '/', 'c', // topic "a/b/c"
				0x12, 0x34, // packet id 0x1234
				'h', 'e', 'l', 'l', 'o', // payload
			},
			Packet: &codec.Publish{Dup: true, QoS: 1, Retain: true, Topic: "a/b/c",
				PacketID: 0x1234, Payload: []byte("hello")},
		},
		{
			Name:    "v311/publish-qos2-empty-payload",
			Version: codec.V311,
			Raw: []byte{
				0x34, 0x05, // PUBLISH QoS 2, remaining length 5
				0x00, 0x01, 'q', // topic "q"
				0x00, 0x02, // packet id 2; no payload (clears a retained message)
			},
			Packet: &codec.Publish{QoS: 2, Topic: "q", PacketID: 2},
		},
		{
			Name:    "v311/publish-empty-topic-decodes",
			Version: codec.V311,
			Raw: []byte{
				0x30, 0x02, // PUBLISH QoS 0, remaining length 2
				0x00, 0x00, // topic "": the codec lets it through, the server refuses it
			},
			Packet: &codec.Publish{},
		},
		{
			Name:    "v311/publish-utf8-and-bom-topic",
			Version: codec.V311,
			Raw: []byte{
				0x30, 0x09, // PUBLISH QoS 0, remaining length 9
				0x00, 0x07, // topic length 7
				0xEF, 0xBB, 0xBF, // U+FEFF, kept as is [MQTT-1.5.3-3]
				't', '/', 0xC3, 0xA9, // "t/é"
			},
			Packet: &codec.Publish{Topic: "\uFEFFt/é"},
		},
		{
			Name:    "v311/publish-two-byte-remaining-length",
			Version: codec.V311,
			Raw: append([]byte{
				0x30, 0xCB, 0x01, // PUBLISH QoS 0, remaining length 203 (0x4B + 1*128)
				0x00, 0x01, 't', // topic "t"
			}, bytes.Repeat([]byte{'p'}, 200)...), // 200 payload bytes
			Packet: &codec.Publish{Topic: "t", Payload: bytes.Repeat([]byte{'p'}, 200)},
		},
		{
			Name:    "v311/puback",
			Version: codec.V311,
			Raw:     []byte{0x40, 0x02, 0x00, 0x07}, // PUBACK, remaining length 2, packet id 7
			Packet:  &codec.Ack{Kind: codec.TypePuback, PacketID: 7},
		},
		{
			Name:    "v311/pubrec",
			Version: codec.V311,
			Raw:     []byte{0x50, 0x02, 0x00, 0x08}, // PUBREC, remaining length 2, packet id 8
			Packet:  &codec.Ack{Kind: codec.TypePubrec, PacketID: 8},
		},
		{
			Name:    "v311/pubrel",
			Version: codec.V311,
			Raw:     []byte{0x62, 0x02, 0x00, 0x08}, // PUBREL (flags 0010), remaining length 2, packet id 8
			Packet:  &codec.Ack{Kind: codec.TypePubrel, PacketID: 8},
		},
		{
			Name:    "v311/pubcomp",
			Version: codec.V311,
			Raw:     []byte{0x70, 0x02, 0x00, 0x08}, // PUBCOMP, remaining length 2, packet id 8
			Packet:  &codec.Ack{Kind: codec.TypePubcomp, PacketID: 8},
		},
		{
			Name:    "v311/subscribe-two-filters",
			Version: codec.V311,
			Raw: []byte{
				0x82, 0x0E, // SUBSCRIBE (flags 0010), remaining length 14
				0x00, 0x0A, // packet id 10
				0x00, 0x03, 'a', '/', '+', // filter "a/+"
				0x01,                      // requested QoS 1
				0x00, 0x03, 'b', '/', '#', // filter "b/#"
				0x02, // requested QoS 2
			},
			Packet: &codec.Subscribe{PacketID: 10, Subscriptions: []codec.Subscription{
				{Filter: "a/+", QoS: 1}, {Filter: "b/#", QoS: 2}}},
		},
		{
			Name:    "v311/suback",
			Version: codec.V311,
			Raw: []byte{
				0x90, 0x05, // SUBACK, remaining length 5
				0x00, 0x0A, // packet id 10
				0x01, 0x02, 0x80, // granted QoS 1, granted QoS 2, failure
			},
			Packet: &codec.Suback{PacketID: 10, ReasonCodes: []byte{0x01, 0x02, 0x80}},
		},
		{
			Name:    "v311/unsubscribe",
			Version: codec.V311,
			Raw: []byte{
				0xA2, 0x0C, // UNSUBSCRIBE (flags 0010), remaining length 12
				0x00, 0x0B, // packet id 11
				0x00, 0x03, 'a', '/', '+', // filter "a/+"
				0x00, 0x03, 'b', '/', '#', // filter "b/#"
			},
			Packet: &codec.Unsubscribe{PacketID: 11, Filters: []string{"a/+", "b/#"}},
		},
		{
			Name:    "v311/unsuback",
			Version: codec.V311,
			Raw:     []byte{0xB0, 0x02, 0x00, 0x0B}, // UNSUBACK, remaining length 2, packet id 11
			Packet:  &codec.Unsuback{PacketID: 11},
		},
		{
			Name:    "v311/pingreq",
			Version: codec.V311,
			Raw:     []byte{0xC0, 0x00}, // PINGREQ, remaining length 0
			Packet:  &codec.Pingreq{},
		},
		{
			Name:    "v311/pingresp",
			Version: codec.V311,
			Raw:     []byte{0xD0, 0x00}, // PINGRESP, remaining length 0
			Packet:  &codec.Pingresp{},
		},
		{
			Name:    "v311/disconnect",
			Version: codec.V311,
			Raw:     []byte{0xE0, 0x00}, // DISCONNECT, remaining length 0
			Packet:  &codec.Disconnect{},
		},
	}
}
