package codectest

import "github.com/iotgw/iotgw/adapters/mqtt/codec"

// mask is codec.PropMask under a shorter name for the literals below.
var mask = codec.PropMask

// v5 covers every packet type of MQTT 5 and, across the table, every
// property. Properties are written in ascending identifier order, the order
// Append uses, so that the encodings are canonical.
func v5() []Golden {
	return []Golden{
		{
			Name:    "v5/connect-minimal",
			Version: codec.V5,
			Raw: []byte{
				0x10, 0x0D, // CONNECT, remaining length 13
				0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name "MQTT"
				0x05,       // protocol level 5
				0x02,       // flags: clean start
				0x00, 0x3C, // keep alive 60
				0x00,       // property length 0
				0x00, 0x00, // client id ""
			},
			Packet: &codec.Connect{ProtocolName: "MQTT", ProtocolLevel: codec.V5,
				CleanStart: true, KeepAlive: 60},
		},
		{
			Name:    "v5/connect-all-properties",
			Version: codec.V5,
			Raw: []byte{
				0x10, 0x7F, // CONNECT, remaining length 127
				0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name
				0x05,       // protocol level 5
				0xEE,       // flags: user, password, will retain, will QoS 1, will, clean start
				0x00, 0x1E, // keep alive 30
				0x28,                         // property length 40
				0x11, 0x00, 0x00, 0x0E, 0x10, // session expiry interval 3600
				0x15, 0x00, 0x05, 'S', 'C', 'R', 'A', 'M', // authentication method "SCRAM"
				0x16, 0x00, 0x02, 0x01, 0x02, // authentication data 01 02
				0x17, 0x00, // request problem information 0
				0x19, 0x01, // request response information 1
				0x21, 0x00, 0x14, // receive maximum 20
				0x22, 0x00, 0x0A, // topic alias maximum 10
				0x26, 0x00, 0x01, 'k', 0x00, 0x01, 'v', // user property k=v
				0x27, 0x00, 0x00, 0x10, 0x00, // maximum packet size 4096
				0x00, 0x03, 'c', 'i', 'd', // client id "cid"
				0x2B,       // will property length 43
				0x01, 0x01, // payload format indicator 1 (UTF-8)
				0x02, 0x00, 0x00, 0x00, 0x78, // message expiry interval 120
				0x03, 0x00, 0x0A, 't', 'e', 'x', 't', '/', 'p', 'l', 'a', 'i', 'n', // content type "text/plain"
				0x08, 0x00, 0x03, 'r', '/', 't', // response topic "r/t"
				0x09, 0x00, 0x02, 'i', 'd', // correlation data "id"
				0x18, 0x00, 0x00, 0x00, 0x05, // will delay interval 5
				0x26, 0x00, 0x01, 'a', 0x00, 0x01, 'b', // user property a=b
				0x00, 0x04, 'w', 'i', 'l', 'l', // will topic "will"
				0x00, 0x04, 'g', 'o', 'n', 'e', // will payload "gone"
				0x00, 0x05, 'a', 'l', 'i', 'c', 'e', // user name "alice"
				0x00, 0x06, 's', 'e', 'c', 'r', 'e', 't', // password "secret"
			},
			Packet: &codec.Connect{ProtocolName: "MQTT", ProtocolLevel: codec.V5,
				CleanStart: true, KeepAlive: 30, ClientID: "cid",
				Props: codec.Properties{
					Present: mask(codec.PropSessionExpiry, codec.PropAuthMethod, codec.PropAuthData,
						codec.PropRequestProblemInfo, codec.PropRequestResponseInfo, codec.PropReceiveMaximum,
						codec.PropTopicAliasMaximum, codec.PropMaximumPacketSize),
					SessionExpiry: 3600, AuthMethod: "SCRAM", AuthData: []byte{1, 2},
					RequestProblemInfo: 0, RequestResponseInfo: 1, ReceiveMaximum: 20,
					TopicAliasMaximum: 10, User: []codec.UserProperty{{Key: "k", Value: "v"}},
					MaximumPacketSize: 4096,
				},
				WillFlag: true, WillQoS: 1, WillRetain: true,
				WillProps: codec.Properties{
					Present: mask(codec.PropPayloadFormat, codec.PropMessageExpiry, codec.PropContentType,
						codec.PropResponseTopic, codec.PropCorrelationData, codec.PropWillDelay),
					PayloadFormat: 1, MessageExpiry: 120, ContentType: "text/plain",
					ResponseTopic: "r/t", CorrelationData: []byte("id"), WillDelay: 5,
					User: []codec.UserProperty{{Key: "a", Value: "b"}},
				},
				WillTopic: "will", WillPayload: []byte("gone"),
				UsernameFlag: true, Username: "alice", PasswordFlag: true, Password: []byte("secret")},
		},
		{
			Name:    "v5/connect-password-without-user-name",
			Version: codec.V5,
			Raw: []byte{
				0x10, 0x13, // CONNECT, remaining length 19
				0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name
				0x05,       // protocol level 5
				0x42,       // flags: password, clean start (legal in 5.0)
				0x00, 0x00, // keep alive off
				0x00,            // property length 0
				0x00, 0x01, 'p', // client id "p"
				0x00, 0x03, 't', 'o', 'k', // password "tok"
			},
			Packet: &codec.Connect{ProtocolName: "MQTT", ProtocolLevel: codec.V5,
				CleanStart: true, ClientID: "p", PasswordFlag: true, Password: []byte("tok")},
		},
		{
			Name:    "v5/connack-all-properties",
			Version: codec.V5,
			Raw: []byte{
				0x20, 0x56, // CONNACK, remaining length 86
				0x00,                         // acknowledge flags
				0x00,                         // reason code success
				0x53,                         // property length 83
				0x11, 0x00, 0x00, 0x00, 0x3C, // session expiry interval 60
				0x12, 0x00, 0x06, 'a', 'u', 't', 'o', '-', '1', // assigned client id "auto-1"
				0x13, 0x00, 0x3C, // server keep alive 60
				0x15, 0x00, 0x05, 'S', 'C', 'R', 'A', 'M', // authentication method "SCRAM"
				0x16, 0x00, 0x01, 0xAA, // authentication data AA
				0x1A, 0x00, 0x05, 'r', 'e', 's', 'p', '/', // response information "resp/"
				0x1C, 0x00, 0x0A, 'o', 't', 'h', 'e', 'r', ':', '1', '8', '8', '3', // server reference "other:1883"
				0x1F, 0x00, 0x02, 'o', 'k', // reason string "ok"
				0x21, 0x00, 0x64, // receive maximum 100
				0x22, 0x00, 0x05, // topic alias maximum 5
				0x24, 0x01, // maximum QoS 1
				0x25, 0x00, // retain available 0
				0x26, 0x00, 0x01, 'x', 0x00, 0x01, 'y', // user property x=y
				0x27, 0x00, 0x01, 0x00, 0x00, // maximum packet size 65536
				0x28, 0x01, // wildcard subscription available 1
				0x29, 0x00, // subscription identifiers available 0
				0x2A, 0x01, // shared subscription available 1
			},
			Packet: &codec.Connack{Props: codec.Properties{
				Present: mask(codec.PropSessionExpiry, codec.PropAssignedClientID, codec.PropServerKeepAlive,
					codec.PropAuthMethod, codec.PropAuthData, codec.PropResponseInfo, codec.PropServerReference,
					codec.PropReasonString, codec.PropReceiveMaximum, codec.PropTopicAliasMaximum,
					codec.PropMaximumQoS, codec.PropRetainAvailable, codec.PropMaximumPacketSize,
					codec.PropWildcardSubAvailable, codec.PropSubIDAvailable, codec.PropSharedSubAvailable),
				SessionExpiry: 60, AssignedClientID: "auto-1", ServerKeepAlive: 60,
				AuthMethod: "SCRAM", AuthData: []byte{0xAA}, ResponseInfo: "resp/",
				ServerReference: "other:1883", ReasonString: "ok", ReceiveMaximum: 100,
				TopicAliasMaximum: 5, MaximumQoS: 1, RetainAvailable: 0,
				User:              []codec.UserProperty{{Key: "x", Value: "y"}},
				MaximumPacketSize: 65536, WildcardSubAvailable: 1, SubIDAvailable: 0, SharedSubAvailable: 1,
			}},
		},
		{
			Name:    "v5/connack-not-authorized",
			Version: codec.V5,
			Raw: []byte{
				0x20, 0x03, // CONNACK, remaining length 3
				0x00, // acknowledge flags
				0x87, // reason code: not authorized
				0x00, // property length 0
			},
			Packet: &codec.Connack{ReasonCode: codec.NotAuthorized},
		},
		{
			Name:    "v5/publish-all-properties",
			Version: codec.V5,
			Raw: []byte{
				0x32, 0x40, // PUBLISH QoS 1, remaining length 64
				0x00, 0x03, 's', '/', '1', // topic "s/1"
				0x00, 0x01, // packet id 1
				0x36,       // property length 54
				0x01, 0x01, // payload format indicator 1
				0x02, 0x00, 0x00, 0x00, 0x1E, // message expiry interval 30
				0x03, 0x00, 0x04, 'j', 's', 'o', 'n', // content type "json"
				0x08, 0x00, 0x05, 'r', 'e', 'p', 'l', 'y', // response topic "reply"
				0x09, 0x00, 0x03, 0x01, 0x02, 0x03, // correlation data 01 02 03
				0x0B, 0x01, // subscription identifier 1
				0x0B, 0xAC, 0x02, // subscription identifier 300 (two-byte VBI)
				0x23, 0x00, 0x03, // topic alias 3
				0x26, 0x00, 0x02, 'k', '1', 0x00, 0x02, 'v', '1', // user property k1=v1
				0x26, 0x00, 0x02, 'k', '1', 0x00, 0x02, 'v', '2', // user property k1=v2 (repeat, order kept)
				'{', '}', // payload
			},
			Packet: &codec.Publish{QoS: 1, Topic: "s/1", PacketID: 1, Payload: []byte("{}"),
				Props: codec.Properties{
					Present: mask(codec.PropPayloadFormat, codec.PropMessageExpiry, codec.PropContentType,
						codec.PropResponseTopic, codec.PropCorrelationData, codec.PropTopicAlias),
					PayloadFormat: 1, MessageExpiry: 30, ContentType: "json", ResponseTopic: "reply",
					CorrelationData: []byte{1, 2, 3}, SubscriptionIDs: []uint32{1, 300}, TopicAlias: 3,
					User: []codec.UserProperty{{Key: "k1", Value: "v1"}, {Key: "k1", Value: "v2"}},
				}},
		},
		{
			Name:    "v5/publish-topic-alias-only",
			Version: codec.V5,
			Raw: []byte{
				0x30, 0x07, // PUBLISH QoS 0, remaining length 7
				0x00, 0x00, // topic "" (resolved through the alias)
				0x03,             // property length 3
				0x23, 0x00, 0x03, // topic alias 3
				'x', // payload
			},
			Packet: &codec.Publish{Payload: []byte("x"), Props: codec.Properties{
				Present: mask(codec.PropTopicAlias), TopicAlias: 3}},
		},
		{
			Name:    "v5/publish-qos2-no-properties",
			Version: codec.V5,
			Raw: []byte{
				0x34, 0x06, // PUBLISH QoS 2, remaining length 6
				0x00, 0x01, 't', // topic "t"
				0x00, 0x05, // packet id 5
				0x00, // property length 0; no payload
			},
			Packet: &codec.Publish{QoS: 2, Topic: "t", PacketID: 5},
		},
		{
			Name:       "v5/publish-properties-out-of-order",
			Version:    codec.V5,
			DecodeOnly: true, // Append writes properties in ascending identifier order
			Raw: []byte{
				0x30, 0x09, // PUBLISH QoS 0, remaining length 9
				0x00, 0x01, 't', // topic "t"
				0x05,             // property length 5
				0x23, 0x00, 0x01, // topic alias 1
				0x01, 0x01, // payload format indicator 1
			},
			Packet: &codec.Publish{Topic: "t", Props: codec.Properties{
				Present: mask(codec.PropTopicAlias, codec.PropPayloadFormat), TopicAlias: 1, PayloadFormat: 1}},
		},
		{
			Name:    "v5/puback-short-form",
			Version: codec.V5,
			Raw:     []byte{0x40, 0x02, 0x00, 0x01}, // PUBACK, remaining length 2 (means success), packet id 1
			Packet:  &codec.Ack{Kind: codec.TypePuback, PacketID: 1},
		},
		{
			Name:    "v5/puback-reason-only",
			Version: codec.V5,
			Raw: []byte{
				0x40, 0x03, // PUBACK, remaining length 3
				0x00, 0x01, // packet id 1
				0x10, // reason code: no matching subscribers; property length omitted
			},
			Packet: &codec.Ack{Kind: codec.TypePuback, PacketID: 1, ReasonCode: codec.NoMatchingSubscribers},
		},
		{
			Name:    "v5/puback-reason-and-properties",
			Version: codec.V5,
			Raw: []byte{
				0x40, 0x12, // PUBACK, remaining length 18
				0x00, 0x02, // packet id 2
				0x80,                                 // reason code: unspecified error
				0x0E,                                 // property length 14
				0x1F, 0x00, 0x04, 'f', 'a', 'i', 'l', // reason string "fail"
				0x26, 0x00, 0x01, 'a', 0x00, 0x01, 'b', // user property a=b
			},
			Packet: &codec.Ack{Kind: codec.TypePuback, PacketID: 2, ReasonCode: codec.UnspecifiedError,
				Props: codec.Properties{Present: mask(codec.PropReasonString), ReasonString: "fail",
					User: []codec.UserProperty{{Key: "a", Value: "b"}}}},
		},
		{
			Name:       "v5/puback-success-with-empty-properties",
			Version:    codec.V5,
			DecodeOnly: true, // Append uses the two-byte short form
			Raw: []byte{
				0x40, 0x04, // PUBACK, remaining length 4
				0x00, 0x01, // packet id 1
				0x00, // reason code success
				0x00, // property length 0
			},
			Packet: &codec.Ack{Kind: codec.TypePuback, PacketID: 1},
		},
		{
			Name:       "v5/puback-success-reason-only",
			Version:    codec.V5,
			DecodeOnly: true,                                 // Append uses the two-byte short form
			Raw:        []byte{0x40, 0x03, 0x00, 0x01, 0x00}, // PUBACK, remaining length 3, packet id 1, success
			Packet:     &codec.Ack{Kind: codec.TypePuback, PacketID: 1},
		},
		{
			Name:    "v5/pubrec-packet-id-in-use",
			Version: codec.V5,
			Raw:     []byte{0x50, 0x03, 0x00, 0x03, 0x91}, // PUBREC, remaining length 3, packet id 3, 0x91
			Packet:  &codec.Ack{Kind: codec.TypePubrec, PacketID: 3, ReasonCode: codec.PacketIDInUse},
		},
		{
			Name:    "v5/pubrel-packet-id-not-found",
			Version: codec.V5,
			Raw:     []byte{0x62, 0x03, 0x00, 0x04, 0x92}, // PUBREL, remaining length 3, packet id 4, 0x92
			Packet:  &codec.Ack{Kind: codec.TypePubrel, PacketID: 4, ReasonCode: codec.PacketIDNotFound},
		},
		{
			Name:    "v5/pubcomp",
			Version: codec.V5,
			Raw:     []byte{0x70, 0x02, 0x00, 0x04}, // PUBCOMP, remaining length 2, packet id 4
			Packet:  &codec.Ack{Kind: codec.TypePubcomp, PacketID: 4},
		},
		{
			Name:    "v5/subscribe-options",
			Version: codec.V5,
			Raw: []byte{
				0x82, 0x1F, // SUBSCRIBE (flags 0010), remaining length 31
				0x00, 0x01, // packet id 1
				0x09,       // property length 9
				0x0B, 0x05, // subscription identifier 5
				0x26, 0x00, 0x01, 'k', 0x00, 0x01, 'v', // user property k=v
				0x00, 0x03, 'a', '/', 'b', // filter "a/b"
				0x2D,                                                         // options: retain handling 2, retain as published, no local, QoS 1
				0x00, 0x0A, '$', 's', 'h', 'a', 'r', 'e', '/', 'g', '/', 'x', // filter "$share/g/x"
				0x12, // options: retain handling 1, QoS 2
			},
			Packet: &codec.Subscribe{PacketID: 1,
				Props: codec.Properties{SubscriptionIDs: []uint32{5},
					User: []codec.UserProperty{{Key: "k", Value: "v"}}},
				Subscriptions: []codec.Subscription{
					{Filter: "a/b", QoS: 1, NoLocal: true, RetainAsPublished: true, RetainHandling: 2},
					{Filter: "$share/g/x", QoS: 2, RetainHandling: 1},
				}},
		},
		{
			Name:    "v5/suback",
			Version: codec.V5,
			Raw: []byte{
				0x90, 0x0C, // SUBACK, remaining length 12
				0x00, 0x01, // packet id 1
				0x05,                       // property length 5
				0x1F, 0x00, 0x02, 'o', 'k', // reason string "ok"
				0x01, 0x02, 0x87, 0xA2, // granted QoS 1, granted QoS 2, not authorized, wildcards unsupported
			},
			Packet: &codec.Suback{PacketID: 1, ReasonCodes: []byte{0x01, 0x02, 0x87, 0xA2},
				Props: codec.Properties{Present: mask(codec.PropReasonString), ReasonString: "ok"}},
		},
		{
			Name:    "v5/unsubscribe",
			Version: codec.V5,
			Raw: []byte{
				0xA2, 0x12, // UNSUBSCRIBE (flags 0010), remaining length 18
				0x00, 0x02, // packet id 2
				0x07,                                   // property length 7
				0x26, 0x00, 0x01, 'k', 0x00, 0x01, 'v', // user property k=v
				0x00, 0x03, 'a', '/', 'b', // filter "a/b"
				0x00, 0x01, 'c', // filter "c"
			},
			Packet: &codec.Unsubscribe{PacketID: 2, Filters: []string{"a/b", "c"},
				Props: codec.Properties{User: []codec.UserProperty{{Key: "k", Value: "v"}}}},
		},
		{
			Name:    "v5/unsuback",
			Version: codec.V5,
			Raw: []byte{
				0xB0, 0x05, // UNSUBACK, remaining length 5
				0x00, 0x02, // packet id 2
				0x00,       // property length 0
				0x00, 0x11, // success, no subscription existed
			},
			Packet: &codec.Unsuback{PacketID: 2, ReasonCodes: []byte{0x00, 0x11}},
		},
		{
			Name:    "v5/pingreq",
			Version: codec.V5,
			Raw:     []byte{0xC0, 0x00}, // PINGREQ, remaining length 0
			Packet:  &codec.Pingreq{},
		},
		{
			Name:    "v5/pingresp",
			Version: codec.V5,
			Raw:     []byte{0xD0, 0x00}, // PINGRESP, remaining length 0
			Packet:  &codec.Pingresp{},
		},
		{
			Name:    "v5/disconnect-short-form",
			Version: codec.V5,
			Raw:     []byte{0xE0, 0x00}, // DISCONNECT, remaining length 0 (normal disconnection)
			Packet:  &codec.Disconnect{},
		},
		{
			Name:       "v5/disconnect-reason-only",
			Version:    codec.V5,
			Raw:        []byte{0xE0, 0x01, 0x04}, // DISCONNECT, remaining length 1, disconnect with will
			Packet:     &codec.Disconnect{ReasonCode: codec.DisconnectWithWill},
			DecodeOnly: true, // the encoder always writes the property length (next entry)
		},
		{
			Name:    "v5/disconnect-reason-empty-properties",
			Version: codec.V5,
			Raw: []byte{
				0xE0, 0x02, // DISCONNECT, remaining length 2
				0x04, // reason: disconnect with will
				0x00, // property length 0
			},
			Packet: &codec.Disconnect{ReasonCode: codec.DisconnectWithWill},
		},
		{
			Name:    "v5/disconnect-properties",
			Version: codec.V5,
			Raw: []byte{
				0xE0, 0x13, // DISCONNECT, remaining length 19
				0x9C,                         // reason code: use another server
				0x11,                         // property length 17
				0x11, 0x00, 0x00, 0x00, 0x00, // session expiry interval 0
				0x1C, 0x00, 0x03, 'a', ':', '1', // server reference "a:1"
				0x1F, 0x00, 0x03, 'b', 'y', 'e', // reason string "bye"
			},
			Packet: &codec.Disconnect{ReasonCode: codec.UseAnotherServer, Props: codec.Properties{
				Present:       mask(codec.PropSessionExpiry, codec.PropServerReference, codec.PropReasonString),
				SessionExpiry: 0, ServerReference: "a:1", ReasonString: "bye"}},
		},
		{
			Name:       "v5/disconnect-success-with-empty-properties",
			Version:    codec.V5,
			DecodeOnly: true,                           // Append uses the zero-length short form
			Raw:        []byte{0xE0, 0x02, 0x00, 0x00}, // DISCONNECT, remaining length 2, reason 0, property length 0
			Packet:     &codec.Disconnect{},
		},
		{
			Name:    "v5/auth-continue",
			Version: codec.V5,
			Raw: []byte{
				0xF0, 0x14, // AUTH, remaining length 20
				0x18,                                      // reason code: continue authentication
				0x12,                                      // property length 18
				0x15, 0x00, 0x05, 'S', 'C', 'R', 'A', 'M', // authentication method "SCRAM"
				0x16, 0x00, 0x03, 0x01, 0x02, 0x03, // authentication data 01 02 03
				0x1F, 0x00, 0x01, 'x', // reason string "x"
			},
			Packet: &codec.Auth{ReasonCode: codec.ContinueAuthentication, Props: codec.Properties{
				Present:    mask(codec.PropAuthMethod, codec.PropAuthData, codec.PropReasonString),
				AuthMethod: "SCRAM", AuthData: []byte{1, 2, 3}, ReasonString: "x"}},
		},
		{
			Name:    "v5/auth-short-form",
			Version: codec.V5,
			Raw:     []byte{0xF0, 0x00}, // AUTH, remaining length 0 (success, no properties)
			Packet:  &codec.Auth{},
		},
	}
}
