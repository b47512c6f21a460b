package codec

// Protocol levels as carried in the CONNECT variable header.
const (
	// V31 is MQTT 3.1, protocol name "MQIsdp".
	V31 byte = 3
	// V311 is MQTT 3.1.1, protocol name "MQTT".
	V311 byte = 4
	// V5 is MQTT 5.0, protocol name "MQTT".
	V5 byte = 5
)

// MaxRemainingLength is the largest value a four-byte Variable Byte Integer
// can carry, and therefore the largest remaining length of any packet.
const MaxRemainingLength = 268_435_455

// PacketType is the MQTT control packet type held in the upper four bits of
// the fixed header.
type PacketType byte

// Control packet types. Values 0 and (before MQTT 5) 15 are reserved.
const (
	TypeConnect     PacketType = 1
	TypeConnack     PacketType = 2
	TypePublish     PacketType = 3
	TypePuback      PacketType = 4
	TypePubrec      PacketType = 5
	TypePubrel      PacketType = 6
	TypePubcomp     PacketType = 7
	TypeSubscribe   PacketType = 8
	TypeSuback      PacketType = 9
	TypeUnsubscribe PacketType = 10
	TypeUnsuback    PacketType = 11
	TypePingreq     PacketType = 12
	TypePingresp    PacketType = 13
	TypeDisconnect  PacketType = 14
	TypeAuth        PacketType = 15
)

var packetTypeNames = [16]string{
	"RESERVED", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC",
	"PUBREL", "PUBCOMP", "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK",
	"PINGREQ", "PINGRESP", "DISCONNECT", "AUTH",
}

// String returns the upper-case packet name used by the specification,
// e.g. "CONNECT".
func (t PacketType) String() string {
	if t < 16 {
		return packetTypeNames[t]
	}
	return "INVALID"
}

// Packet is implemented by every decoded or encodable control packet.
// Concrete values are always pointers (*Connect, *Publish, ...).
type Packet interface {
	Type() PacketType
}

// Connect is the CONNECT packet. It is encoded and decoded according to its
// own ProtocolLevel rather than the connection's negotiated version, since
// it is the packet that negotiates that version.
type Connect struct {
	// ProtocolName is "MQIsdp" for level 3 and "MQTT" for levels 4 and 5.
	// When encoding, an empty name selects the one matching ProtocolLevel.
	ProtocolName string
	// ProtocolLevel is V31, V311 or V5.
	ProtocolLevel byte
	// CleanStart is Clean Session in 3.1/3.1.1 and Clean Start in 5.0.
	CleanStart bool
	// KeepAlive is the keep-alive interval in seconds.
	KeepAlive uint16
	// ClientID may be empty; whether that is acceptable is the server's call.
	ClientID string
	// WillFlag tells whether WillTopic, WillPayload and WillProps are present.
	WillFlag    bool
	WillQoS     byte
	WillRetain  bool
	WillTopic   string
	WillPayload []byte
	// WillProps are the MQTT 5 Will Properties.
	WillProps Properties
	// UsernameFlag governs whether Username is on the wire; Username is
	// ignored when encoding without the flag.
	UsernameFlag bool
	Username     string
	// PasswordFlag governs whether Password is on the wire. MQTT 3.1.1
	// forbids it without UsernameFlag; MQTT 5 allows it.
	PasswordFlag bool
	Password     []byte
	// Props are the MQTT 5 CONNECT properties.
	Props Properties
}

// Connack is the CONNACK packet.
type Connack struct {
	SessionPresent bool
	// ReasonCode holds the MQTT 5 Connect Reason Code, or for levels 3 and 4
	// the Connect Return Code 0..5 (see the ConnRefused* constants).
	ReasonCode ReasonCode
	Props      Properties
}

// Publish is the PUBLISH packet.
type Publish struct {
	// Topic may be empty: in MQTT 5 when a Topic Alias is used, and in
	// older versions the decoder lets it through for the server to reject.
	Topic string
	// Payload aliases the packet body after decoding; nil when empty.
	Payload []byte
	Props   Properties
	// PacketID is present on the wire only when QoS > 0.
	PacketID uint16
	QoS      byte
	Dup      bool
	Retain   bool
}

// Ack is PUBACK, PUBREC, PUBREL or PUBCOMP, selected by Kind. The four
// share a layout, so one struct keeps the QoS flows free of type switches.
type Ack struct {
	// Kind is TypePuback, TypePubrec, TypePubrel or TypePubcomp.
	Kind     PacketType
	PacketID uint16
	// ReasonCode is MQTT 5 only; it is not written for older versions.
	ReasonCode ReasonCode
	Props      Properties
}

// Subscription is one topic filter with its subscription options.
type Subscription struct {
	Filter string
	// QoS is the maximum QoS requested.
	QoS byte
	// NoLocal, RetainAsPublished and RetainHandling are MQTT 5 options and
	// are not written for older versions.
	NoLocal           bool
	RetainAsPublished bool
	RetainHandling    byte
}

// Subscribe is the SUBSCRIBE packet.
type Subscribe struct {
	PacketID      uint16
	Props         Properties
	Subscriptions []Subscription
}

// Suback is the SUBACK packet.
type Suback struct {
	PacketID uint16
	Props    Properties
	// ReasonCodes holds one code per requested filter. For levels 3 and 4
	// any failure code (>= 0x80) is written as 0x80, the only failure code
	// those versions define.
	ReasonCodes []byte
}

// Unsubscribe is the UNSUBSCRIBE packet.
type Unsubscribe struct {
	PacketID uint16
	Props    Properties
	Filters  []string
}

// Unsuback is the UNSUBACK packet. ReasonCodes and Props exist on the wire
// only in MQTT 5.
type Unsuback struct {
	PacketID    uint16
	Props       Properties
	ReasonCodes []byte
}

// Pingreq is the PINGREQ packet.
type Pingreq struct{}

// Pingresp is the PINGRESP packet.
type Pingresp struct{}

// Disconnect is the DISCONNECT packet. ReasonCode and Props exist on the
// wire only in MQTT 5.
type Disconnect struct {
	ReasonCode ReasonCode
	Props      Properties
}

// Auth is the MQTT 5 AUTH packet.
type Auth struct {
	ReasonCode ReasonCode
	Props      Properties
}

// Type returns TypeConnect.
func (*Connect) Type() PacketType { return TypeConnect }

// Type returns TypeConnack.
func (*Connack) Type() PacketType { return TypeConnack }

// Type returns TypePublish.
func (*Publish) Type() PacketType { return TypePublish }

// Type returns the Kind of the acknowledgement.
func (a *Ack) Type() PacketType { return a.Kind }

// Type returns TypeSubscribe.
func (*Subscribe) Type() PacketType { return TypeSubscribe }

// Type returns TypeSuback.
func (*Suback) Type() PacketType { return TypeSuback }

// Type returns TypeUnsubscribe.
func (*Unsubscribe) Type() PacketType { return TypeUnsubscribe }

// Type returns TypeUnsuback.
func (*Unsuback) Type() PacketType { return TypeUnsuback }

// Type returns TypePingreq.
func (*Pingreq) Type() PacketType { return TypePingreq }

// Type returns TypePingresp.
func (*Pingresp) Type() PacketType { return TypePingresp }

// Type returns TypeDisconnect.
func (*Disconnect) Type() PacketType { return TypeDisconnect }

// Type returns TypeAuth.
func (*Auth) Type() PacketType { return TypeAuth }

// validVersion reports whether v is a protocol level this package speaks.
func validVersion(v byte) bool { return v == V31 || v == V311 || v == V5 }

// protocolName returns the protocol name that goes with a level.
func protocolName(level byte) string {
	if level == V31 {
		return "MQIsdp"
	}
	return "MQTT"
}
