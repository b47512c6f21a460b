package codec_test

import (
	"bufio"
	"bytes"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/iotgw/iotgw/adapters/mqtt/codec"
)

// gen builds random packets that are valid for a version, covering the
// optional parts (properties, short forms, flags) the goldens pin only once.
type gen struct{ r *rand.Rand }

func (g gen) chance(n int) bool { return g.r.IntN(n) == 0 }

// runes mixes ASCII, topic separators and wildcards, 2-, 3- and 4-byte
// UTF-8, and U+FEFF, which must survive untouched.
var runes = []rune{'a', 'b', 'z', '/', '+', '#', '$', ' ', 'é', '€', '😀', '\uFEFF'}

func (g gen) str(max int) string {
	n := g.r.IntN(max + 1)
	rs := make([]rune, n)
	for i := range rs {
		rs[i] = runes[g.r.IntN(len(runes))]
	}
	return string(rs)
}

// bin returns nil for empty, as the decoder does.
func (g gen) bin(max int) []byte {
	n := g.r.IntN(max + 1)
	if n == 0 {
		return nil
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(g.r.UintN(256))
	}
	return b
}

func (g gen) u16nz() uint16 { return uint16(1 + g.r.IntN(0xFFFF)) }

// props fills the properties allowed in one of the contexts named by the
// caller; which ones depends on the packet.
func (g gen) props(ids ...codec.PropID) codec.Properties {
	var p codec.Properties
	for _, id := range ids {
		if !g.chance(3) {
			continue
		}
		switch id {
		case codec.PropPayloadFormat:
			p.PayloadFormat = byte(g.r.IntN(2))
		case codec.PropMessageExpiry:
			p.MessageExpiry = g.r.Uint32()
		case codec.PropContentType:
			p.ContentType = g.str(8)
		case codec.PropResponseTopic:
			p.ResponseTopic = g.str(8)
		case codec.PropCorrelationData:
			p.CorrelationData = g.bin(8)
		case codec.PropSubscriptionID:
			for n := 1 + g.r.IntN(3); n > 0; n-- {
				p.SubscriptionIDs = append(p.SubscriptionIDs, uint32(1+g.r.IntN(codec.MaxRemainingLength)))
			}
		case codec.PropSessionExpiry:
			p.SessionExpiry = g.r.Uint32()
		case codec.PropAssignedClientID:
			p.AssignedClientID = g.str(8)
		case codec.PropServerKeepAlive:
			p.ServerKeepAlive = uint16(g.r.UintN(1 << 16))
		case codec.PropAuthMethod:
			p.AuthMethod = g.str(8)
		case codec.PropAuthData:
			p.AuthData = g.bin(8)
		case codec.PropRequestProblemInfo:
			p.RequestProblemInfo = byte(g.r.IntN(2))
		case codec.PropWillDelay:
			p.WillDelay = g.r.Uint32()
		case codec.PropRequestResponseInfo:
			p.RequestResponseInfo = byte(g.r.IntN(2))
		case codec.PropResponseInfo:
			p.ResponseInfo = g.str(8)
		case codec.PropServerReference:
			p.ServerReference = g.str(8)
		case codec.PropReasonString:
			p.ReasonString = g.str(8)
		case codec.PropReceiveMaximum:
			p.ReceiveMaximum = g.u16nz()
		case codec.PropTopicAliasMaximum:
			p.TopicAliasMaximum = uint16(g.r.UintN(1 << 16))
		case codec.PropTopicAlias:
			p.TopicAlias = g.u16nz()
		case codec.PropMaximumQoS:
			p.MaximumQoS = byte(g.r.IntN(2))
		case codec.PropRetainAvailable:
			p.RetainAvailable = byte(g.r.IntN(2))
		case codec.PropUser:
			for n := 1 + g.r.IntN(3); n > 0; n-- {
				p.User = append(p.User, codec.UserProperty{Key: g.str(5), Value: g.str(5)})
			}
		case codec.PropMaximumPacketSize:
			p.MaximumPacketSize = 1 + g.r.Uint32N(1<<31)
		case codec.PropWildcardSubAvailable:
			p.WildcardSubAvailable = byte(g.r.IntN(2))
		case codec.PropSubIDAvailable:
			p.SubIDAvailable = byte(g.r.IntN(2))
		case codec.PropSharedSubAvailable:
			p.SharedSubAvailable = byte(g.r.IntN(2))
		}
		p.Set(id)
	}
	return p
}

func (g gen) packet(v byte) codec.Packet {
	v5 := v == codec.V5
	n := 14
	if v5 {
		n = 15
	}
	switch codec.PacketType(1 + g.r.IntN(n)) {
	case codec.TypeConnect:
		c := &codec.Connect{ProtocolName: map[byte]string{3: "MQIsdp", 4: "MQTT", 5: "MQTT"}[v],
			ProtocolLevel: v, CleanStart: g.chance(2), KeepAlive: uint16(g.r.UintN(1 << 16)), ClientID: g.str(10)}
		if v5 {
			c.Props = g.props(codec.PropSessionExpiry, codec.PropReceiveMaximum, codec.PropMaximumPacketSize,
				codec.PropTopicAliasMaximum, codec.PropRequestResponseInfo, codec.PropRequestProblemInfo,
				codec.PropUser, codec.PropAuthMethod)
			if c.Props.Has(codec.PropAuthMethod) && g.chance(2) {
				c.Props.AuthData = g.bin(6)
				c.Props.Set(codec.PropAuthData)
			}
		}
		if g.chance(2) {
			c.WillFlag, c.WillQoS, c.WillRetain = true, byte(g.r.IntN(3)), g.chance(2)
			c.WillTopic, c.WillPayload = g.str(8), g.bin(8)
			if v5 {
				c.WillProps = g.props(codec.PropWillDelay, codec.PropPayloadFormat, codec.PropMessageExpiry,
					codec.PropContentType, codec.PropResponseTopic, codec.PropCorrelationData, codec.PropUser)
			}
		}
		if g.chance(2) {
			c.UsernameFlag, c.Username = true, g.str(8)
		}
		if (c.UsernameFlag || v5) && g.chance(2) {
			c.PasswordFlag, c.Password = true, g.bin(8)
		}
		return c
	case codec.TypeConnack:
		c := &codec.Connack{ReasonCode: codec.ReasonCode(g.r.IntN(6))}
		if v5 {
			c.ReasonCode = []codec.ReasonCode{0, 0x80, 0x84, 0x87, 0x9F}[g.r.IntN(5)]
			c.Props = g.props(codec.PropSessionExpiry, codec.PropAssignedClientID, codec.PropServerKeepAlive,
				codec.PropAuthMethod, codec.PropAuthData, codec.PropResponseInfo, codec.PropServerReference,
				codec.PropReasonString, codec.PropReceiveMaximum, codec.PropTopicAliasMaximum, codec.PropMaximumQoS,
				codec.PropRetainAvailable, codec.PropUser, codec.PropMaximumPacketSize,
				codec.PropWildcardSubAvailable, codec.PropSubIDAvailable, codec.PropSharedSubAvailable)
		}
		c.SessionPresent = c.ReasonCode == 0 && g.chance(2)
		return c
	case codec.TypePublish:
		p := &codec.Publish{QoS: byte(g.r.IntN(3)), Retain: g.chance(2), Topic: g.str(12), Payload: g.bin(40)}
		if p.QoS > 0 {
			p.Dup, p.PacketID = g.chance(2), g.u16nz()
		}
		if v5 {
			p.Props = g.props(codec.PropPayloadFormat, codec.PropMessageExpiry, codec.PropContentType,
				codec.PropResponseTopic, codec.PropCorrelationData, codec.PropSubscriptionID,
				codec.PropTopicAlias, codec.PropUser)
			if p.Topic == "" && !p.Props.Has(codec.PropTopicAlias) {
				p.Topic = "t"
			}
		}
		return p
	case codec.TypePuback, codec.TypePubrec, codec.TypePubrel, codec.TypePubcomp:
		kind := codec.PacketType(4 + g.r.IntN(4))
		a := &codec.Ack{Kind: kind, PacketID: uint16(g.r.UintN(1 << 16))}
		if v5 {
			codes := []codec.ReasonCode{0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99}
			if kind == codec.TypePubrel || kind == codec.TypePubcomp {
				codes = []codec.ReasonCode{0x00, 0x92}
			}
			a.ReasonCode = codes[g.r.IntN(len(codes))]
			a.Props = g.props(codec.PropReasonString, codec.PropUser)
		}
		return a
	case codec.TypeSubscribe:
		s := &codec.Subscribe{PacketID: g.u16nz()}
		for n := 1 + g.r.IntN(4); n > 0; n-- {
			sub := codec.Subscription{Filter: g.str(10), QoS: byte(g.r.IntN(3))}
			if v5 {
				sub.NoLocal, sub.RetainAsPublished, sub.RetainHandling = g.chance(2), g.chance(2), byte(g.r.IntN(3))
			}
			s.Subscriptions = append(s.Subscriptions, sub)
		}
		if v5 {
			s.Props = g.props(codec.PropUser)
			if g.chance(2) {
				s.Props.SubscriptionIDs = []uint32{uint32(1 + g.r.IntN(codec.MaxRemainingLength))}
			}
		}
		return s
	case codec.TypeSuback:
		codes := []byte{0x00, 0x01, 0x02, 0x80}
		s := &codec.Suback{PacketID: uint16(g.r.UintN(1 << 16))}
		if v5 {
			codes = []byte{0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2}
			s.Props = g.props(codec.PropReasonString, codec.PropUser)
		}
		for n := 1 + g.r.IntN(5); n > 0; n-- {
			s.ReasonCodes = append(s.ReasonCodes, codes[g.r.IntN(len(codes))])
		}
		return s
	case codec.TypeUnsubscribe:
		u := &codec.Unsubscribe{PacketID: g.u16nz()}
		for n := 1 + g.r.IntN(4); n > 0; n-- {
			u.Filters = append(u.Filters, g.str(10))
		}
		if v5 {
			u.Props = g.props(codec.PropUser)
		}
		return u
	case codec.TypeUnsuback:
		u := &codec.Unsuback{PacketID: uint16(g.r.UintN(1 << 16))}
		if v5 {
			codes := []byte{0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91}
			for n := 1 + g.r.IntN(4); n > 0; n-- {
				u.ReasonCodes = append(u.ReasonCodes, codes[g.r.IntN(len(codes))])
			}
			u.Props = g.props(codec.PropReasonString, codec.PropUser)
		}
		return u
	case codec.TypePingreq:
		return &codec.Pingreq{}
	case codec.TypePingresp:
		return &codec.Pingresp{}
	case codec.TypeDisconnect:
		d := &codec.Disconnect{}
		if v5 {
			codes := []codec.ReasonCode{0x00, 0x04, 0x80, 0x8E, 0x9C, 0xA2}
			d.ReasonCode = codes[g.r.IntN(len(codes))]
			d.Props = g.props(codec.PropSessionExpiry, codec.PropReasonString, codec.PropServerReference, codec.PropUser)
		}
		return d
	default: // AUTH
		a := &codec.Auth{}
		if g.chance(4) {
			return a
		}
		a.ReasonCode = []codec.ReasonCode{0x00, 0x18, 0x19}[g.r.IntN(3)]
		a.Props = g.props(codec.PropAuthData, codec.PropReasonString, codec.PropUser)
		a.Props.AuthMethod = g.str(8)
		a.Props.Set(codec.PropAuthMethod)
		return a
	}
}

// TestRandomRoundTrip encodes generated packets, reads them back through
// ReadPacket as one stream and through Decode, and compares.
func TestRandomRoundTrip(t *testing.T) {
	g := gen{rand.New(rand.NewPCG(1, 2))}
	for _, v := range []byte{codec.V31, codec.V311, codec.V5} {
		var stream []byte
		var sent []codec.Packet
		for i := 0; i < 3000; i++ {
			p := g.packet(v)
			before := len(stream)
			var err error
			stream, err = codec.Append(stream, p, v)
			if err != nil {
				t.Fatalf("v%d: Append(%#v): %v", v, p, err)
			}
			if size := codec.Size(p, v); size != len(stream)-before {
				t.Fatalf("v%d: Size %d != encoded %d for %#v", v, size, len(stream)-before, p)
			}
			raw := stream[before:]
			h, rl, hn, err := codec.ParseHeader(raw)
			if err != nil || hn+rl != len(raw) {
				t.Fatalf("v%d: ParseHeader(% x) = %d, %d, %v", v, raw, rl, hn, err)
			}
			got, err := codec.Decode(h, raw[hn:], v)
			if err != nil || !reflect.DeepEqual(got, p) {
				t.Fatalf("v%d: Decode(% x)\n got %#v, %v\nwant %#v", v, raw, got, err, p)
			}
			sent = append(sent, p)
		}
		r := bufio.NewReaderSize(bytes.NewReader(stream), 64)
		for i, want := range sent {
			got, _, err := codec.ReadPacket(r, v, 0)
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("v%d: stream packet %d: %#v, %v; want %#v", v, i, got, err, want)
			}
		}
	}
}
