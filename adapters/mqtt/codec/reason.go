package codec

import "errors"

// ReasonCode is an MQTT 5 reason code. For protocol levels 3 and 4 the
// same type carries the CONNACK return code (0..5).
type ReasonCode byte

// MQTT 5 reason codes (specification section 2.4). Several names share a
// value because the meaning depends on the packet carrying the code.
const (
	Success                    ReasonCode = 0x00
	NormalDisconnection        ReasonCode = 0x00
	GrantedQoS0                ReasonCode = 0x00
	GrantedQoS1                ReasonCode = 0x01
	GrantedQoS2                ReasonCode = 0x02
	DisconnectWithWill         ReasonCode = 0x04
	NoMatchingSubscribers      ReasonCode = 0x10
	NoSubscriptionExisted      ReasonCode = 0x11
	ContinueAuthentication     ReasonCode = 0x18
	ReAuthenticate             ReasonCode = 0x19
	UnspecifiedError           ReasonCode = 0x80
	MalformedPacket            ReasonCode = 0x81
	ProtocolError              ReasonCode = 0x82
	ImplementationSpecific     ReasonCode = 0x83
	UnsupportedProtocolVersion ReasonCode = 0x84
	ClientIDNotValid           ReasonCode = 0x85
	BadUsernameOrPassword      ReasonCode = 0x86
	NotAuthorized              ReasonCode = 0x87
	ServerUnavailable          ReasonCode = 0x88
	ServerBusy                 ReasonCode = 0x89
	Banned                     ReasonCode = 0x8A
	ServerShuttingDown         ReasonCode = 0x8B
	BadAuthMethod              ReasonCode = 0x8C
	KeepAliveTimeout           ReasonCode = 0x8D
	SessionTakenOver           ReasonCode = 0x8E
	TopicFilterInvalid         ReasonCode = 0x8F
	TopicNameInvalid           ReasonCode = 0x90
	PacketIDInUse              ReasonCode = 0x91
	PacketIDNotFound           ReasonCode = 0x92
	ReceiveMaximumExceeded     ReasonCode = 0x93
	TopicAliasInvalid          ReasonCode = 0x94
	PacketTooLarge             ReasonCode = 0x95
	MessageRateTooHigh         ReasonCode = 0x96
	QuotaExceeded              ReasonCode = 0x97
	AdministrativeAction       ReasonCode = 0x98
	PayloadFormatInvalid       ReasonCode = 0x99
	RetainNotSupported         ReasonCode = 0x9A
	QoSNotSupported            ReasonCode = 0x9B
	UseAnotherServer           ReasonCode = 0x9C
	ServerMoved                ReasonCode = 0x9D
	SharedSubNotSupported      ReasonCode = 0x9E
	ConnectionRateExceeded     ReasonCode = 0x9F
	MaximumConnectTime         ReasonCode = 0xA0
	SubIDsNotSupported         ReasonCode = 0xA1
	WildcardSubNotSupported    ReasonCode = 0xA2
)

// CONNACK return codes of MQTT 3.1 and 3.1.1 (0x00 is Success).
const (
	ConnRefusedProtocolVersion   ReasonCode = 0x01
	ConnRefusedIdentifier        ReasonCode = 0x02
	ConnRefusedServerUnavailable ReasonCode = 0x03
	ConnRefusedBadCredentials    ReasonCode = 0x04
	ConnRefusedNotAuthorized     ReasonCode = 0x05
)

var reasonNames = map[ReasonCode]string{
	0x00: "success",
	0x01: "granted QoS 1",
	0x02: "granted QoS 2",
	0x04: "disconnect with will message",
	0x10: "no matching subscribers",
	0x11: "no subscription existed",
	0x18: "continue authentication",
	0x19: "re-authenticate",
	0x80: "unspecified error",
	0x81: "malformed packet",
	0x82: "protocol error",
	0x83: "implementation specific error",
	0x84: "unsupported protocol version",
	0x85: "client identifier not valid",
	0x86: "bad user name or password",
	0x87: "not authorized",
	0x88: "server unavailable",
	0x89: "server busy",
	0x8A: "banned",
	0x8B: "server shutting down",
	0x8C: "bad authentication method",
	0x8D: "keep alive timeout",
	0x8E: "session taken over",
	0x8F: "topic filter invalid",
	0x90: "topic name invalid",
	0x91: "packet identifier in use",
	0x92: "packet identifier not found",
	0x93: "receive maximum exceeded",
	0x94: "topic alias invalid",
	0x95: "packet too large",
	0x96: "message rate too high",
	0x97: "quota exceeded",
	0x98: "administrative action",
	0x99: "payload format invalid",
	0x9A: "retain not supported",
	0x9B: "QoS not supported",
	0x9C: "use another server",
	0x9D: "server moved",
	0x9E: "shared subscriptions not supported",
	0x9F: "connection rate exceeded",
	0xA0: "maximum connect time",
	0xA1: "subscription identifiers not supported",
	0xA2: "wildcard subscriptions not supported",
}

// String returns the MQTT 5 name of the code. Low codes that mean
// different things in different packets get their most common name.
func (c ReasonCode) String() string {
	if s, ok := reasonNames[c]; ok {
		return s
	}
	const hex = "0123456789abcdef"
	return "reason code 0x" + string([]byte{hex[c>>4], hex[c&0xF]})
}

// IsError reports whether c signals failure (0x80 or above).
func (c ReasonCode) IsError() bool { return c >= 0x80 }

// Error is a protocol failure found while decoding or encoding. Code is the
// reason code the server should put into its CONNACK or DISCONNECT; for an
// MQTT 3.1/3.1.1 CONNECT, UnsupportedProtocolVersion maps to return code
// ConnRefusedProtocolVersion.
type Error struct {
	Code   ReasonCode
	Reason string
}

// Error implements the error interface.
func (e *Error) Error() string {
	return "mqtt codec: " + e.Code.String() + ": " + e.Reason
}

// Is makes errors.Is(err, &Error{Code: c}) match any *Error with code c,
// so callers can test the class of failure without string matching.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && (t.Reason == "" || t.Reason == e.Reason)
}

// CodeOf extracts the reason code from an error returned by this package.
// ok is false for I/O errors and anything else that is not an *Error.
func CodeOf(err error) (code ReasonCode, ok bool) {
	var e *Error
	if errors.As(err, &e) {
		return e.Code, true
	}
	return 0, false
}

func malformed(reason string) *Error { return &Error{Code: MalformedPacket, Reason: reason} }
func protoErr(reason string) *Error  { return &Error{Code: ProtocolError, Reason: reason} }

// Bits for reasonAllowed: which packet may carry which reason code.
const (
	rcConnack uint8 = 1 << iota
	rcPuback        // PUBACK and PUBREC share their table
	rcPubrel        // PUBREL and PUBCOMP share their table
	rcSuback
	rcUnsuback
	rcDisconnect
	rcAuth
)

// reasonAllowed is the per-packet reason code tables of MQTT 5 folded into
// one lookup so that validation costs a single index and mask.
var reasonAllowed = func() (t [256]uint8) {
	add := func(mask uint8, codes ...ReasonCode) {
		for _, c := range codes {
			t[c] |= mask
		}
	}
	// [MQTT-3.2.2-8] Table 3-1 Connect Reason Code values.
	add(rcConnack, 0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87,
		0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C,
		0x9D, 0x9F)
	// [MQTT-3.4.2-1], [MQTT-3.5.2-1] PUBACK / PUBREC Reason Codes.
	add(rcPuback, 0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99)
	// [MQTT-3.6.2-1], [MQTT-3.7.2-1] PUBREL / PUBCOMP Reason Codes.
	add(rcPubrel, 0x00, 0x92)
	// [MQTT-3.9.3-2] Subscribe Reason Codes.
	add(rcSuback, 0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97,
		0x9E, 0xA1, 0xA2)
	// [MQTT-3.11.3-2] Unsubscribe Reason Codes.
	add(rcUnsuback, 0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91)
	// [MQTT-3.14.2-1] Disconnect Reason Code values.
	add(rcDisconnect, 0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89,
		0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98,
		0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2)
	// [MQTT-3.15.2-1] Authenticate Reason Codes.
	add(rcAuth, 0x00, 0x18, 0x19)
	return t
}()

// ackReasonMask returns the reasonAllowed bit for an acknowledgement kind.
func ackReasonMask(kind PacketType) uint8 {
	if kind == TypePuback || kind == TypePubrec {
		return rcPuback
	}
	return rcPubrel
}
