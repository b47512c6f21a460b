package codectest

import "github.com/iotgw/iotgw/adapters/mqtt/codec"

// invalidCommon holds packets every version must refuse, grouped by the
// rule they break. Most are shown at level 4 (3.1.1); the rule is the same
// at the other levels unless the name says otherwise.
func invalidCommon() []Golden {
	const (
		mal   = codec.MalformedPacket
		proto = codec.ProtocolError
		unsup = codec.UnsupportedProtocolVersion
	)
	return []Golden{
		// Framing and fixed header.
		{Name: "v311/invalid/reserved-packet-type-0", Version: codec.V311, WantErr: mal,
			Raw: []byte{0x00, 0x00}}, // type 0, remaining length 0
		{Name: "v311/invalid/auth-before-mqtt5", Version: codec.V311, WantErr: mal,
			Raw: []byte{0xF0, 0x00}}, // type 15 is reserved in 3.1.1
		{Name: "v311/invalid/connack-header-flags", Version: codec.V311, WantErr: mal,
			Raw: []byte{0x21, 0x02, 0x00, 0x00}}, // CONNACK with flag bit 0 set [MQTT-2.2.2-1]
		{Name: "v311/invalid/pingreq-header-flags", Version: codec.V311, WantErr: mal,
			Raw: []byte{0xC8, 0x00}}, // PINGREQ with flag bit 3 set [MQTT-2.2.2-2]
		{Name: "v311/invalid/pubrel-header-flags-0000", Version: codec.V311, WantErr: mal,
			Raw: []byte{0x60, 0x02, 0x00, 0x01}}, // PUBREL needs 0010 [MQTT-3.6.1-1]
		{Name: "v311/invalid/subscribe-header-flags-0000", Version: codec.V311, WantErr: mal,
			Raw: []byte{
				0x80, 0x06, // SUBSCRIBE with flags 0000 [MQTT-3.8.1-1]
				0x00, 0x01, // packet id 1
				0x00, 0x01, 'a', // filter "a"
				0x00, // QoS 0
			}},
		{Name: "v311/invalid/unsubscribe-header-flags-0011", Version: codec.V311, WantErr: mal,
			Raw: []byte{
				0xA3, 0x05, // UNSUBSCRIBE with flags 0011 [MQTT-3.10.1-1]
				0x00, 0x01, // packet id 1
				0x00, 0x01, 'a', // filter "a"
			}},
		{Name: "v311/invalid/subscribe-dup-only-allowed-in-3.1", Version: codec.V311, WantErr: mal,
			Raw: []byte{0x8A, 0x06, 0x00, 0x01, 0x00, 0x01, '#', 0x00}}, // SUBSCRIBE flags 1010
		{Name: "v311/invalid/remaining-length-five-bytes", Version: codec.V311, WantErr: mal,
			Raw: []byte{0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}}, // fifth continuation byte
		{Name: "v311/invalid/remaining-length-not-minimal", Version: codec.V311, WantErr: mal,
			Raw: []byte{0xC0, 0x80, 0x00}}, // PINGREQ, remaining length 0 in two bytes
		{Name: "v311/invalid/pingreq-trailing-byte", Version: codec.V311, WantErr: mal,
			Raw: []byte{0xC0, 0x01, 0x00}}, // PINGREQ with a body byte
		{Name: "v311/invalid/puback-trailing-byte", Version: codec.V311, WantErr: mal,
			Raw: []byte{0x40, 0x03, 0x00, 0x01, 0x00}}, // 3.1.1 PUBACK has no reason code
		{Name: "v311/invalid/connack-trailing-byte", Version: codec.V311, WantErr: mal,
			Raw: []byte{0x20, 0x03, 0x00, 0x00, 0x00}}, // 3.1.1 CONNACK has no properties
		{Name: "v311/invalid/disconnect-trailing-byte", Version: codec.V311, WantErr: mal,
			Raw: []byte{0xE0, 0x01, 0x00}}, // 3.1.1 DISCONNECT has no reason code
		{Name: "v311/invalid/unsuback-trailing-byte", Version: codec.V311, WantErr: mal,
			Raw: []byte{0xB0, 0x03, 0x00, 0x01, 0x00}}, // 3.1.1 UNSUBACK has no payload
		{Name: "v311/invalid/field-longer-than-packet", Version: codec.V311, WantErr: mal,
			Raw: []byte{0x30, 0x02, 0x00, 0x05}}, // topic length 5 in a 2-byte body
		{Name: "v311/invalid/first-packet-not-connect", Version: 0, WantErr: proto,
			Raw: []byte{0x30, 0x03, 0x00, 0x01, 't'}}, // PUBLISH before CONNECT [MQTT-3.1.0-1]
		{Name: "v311/invalid/packet-too-large", Version: codec.V311, WantErr: codec.PacketTooLarge, MaxSize: 5,
			Raw: []byte{0x30, 0x04, 0x00, 0x01, 't', 'x'}}, // 6 bytes against a limit of 5

		// UTF-8 strings [MQTT-1.5.3-1], [MQTT-1.5.3-2].
		{Name: "v311/invalid/topic-null-character", Version: codec.V311, WantErr: mal,
			Raw: []byte{0x30, 0x04, 0x00, 0x02, 'a', 0x00}}, // U+0000 in topic
		{Name: "v311/invalid/topic-surrogate", Version: codec.V311, WantErr: mal,
			Raw: []byte{0x30, 0x05, 0x00, 0x03, 0xED, 0xA0, 0x80}}, // U+D800 encoded
		{Name: "v311/invalid/topic-overlong-encoding", Version: codec.V311, WantErr: mal,
			Raw: []byte{0x30, 0x04, 0x00, 0x02, 0xC0, 0xAF}}, // overlong '/'
		{Name: "v311/invalid/topic-truncated-sequence", Version: codec.V311, WantErr: mal,
			Raw: []byte{0x30, 0x04, 0x00, 0x02, 'a', 0xC3}}, // lead byte without continuation
		{Name: "v311/invalid/subscribe-filter-bad-utf8", Version: codec.V311, WantErr: mal,
			Raw: []byte{0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 0xFF, 0x00}}, // filter 0xFF
		{Name: "v311/invalid/connect-client-id-bad-utf8", Version: codec.V311, WantErr: mal,
			Raw: []byte{
				0x10, 0x0D, // CONNECT, remaining length 13
				0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x00, // "MQTT" level 4, clean, keep alive 0
				0x00, 0x01, 0xFF, // client id: invalid byte
			}},

		// CONNECT protocol name and level [MQTT-3.1.2-1], [MQTT-3.1.2-2].
		{Name: "v0/invalid/connect-unknown-protocol-name", Version: 0, WantErr: unsup,
			Raw: []byte{
				0x10, 0x0C, // CONNECT, remaining length 12
				0x00, 0x04, 'M', 'Q', 'T', 'X', // protocol name "MQTX"
				0x04, 0x02, 0x00, 0x00, // level 4, clean, keep alive 0
				0x00, 0x00, // client id ""
			}},
		{Name: "v0/invalid/connect-level-6", Version: 0, WantErr: unsup,
			Raw: []byte{
				0x10, 0x0C, // CONNECT, remaining length 12
				0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name "MQTT"
				0x06, 0x02, 0x00, 0x00, // level 6, clean, keep alive 0
				0x00, 0x00, // client id ""
			}},
		{Name: "v0/invalid/connect-mqisdp-level-4", Version: 0, WantErr: unsup,
			Raw: []byte{
				0x10, 0x0E, // CONNECT, remaining length 14
				0x00, 0x06, 'M', 'Q', 'I', 's', 'd', 'p', // protocol name "MQIsdp"
				0x04, 0x02, 0x00, 0x00, // level 4 does not go with "MQIsdp"
				0x00, 0x00, // client id ""
			}},
		{Name: "v0/invalid/connect-mqtt-level-3", Version: 0, WantErr: unsup,
			Raw: []byte{
				0x10, 0x0C, // CONNECT, remaining length 12
				0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name "MQTT"
				0x03, 0x02, 0x00, 0x00, // level 3 needs the name "MQIsdp"
				0x00, 0x00, // client id ""
			}},

		// CONNECT flags.
		{Name: "v311/invalid/connect-reserved-flag", Version: codec.V311, WantErr: mal,
			Raw: []byte{
				0x10, 0x0C, // CONNECT, remaining length 12
				0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, // "MQTT" level 4
				0x03,       // flags: clean + reserved bit 0 [MQTT-3.1.2-3]
				0x00, 0x00, // keep alive
				0x00, 0x00, // client id ""
			}},
		{Name: "v311/invalid/connect-will-qos-without-will", Version: codec.V311, WantErr: mal,
			Raw: []byte{
				0x10, 0x0C, // CONNECT, remaining length 12
				0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, // "MQTT" level 4
				0x0A,       // flags: will QoS 1, clean, no will flag [MQTT-3.1.2-13]
				0x00, 0x00, // keep alive
				0x00, 0x00, // client id ""
			}},
		{Name: "v311/invalid/connect-will-retain-without-will", Version: codec.V311, WantErr: mal,
			Raw: []byte{
				0x10, 0x0C, // CONNECT, remaining length 12
				0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, // "MQTT" level 4
				0x22,       // flags: will retain, clean, no will flag [MQTT-3.1.2-15]
				0x00, 0x00, // keep alive
				0x00, 0x00, // client id ""
			}},
		{Name: "v311/invalid/connect-will-qos-3", Version: codec.V311, WantErr: mal,
			Raw: []byte{
				0x10, 0x12, // CONNECT, remaining length 18
				0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, // "MQTT" level 4
				0x1E,       // flags: will QoS 3, will, clean [MQTT-3.1.2-14]
				0x00, 0x00, // keep alive
				0x00, 0x00, // client id ""
				0x00, 0x01, 'w', // will topic "w"
				0x00, 0x01, 'x', // will message "x"
			}},
		{Name: "v311/invalid/connect-password-without-user-name", Version: codec.V311, WantErr: proto,
			Raw: []byte{
				0x10, 0x10, // CONNECT, remaining length 16
				0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, // "MQTT" level 4
				0x42,       // flags: password, clean, no user name [MQTT-3.1.2-22]
				0x00, 0x00, // keep alive
				0x00, 0x01, 'a', // client id "a"
				0x00, 0x01, 'p', // password "p"
			}},
		{Name: "v31/invalid/connect-password-without-user-name", Version: codec.V31, WantErr: proto,
			Raw: []byte{
				0x10, 0x12, // CONNECT, remaining length 18
				0x00, 0x06, 'M', 'Q', 'I', 's', 'd', 'p', 0x03, // "MQIsdp" level 3
				0x42,       // flags: password, clean, no user name
				0x00, 0x00, // keep alive
				0x00, 0x01, 'a', // client id "a"
				0x00, 0x01, 'p', // password "p"
			}},
		{Name: "v311/invalid/connect-user-name-flag-without-field", Version: codec.V311, WantErr: mal,
			Raw: []byte{
				0x10, 0x0D, // CONNECT, remaining length 13
				0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, // "MQTT" level 4
				0x82,       // flags: user name, clean [MQTT-3.1.2-19]
				0x00, 0x00, // keep alive
				0x00, 0x01, 'a', // client id "a"; user name missing
			}},
		{Name: "v311/invalid/connect-user-name-without-flag", Version: codec.V311, WantErr: mal,
			Raw: []byte{
				0x10, 0x10, // CONNECT, remaining length 16
				0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, // "MQTT" level 4
				0x02,       // flags: clean only [MQTT-3.1.2-18]
				0x00, 0x00, // keep alive
				0x00, 0x01, 'a', // client id "a"
				0x00, 0x01, 'u', // stray user name
			}},

		// CONNACK.
		{Name: "v311/invalid/connack-return-code-6", Version: codec.V311, WantErr: proto,
			Raw: []byte{0x20, 0x02, 0x00, 0x06}}, // return codes above 5 are reserved
		{Name: "v311/invalid/connack-session-present-with-refusal", Version: codec.V311, WantErr: proto,
			Raw: []byte{0x20, 0x02, 0x01, 0x05}}, // [MQTT-3.2.2-4]
		{Name: "v311/invalid/connack-reserved-acknowledge-flags", Version: codec.V311, WantErr: mal,
			Raw: []byte{0x20, 0x02, 0x02, 0x00}}, // bit 1 of the acknowledge flags

		// PUBLISH.
		{Name: "v311/invalid/publish-qos-3", Version: codec.V311, WantErr: mal,
			Raw: []byte{0x36, 0x03, 0x00, 0x01, 't'}}, // both QoS bits [MQTT-3.3.1-4]
		{Name: "v311/invalid/publish-dup-with-qos-0", Version: codec.V311, WantErr: proto,
			Raw: []byte{0x38, 0x03, 0x00, 0x01, 't'}}, // DUP on QoS 0 [MQTT-3.3.1-2]
		{Name: "v311/invalid/publish-packet-id-0", Version: codec.V311, WantErr: proto,
			Raw: []byte{0x32, 0x05, 0x00, 0x01, 't', 0x00, 0x00}}, // QoS 1, packet id 0 [MQTT-2.3.1-1]
		{Name: "v311/invalid/publish-missing-packet-id", Version: codec.V311, WantErr: mal,
			Raw: []byte{0x32, 0x03, 0x00, 0x01, 't'}}, // QoS 1 but body ends after the topic

		// SUBSCRIBE, SUBACK, UNSUBSCRIBE.
		{Name: "v311/invalid/subscribe-no-filter", Version: codec.V311, WantErr: proto,
			Raw: []byte{0x82, 0x02, 0x00, 0x01}}, // packet id only [MQTT-3.8.3-3]
		{Name: "v311/invalid/subscribe-packet-id-0", Version: codec.V311, WantErr: proto,
			Raw: []byte{0x82, 0x06, 0x00, 0x00, 0x00, 0x01, 'a', 0x00}}, // [MQTT-2.3.1-1]
		{Name: "v311/invalid/subscribe-reserved-option-bits", Version: codec.V311, WantErr: mal,
			Raw: []byte{0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 'a', 0x04}}, // bit 2 set [MQTT-3.8.3-4]
		{Name: "v311/invalid/subscribe-qos-3", Version: codec.V311, WantErr: mal,
			Raw: []byte{0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 'a', 0x03}}, // QoS 3 [MQTT-3.8.3-4]
		{Name: "v311/invalid/subscribe-missing-options", Version: codec.V311, WantErr: mal,
			Raw: []byte{0x82, 0x05, 0x00, 0x01, 0x00, 0x01, 'a'}}, // filter without its QoS byte
		{Name: "v311/invalid/suback-return-code-3", Version: codec.V311, WantErr: proto,
			Raw: []byte{0x90, 0x03, 0x00, 0x01, 0x03}}, // [MQTT-3.9.3-2]
		{Name: "v311/invalid/suback-mqtt5-code", Version: codec.V311, WantErr: proto,
			Raw: []byte{0x90, 0x03, 0x00, 0x01, 0x87}}, // 0x80 is the only 3.1.1 failure code
		{Name: "v311/invalid/suback-no-codes", Version: codec.V311, WantErr: proto,
			Raw: []byte{0x90, 0x02, 0x00, 0x01}}, // one code per filter, at least one filter
		{Name: "v311/invalid/unsubscribe-no-filter", Version: codec.V311, WantErr: proto,
			Raw: []byte{0xA2, 0x02, 0x00, 0x01}}, // [MQTT-3.10.3-2]
		{Name: "v311/invalid/unsubscribe-packet-id-0", Version: codec.V311, WantErr: proto,
			Raw: []byte{0xA2, 0x05, 0x00, 0x00, 0x00, 0x01, 'a'}}, // [MQTT-2.3.1-1]
		{Name: "v311/invalid/disconnect-header-flags", Version: codec.V311, WantErr: mal,
			Raw: []byte{0xE2, 0x00}}, // [MQTT-3.14.1-1]
	}
}
