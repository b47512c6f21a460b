package codec

// plan is the size bookkeeping shared by Size and Append: everything the
// writer needs to know before the first byte, computed once.
type plan struct {
	header    byte // fixed-header first byte
	remaining int  // remaining length
	props     int  // property block length, -1 when the block is omitted
	willProps int  // Will Properties block length (CONNECT, MQTT 5)
	level     byte // level actually used (a CONNECT's own level)
	name      string
}

// sizer accumulates field lengths and the first encoding error.
type sizer struct {
	n   int
	err *Error
}

func (s *sizer) fail(e *Error) {
	if s.err == nil {
		s.err = e
	}
}

func (s *sizer) str(what, v string) {
	if len(v) > 0xFFFF {
		s.fail(malformed(what + " longer than 65535 bytes"))
	}
	s.n += 2 + len(v)
}

func (s *sizer) bin(what string, v []byte) {
	if len(v) > 0xFFFF {
		s.fail(malformed(what + " longer than 65535 bytes"))
	}
	s.n += 2 + len(v)
}

// props adds a property block (length prefix included) and returns the
// block length without the prefix.
func (s *sizer) props(p *Properties, ctx uint16) int {
	n, e := p.encLen(ctx)
	if e != nil {
		s.fail(e)
	}
	s.n += vbiLen(n) + n
	return n
}

// Size returns the total encoded size of p (fixed header included) for
// the given protocol level, or -1 if Append would refuse the packet. The
// server uses it to honour a client's Maximum Packet Size before encoding.
func Size(p Packet, version byte) int {
	pl, err := planFor(p, version)
	if err != nil {
		return -1
	}
	return 1 + vbiLen(pl.remaining) + pl.remaining
}

// Append encodes p for the given protocol level and appends it to dst.
// The total size is computed first, so dst grows at most once and a reused
// buffer with enough capacity makes encoding allocation-free.
//
// A *Connect is encoded with its own ProtocolLevel (version must be 0 or
// equal to it). Fields a version cannot carry are left out rather than
// refused: properties, reason codes and MQTT 5 subscription options are not
// written for levels 3 and 4, and properties not valid in a packet type are
// skipped. Values the decoder would reject (QoS 3, Packet Identifier 0 where
// one is required, invalid reason codes, out-of-range properties, empty
// SUBSCRIBE, strings over 65535 bytes) fail with an *Error and dst is
// returned unchanged.
func Append(dst []byte, p Packet, version byte) ([]byte, error) {
	pl, err := planFor(p, version)
	if err != nil {
		return dst, err
	}
	total := 1 + vbiLen(pl.remaining) + pl.remaining
	if cap(dst)-len(dst) < total {
		grown := make([]byte, len(dst), len(dst)+total)
		copy(grown, dst)
		dst = grown
	}
	dst = append(dst, pl.header)
	dst = appendVBI(dst, pl.remaining)
	return writeBody(dst, p, &pl), nil
}

// planFor validates p and sizes its encoding.
func planFor(p Packet, version byte) (plan, error) {
	var pl plan
	var e *Error
	if c, ok := p.(*Connect); ok {
		e = planConnect(&pl, c, version)
	} else if !validVersion(version) {
		e = &Error{Code: UnsupportedProtocolVersion, Reason: "unknown protocol version requested from the codec"}
	} else {
		pl.level = version
		e = planOther(&pl, p, version)
	}
	if e == nil && pl.remaining > MaxRemainingLength {
		e = &Error{Code: PacketTooLarge, Reason: "remaining length exceeds 268435455"}
	}
	if e != nil {
		return pl, e
	}
	return pl, nil
}

func planConnect(pl *plan, c *Connect, version byte) *Error {
	lvl := c.ProtocolLevel
	if !validVersion(lvl) {
		return &Error{Code: UnsupportedProtocolVersion, Reason: "unsupported CONNECT protocol level"}
	}
	if version != 0 && version != lvl {
		return protoErr("CONNECT protocol level differs from the requested version")
	}
	pl.level, pl.name = lvl, protocolName(lvl)
	if c.ProtocolName != "" && c.ProtocolName != pl.name {
		return &Error{Code: UnsupportedProtocolVersion, Reason: "protocol name does not match protocol level [MQTT-3.1.2-1]"}
	}
	switch {
	case c.WillQoS > 2:
		return malformed("Will QoS 3 (3.1.1 [MQTT-3.1.2-14], 5.0 [MQTT-3.1.2-12])")
	case !c.WillFlag && (c.WillQoS != 0 || c.WillRetain):
		return malformed("Will QoS or Will Retain set without Will Flag [MQTT-3.1.2-11]")
	case lvl != V5 && c.PasswordFlag && !c.UsernameFlag:
		return protoErr("Password Flag set without User Name Flag [MQTT-3.1.2-22]")
	case lvl == V5 && c.Props.Has(PropAuthData) && !c.Props.Has(PropAuthMethod):
		return protoErr("Authentication Data without Authentication Method (3.1.2.11.10)")
	}
	pl.header = byte(TypeConnect) << 4
	s := sizer{n: 2 + len(pl.name) + 1 + 1 + 2}
	if lvl == V5 {
		pl.props = s.props(&c.Props, ctxConnect)
	}
	s.str("Client Identifier", c.ClientID)
	if c.WillFlag {
		if lvl == V5 {
			pl.willProps = s.props(&c.WillProps, ctxWill)
		}
		s.str("Will Topic", c.WillTopic)
		s.bin("Will Payload", c.WillPayload)
	}
	if c.UsernameFlag {
		s.str("User Name", c.Username)
	}
	if c.PasswordFlag {
		s.bin("Password", c.Password)
	}
	pl.remaining = s.n
	return s.err
}

func planOther(pl *plan, p Packet, version byte) *Error {
	v5 := version == V5
	s := sizer{}
	pl.props = -1
	switch p := p.(type) {
	case *Connack:
		pl.header = byte(TypeConnack) << 4
		switch {
		case !v5 && p.ReasonCode > ConnRefusedNotAuthorized:
			return protoErr("CONNACK return code above 5 for MQTT 3.1/3.1.1")
		case v5 && reasonAllowed[p.ReasonCode]&rcConnack == 0:
			return protoErr("invalid CONNACK reason code [MQTT-3.2.2-8]")
		case p.SessionPresent && p.ReasonCode != 0:
			return protoErr("Session Present with a failure code (3.1.1 [MQTT-3.2.2-4], 5.0 [MQTT-3.2.2-6])")
		}
		s.n = 2
		if v5 {
			pl.props = s.props(&p.Props, ctxConnack)
		}
	case *Publish:
		switch {
		case p.QoS > 2:
			return malformed("PUBLISH QoS 3 [MQTT-3.3.1-4]")
		case p.QoS == 0 && p.Dup:
			return protoErr("DUP set on a QoS 0 PUBLISH [MQTT-3.3.1-2]")
		case p.QoS > 0 && p.PacketID == 0:
			return protoErr("PUBLISH QoS > 0 with Packet Identifier 0 (3.1.1 [MQTT-2.3.1-1], 5.0 [MQTT-2.2.1-3])")
		case v5 && p.Topic == "" && !p.Props.Has(PropTopicAlias):
			return protoErr("zero-length Topic Name without Topic Alias (3.3.2.1)")
		}
		pl.header = byte(TypePublish)<<4 | p.QoS<<1
		if p.Dup {
			pl.header |= 0x08
		}
		if p.Retain {
			pl.header |= 0x01
		}
		s.str("Topic Name", p.Topic)
		if p.QoS > 0 {
			s.n += 2
		}
		if v5 {
			pl.props = s.props(&p.Props, ctxPublish)
		}
		s.n += len(p.Payload)
	case *Ack:
		if p.Kind < TypePuback || p.Kind > TypePubcomp {
			return protoErr("Ack.Kind must be PUBACK, PUBREC, PUBREL or PUBCOMP")
		}
		pl.header = byte(p.Kind) << 4
		if p.Kind == TypePubrel {
			pl.header |= 0x02 // [MQTT-3.6.1-1]
		}
		s.n = 2
		if v5 {
			if reasonAllowed[p.ReasonCode]&ackReasonMask(p.Kind) == 0 {
				return protoErr(ackReasonRule[p.Kind])
			}
			n, e := p.Props.encLen(ctxAck)
			if e != nil {
				return e
			}
			// Use the short forms the spec allows (3.4.2.1, 3.4.2.2.1).
			switch {
			case n > 0:
				pl.props = n
				s.n += 1 + vbiLen(n) + n
			case p.ReasonCode != Success:
				s.n++
			}
		}
	case *Subscribe:
		pl.header = byte(TypeSubscribe)<<4 | 0x02 // [MQTT-3.8.1-1]
		switch {
		case p.PacketID == 0:
			return protoErr("SUBSCRIBE with Packet Identifier 0 (3.1.1 [MQTT-2.3.1-1], 5.0 [MQTT-2.2.1-3])")
		case len(p.Subscriptions) == 0:
			return protoErr("SUBSCRIBE without a topic filter (3.1.1 [MQTT-3.8.3-3], 5.0 [MQTT-3.8.3-2])")
		}
		s.n = 2
		if v5 {
			pl.props = s.props(&p.Props, ctxSubscribe)
		}
		for i := range p.Subscriptions {
			sub := &p.Subscriptions[i]
			if sub.QoS > 2 {
				return malformed("subscription QoS 3 [MQTT-3.8.3-4]")
			}
			if v5 && sub.RetainHandling > 2 {
				return protoErr("Retain Handling 3 (3.8.3.1)")
			}
			s.str("Topic Filter", sub.Filter)
			s.n++
		}
	case *Suback:
		pl.header = byte(TypeSuback) << 4
		if len(p.ReasonCodes) == 0 {
			return protoErr("SUBACK without reason codes [MQTT-3.8.4-6]")
		}
		for _, c := range p.ReasonCodes {
			if v5 && reasonAllowed[c]&rcSuback == 0 || !v5 && c > 2 && c < 0x80 {
				return protoErr("invalid SUBACK reason code [MQTT-3.9.3-2]")
			}
		}
		s.n = 2
		if v5 {
			pl.props = s.props(&p.Props, ctxSuback)
		}
		s.n += len(p.ReasonCodes)
	case *Unsubscribe:
		pl.header = byte(TypeUnsubscribe)<<4 | 0x02 // [MQTT-3.10.1-1]
		switch {
		case p.PacketID == 0:
			return protoErr("UNSUBSCRIBE with Packet Identifier 0 (3.1.1 [MQTT-2.3.1-1], 5.0 [MQTT-2.2.1-3])")
		case len(p.Filters) == 0:
			return protoErr("UNSUBSCRIBE without a topic filter [MQTT-3.10.3-2]")
		}
		s.n = 2
		if v5 {
			pl.props = s.props(&p.Props, ctxUnsubscribe)
		}
		for _, f := range p.Filters {
			s.str("Topic Filter", f)
		}
	case *Unsuback:
		pl.header = byte(TypeUnsuback) << 4
		s.n = 2
		if v5 {
			if len(p.ReasonCodes) == 0 {
				return protoErr("UNSUBACK without reason codes [MQTT-3.11.3-1]")
			}
			for _, c := range p.ReasonCodes {
				if reasonAllowed[c]&rcUnsuback == 0 {
					return protoErr("invalid UNSUBACK reason code [MQTT-3.11.3-2]")
				}
			}
			pl.props = s.props(&p.Props, ctxUnsuback)
			s.n += len(p.ReasonCodes)
		}
	case *Pingreq:
		pl.header = byte(TypePingreq) << 4
	case *Pingresp:
		pl.header = byte(TypePingresp) << 4
	case *Disconnect:
		pl.header = byte(TypeDisconnect) << 4
		if v5 {
			if reasonAllowed[p.ReasonCode]&rcDisconnect == 0 {
				return protoErr("invalid DISCONNECT reason code [MQTT-3.14.2-1]")
			}
			n, e := p.Props.encLen(ctxDisconnect)
			if e != nil {
				return e
			}
			// Short form of 3.14.2.1 for a normal disconnection. With
			// any other reason the property length is always written,
			// though 3.14.2.2.1 allows leaving it out: some clients
			// (paho.golang) cannot read a DISCONNECT without it.
			switch {
			case n > 0:
				pl.props = n
				s.n = 1 + vbiLen(n) + n
			case p.ReasonCode != NormalDisconnection:
				pl.props = 0
				s.n = 2
			}
		}
	case *Auth:
		pl.header = byte(TypeAuth) << 4
		if !v5 {
			return protoErr("AUTH exists only in MQTT 5")
		}
		if reasonAllowed[p.ReasonCode]&rcAuth == 0 {
			return protoErr("invalid AUTH reason code [MQTT-3.15.2-1]")
		}
		n, e := p.Props.encLen(ctxAuth)
		if e != nil {
			return e
		}
		if n > 0 || p.ReasonCode != Success {
			if !p.Props.Has(PropAuthMethod) {
				return protoErr("AUTH without Authentication Method (3.15.2.2.2)")
			}
			pl.props = n
			s.n = 1 + vbiLen(n) + n
		}
	case nil:
		return protoErr("nil packet")
	default:
		return protoErr("unknown packet type")
	}
	pl.remaining = s.n
	return s.err
}

// writeBody writes the variable header and payload that pl was sized for.
func writeBody(dst []byte, p Packet, pl *plan) []byte {
	v5 := pl.level == V5
	switch p := p.(type) {
	case *Connect:
		dst = appendString(dst, pl.name)
		flags := p.WillQoS << 3
		if p.CleanStart {
			flags |= 0x02
		}
		if p.WillFlag {
			flags |= 0x04
		}
		if p.WillRetain {
			flags |= 0x20
		}
		if p.PasswordFlag {
			flags |= 0x40
		}
		if p.UsernameFlag {
			flags |= 0x80
		}
		dst = append(dst, pl.level, flags)
		dst = appendU16(dst, p.KeepAlive)
		if v5 {
			dst = p.Props.appendProps(dst, ctxConnect, pl.props)
		}
		dst = appendString(dst, p.ClientID)
		if p.WillFlag {
			if v5 {
				dst = p.WillProps.appendProps(dst, ctxWill, pl.willProps)
			}
			dst = appendString(dst, p.WillTopic)
			dst = appendBinary(dst, p.WillPayload)
		}
		if p.UsernameFlag {
			dst = appendString(dst, p.Username)
		}
		if p.PasswordFlag {
			dst = appendBinary(dst, p.Password)
		}
	case *Connack:
		var flags byte
		if p.SessionPresent {
			flags = 1
		}
		dst = append(dst, flags, byte(p.ReasonCode))
		if v5 {
			dst = p.Props.appendProps(dst, ctxConnack, pl.props)
		}
	case *Publish:
		dst = appendString(dst, p.Topic)
		if p.QoS > 0 {
			dst = appendU16(dst, p.PacketID)
		}
		if v5 {
			dst = p.Props.appendProps(dst, ctxPublish, pl.props)
		}
		dst = append(dst, p.Payload...)
	case *Ack:
		dst = appendU16(dst, p.PacketID)
		if pl.remaining > 2 {
			dst = append(dst, byte(p.ReasonCode))
		}
		if pl.props >= 0 {
			dst = p.Props.appendProps(dst, ctxAck, pl.props)
		}
	case *Subscribe:
		dst = appendU16(dst, p.PacketID)
		if v5 {
			dst = p.Props.appendProps(dst, ctxSubscribe, pl.props)
		}
		for i := range p.Subscriptions {
			sub := &p.Subscriptions[i]
			dst = appendString(dst, sub.Filter)
			o := sub.QoS
			if v5 {
				o |= sub.RetainHandling << 4
				if sub.NoLocal {
					o |= 0x04
				}
				if sub.RetainAsPublished {
					o |= 0x08
				}
			}
			dst = append(dst, o)
		}
	case *Suback:
		dst = appendU16(dst, p.PacketID)
		if v5 {
			dst = p.Props.appendProps(dst, ctxSuback, pl.props)
			dst = append(dst, p.ReasonCodes...)
			break
		}
		for _, c := range p.ReasonCodes {
			if c >= 0x80 {
				c = 0x80 // the only failure code before MQTT 5
			}
			dst = append(dst, c)
		}
	case *Unsubscribe:
		dst = appendU16(dst, p.PacketID)
		if v5 {
			dst = p.Props.appendProps(dst, ctxUnsubscribe, pl.props)
		}
		for _, f := range p.Filters {
			dst = appendString(dst, f)
		}
	case *Unsuback:
		dst = appendU16(dst, p.PacketID)
		if v5 {
			dst = p.Props.appendProps(dst, ctxUnsuback, pl.props)
			dst = append(dst, p.ReasonCodes...)
		}
	case *Disconnect:
		if pl.remaining > 0 {
			dst = append(dst, byte(p.ReasonCode))
		}
		if pl.props >= 0 {
			dst = p.Props.appendProps(dst, ctxDisconnect, pl.props)
		}
	case *Auth:
		if pl.remaining > 0 {
			dst = append(dst, byte(p.ReasonCode))
			dst = p.Props.appendProps(dst, ctxAuth, pl.props)
		}
	}
	return dst
}
