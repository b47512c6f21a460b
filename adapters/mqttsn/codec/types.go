package codec

import (
	"errors"
	"fmt"
)

// Type is an MQTT-SN message type (§5.2.2, Table 3).
type Type byte

// Message types of MQTT-SN 1.2 (§5.2.2). TypeAuth is not part of 1.2: it
// is the AUTH message of the MQTT-SN 2.0 drafts, in a code 1.2 reserves.
const (
	TypeAdvertise     Type = 0x00
	TypeSearchGW      Type = 0x01
	TypeGWInfo        Type = 0x02
	TypeAuth          Type = 0x03
	TypeConnect       Type = 0x04
	TypeConnack       Type = 0x05
	TypeWillTopicReq  Type = 0x06
	TypeWillTopic     Type = 0x07
	TypeWillMsgReq    Type = 0x08
	TypeWillMsg       Type = 0x09
	TypeRegister      Type = 0x0A
	TypeRegack        Type = 0x0B
	TypePublish       Type = 0x0C
	TypePuback        Type = 0x0D
	TypePubcomp       Type = 0x0E
	TypePubrec        Type = 0x0F
	TypePubrel        Type = 0x10
	TypeSubscribe     Type = 0x12
	TypeSuback        Type = 0x13
	TypeUnsubscribe   Type = 0x14
	TypeUnsuback      Type = 0x15
	TypePingreq       Type = 0x16
	TypePingresp      Type = 0x17
	TypeDisconnect    Type = 0x18
	TypeWillTopicUpd  Type = 0x1A
	TypeWillTopicResp Type = 0x1B
	TypeWillMsgUpd    Type = 0x1C
	TypeWillMsgResp   Type = 0x1D
	TypeEncapsulated  Type = 0xFE
)

var typeNames = map[Type]string{
	TypeAdvertise: "ADVERTISE", TypeSearchGW: "SEARCHGW", TypeGWInfo: "GWINFO", TypeAuth: "AUTH",
	TypeConnect: "CONNECT", TypeConnack: "CONNACK", TypeWillTopicReq: "WILLTOPICREQ",
	TypeWillTopic: "WILLTOPIC", TypeWillMsgReq: "WILLMSGREQ", TypeWillMsg: "WILLMSG",
	TypeRegister: "REGISTER", TypeRegack: "REGACK", TypePublish: "PUBLISH", TypePuback: "PUBACK",
	TypePubcomp: "PUBCOMP", TypePubrec: "PUBREC", TypePubrel: "PUBREL", TypeSubscribe: "SUBSCRIBE",
	TypeSuback: "SUBACK", TypeUnsubscribe: "UNSUBSCRIBE", TypeUnsuback: "UNSUBACK",
	TypePingreq: "PINGREQ", TypePingresp: "PINGRESP", TypeDisconnect: "DISCONNECT",
	TypeWillTopicUpd: "WILLTOPICUPD", TypeWillTopicResp: "WILLTOPICRESP",
	TypeWillMsgUpd: "WILLMSGUPD", TypeWillMsgResp: "WILLMSGRESP", TypeEncapsulated: "ENCAPSULATED",
}

// String returns the specification's name of the type.
func (t Type) String() string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("type(0x%02X)", byte(t))
}

// Known reports whether t is a message type this codec decodes.
func (t Type) Known() bool {
	_, ok := typeNames[t]
	return ok
}

// ReturnCode is the ReturnCode field of CONNACK, REGACK, PUBACK, SUBACK,
// WILLTOPICRESP and WILLMSGRESP (§5.3.10, Table 5). A non-zero code is an
// error, so handlers can return one.
type ReturnCode byte

// Return codes (§5.3.10).
const (
	Accepted       ReturnCode = 0x00
	Congestion     ReturnCode = 0x01
	InvalidTopicID ReturnCode = 0x02
	NotSupported   ReturnCode = 0x03
)

// Error returns the specification's wording for the code.
func (rc ReturnCode) Error() string {
	switch rc {
	case Accepted:
		return "accepted"
	case Congestion:
		return "rejected: congestion"
	case InvalidTopicID:
		return "rejected: invalid topic ID"
	case NotSupported:
		return "rejected: not supported"
	}
	return fmt.Sprintf("reserved return code 0x%02X", byte(rc))
}

// QoS values of the Flags field (§5.3.4): the two bits hold 0, 1, 2, or
// 0b11 for QoS -1, publishing without a connection (§6.8).
const (
	QoS0      byte = 0
	QoS1      byte = 1
	QoS2      byte = 2
	QoSMinus1 byte = 3
)

// Topic id types of the Flags field (§5.3.4).
const (
	TopicNormal     byte = 0 // a topic id from REGISTER/REGACK or SUBACK, or a topic name in SUBSCRIBE
	TopicPredefined byte = 1 // a predefined topic id
	TopicShort      byte = 2 // a two-character short topic name
	TopicReserved   byte = 3
)

// Flags is the one-byte Flags field (§5.3.4). Every bit is kept, so
// decoding then encoding returns the same byte.
type Flags struct {
	DUP          bool
	QoS          byte // 0, 1, 2 or QoSMinus1
	Retain       bool
	Will         bool
	CleanSession bool
	TopicIDType  byte // TopicNormal, TopicPredefined, TopicShort
}

// Byte encodes the flags.
func (f Flags) Byte() byte {
	b := (f.QoS&3)<<5 | f.TopicIDType&3
	if f.DUP {
		b |= 0x80
	}
	if f.Retain {
		b |= 0x10
	}
	if f.Will {
		b |= 0x08
	}
	if f.CleanSession {
		b |= 0x04
	}
	return b
}

// ParseFlags decodes a Flags byte.
func ParseFlags(b byte) Flags {
	return Flags{
		DUP:          b&0x80 != 0,
		QoS:          (b >> 5) & 3,
		Retain:       b&0x10 != 0,
		Will:         b&0x08 != 0,
		CleanSession: b&0x04 != 0,
		TopicIDType:  b & 3,
	}
}

// Errors returned by Decode and Append; test with errors.Is.
var (
	ErrMalformed   = errors.New("mqttsn: malformed message")
	ErrUnknownType = errors.New("mqttsn: unknown message type")
	ErrTooLong     = errors.New("mqttsn: message longer than 65535 bytes")
)

// MaxLength is the largest encodable message (§5.2.1: a two-byte length).
const MaxLength = 0xFFFF
