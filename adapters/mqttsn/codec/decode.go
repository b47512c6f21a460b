package codec

import (
	"encoding/binary"
	"fmt"
)

// Header splits a datagram into its message type, header length and
// declared total length (§5.2): one length byte, or 0x01 followed by a
// two-byte length (§5.2.1).
func Header(b []byte) (t Type, hdr int, length int, err error) {
	if len(b) < 2 {
		return 0, 0, 0, fmt.Errorf("%w: %d bytes", ErrMalformed, len(b))
	}
	if b[0] == 0x01 {
		if len(b) < 4 {
			return 0, 0, 0, fmt.Errorf("%w: truncated long length", ErrMalformed)
		}
		length = int(binary.BigEndian.Uint16(b[1:3]))
		hdr = 3
	} else {
		length = int(b[0])
		hdr = 1
	}
	if length < hdr+1 {
		return 0, 0, 0, fmt.Errorf("%w: length %d shorter than its header", ErrMalformed, length)
	}
	return Type(b[hdr]), hdr, length, nil
}

// Decode decodes one datagram holding one message. The declared length
// must match the datagram, except for an encapsulated message whose length
// covers only the encapsulation header (§5.5). Decode never panics.
func Decode(b []byte) (Message, error) {
	t, hdr, length, err := Header(b)
	if err != nil {
		return nil, err
	}
	if t == TypeEncapsulated {
		if length > len(b) || length < hdr+2 {
			return nil, fmt.Errorf("%w: encapsulation length %d of %d bytes", ErrMalformed, length, len(b))
		}
		inner := b[length:]
		if len(inner) < 2 {
			return nil, fmt.Errorf("%w: encapsulation without a message", ErrMalformed)
		}
		return &Encapsulated{Ctrl: b[hdr+1], NodeID: bytesOrNil(b[hdr+2 : length]), Inner: inner}, nil
	}
	if length != len(b) {
		return nil, fmt.Errorf("%w: length field %d, datagram %d bytes", ErrMalformed, length, len(b))
	}
	m, err := decodeBody(t, b[hdr+1:])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", t, err)
	}
	return m, nil
}

func bytesOrNil(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

func u16(b []byte) uint16 { return binary.BigEndian.Uint16(b) }

// need checks a body's length: exactly n bytes, or at least n with more.
func need(body []byte, n int, more bool) error {
	if len(body) < n || (!more && len(body) != n) {
		return fmt.Errorf("%w: body of %d bytes", ErrMalformed, len(body))
	}
	return nil
}

func decodeBody(t Type, body []byte) (Message, error) {
	switch t {
	case TypeAdvertise:
		if err := need(body, 3, false); err != nil {
			return nil, err
		}
		return &Advertise{GatewayID: body[0], Duration: u16(body[1:])}, nil
	case TypeSearchGW:
		if err := need(body, 1, false); err != nil {
			return nil, err
		}
		return &SearchGW{Radius: body[0]}, nil
	case TypeGWInfo:
		if err := need(body, 1, true); err != nil {
			return nil, err
		}
		return &GWInfo{GatewayID: body[0], GatewayAddr: bytesOrNil(body[1:])}, nil
	case TypeAuth:
		if err := need(body, 2, true); err != nil {
			return nil, err
		}
		k := int(body[1])
		if len(body) < 2+k {
			return nil, fmt.Errorf("%w: auth method length %d", ErrMalformed, k)
		}
		return &Auth{Reason: body[0], Method: string(body[2 : 2+k]), Data: bytesOrNil(body[2+k:])}, nil
	case TypeConnect:
		if err := need(body, 4, true); err != nil {
			return nil, err
		}
		return &Connect{Flags: ParseFlags(body[0]), ProtocolID: body[1], Duration: u16(body[2:]),
			ClientID: string(body[4:])}, nil
	case TypeConnack, TypeWillTopicResp, TypeWillMsgResp:
		if err := need(body, 1, false); err != nil {
			return nil, err
		}
		return &ReturnOnly{Kind: t, Code: ReturnCode(body[0])}, nil
	case TypeWillTopicReq, TypeWillMsgReq, TypePingresp:
		if err := need(body, 0, false); err != nil {
			return nil, err
		}
		return &Bare{Kind: t}, nil
	case TypeWillTopic, TypeWillTopicUpd:
		if len(body) == 0 {
			return &WillTopic{Kind: t}, nil
		}
		return &WillTopic{Kind: t, Flags: ParseFlags(body[0]), Topic: string(body[1:])}, nil
	case TypeWillMsg, TypeWillMsgUpd:
		return &WillMsg{Kind: t, Msg: bytesOrNil(body)}, nil
	case TypeRegister:
		if err := need(body, 4, true); err != nil {
			return nil, err
		}
		return &Register{TopicID: u16(body), MsgID: u16(body[2:]), TopicName: string(body[4:])}, nil
	case TypeRegack:
		if err := need(body, 5, false); err != nil {
			return nil, err
		}
		return &Regack{TopicID: u16(body), MsgID: u16(body[2:]), Code: ReturnCode(body[4])}, nil
	case TypePublish:
		if err := need(body, 5, true); err != nil {
			return nil, err
		}
		return &Publish{Flags: ParseFlags(body[0]), TopicID: u16(body[1:]), MsgID: u16(body[3:]),
			Data: bytesOrNil(body[5:])}, nil
	case TypePuback:
		if err := need(body, 5, false); err != nil {
			return nil, err
		}
		return &Puback{TopicID: u16(body), MsgID: u16(body[2:]), Code: ReturnCode(body[4])}, nil
	case TypePubrec, TypePubrel, TypePubcomp, TypeUnsuback:
		if err := need(body, 2, false); err != nil {
			return nil, err
		}
		return &MsgIDOnly{Kind: t, MsgID: u16(body)}, nil
	case TypeSubscribe, TypeUnsubscribe:
		return decodeSubscribe(t, body)
	case TypeSuback:
		if err := need(body, 6, false); err != nil {
			return nil, err
		}
		return &Suback{Flags: ParseFlags(body[0]), TopicID: u16(body[1:]), MsgID: u16(body[3:]),
			Code: ReturnCode(body[5])}, nil
	case TypePingreq:
		return &Pingreq{ClientID: string(body)}, nil
	case TypeDisconnect:
		switch len(body) {
		case 0:
			return &Disconnect{}, nil
		case 2:
			return &Disconnect{HasDuration: true, Duration: u16(body)}, nil
		}
		return nil, fmt.Errorf("%w: body of %d bytes", ErrMalformed, len(body))
	}
	return nil, fmt.Errorf("%w 0x%02X", ErrUnknownType, byte(t))
}

// decodeSubscribe reads SUBSCRIBE/UNSUBSCRIBE: a predefined topic id is
// two bytes; a short name is two characters; a normal name is the rest
// (§5.4.15, §5.4.17).
func decodeSubscribe(t Type, body []byte) (Message, error) {
	if err := need(body, 3, true); err != nil {
		return nil, err
	}
	m := &Subscribe{Kind: t, Flags: ParseFlags(body[0]), MsgID: u16(body[1:])}
	rest := body[3:]
	switch m.Flags.TopicIDType {
	case TopicPredefined:
		if len(rest) != 2 {
			return nil, fmt.Errorf("%w: predefined topic id of %d bytes", ErrMalformed, len(rest))
		}
		m.TopicID = u16(rest)
	case TopicShort:
		if len(rest) != 2 {
			return nil, fmt.Errorf("%w: short topic name of %d bytes", ErrMalformed, len(rest))
		}
		m.TopicName = string(rest)
	default:
		m.TopicName = string(rest)
	}
	return m, nil
}
