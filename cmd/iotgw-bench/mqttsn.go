package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// MQTT-SN 1.2 message types (§5.2.2) this client sends or expects.
const (
	snConnect    byte = 0x04
	snConnack    byte = 0x05
	snRegister   byte = 0x0A
	snRegack     byte = 0x0B
	snPublish    byte = 0x0C
	snPuback     byte = 0x0D
	snPubcomp    byte = 0x0E
	snPubrec     byte = 0x0F
	snPubrel     byte = 0x10
	snSubscribe  byte = 0x12
	snSuback     byte = 0x13
	snPingreq    byte = 0x16
	snPingresp   byte = 0x17
	snDisconnect byte = 0x18

	snAccepted   byte = 0x00
	snCongestion byte = 0x01
)

var errSNMalformed = errors.New("mqttsn: malformed message")

// snConn is one MQTT-SN client: a connected UDP socket.
//
// Mapping onto iotgw (README "MQTT-SN quick start", adapters/mqttsn): a
// publisher REGISTERs its topic name once and PUBLISHes with the normal
// topic id it got; QoS 1 completes with PUBACK, QoS 2 with PUBREC, PUBREL,
// PUBCOMP. A subscriber SUBSCRIBEs by name and acknowledges deliveries;
// topics it has no id for (wildcard subscriptions) are REGISTERed to it by
// the gateway first, and answered with REGACK. iotgw sends one
// unacknowledged QoS 1/2 delivery per client at a time
// (mqttsn.max_inflight: 1), so a QoS 1 subscriber's rate is bounded by
// its round trip. Lost datagrams: publishers resend unacknowledged
// messages (DUP) after -retry; the gateway does the same towards
// subscribers after mqttsn.retry_interval.
type snConn struct {
	udpConn
	nextID uint16 // setup message ids

	// Publishing.
	pub     *publisher
	qos     byte
	topicID uint16
	fl      *inflight
	rtx     []byte // payload buffer for retransmissions

	// Receiving QoS 2: ids received but not yet released.
	pending bitset
}

// snAppend appends a message header for a body of n bytes: the one-byte
// length form up to 255 bytes in all, the three-byte form above (§5.2.1).
func snAppend(b []byte, typ byte, n int) []byte {
	total := 2 + n
	if total <= 255 {
		return append(b, byte(total), typ)
	}
	total += 2
	return append(b, 0x01, byte(total>>8), byte(total), typ)
}

// snParse splits one datagram into its type and body.
func snParse(b []byte) (byte, []byte, error) {
	if len(b) < 2 {
		return 0, nil, errSNMalformed
	}
	l, hl := int(b[0]), 1
	if b[0] == 0x01 {
		if len(b) < 4 {
			return 0, nil, errSNMalformed
		}
		l, hl = int(binary.BigEndian.Uint16(b[1:])), 3
	}
	if l < hl+1 || l > len(b) {
		return 0, nil, errSNMalformed
	}
	return b[hl], b[hl+1 : l], nil
}

// dialMQTTSN connects: CONNECT (clean session, no will) until CONNACK.
// CONNACK "congestion" (iotgw's per-address new-session rate limit) is
// retried until the deadline.
func dialMQTTSN(o dialOpts) (*snConn, error) {
	c := &snConn{}
	if err := c.udpConn.dial(o); err != nil {
		return nil, err
	}
	ka := uint16(o.keepAlive / time.Second)
	req := snAppend(nil, snConnect, 4+len(o.clientID))
	req = append(req, 0x04, 0x01) // flags: clean session; protocol id 1.2
	req = binary.BigEndian.AppendUint16(req, ka)
	req = append(req, o.clientID...)
	ctx, cancel := c.setupCtx(time.Until(o.deadline))
	defer cancel()
	for {
		var rc byte
		err := c.exchange(ctx, req, 500*time.Millisecond, func(b []byte) (bool, error) {
			t, body, err := snParse(b)
			if err != nil || t != snConnack || len(body) < 1 {
				return false, nil
			}
			rc = body[0]
			return true, nil
		})
		switch {
		case err != nil:
			c.uc.Close()
			return nil, fmt.Errorf("waiting for CONNACK: %w", err)
		case rc == snCongestion:
			select {
			case <-time.After(100 * time.Millisecond):
				continue
			case <-ctx.Done():
				c.uc.Close()
				return nil, fmt.Errorf("CONNACK: congestion until the deadline (new-session rate limit?)")
			}
		case rc != snAccepted:
			c.uc.Close()
			return nil, fmt.Errorf("CONNACK %w with return code %d", errRefused, rc)
		}
		return c, nil
	}
}

func (c *snConn) setupID() uint16 {
	c.nextID++
	if c.nextID == 0 {
		c.nextID = 1
	}
	return c.nextID
}

func (c *snConn) subscribe(filter string, qos byte) (byte, error) {
	id := c.setupID()
	req := snSubscribeMsg(id, filter, qos)
	ctx, cancel := c.setupCtx(10 * time.Second)
	defer cancel()
	var granted, rc byte
	err := c.exchange(ctx, req, 500*time.Millisecond, func(b []byte) (bool, error) {
		t, body, err := snParse(b)
		if err != nil || t != snSuback || len(body) < 6 || binary.BigEndian.Uint16(body[3:]) != id {
			return false, nil
		}
		granted, rc = (body[0]>>5)&3, body[5]
		return true, nil
	})
	if err != nil {
		return 0, fmt.Errorf("waiting for SUBACK: %w", err)
	}
	if rc != snAccepted {
		return 0, fmt.Errorf("subscription to %q %w with return code %d", filter, errRefused, rc)
	}
	return granted, nil
}

// snSubscribeMsg is a SUBSCRIBE by topic name with message id id.
func snSubscribeMsg(id uint16, filter string, qos byte) []byte {
	req := snAppend(nil, snSubscribe, 3+len(filter))
	req = append(req, qos<<5) // topic id type 0: a topic name
	req = binary.BigEndian.AppendUint16(req, id)
	return append(req, filter...)
}

// preparePublish REGISTERs the topic name for its id.
func (c *snConn) preparePublish(p *publisher, topic string) error {
	id := c.setupID()
	req := snAppend(nil, snRegister, 4+len(topic))
	req = binary.BigEndian.AppendUint16(req, 0)
	req = binary.BigEndian.AppendUint16(req, id)
	req = append(req, topic...)
	ctx, cancel := c.setupCtx(10 * time.Second)
	defer cancel()
	var rc byte
	err := c.exchange(ctx, req, 500*time.Millisecond, func(b []byte) (bool, error) {
		t, body, err := snParse(b)
		if err != nil || t != snRegack || len(body) < 5 || binary.BigEndian.Uint16(body[2:]) != id {
			return false, nil
		}
		c.topicID, rc = binary.BigEndian.Uint16(body), body[4]
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for REGACK: %w", err)
	}
	if rc != snAccepted {
		return fmt.Errorf("REGISTER %q %w with return code %d", topic, errRefused, rc)
	}
	c.pub, c.qos = p, p.qos
	if p.qos > 0 {
		c.fl = newInflight(int(p.window))
		c.rtx = append([]byte(nil), p.body...)
	}
	c.wbuf = make([]byte, 0, len(p.body)+16)
	return nil
}

// appendPublish appends a PUBLISH of body on the registered topic.
func (c *snConn) appendPublish(b []byte, mid uint16, dup bool, body []byte) []byte {
	b = snAppend(b, snPublish, 5+len(body))
	flags := c.qos << 5 // topic id type 0: normal
	if dup {
		flags |= 0x80
	}
	b = append(b, flags)
	b = binary.BigEndian.AppendUint16(b, c.topicID)
	b = binary.BigEndian.AppendUint16(b, mid)
	return append(b, body...)
}

func (c *snConn) writePublishLocked(seq, sentAt int64, body []byte) error {
	var mid uint16
	if c.qos > 0 {
		mid = packetID(seq)
		c.fl.add(seq, sentAt)
	}
	c.wbuf = c.appendPublish(c.wbuf[:0], mid, false, body)
	return c.writeLocked(c.wbuf)
}

// seqOf maps a message id back to the in-flight sequence number it stands
// for: the one at or above the low-water mark (the window keeps in-flight
// sequence numbers within 65535 of each other).
func (c *snConn) seqOf(mid uint16) int64 {
	low := c.fl.low
	d := (int64(mid) - 1 - low%65535) % 65535
	if d < 0 {
		d += 65535
	}
	return low + d
}

// retransmit resends what has waited longer than -retry for its ack: the
// PUBLISH (DUP set, original timestamp) or, at QoS 2 after PUBREC, PUBREL.
func (c *snConn) retransmit() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := benchNow()
	return c.fl.due(now-int64(c.retry), func(s *flightSlot) error {
		s.lastTx = now
		c.pub.retransmits.Add(1)
		if s.state == flightComp {
			return c.writeLocked(snAck(c.wbuf[:0], snPubrel, packetID(s.seq)))
		}
		stampPayload(c.rtx, s.sentAt, c.pub.id, uint32(s.seq))
		c.wbuf = c.appendPublish(c.wbuf[:0], packetID(s.seq), true, c.rtx)
		return c.writeLocked(c.wbuf)
	})
}

// snRegackFor appends the REGACK accepting a gateway's REGISTER, whose body
// (topic id, message id, ...) is reg.
func snRegackFor(b []byte, reg []byte) []byte {
	b = snAppend(b, snRegack, 5)
	return append(b, reg[0], reg[1], reg[2], reg[3], snAccepted)
}

// snAck appends PUBREC, PUBREL or PUBCOMP.
func snAck(b []byte, typ byte, mid uint16) []byte {
	return append(b, 4, typ, byte(mid>>8), byte(mid))
}

func (c *snConn) ping(idle time.Duration) error {
	if benchNow()-c.lastWrite.Load() < int64(idle) {
		return nil
	}
	return c.write([]byte{2, snPingreq})
}

func (c *snConn) disconnect() {
	_ = c.uc.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
	_ = c.write([]byte{2, snDisconnect})
	_ = c.uc.Close()
}

func (c *snConn) readLoop(r *reader) error {
	var tick time.Duration
	if c.fl != nil {
		tick = max(c.retry/4, 10*time.Millisecond)
	}
	var next time.Time
	var ack [7]byte
	for {
		n, err := c.readTick(tick, &next)
		if err != nil {
			return err
		}
		if n == 0 {
			if err := c.retransmit(); err != nil {
				return err
			}
			continue
		}
		t, body, err := snParse(c.rbuf[:n])
		if err != nil {
			return err
		}
		switch t {
		case snPublish:
			if len(body) < 5 {
				return errSNMalformed
			}
			qos, mid := (body[0]>>5)&3, binary.BigEndian.Uint16(body[3:])
			deliver := true
			switch qos {
			case 1:
				b := snAppend(ack[:0], snPuback, 5)
				b = append(b, body[1], body[2], body[3], body[4], snAccepted)
				err = c.write(b)
			case 2:
				if c.pending == nil {
					c.pending = newBitset(1 << 16)
				}
				deliver = !c.pending.testAndSet(uint32(mid))
				err = c.write(snAck(ack[:0], snPubrec, mid))
			}
			if err != nil {
				return err
			}
			if deliver && r.sub != nil {
				r.sub.deliver(body[5:], benchNow())
			}
		case snPubrel:
			if len(body) < 2 {
				return errSNMalformed
			}
			mid := binary.BigEndian.Uint16(body)
			if c.pending != nil {
				c.pending[mid/64] &^= 1 << (mid % 64)
			}
			if err := c.write(snAck(ack[:0], snPubcomp, mid)); err != nil {
				return err
			}
		case snRegister:
			// The gateway names a topic before its first PUBLISH to us.
			if len(body) < 4 {
				return errSNMalformed
			}
			if err := c.write(snRegackFor(ack[:0], body)); err != nil {
				return err
			}
		case snPuback, snPubrec, snPubcomp:
			if err := c.onAck(r, t, body); err != nil {
				return err
			}
		case snPingresp, snSuback, snRegack, snConnack:
			// Late answers to setup retransmissions, or keep-alive.
		case snDisconnect:
			return errors.New("mqttsn: gateway sent DISCONNECT")
		default:
			return fmt.Errorf("mqttsn: unexpected message type 0x%02x", t)
		}
	}
}

// onAck advances the publisher's QoS 1/2 handshakes. Acks for messages no
// longer in flight are answers to retransmissions and are ignored.
func (c *snConn) onAck(r *reader, t byte, body []byte) error {
	if r.pub == nil || c.fl == nil {
		if r.pub != nil {
			r.pub.badAcks.Add(1)
		}
		return nil
	}
	var mid uint16
	switch {
	case t == snPuback && len(body) >= 5:
		mid = binary.BigEndian.Uint16(body[2:])
	case t != snPuback && len(body) >= 2:
		mid = binary.BigEndian.Uint16(body)
	default:
		return errSNMalformed
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.fl.get(c.seqOf(mid))
	switch t {
	case snPuback:
		switch rc := body[4]; {
		case s == nil:
		case rc == snCongestion:
			// Refused for now: the retransmission timer tries again.
			s.lastTx = benchNow()
		case rc != snAccepted:
			return fmt.Errorf("mqttsn: PUBLISH %w with return code %d", errRefused, rc)
		case c.qos == 1:
			r.pub.ackTo(c.fl.done(s))
		default:
			r.pub.badAcks.Add(1)
		}
	case snPubrec:
		if s == nil && c.qos != 2 {
			r.pub.badAcks.Add(1)
			return nil
		}
		if s != nil {
			s.state, s.lastTx = flightComp, benchNow()
		}
		// A repeated PUBREC (our PUBREL was lost) gets PUBREL again.
		c.wbuf = snAck(c.wbuf[:0], snPubrel, mid)
		return c.writeLocked(c.wbuf)
	case snPubcomp:
		if s != nil && s.state == flightComp {
			r.pub.ackTo(c.fl.done(s))
		}
	}
	return nil
}
