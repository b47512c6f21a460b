package codectest

import "github.com/iotgw/iotgw/adapters/mqtt/codec"

// invalidV5 holds packets only MQTT 5 rules refuse: properties, reason
// codes, subscription options and AUTH.
func invalidV5() []Golden {
	const (
		mal   = codec.MalformedPacket
		proto = codec.ProtocolError
	)
	// connect5 builds a level 5 CONNECT around a CONNECT property block
	// (property length included) with client id "a" and no other fields.
	connect5 := func(props ...byte) []byte {
		body := []byte{
			0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name
			0x05,       // level 5
			0x02,       // flags: clean start
			0x00, 0x00, // keep alive
		}
		body = append(body, props...)
		body = append(body, 0x00, 0x01, 'a') // client id "a"
		return append([]byte{0x10, byte(len(body))}, body...)
	}
	// publish5 builds a QoS 0 PUBLISH to topic "t" around a property block
	// (property length included).
	publish5 := func(props ...byte) []byte {
		body := append([]byte{0x00, 0x01, 't'}, props...)
		return append([]byte{0x30, byte(len(body))}, body...)
	}
	return []Golden{
		// Fixed header.
		{Name: "v5/invalid/auth-header-flags", Version: codec.V5, WantErr: mal,
			Raw: []byte{0xF1, 0x00}}, // AUTH flags must be 0000 [MQTT-3.15.1-1]
		{Name: "v5/invalid/first-packet-auth", Version: 0, WantErr: proto,
			Raw: []byte{0xF0, 0x00}}, // AUTH before CONNECT [MQTT-3.1.0-1]

		// CONNECT flags and properties.
		{Name: "v5/invalid/connect-will-qos-without-will", Version: codec.V5, WantErr: mal,
			Raw: []byte{
				0x10, 0x0D, // CONNECT, remaining length 13
				0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, // "MQTT" level 5
				0x12,       // flags: will QoS 2, clean start, no will flag [MQTT-3.1.2-11]
				0x00, 0x00, // keep alive
				0x00,       // property length 0
				0x00, 0x00, // client id ""
			}},
		{Name: "v5/invalid/connect-will-retain-without-will", Version: codec.V5, WantErr: mal,
			Raw: []byte{
				0x10, 0x0D, // CONNECT, remaining length 13
				0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, // "MQTT" level 5
				0x22,       // flags: will retain, clean start [MQTT-3.1.2-13]
				0x00, 0x00, // keep alive
				0x00,       // property length 0
				0x00, 0x00, // client id ""
			}},
		{Name: "v5/invalid/connect-authentication-data-without-method", Version: codec.V5, WantErr: proto,
			Raw: connect5(
				0x04,                   // property length 4
				0x16, 0x00, 0x01, 0xAA, // authentication data, no method (3.1.2.11.10)
			)},
		{Name: "v5/invalid/connect-receive-maximum-0", Version: codec.V5, WantErr: proto,
			Raw: connect5(0x03, 0x21, 0x00, 0x00)}, // property length 3, receive maximum 0
		{Name: "v5/invalid/connect-maximum-packet-size-0", Version: codec.V5, WantErr: proto,
			Raw: connect5(0x05, 0x27, 0x00, 0x00, 0x00, 0x00)}, // property length 5, maximum packet size 0
		{Name: "v5/invalid/connect-request-problem-information-2", Version: codec.V5, WantErr: proto,
			Raw: connect5(0x02, 0x17, 0x02)}, // property length 2, request problem information 2
		{Name: "v5/invalid/connect-request-response-information-2", Version: codec.V5, WantErr: proto,
			Raw: connect5(0x02, 0x19, 0x02)}, // property length 2, request response information 2
		{Name: "v5/invalid/connect-duplicate-session-expiry", Version: codec.V5, WantErr: proto,
			Raw: connect5(
				0x0A,                         // property length 10
				0x11, 0x00, 0x00, 0x00, 0x01, // session expiry interval 1
				0x11, 0x00, 0x00, 0x00, 0x02, // session expiry interval again
			)},
		{Name: "v5/invalid/connect-topic-alias-property", Version: codec.V5, WantErr: mal,
			Raw: connect5(0x03, 0x23, 0x00, 0x01)}, // property length 3, topic alias: PUBLISH only
		{Name: "v5/invalid/connect-property-length-past-end", Version: codec.V5, WantErr: mal,
			Raw: connect5(0x40)}, // property length 64 in a short packet
		{Name: "v5/invalid/connect-will-property-not-allowed", Version: codec.V5, WantErr: mal,
			Raw: []byte{
				0x10, 0x19, // CONNECT, remaining length 25
				0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, // "MQTT" level 5
				0x06,       // flags: will, clean start
				0x00, 0x00, // keep alive
				0x00,            // property length 0
				0x00, 0x01, 'a', // client id "a"
				0x05,                         // will property length 5
				0x11, 0x00, 0x00, 0x00, 0x01, // session expiry interval: not a will property
				0x00, 0x01, 'w', // will topic "w"
				0x00, 0x00, // will payload ""
			}},

		// CONNACK.
		{Name: "v5/invalid/connack-reason-code", Version: codec.V5, WantErr: proto,
			Raw: []byte{0x20, 0x03, 0x00, 0x10, 0x00}}, // 0x10 is no CONNACK code [MQTT-3.2.2-8]
		{Name: "v5/invalid/connack-session-present-with-failure", Version: codec.V5, WantErr: proto,
			Raw: []byte{0x20, 0x03, 0x01, 0x80, 0x00}}, // [MQTT-3.2.2-6]
		{Name: "v5/invalid/connack-missing-property-length", Version: codec.V5, WantErr: mal,
			Raw: []byte{0x20, 0x02, 0x00, 0x00}}, // 5.0 CONNACK always has a property length
		{Name: "v5/invalid/connack-maximum-qos-2", Version: codec.V5, WantErr: proto,
			Raw: []byte{0x20, 0x05, 0x00, 0x00, 0x02, 0x24, 0x02}}, // maximum QoS may only be 0 or 1
		{Name: "v5/invalid/connack-retain-available-2", Version: codec.V5, WantErr: proto,
			Raw: []byte{0x20, 0x05, 0x00, 0x00, 0x02, 0x25, 0x02}}, // retain available 2
		{Name: "v5/invalid/connack-shared-subscription-available-2", Version: codec.V5, WantErr: proto,
			Raw: []byte{0x20, 0x05, 0x00, 0x00, 0x02, 0x2A, 0x02}}, // shared subscription available 2

		// PUBLISH properties.
		{Name: "v5/invalid/publish-topic-alias-0", Version: codec.V5, WantErr: codec.TopicAliasInvalid,
			Raw: publish5(0x03, 0x23, 0x00, 0x00)}, // topic alias 0 [MQTT-3.3.2-8]
		{Name: "v5/invalid/publish-empty-topic-without-alias", Version: codec.V5, WantErr: proto,
			Raw: []byte{0x30, 0x03, 0x00, 0x00, 0x00}}, // topic "", property length 0 (3.3.2.1)
		{Name: "v5/invalid/publish-subscription-id-0", Version: codec.V5, WantErr: proto,
			Raw: publish5(0x02, 0x0B, 0x00)}, // subscription identifier 0
		{Name: "v5/invalid/publish-payload-format-2", Version: codec.V5, WantErr: proto,
			Raw: publish5(0x02, 0x01, 0x02)}, // payload format indicator 2
		{Name: "v5/invalid/publish-duplicate-content-type", Version: codec.V5, WantErr: proto,
			Raw: publish5(
				0x08,                  // property length 8
				0x03, 0x00, 0x01, 'a', // content type "a"
				0x03, 0x00, 0x01, 'b', // content type again
			)},
		{Name: "v5/invalid/publish-session-expiry-property", Version: codec.V5, WantErr: mal,
			Raw: publish5(0x05, 0x11, 0x00, 0x00, 0x00, 0x01)}, // not a PUBLISH property (2.2.2.2)
		{Name: "v5/invalid/publish-unknown-property", Version: codec.V5, WantErr: mal,
			Raw: publish5(0x02, 0x04, 0x00)}, // identifier 0x04 is not defined
		{Name: "v5/invalid/publish-two-byte-property-identifier", Version: codec.V5, WantErr: mal,
			Raw: publish5(0x03, 0x81, 0x01, 0x00)}, // identifier 129 as a VBI: not defined
		{Name: "v5/invalid/publish-subscription-id-five-bytes", Version: codec.V5, WantErr: mal,
			Raw: publish5(0x06, 0x0B, 0xFF, 0xFF, 0xFF, 0xFF, 0x01)}, // VBI longer than 4 bytes
		{Name: "v5/invalid/publish-subscription-id-not-minimal", Version: codec.V5, WantErr: mal,
			Raw: publish5(0x03, 0x0B, 0x81, 0x00)}, // 1 encoded in two bytes [MQTT-1.5.5-1]
		{Name: "v5/invalid/publish-property-overruns-block", Version: codec.V5, WantErr: mal,
			Raw: publish5(0x02, 0x02, 0x00, 0x00, 0x01)}, // 4-byte value cut by property length 2
		{Name: "v5/invalid/publish-content-type-bad-utf8", Version: codec.V5, WantErr: mal,
			Raw: publish5(0x04, 0x03, 0x00, 0x01, 0xFE)}, // content type 0xFE [MQTT-1.5.4-1]
		{Name: "v5/invalid/publish-user-property-null", Version: codec.V5, WantErr: mal,
			Raw: publish5(0x07, 0x26, 0x00, 0x01, 0x00, 0x00, 0x01, 'v')}, // key U+0000 [MQTT-1.5.4-2]

		// Acknowledgements.
		{Name: "v5/invalid/puback-reason-code", Version: codec.V5, WantErr: proto,
			Raw: []byte{0x40, 0x03, 0x00, 0x01, 0x92}}, // 0x92 is not a PUBACK code [MQTT-3.4.2-1]
		{Name: "v5/invalid/pubrel-reason-code", Version: codec.V5, WantErr: proto,
			Raw: []byte{0x62, 0x03, 0x00, 0x01, 0x10}}, // 0x10 is not a PUBREL code [MQTT-3.6.2-1]
		{Name: "v5/invalid/puback-topic-alias-property", Version: codec.V5, WantErr: mal,
			Raw: []byte{
				0x40, 0x07, // PUBACK, remaining length 7
				0x00, 0x01, // packet id 1
				0x00,             // success
				0x03,             // property length 3
				0x23, 0x00, 0x01, // topic alias: not an acknowledgement property
			}},
		{Name: "v5/invalid/puback-duplicate-reason-string", Version: codec.V5, WantErr: proto,
			Raw: []byte{
				0x40, 0x0C, // PUBACK, remaining length 12
				0x00, 0x01, // packet id 1
				0x80,                  // unspecified error
				0x08,                  // property length 8
				0x1F, 0x00, 0x01, 'a', // reason string "a"
				0x1F, 0x00, 0x01, 'b', // reason string again
			}},

		// SUBSCRIBE and friends.
		{Name: "v5/invalid/subscribe-no-filter", Version: codec.V5, WantErr: proto,
			Raw: []byte{0x82, 0x03, 0x00, 0x01, 0x00}}, // packet id, property length 0 [MQTT-3.8.3-2]
		{Name: "v5/invalid/subscribe-reserved-option-bits", Version: codec.V5, WantErr: mal,
			Raw: []byte{0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x40}}, // bit 6 [MQTT-3.8.3-5]
		{Name: "v5/invalid/subscribe-retain-handling-3", Version: codec.V5, WantErr: proto,
			Raw: []byte{0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x30}}, // retain handling 3
		{Name: "v5/invalid/subscribe-qos-3", Version: codec.V5, WantErr: proto,
			Raw: []byte{0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x03}}, // maximum QoS 3 (3.8.3.1)
		{Name: "v5/invalid/subscribe-two-subscription-ids", Version: codec.V5, WantErr: proto,
			Raw: []byte{
				0x82, 0x0B, // SUBSCRIBE, remaining length 11
				0x00, 0x01, // packet id 1
				0x04,       // property length 4
				0x0B, 0x01, // subscription identifier 1
				0x0B, 0x02, // subscription identifier again (only PUBLISH may repeat it)
				0x00, 0x01, 'a', 0x00, // filter "a", QoS 0
			}},
		{Name: "v5/invalid/subscribe-subscription-id-0", Version: codec.V5, WantErr: proto,
			Raw: []byte{0x82, 0x09, 0x00, 0x01, 0x02, 0x0B, 0x00, 0x00, 0x01, 'a', 0x00}}, // identifier 0
		{Name: "v5/invalid/suback-reason-code", Version: codec.V5, WantErr: proto,
			Raw: []byte{0x90, 0x04, 0x00, 0x01, 0x00, 0x10}}, // 0x10 is no SUBACK code [MQTT-3.9.3-2]
		{Name: "v5/invalid/unsubscribe-subscription-id-property", Version: codec.V5, WantErr: mal,
			Raw: []byte{
				0xA2, 0x08, // UNSUBSCRIBE, remaining length 8
				0x00, 0x01, // packet id 1
				0x02, 0x0B, 0x01, // property length 2, subscription identifier: not allowed here
				0x00, 0x01, 'a', // filter "a"
			}},
		{Name: "v5/invalid/unsuback-reason-code", Version: codec.V5, WantErr: proto,
			Raw: []byte{0xB0, 0x04, 0x00, 0x01, 0x00, 0x01}}, // 0x01 is no UNSUBACK code [MQTT-3.11.3-2]
		{Name: "v5/invalid/unsuback-no-codes", Version: codec.V5, WantErr: proto,
			Raw: []byte{0xB0, 0x03, 0x00, 0x01, 0x00}}, // one code per filter

		// DISCONNECT and AUTH.
		{Name: "v5/invalid/disconnect-reason-code", Version: codec.V5, WantErr: proto,
			Raw: []byte{0xE0, 0x01, 0x01}}, // 0x01 is no DISCONNECT code [MQTT-3.14.2-1]
		{Name: "v5/invalid/disconnect-topic-alias-property", Version: codec.V5, WantErr: mal,
			Raw: []byte{0xE0, 0x05, 0x00, 0x03, 0x23, 0x00, 0x01}}, // topic alias in DISCONNECT
		{Name: "v5/invalid/auth-reason-code", Version: codec.V5, WantErr: proto,
			Raw: []byte{0xF0, 0x02, 0x87, 0x00}}, // 0x87 is no AUTH code [MQTT-3.15.2-1]
		{Name: "v5/invalid/auth-without-method", Version: codec.V5, WantErr: proto,
			Raw: []byte{0xF0, 0x02, 0x18, 0x00}}, // continue authentication, no method (3.15.2.2.2)
	}
}
