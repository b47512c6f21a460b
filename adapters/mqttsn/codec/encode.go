package codec

import (
	"encoding/binary"
	"fmt"
)

// Encode returns the encoding of m.
func Encode(m Message) ([]byte, error) {
	return Append(nil, m)
}

// Append appends the encoding of m to dst. The one-byte length form is
// used up to 255 bytes, the three-byte form above (§5.2.1).
func Append(dst []byte, m Message) ([]byte, error) {
	if e, ok := m.(*Encapsulated); ok {
		// The length covers the encapsulation header only (§5.5).
		n := 3 + len(e.NodeID)
		if n > 255 {
			return dst, fmt.Errorf("%w: wireless node id of %d bytes", ErrTooLong, len(e.NodeID))
		}
		dst = append(dst, byte(n), byte(TypeEncapsulated), e.Ctrl)
		dst = append(dst, e.NodeID...)
		return append(dst, e.Inner...), nil
	}
	body, err := appendBody(nil, m)
	if err != nil {
		return dst, err
	}
	total := 2 + len(body)
	switch {
	case total <= 255:
		dst = append(dst, byte(total))
	case total+2 <= MaxLength:
		dst = append(dst, 0x01, byte((total+2)>>8), byte(total+2))
	default:
		return dst, fmt.Errorf("%w: %s of %d bytes", ErrTooLong, m.Type(), total)
	}
	dst = append(dst, byte(m.Type()))
	return append(dst, body...), nil
}

// Size returns the encoded length of m, header included.
func Size(m Message) int {
	b, err := Append(nil, m)
	if err != nil {
		return -1
	}
	return len(b)
}

func be16(b []byte, v uint16) []byte { return binary.BigEndian.AppendUint16(b, v) }

func appendBody(b []byte, m Message) ([]byte, error) {
	switch m := m.(type) {
	case *Advertise:
		return be16(append(b, m.GatewayID), m.Duration), nil
	case *SearchGW:
		return append(b, m.Radius), nil
	case *GWInfo:
		return append(append(b, m.GatewayID), m.GatewayAddr...), nil
	case *Auth:
		if len(m.Method) > 255 {
			return nil, fmt.Errorf("%w: auth method of %d bytes", ErrTooLong, len(m.Method))
		}
		b = append(b, m.Reason, byte(len(m.Method)))
		return append(append(b, m.Method...), m.Data...), nil
	case *Connect:
		b = be16(append(b, m.Flags.Byte(), m.ProtocolID), m.Duration)
		return append(b, m.ClientID...), nil
	case *ReturnOnly:
		return append(b, byte(m.Code)), nil
	case *Bare:
		return b, nil
	case *WillTopic:
		if m.Topic == "" && m.Flags == (Flags{}) {
			return b, nil // the empty form that deletes the will (§5.4.7)
		}
		return append(append(b, m.Flags.Byte()), m.Topic...), nil
	case *WillMsg:
		return append(b, m.Msg...), nil
	case *Register:
		return append(be16(be16(b, m.TopicID), m.MsgID), m.TopicName...), nil
	case *Regack:
		return append(be16(be16(b, m.TopicID), m.MsgID), byte(m.Code)), nil
	case *Publish:
		return append(be16(be16(append(b, m.Flags.Byte()), m.TopicID), m.MsgID), m.Data...), nil
	case *Puback:
		return append(be16(be16(b, m.TopicID), m.MsgID), byte(m.Code)), nil
	case *MsgIDOnly:
		return be16(b, m.MsgID), nil
	case *Subscribe:
		b = be16(append(b, m.Flags.Byte()), m.MsgID)
		switch m.Flags.TopicIDType {
		case TopicPredefined:
			return be16(b, m.TopicID), nil
		case TopicShort:
			if len(m.TopicName) != 2 {
				return nil, fmt.Errorf("%w: short topic name %q is not two bytes", ErrMalformed, m.TopicName)
			}
		}
		return append(b, m.TopicName...), nil
	case *Suback:
		return append(be16(be16(append(b, m.Flags.Byte()), m.TopicID), m.MsgID), byte(m.Code)), nil
	case *Pingreq:
		return append(b, m.ClientID...), nil
	case *Disconnect:
		if m.HasDuration {
			return be16(b, m.Duration), nil
		}
		return b, nil
	}
	return nil, fmt.Errorf("%w: cannot encode %T", ErrUnknownType, m)
}

// ShortTopicID packs a two-character short topic name into the TopicId
// field (§3 "short topic name", §5.3.11).
func ShortTopicID(name string) uint16 {
	return uint16(name[0])<<8 | uint16(name[1])
}

// ShortTopicName unpacks a TopicId holding a short topic name.
func ShortTopicName(id uint16) string {
	return string([]byte{byte(id >> 8), byte(id)})
}
