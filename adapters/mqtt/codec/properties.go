package codec

import "math/bits"

// PropID is an MQTT 5 property identifier (specification section 2.2.2.2).
type PropID byte

// MQTT 5 property identifiers.
const (
	PropPayloadFormat        PropID = 0x01
	PropMessageExpiry        PropID = 0x02
	PropContentType          PropID = 0x03
	PropResponseTopic        PropID = 0x08
	PropCorrelationData      PropID = 0x09
	PropSubscriptionID       PropID = 0x0B
	PropSessionExpiry        PropID = 0x11
	PropAssignedClientID     PropID = 0x12
	PropServerKeepAlive      PropID = 0x13
	PropAuthMethod           PropID = 0x15
	PropAuthData             PropID = 0x16
	PropRequestProblemInfo   PropID = 0x17
	PropWillDelay            PropID = 0x18
	PropRequestResponseInfo  PropID = 0x19
	PropResponseInfo         PropID = 0x1A
	PropServerReference      PropID = 0x1C
	PropReasonString         PropID = 0x1F
	PropReceiveMaximum       PropID = 0x21
	PropTopicAliasMaximum    PropID = 0x22
	PropTopicAlias           PropID = 0x23
	PropMaximumQoS           PropID = 0x24
	PropRetainAvailable      PropID = 0x25
	PropUser                 PropID = 0x26
	PropMaximumPacketSize    PropID = 0x27
	PropWildcardSubAvailable PropID = 0x28
	PropSubIDAvailable       PropID = 0x29
	PropSharedSubAvailable   PropID = 0x2A
)

// UserProperty is one User Property name/value pair.
type UserProperty struct {
	Key, Value string
}

// Properties holds every MQTT 5 property as a typed field. Present has bit
// (1 << id) set for each single-valued property that is present, so an
// absent property and one carrying zero differ without pointer fields.
// The repeatable properties, User and SubscriptionIDs, are present exactly
// when their slice is non-empty and never use a Present bit.
//
// Decoded []byte fields alias the packet body; strings are copies.
type Properties struct {
	// Strings and slices come first and scalars last: that packs the
	// struct without padding and lets the garbage collector stop scanning
	// halfway through it.

	ContentType      string
	ResponseTopic    string
	AssignedClientID string
	AuthMethod       string
	ResponseInfo     string
	ServerReference  string
	ReasonString     string
	CorrelationData  []byte
	AuthData         []byte
	// SubscriptionIDs may hold several identifiers in a PUBLISH and at
	// most one in a SUBSCRIBE.
	SubscriptionIDs []uint32
	// User keeps the User Properties in wire order, duplicates included.
	User []UserProperty

	// Present has bit (1 << id) set for each present single-valued
	// property.
	Present uint64

	MessageExpiry        uint32
	SessionExpiry        uint32
	WillDelay            uint32
	MaximumPacketSize    uint32
	ServerKeepAlive      uint16
	ReceiveMaximum       uint16
	TopicAliasMaximum    uint16
	TopicAlias           uint16
	PayloadFormat        byte
	RequestProblemInfo   byte
	RequestResponseInfo  byte
	MaximumQoS           byte
	RetainAvailable      byte
	WildcardSubAvailable byte
	SubIDAvailable       byte
	SharedSubAvailable   byte
}

const repeatableBits = 1<<PropUser | 1<<PropSubscriptionID

// PropMask returns the Present bits for ids, ignoring the repeatable ones.
// It is a convenience for composite literals:
//
//	Properties{Present: PropMask(PropSessionExpiry), SessionExpiry: 60}
func PropMask(ids ...PropID) uint64 {
	var m uint64
	for _, id := range ids {
		if id < 64 {
			m |= 1 << id
		}
	}
	return m &^ repeatableBits
}

// Has reports whether property id is present.
func (p *Properties) Has(id PropID) bool {
	switch id {
	case PropUser:
		return len(p.User) > 0
	case PropSubscriptionID:
		return len(p.SubscriptionIDs) > 0
	}
	return id < 64 && p.Present&(1<<id) != 0
}

// Set marks property id as present; assign the field before or after. It
// is a no-op for User and SubscriptionID, whose presence is their slice.
func (p *Properties) Set(id PropID) {
	if id < 64 {
		p.Present |= (1 << id) &^ repeatableBits
	}
}

// Clear removes property id and zeroes its field, so that a cleared
// property cannot resurface through a stale value.
func (p *Properties) Clear(id PropID) {
	if id >= 64 {
		return
	}
	p.Present &^= 1 << id
	switch id {
	case PropPayloadFormat:
		p.PayloadFormat = 0
	case PropMessageExpiry:
		p.MessageExpiry = 0
	case PropContentType:
		p.ContentType = ""
	case PropResponseTopic:
		p.ResponseTopic = ""
	case PropCorrelationData:
		p.CorrelationData = nil
	case PropSubscriptionID:
		p.SubscriptionIDs = nil
	case PropSessionExpiry:
		p.SessionExpiry = 0
	case PropAssignedClientID:
		p.AssignedClientID = ""
	case PropServerKeepAlive:
		p.ServerKeepAlive = 0
	case PropAuthMethod:
		p.AuthMethod = ""
	case PropAuthData:
		p.AuthData = nil
	case PropRequestProblemInfo:
		p.RequestProblemInfo = 0
	case PropWillDelay:
		p.WillDelay = 0
	case PropRequestResponseInfo:
		p.RequestResponseInfo = 0
	case PropResponseInfo:
		p.ResponseInfo = ""
	case PropServerReference:
		p.ServerReference = ""
	case PropReasonString:
		p.ReasonString = ""
	case PropReceiveMaximum:
		p.ReceiveMaximum = 0
	case PropTopicAliasMaximum:
		p.TopicAliasMaximum = 0
	case PropTopicAlias:
		p.TopicAlias = 0
	case PropMaximumQoS:
		p.MaximumQoS = 0
	case PropRetainAvailable:
		p.RetainAvailable = 0
	case PropUser:
		p.User = nil
	case PropMaximumPacketSize:
		p.MaximumPacketSize = 0
	case PropWildcardSubAvailable:
		p.WildcardSubAvailable = 0
	case PropSubIDAvailable:
		p.SubIDAvailable = 0
	case PropSharedSubAvailable:
		p.SharedSubAvailable = 0
	}
}

// Empty reports whether no property is present.
func (p *Properties) Empty() bool {
	return p.Present&^repeatableBits == 0 && len(p.User) == 0 && len(p.SubscriptionIDs) == 0
}

// Property contexts: the places a property block can appear. A property is
// valid only in the contexts the specification's Table 2-4 lists.
const (
	ctxConnect uint16 = 1 << iota
	ctxConnack
	ctxPublish
	ctxWill
	ctxAck // PUBACK, PUBREC, PUBREL, PUBCOMP
	ctxSubscribe
	ctxSuback
	ctxUnsubscribe
	ctxUnsuback
	ctxDisconnect
	ctxAuth
	ctxAll = 1<<11 - 1
)

// Property value types.
const (
	kindNone uint8 = iota
	kindByte
	kindU16
	kindU32
	kindVBI
	kindString
	kindBinary
	kindPair
)

type propInfo struct {
	kind uint8
	ctx  uint16
	name string
}

// propTable is Table 2-4 of MQTT 5: value type and permitted packets for
// each identifier. Unlisted identifiers have kindNone.
var propTable = [64]propInfo{
	PropPayloadFormat:        {kindByte, ctxPublish | ctxWill, "Payload Format Indicator"},
	PropMessageExpiry:        {kindU32, ctxPublish | ctxWill, "Message Expiry Interval"},
	PropContentType:          {kindString, ctxPublish | ctxWill, "Content Type"},
	PropResponseTopic:        {kindString, ctxPublish | ctxWill, "Response Topic"},
	PropCorrelationData:      {kindBinary, ctxPublish | ctxWill, "Correlation Data"},
	PropSubscriptionID:       {kindVBI, ctxPublish | ctxSubscribe, "Subscription Identifier"},
	PropSessionExpiry:        {kindU32, ctxConnect | ctxConnack | ctxDisconnect, "Session Expiry Interval"},
	PropAssignedClientID:     {kindString, ctxConnack, "Assigned Client Identifier"},
	PropServerKeepAlive:      {kindU16, ctxConnack, "Server Keep Alive"},
	PropAuthMethod:           {kindString, ctxConnect | ctxConnack | ctxAuth, "Authentication Method"},
	PropAuthData:             {kindBinary, ctxConnect | ctxConnack | ctxAuth, "Authentication Data"},
	PropRequestProblemInfo:   {kindByte, ctxConnect, "Request Problem Information"},
	PropWillDelay:            {kindU32, ctxWill, "Will Delay Interval"},
	PropRequestResponseInfo:  {kindByte, ctxConnect, "Request Response Information"},
	PropResponseInfo:         {kindString, ctxConnack, "Response Information"},
	PropServerReference:      {kindString, ctxConnack | ctxDisconnect, "Server Reference"},
	PropReasonString:         {kindString, ctxConnack | ctxAck | ctxSuback | ctxUnsuback | ctxDisconnect | ctxAuth, "Reason String"},
	PropReceiveMaximum:       {kindU16, ctxConnect | ctxConnack, "Receive Maximum"},
	PropTopicAliasMaximum:    {kindU16, ctxConnect | ctxConnack, "Topic Alias Maximum"},
	PropTopicAlias:           {kindU16, ctxPublish, "Topic Alias"},
	PropMaximumQoS:           {kindByte, ctxConnack, "Maximum QoS"},
	PropRetainAvailable:      {kindByte, ctxConnack, "Retain Available"},
	PropUser:                 {kindPair, ctxAll, "User Property"},
	PropMaximumPacketSize:    {kindU32, ctxConnect | ctxConnack, "Maximum Packet Size"},
	PropWildcardSubAvailable: {kindByte, ctxConnack, "Wildcard Subscription Available"},
	PropSubIDAvailable:       {kindByte, ctxConnack, "Subscription Identifier Available"},
	PropSharedSubAvailable:   {kindByte, ctxConnack, "Shared Subscription Available"},
}

// ctxMask[i] has a bit for every property valid in context 1<<i, so the
// encoder can drop foreign properties with one AND.
var ctxMask = func() (m [11]uint64) {
	for id, info := range propTable {
		for i := range m {
			if info.ctx&(1<<i) != 0 {
				m[i] |= 1 << id
			}
		}
	}
	return m
}()

// decodeProps reads a Property Length and the properties after it into p.
func (d *decoder) props(p *Properties, ctx uint16) {
	n := d.vbi()
	if d.err != nil {
		return
	}
	if n > d.remaining() {
		d.fail(malformed("property length exceeds the packet"))
		return
	}
	// Narrow the decoder to the property block so that a value running
	// past the declared length is caught as malformed, then restore it.
	full := d.b
	end := d.off + n
	d.b = d.b[:end]
	var seen uint64
	for d.off < end {
		id := d.byte1()
		// Identifiers are Variable Byte Integers, but every defined one is
		// a single byte below 0x80, so anything else is unknown.
		if id >= 64 || propTable[id].kind == kindNone {
			d.fail(malformed("unknown property identifier [2.2.2.2]"))
			break
		}
		info := &propTable[id]
		if info.ctx&ctx == 0 {
			// Section 2.2.2.2: an identifier not valid for the packet type
			// makes the packet malformed.
			d.fail(malformed(info.name + " not valid in this packet [2.2.2.2]"))
			break
		}
		bit := uint64(1) << id
		if seen&bit != 0 && PropID(id) != PropUser &&
			!(PropID(id) == PropSubscriptionID && ctx == ctxPublish) {
			// Every property section states "It is a Protocol Error to
			// include ... more than once", except User Property and a
			// PUBLISH's Subscription Identifiers.
			d.fail(protoErr(info.name + " included more than once"))
			break
		}
		seen |= bit
		d.propValue(p, PropID(id))
		if d.err != nil {
			break
		}
	}
	d.b = full
	if d.err != nil {
		return
	}
	p.Present |= seen &^ repeatableBits
}

// boolByte reads a property whose only legal values are 0 and 1.
func (d *decoder) boolByte(name string) byte {
	v := d.byte1()
	if v > 1 {
		d.fail(protoErr(name + " must be 0 or 1"))
	}
	return v
}

func (d *decoder) propValue(p *Properties, id PropID) {
	switch id {
	case PropPayloadFormat:
		// 3.3.2.3.2 defines only 0 (bytes) and 1 (UTF-8).
		p.PayloadFormat = d.boolByte("Payload Format Indicator")
	case PropMessageExpiry:
		p.MessageExpiry = d.u32()
	case PropContentType:
		p.ContentType = d.str()
	case PropResponseTopic:
		// [MQTT-3.3.2-13] Response Topic is a UTF-8 Encoded String.
		p.ResponseTopic = d.str()
	case PropCorrelationData:
		p.CorrelationData = d.binary()
	case PropSubscriptionID:
		v := d.vbi()
		if d.err == nil && v == 0 {
			// 3.8.2.1.2: a Subscription Identifier of 0 is a Protocol Error.
			d.fail(protoErr("Subscription Identifier must not be 0"))
		}
		p.SubscriptionIDs = append(p.SubscriptionIDs, uint32(v))
	case PropSessionExpiry:
		p.SessionExpiry = d.u32()
	case PropAssignedClientID:
		p.AssignedClientID = d.str()
	case PropServerKeepAlive:
		p.ServerKeepAlive = d.u16()
	case PropAuthMethod:
		p.AuthMethod = d.str()
	case PropAuthData:
		p.AuthData = d.binary()
	case PropRequestProblemInfo:
		p.RequestProblemInfo = d.boolByte("Request Problem Information")
	case PropWillDelay:
		p.WillDelay = d.u32()
	case PropRequestResponseInfo:
		p.RequestResponseInfo = d.boolByte("Request Response Information")
	case PropResponseInfo:
		p.ResponseInfo = d.str()
	case PropServerReference:
		p.ServerReference = d.str()
	case PropReasonString:
		p.ReasonString = d.str()
	case PropReceiveMaximum:
		p.ReceiveMaximum = d.u16()
		if d.err == nil && p.ReceiveMaximum == 0 {
			d.fail(protoErr("Receive Maximum must not be 0"))
		}
	case PropTopicAliasMaximum:
		p.TopicAliasMaximum = d.u16()
	case PropTopicAlias:
		p.TopicAlias = d.u16()
		if d.err == nil && p.TopicAlias == 0 {
			// [MQTT-3.3.2-8]; 0x94 is the code the receiver disconnects with.
			d.fail(&Error{Code: TopicAliasInvalid, Reason: "Topic Alias must not be 0 [MQTT-3.3.2-8]"})
		}
	case PropMaximumQoS:
		p.MaximumQoS = d.boolByte("Maximum QoS")
	case PropRetainAvailable:
		p.RetainAvailable = d.boolByte("Retain Available")
	case PropUser:
		// [MQTT-1.5.7-1] both strings are UTF-8 Encoded Strings.
		k := d.str()
		v := d.str()
		p.User = append(p.User, UserProperty{Key: k, Value: v})
	case PropMaximumPacketSize:
		p.MaximumPacketSize = d.u32()
		if d.err == nil && p.MaximumPacketSize == 0 {
			d.fail(protoErr("Maximum Packet Size must not be 0"))
		}
	case PropWildcardSubAvailable:
		p.WildcardSubAvailable = d.boolByte("Wildcard Subscription Available")
	case PropSubIDAvailable:
		p.SubIDAvailable = d.boolByte("Subscription Identifier Available")
	case PropSharedSubAvailable:
		p.SharedSubAvailable = d.boolByte("Shared Subscription Available")
	}
}

// encMask returns the properties of p that will be written in ctx, with the
// repeatable ones folded in as bits so that one loop covers all of them.
func (p *Properties) encMask(ctx uint16) uint64 {
	m := p.Present &^ repeatableBits
	if len(p.User) > 0 {
		m |= 1 << PropUser
	}
	if len(p.SubscriptionIDs) > 0 {
		m |= 1 << PropSubscriptionID
	}
	return m & ctxMask[bits.TrailingZeros16(ctx)]
}

// encLen returns the length of the property block for ctx, excluding the
// Property Length prefix, after checking every value the decoder would
// refuse. Properties not valid in ctx are skipped, which lets the server
// copy Will properties straight into a PUBLISH.
func (p *Properties) encLen(ctx uint16) (int, *Error) {
	n := 0
	for m := p.encMask(ctx); m != 0; m &= m - 1 {
		id := PropID(bits.TrailingZeros64(m))
		switch propTable[id].kind {
		case kindByte:
			if v := p.byteValue(id); v > 1 {
				return 0, protoErr(propTable[id].name + " must be 0 or 1")
			}
			n += 2
		case kindU16:
			if id == PropReceiveMaximum && p.ReceiveMaximum == 0 {
				return 0, protoErr("Receive Maximum must not be 0")
			}
			if id == PropTopicAlias && p.TopicAlias == 0 {
				return 0, &Error{Code: TopicAliasInvalid, Reason: "Topic Alias must not be 0 [MQTT-3.3.2-8]"}
			}
			n += 3
		case kindU32:
			if id == PropMaximumPacketSize && p.MaximumPacketSize == 0 {
				return 0, protoErr("Maximum Packet Size must not be 0")
			}
			n += 5
		case kindVBI: // Subscription Identifier, the only VBI property
			if ctx == ctxSubscribe && len(p.SubscriptionIDs) > 1 {
				return 0, protoErr("SUBSCRIBE carries at most one Subscription Identifier")
			}
			for _, v := range p.SubscriptionIDs {
				if v == 0 || v > MaxRemainingLength {
					return 0, protoErr("Subscription Identifier out of range 1..268435455")
				}
				n += 1 + vbiLen(int(v))
			}
		case kindString:
			s := p.stringValue(id)
			if len(s) > 0xFFFF {
				return 0, malformed(propTable[id].name + " longer than 65535 bytes")
			}
			n += 3 + len(s)
		case kindBinary:
			b := p.binaryValue(id)
			if len(b) > 0xFFFF {
				return 0, malformed(propTable[id].name + " longer than 65535 bytes")
			}
			n += 3 + len(b)
		case kindPair:
			for _, u := range p.User {
				if len(u.Key) > 0xFFFF || len(u.Value) > 0xFFFF {
					return 0, malformed("User Property longer than 65535 bytes")
				}
				n += 5 + len(u.Key) + len(u.Value)
			}
		}
	}
	return n, nil
}

// appendProps writes the Property Length n and the properties valid in ctx.
// n must come from encLen for the same ctx.
func (p *Properties) appendProps(dst []byte, ctx uint16, n int) []byte {
	dst = appendVBI(dst, n)
	for m := p.encMask(ctx); m != 0; m &= m - 1 {
		id := PropID(bits.TrailingZeros64(m))
		switch propTable[id].kind {
		case kindByte:
			dst = append(dst, byte(id), p.byteValue(id))
		case kindU16:
			dst = appendU16(append(dst, byte(id)), p.u16Value(id))
		case kindU32:
			dst = appendU32(append(dst, byte(id)), p.u32Value(id))
		case kindVBI:
			for _, v := range p.SubscriptionIDs {
				dst = appendVBI(append(dst, byte(id)), int(v))
			}
		case kindString:
			dst = appendString(append(dst, byte(id)), p.stringValue(id))
		case kindBinary:
			dst = appendBinary(append(dst, byte(id)), p.binaryValue(id))
		case kindPair:
			for _, u := range p.User {
				dst = appendString(append(dst, byte(id)), u.Key)
				dst = appendString(dst, u.Value)
			}
		}
	}
	return dst
}

func (p *Properties) byteValue(id PropID) byte {
	switch id {
	case PropPayloadFormat:
		return p.PayloadFormat
	case PropRequestProblemInfo:
		return p.RequestProblemInfo
	case PropRequestResponseInfo:
		return p.RequestResponseInfo
	case PropMaximumQoS:
		return p.MaximumQoS
	case PropRetainAvailable:
		return p.RetainAvailable
	case PropWildcardSubAvailable:
		return p.WildcardSubAvailable
	case PropSubIDAvailable:
		return p.SubIDAvailable
	case PropSharedSubAvailable:
		return p.SharedSubAvailable
	}
	return 0
}

func (p *Properties) u16Value(id PropID) uint16 {
	switch id {
	case PropServerKeepAlive:
		return p.ServerKeepAlive
	case PropReceiveMaximum:
		return p.ReceiveMaximum
	case PropTopicAliasMaximum:
		return p.TopicAliasMaximum
	case PropTopicAlias:
		return p.TopicAlias
	}
	return 0
}

func (p *Properties) u32Value(id PropID) uint32 {
	switch id {
	case PropMessageExpiry:
		return p.MessageExpiry
	case PropSessionExpiry:
		return p.SessionExpiry
	case PropWillDelay:
		return p.WillDelay
	case PropMaximumPacketSize:
		return p.MaximumPacketSize
	}
	return 0
}

func (p *Properties) stringValue(id PropID) string {
	switch id {
	case PropContentType:
		return p.ContentType
	case PropResponseTopic:
		return p.ResponseTopic
	case PropAssignedClientID:
		return p.AssignedClientID
	case PropAuthMethod:
		return p.AuthMethod
	case PropResponseInfo:
		return p.ResponseInfo
	case PropServerReference:
		return p.ServerReference
	case PropReasonString:
		return p.ReasonString
	}
	return ""
}

func (p *Properties) binaryValue(id PropID) []byte {
	switch id {
	case PropCorrelationData:
		return p.CorrelationData
	case PropAuthData:
		return p.AuthData
	}
	return nil
}
