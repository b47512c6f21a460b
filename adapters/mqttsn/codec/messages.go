package codec

// Message is one decoded MQTT-SN message.
type Message interface {
	// Type returns the message type.
	Type() Type
}

// Advertise is broadcast periodically by a gateway (§5.4.1).
type Advertise struct {
	GatewayID byte
	Duration  uint16 // seconds until the next ADVERTISE
}

// SearchGW is broadcast by a client looking for a gateway (§5.4.2).
type SearchGW struct {
	Radius byte
}

// GWInfo answers SEARCHGW (§5.4.3). GatewayAddr is present only when a
// client answers on a gateway's behalf.
type GWInfo struct {
	GatewayID   byte
	GatewayAddr []byte
}

// Connect opens a connection (§5.4.4). Only Flags.Will and
// Flags.CleanSession are meaningful.
type Connect struct {
	Flags      Flags
	ProtocolID byte   // 0x01 for MQTT-SN 1.2
	Duration   uint16 // keep alive, seconds
	ClientID   string
}

// ProtocolID12 is CONNECT's ProtocolId for this version (§5.3.6).
const ProtocolID12 = 0x01

// ReturnOnly is a message whose only field is a return code: CONNACK
// (§5.4.5), WILLTOPICRESP (§5.4.24) and WILLMSGRESP (§5.4.25).
type ReturnOnly struct {
	Kind Type
	Code ReturnCode
}

// Bare is a message without fields: WILLTOPICREQ (§5.4.6), WILLMSGREQ
// (§5.4.8) and PINGRESP (§5.4.20).
type Bare struct {
	Kind Type
}

// WillTopic is WILLTOPIC (§5.4.7) or WILLTOPICUPD (§5.4.22). An empty
// Topic with zero Flags is the two-byte form that deletes the will.
type WillTopic struct {
	Kind  Type
	Flags Flags // QoS and Retain of the will
	Topic string
}

// WillMsg is WILLMSG (§5.4.9) or WILLMSGUPD (§5.4.23).
type WillMsg struct {
	Kind Type
	Msg  []byte
}

// Register binds a topic name to a topic id (§5.4.10).
type Register struct {
	TopicID   uint16 // 0x0000 when sent by a client
	MsgID     uint16
	TopicName string
}

// Regack answers REGISTER (§5.4.11).
type Regack struct {
	TopicID uint16
	MsgID   uint16
	Code    ReturnCode
}

// Publish carries application data (§5.4.12). For Flags.TopicIDType
// TopicShort, TopicID holds the two characters of the name.
type Publish struct {
	Flags   Flags
	TopicID uint16
	MsgID   uint16
	Data    []byte
}

// Puback acknowledges a QoS 1 PUBLISH or rejects any PUBLISH (§5.4.13).
type Puback struct {
	TopicID uint16
	MsgID   uint16
	Code    ReturnCode
}

// MsgIDOnly is a message whose only field is a message id: PUBREC,
// PUBREL, PUBCOMP (§5.4.14) and UNSUBACK (§5.4.18).
type MsgIDOnly struct {
	Kind  Type
	MsgID uint16
}

// Subscribe is SUBSCRIBE (§5.4.15) or UNSUBSCRIBE (§5.4.17). TopicName
// holds the name (TopicNormal, or the two characters for TopicShort);
// TopicID holds a predefined id (TopicPredefined) and is zero otherwise.
type Subscribe struct {
	Kind      Type
	Flags     Flags
	MsgID     uint16
	TopicName string
	TopicID   uint16
}

// Suback answers SUBSCRIBE (§5.4.16); Flags carries the granted QoS.
type Suback struct {
	Flags   Flags
	TopicID uint16
	MsgID   uint16
	Code    ReturnCode
}

// Pingreq is a keep-alive probe; a sleeping client names itself in
// ClientID to wake up (§5.4.19, §6.14).
type Pingreq struct {
	ClientID string
}

// Disconnect ends a connection; with HasDuration a client goes to sleep
// for Duration seconds (§5.4.21, §6.14).
type Disconnect struct {
	HasDuration bool
	Duration    uint16
}

// Auth is the AUTH message of the MQTT-SN 2.0 drafts, used by iotgw (and
// the Bisquitt gateway) to carry a username and password over MQTT-SN
// 1.2: Method "PLAIN" with Data in SASL PLAIN form (RFC 4616).
type Auth struct {
	Reason byte
	Method string
	Data   []byte
}

// Encapsulated is a message relayed by a forwarder (§5.5): Ctrl holds the
// broadcast radius bits, NodeID the wireless node id of the client, and
// Inner the encapsulated MQTT-SN message, still encoded.
type Encapsulated struct {
	Ctrl   byte
	NodeID []byte
	Inner  []byte
}

// Type implementations.

// Type returns TypeAdvertise.
func (*Advertise) Type() Type { return TypeAdvertise }

// Type returns TypeSearchGW.
func (*SearchGW) Type() Type { return TypeSearchGW }

// Type returns TypeGWInfo.
func (*GWInfo) Type() Type { return TypeGWInfo }

// Type returns TypeConnect.
func (*Connect) Type() Type { return TypeConnect }

// Type returns the message's Kind.
func (m *ReturnOnly) Type() Type { return m.Kind }

// Type returns the message's Kind.
func (m *Bare) Type() Type { return m.Kind }

// Type returns the message's Kind.
func (m *WillTopic) Type() Type { return m.Kind }

// Type returns the message's Kind.
func (m *WillMsg) Type() Type { return m.Kind }

// Type returns TypeRegister.
func (*Register) Type() Type { return TypeRegister }

// Type returns TypeRegack.
func (*Regack) Type() Type { return TypeRegack }

// Type returns TypePublish.
func (*Publish) Type() Type { return TypePublish }

// Type returns TypePuback.
func (*Puback) Type() Type { return TypePuback }

// Type returns the message's Kind.
func (m *MsgIDOnly) Type() Type { return m.Kind }

// Type returns the message's Kind.
func (m *Subscribe) Type() Type { return m.Kind }

// Type returns TypeSuback.
func (*Suback) Type() Type { return TypeSuback }

// Type returns TypePingreq.
func (*Pingreq) Type() Type { return TypePingreq }

// Type returns TypeDisconnect.
func (*Disconnect) Type() Type { return TypeDisconnect }

// Type returns TypeAuth.
func (*Auth) Type() Type { return TypeAuth }

// Type returns TypeEncapsulated.
func (*Encapsulated) Type() Type { return TypeEncapsulated }
