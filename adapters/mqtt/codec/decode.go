package codec

// Decode decodes one complete packet from its fixed-header first byte and
// its body (the remaining-length bytes after the fixed header).
//
// version is the connection's negotiated protocol level (V31, V311, V5),
// or 0 before CONNECT, in which case only a CONNECT is accepted
// [MQTT-3.1.0-1]. A CONNECT is always decoded according to its own
// protocol level.
//
// []byte fields of the result alias body; strings are copies. On error the
// returned Packet is nil, except for CONNECT: once protocol name and level
// have been read, the partially decoded *Connect is returned alongside the
// error so the server can tell which version's CONNACK to answer with
// (UnsupportedProtocolVersion maps to return code 0x01 for 3.1/3.1.1 and to
// reason code 0x84 for 5.0).
func Decode(header byte, body []byte, version byte) (Packet, error) {
	if e := checkHeader(header, version); e != nil {
		return nil, e
	}
	return decodeBody(header, body, version)
}

// checkHeader validates the fixed-header first byte before any body byte is
// read, so ReadPacket can refuse a packet without buffering it.
func checkHeader(h, version byte) *Error {
	t := PacketType(h >> 4)
	flags := h & 0x0F
	if version == 0 {
		if t != TypeConnect {
			return protoErr("first packet must be CONNECT [MQTT-3.1.0-1]")
		}
	} else if !validVersion(version) {
		return &Error{Code: UnsupportedProtocolVersion, Reason: "unknown protocol version requested from the codec"}
	}
	switch t {
	case 0:
		return malformed("reserved packet type 0")
	case TypePublish:
		qos := flags >> 1 & 3
		if qos == 3 {
			return malformed("PUBLISH with both QoS bits set [MQTT-3.3.1-4]")
		}
		if qos == 0 && flags&0x08 != 0 {
			return protoErr("DUP set on a QoS 0 PUBLISH [MQTT-3.3.1-2]")
		}
		return nil
	case TypePubrel, TypeSubscribe, TypeUnsubscribe:
		// MQTT 3.1 sent these as QoS 1 packets and allowed DUP on a
		// retransmission, so tolerate the DUP bit there only.
		if flags == 0x02 || (version == V31 && flags == 0x0A) {
			return nil
		}
		switch t {
		case TypePubrel:
			return malformed("PUBREL fixed header flags must be 0010 [MQTT-3.6.1-1]")
		case TypeSubscribe:
			return malformed("SUBSCRIBE fixed header flags must be 0010 [MQTT-3.8.1-1]")
		}
		return malformed("UNSUBSCRIBE fixed header flags must be 0010 [MQTT-3.10.1-1]")
	case TypeAuth:
		if version != V5 {
			// Type 15 is reserved before MQTT 5 (3.1.1 Table 2.1).
			return malformed("AUTH packet outside MQTT 5")
		}
		if flags != 0 {
			return malformed("AUTH fixed header flags must be 0 [MQTT-3.15.1-1]")
		}
		return nil
	}
	if flags != 0 {
		// [MQTT-2.2.2-1], [MQTT-2.2.2-2] (3.1.1); [MQTT-2.1.3-1] (5.0).
		return malformed(t.String() + " reserved fixed header flags must be 0 (3.1.1 [MQTT-2.2.2-1], 5.0 [MQTT-2.1.3-1])")
	}
	return nil
}

// decodeBody decodes a body whose header already passed checkHeader.
func decodeBody(h byte, body []byte, version byte) (Packet, error) {
	d := decoder{b: body}
	switch PacketType(h >> 4) {
	case TypeConnect:
		return decodeConnect(&d)
	case TypeConnack:
		return decodeConnack(&d, version)
	case TypePublish:
		return decodePublish(&d, h, version)
	case TypePuback, TypePubrec, TypePubrel, TypePubcomp:
		return decodeAck(&d, PacketType(h>>4), version)
	case TypeSubscribe:
		return decodeSubscribe(&d, version)
	case TypeSuback:
		return decodeSuback(&d, version)
	case TypeUnsubscribe:
		return decodeUnsubscribe(&d, version)
	case TypeUnsuback:
		return decodeUnsuback(&d, version)
	case TypePingreq:
		d.finish()
		if d.err != nil {
			return nil, d.err
		}
		return &Pingreq{}, nil
	case TypePingresp:
		d.finish()
		if d.err != nil {
			return nil, d.err
		}
		return &Pingresp{}, nil
	case TypeDisconnect:
		return decodeDisconnect(&d, version)
	case TypeAuth:
		return decodeAuth(&d)
	}
	return nil, malformed("reserved packet type")
}

func decodeConnect(d *decoder) (Packet, error) {
	name := d.rawString()
	level := d.byte1()
	if d.err != nil {
		return nil, d.err
	}
	c := &Connect{ProtocolLevel: level}
	// Comparing against constants avoids allocating the name, and the
	// pairs are fixed: [MQTT-3.1.2-1] name, [MQTT-3.1.2-2] level.
	switch {
	case string(name) == "MQTT" && (level == V311 || level == V5):
		c.ProtocolName = "MQTT"
	case string(name) == "MQIsdp" && level == V31:
		c.ProtocolName = "MQIsdp"
	default:
		c.ProtocolName = string(name)
		return c, &Error{Code: UnsupportedProtocolVersion,
			Reason: "unsupported protocol name or level [MQTT-3.1.2-1], [MQTT-3.1.2-2]"}
	}
	v5 := level == V5

	flags := d.byte1()
	c.CleanStart = flags&0x02 != 0
	c.WillFlag = flags&0x04 != 0
	c.WillQoS = flags >> 3 & 3
	c.WillRetain = flags&0x20 != 0
	c.PasswordFlag = flags&0x40 != 0
	c.UsernameFlag = flags&0x80 != 0
	switch {
	case d.err != nil:
	case flags&0x01 != 0:
		d.fail(malformed("CONNECT reserved flag must be 0 [MQTT-3.1.2-3]"))
	case !c.WillFlag && c.WillQoS != 0:
		// 3.1.1: [MQTT-3.1.2-11], [MQTT-3.1.2-13]; 5.0: [MQTT-3.1.2-11].
		d.fail(malformed("Will QoS set without Will Flag (3.1.1 [MQTT-3.1.2-13], 5.0 [MQTT-3.1.2-11])"))
	case !c.WillFlag && c.WillRetain:
		// 3.1.1: [MQTT-3.1.2-15]; 5.0: [MQTT-3.1.2-13].
		d.fail(malformed("Will Retain set without Will Flag (3.1.1 [MQTT-3.1.2-15], 5.0 [MQTT-3.1.2-13])"))
	case c.WillQoS == 3:
		// 3.1.1: [MQTT-3.1.2-14]; 5.0: [MQTT-3.1.2-12].
		d.fail(malformed("Will QoS 3 (3.1.1 [MQTT-3.1.2-14], 5.0 [MQTT-3.1.2-12])"))
	case !v5 && c.PasswordFlag && !c.UsernameFlag:
		// MQTT 5 dropped this rule so that Password can carry other
		// credentials; 3.1 and 3.1.1 keep it.
		d.fail(protoErr("Password Flag set without User Name Flag [MQTT-3.1.2-22]"))
	}
	c.KeepAlive = d.u16()
	if v5 {
		d.props(&c.Props, ctxConnect)
		if d.err == nil && c.Props.Has(PropAuthData) && !c.Props.Has(PropAuthMethod) {
			d.fail(protoErr("Authentication Data without Authentication Method (3.1.2.11.10)"))
		}
	}
	// [MQTT-3.1.3-3] the ClientID is always present; [MQTT-3.1.3-4] UTF-8.
	c.ClientID = d.str()
	if c.WillFlag {
		// 3.1.1 [MQTT-3.1.2-9]; 5.0 [MQTT-3.1.2-9] adds Will Properties.
		if v5 {
			d.props(&c.WillProps, ctxWill)
		}
		c.WillTopic = d.str()
		c.WillPayload = d.binary()
	}
	// 3.1.1 [MQTT-3.1.2-18]..[MQTT-3.1.2-21]; 5.0 [MQTT-3.1.2-16]..[MQTT-3.1.2-19]:
	// the fields are present exactly when their flags are; anything extra
	// is caught by finish.
	if c.UsernameFlag {
		c.Username = d.str()
	}
	if c.PasswordFlag {
		c.Password = d.binary()
	}
	d.finish()
	if d.err != nil {
		return c, d.err
	}
	return c, nil
}

func decodeConnack(d *decoder, version byte) (Packet, error) {
	flags := d.byte1()
	c := &Connack{SessionPresent: flags&0x01 != 0, ReasonCode: ReasonCode(d.byte1())}
	switch {
	case d.err != nil:
	case flags&0xFE != 0:
		d.fail(malformed("CONNACK reserved flags must be 0 [MQTT-3.2.2-1]"))
	case version != V5 && c.ReasonCode > ConnRefusedNotAuthorized:
		d.fail(protoErr("reserved CONNACK return code (3.1.1 Table 3.1)"))
	case version == V5 && reasonAllowed[c.ReasonCode]&rcConnack == 0:
		d.fail(protoErr("invalid CONNACK reason code [MQTT-3.2.2-8]"))
	case c.SessionPresent && c.ReasonCode != 0:
		d.fail(protoErr("Session Present with a failure code (3.1.1 [MQTT-3.2.2-4], 5.0 [MQTT-3.2.2-6])"))
	}
	if version == V5 {
		d.props(&c.Props, ctxConnack)
	}
	d.finish()
	if d.err != nil {
		return nil, d.err
	}
	return c, nil
}

func decodePublish(d *decoder, h, version byte) (Packet, error) {
	p := &Publish{Dup: h&0x08 != 0, QoS: h >> 1 & 3, Retain: h&0x01 != 0}
	if version == V5 {
		// Topic and property strings share one allocation: find where the
		// property block ends without consuming anything.
		end := 2
		if len(d.b) >= 2 {
			end += int(d.b[0])<<8 | int(d.b[1])
		}
		if p.QoS > 0 {
			end += 2
		}
		if n, next, ok := peekVBI(d.b, end); ok && n > 0 {
			d.shareStrings(0, next+n)
		}
	}
	// [MQTT-3.3.2-1] the Topic Name is a UTF-8 Encoded String.
	p.Topic = d.str()
	if p.QoS > 0 {
		p.PacketID = d.u16()
		if d.err == nil && p.PacketID == 0 {
			d.fail(protoErr("PUBLISH QoS > 0 with Packet Identifier 0 (3.1.1 [MQTT-2.3.1-1], 5.0 [MQTT-2.2.1-3])"))
		}
	}
	if version == V5 {
		d.props(&p.Props, ctxPublish)
		if d.err == nil && p.Topic == "" && !p.Props.Has(PropTopicAlias) {
			d.fail(protoErr("zero-length Topic Name without Topic Alias (3.3.2.1)"))
		}
	}
	p.Payload = d.rest()
	if d.err != nil {
		return nil, d.err
	}
	return p, nil
}

// ackReasonRule names the normative statement for each acknowledgement's
// reason code table, for error messages.
var ackReasonRule = [8]string{
	TypePuback:  "invalid PUBACK reason code [MQTT-3.4.2-1]",
	TypePubrec:  "invalid PUBREC reason code [MQTT-3.5.2-1]",
	TypePubrel:  "invalid PUBREL reason code [MQTT-3.6.2-1]",
	TypePubcomp: "invalid PUBCOMP reason code [MQTT-3.7.2-1]",
}

func decodeAck(d *decoder, kind PacketType, version byte) (Packet, error) {
	a := &Ack{Kind: kind, PacketID: d.u16()}
	// MQTT 5 lets the reason code (remaining length 2 means Success) and
	// then the property length (remaining length 3 means none) be omitted.
	if version == V5 && d.remaining() > 0 {
		a.ReasonCode = ReasonCode(d.byte1())
		if reasonAllowed[a.ReasonCode]&ackReasonMask(kind) == 0 {
			d.fail(protoErr(ackReasonRule[kind]))
		}
		if d.remaining() > 0 {
			d.props(&a.Props, ctxAck)
		}
	}
	d.finish()
	if d.err != nil {
		return nil, d.err
	}
	return a, nil
}

// countEntries counts length-prefixed strings, each followed by extra
// bytes, so that list slices are allocated once at their final size. It
// only sizes the allocation; the real parse does the validation.
func countEntries(b []byte, extra int) int {
	n := 0
	for i := 0; i+2 <= len(b); n++ {
		i += 2 + (int(b[i])<<8 | int(b[i+1])) + extra
	}
	return n
}

func decodeSubscribe(d *decoder, version byte) (Packet, error) {
	s := &Subscribe{PacketID: d.u16()}
	if d.err == nil && s.PacketID == 0 {
		d.fail(protoErr("SUBSCRIBE with Packet Identifier 0 (3.1.1 [MQTT-2.3.1-1], 5.0 [MQTT-2.2.1-3])"))
	}
	// Everything after the Packet Identifier is filters, options and
	// properties, so all its strings can share one allocation.
	d.shareStrings(d.off, len(d.b))
	if version == V5 {
		d.props(&s.Props, ctxSubscribe)
	}
	if d.err == nil && d.remaining() == 0 {
		// 3.1.1 [MQTT-3.8.3-3]; 5.0 [MQTT-3.8.3-2].
		d.fail(protoErr("SUBSCRIBE without a topic filter (3.1.1 [MQTT-3.8.3-3], 5.0 [MQTT-3.8.3-2])"))
	}
	if d.err == nil {
		s.Subscriptions = make([]Subscription, 0, countEntries(d.b[d.off:], 1))
	}
	for d.err == nil && d.remaining() > 0 {
		// [MQTT-3.8.3-1] topic filters are UTF-8 Encoded Strings.
		sub := Subscription{Filter: d.str()}
		o := d.byte1()
		sub.QoS = o & 0x03
		switch {
		case d.err != nil:
		case version != V5 && o&^0x03 != 0, version != V5 && sub.QoS == 3:
			d.fail(malformed("SUBSCRIBE options reserved bits or QoS 3 [MQTT-3.8.3-4]"))
		case version == V5 && o&0xC0 != 0:
			d.fail(malformed("SUBSCRIBE options reserved bits 6-7 set [MQTT-3.8.3-5]"))
		case version == V5 && sub.QoS == 3:
			// 3.8.3.1 makes this a Protocol Error in 5.0 (Malformed in 3.1.1).
			d.fail(protoErr("SUBSCRIBE Maximum QoS 3 (3.8.3.1)"))
		case version == V5 && o>>4&0x03 == 3:
			d.fail(protoErr("SUBSCRIBE Retain Handling 3 (3.8.3.1)"))
		}
		if version == V5 {
			sub.NoLocal = o&0x04 != 0
			sub.RetainAsPublished = o&0x08 != 0
			sub.RetainHandling = o >> 4 & 0x03
		}
		s.Subscriptions = append(s.Subscriptions, sub)
	}
	if d.err != nil {
		return nil, d.err
	}
	return s, nil
}

func decodeSuback(d *decoder, version byte) (Packet, error) {
	s := &Suback{PacketID: d.u16()}
	if version == V5 {
		d.props(&s.Props, ctxSuback)
	}
	codes := d.rest()
	if d.err == nil && len(codes) == 0 {
		// One code per requested filter, and a SUBSCRIBE has at least one.
		d.fail(protoErr("SUBACK without reason codes [MQTT-3.8.4-6]"))
	}
	for _, c := range codes {
		if d.err != nil {
			break
		}
		if version == V5 {
			if reasonAllowed[c]&rcSuback == 0 {
				d.fail(protoErr("invalid SUBACK reason code [MQTT-3.9.3-2]"))
			}
		} else if c > 2 && c != 0x80 {
			d.fail(protoErr("reserved SUBACK return code [MQTT-3.9.3-2]"))
		}
	}
	if d.err != nil {
		return nil, d.err
	}
	s.ReasonCodes = codes
	return s, nil
}

func decodeUnsubscribe(d *decoder, version byte) (Packet, error) {
	u := &Unsubscribe{PacketID: d.u16()}
	if d.err == nil && u.PacketID == 0 {
		d.fail(protoErr("UNSUBSCRIBE with Packet Identifier 0 (3.1.1 [MQTT-2.3.1-1], 5.0 [MQTT-2.2.1-3])"))
	}
	d.shareStrings(d.off, len(d.b))
	if version == V5 {
		d.props(&u.Props, ctxUnsubscribe)
	}
	if d.err == nil && d.remaining() == 0 {
		d.fail(protoErr("UNSUBSCRIBE without a topic filter [MQTT-3.10.3-2]"))
	}
	if d.err == nil {
		u.Filters = make([]string, 0, countEntries(d.b[d.off:], 0))
	}
	for d.err == nil && d.remaining() > 0 {
		// [MQTT-3.10.3-1] topic filters are UTF-8 Encoded Strings.
		u.Filters = append(u.Filters, d.str())
	}
	if d.err != nil {
		return nil, d.err
	}
	return u, nil
}

func decodeUnsuback(d *decoder, version byte) (Packet, error) {
	u := &Unsuback{PacketID: d.u16()}
	if version == V5 {
		d.props(&u.Props, ctxUnsuback)
		codes := d.rest()
		if d.err == nil && len(codes) == 0 {
			d.fail(protoErr("UNSUBACK without reason codes [MQTT-3.11.3-1]"))
		}
		for _, c := range codes {
			if d.err == nil && reasonAllowed[c]&rcUnsuback == 0 {
				d.fail(protoErr("invalid UNSUBACK reason code [MQTT-3.11.3-2]"))
			}
		}
		u.ReasonCodes = codes
	}
	d.finish()
	if d.err != nil {
		return nil, d.err
	}
	return u, nil
}

func decodeDisconnect(d *decoder, version byte) (Packet, error) {
	p := &Disconnect{}
	// Remaining length 0 means Normal disconnection; below 2 means no
	// properties (3.14.2.1, 3.14.2.2.1).
	if version == V5 && d.remaining() > 0 {
		p.ReasonCode = ReasonCode(d.byte1())
		if reasonAllowed[p.ReasonCode]&rcDisconnect == 0 {
			d.fail(protoErr("invalid DISCONNECT reason code [MQTT-3.14.2-1]"))
		}
		if d.remaining() > 0 {
			d.props(&p.Props, ctxDisconnect)
		}
	}
	// 3.1.1 [MQTT-3.14.1-1]: DISCONNECT has no variable header there.
	d.finish()
	if d.err != nil {
		return nil, d.err
	}
	return p, nil
}

func decodeAuth(d *decoder) (Packet, error) {
	a := &Auth{}
	// Remaining length 0 means Success with no properties (3.15.2.1).
	if d.remaining() == 0 {
		return a, nil
	}
	a.ReasonCode = ReasonCode(d.byte1())
	if reasonAllowed[a.ReasonCode]&rcAuth == 0 {
		d.fail(protoErr("invalid AUTH reason code [MQTT-3.15.2-1]"))
	}
	if d.remaining() > 0 {
		d.props(&a.Props, ctxAuth)
	}
	if d.err == nil && !a.Props.Has(PropAuthMethod) {
		d.fail(protoErr("AUTH without Authentication Method (3.15.2.2.2)"))
	}
	d.finish()
	if d.err != nil {
		return nil, d.err
	}
	return a, nil
}
