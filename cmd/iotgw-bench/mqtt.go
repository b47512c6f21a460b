package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// MQTT control packet types (§2.2.1, the same in 3.1.1 and 5). Only the ones this client sends
// or expects to receive are listed.
const (
	pktConnect    byte = 1
	pktConnack    byte = 2
	pktPublish    byte = 3
	pktPuback     byte = 4
	pktPubrec     byte = 5
	pktPubrel     byte = 6
	pktPubcomp    byte = 7
	pktSubscribe  byte = 8
	pktSuback     byte = 9
	pktPingreq    byte = 12
	pktPingresp   byte = 13
	pktDisconnect byte = 14
)

// maxPacket bounds what the reader accepts; benchmark payloads are small and
// a larger length means the stream is corrupt, not that we should allocate it.
const maxPacket = 16 << 20

// Fixed two-byte packets, shared so that sending them never allocates.
var (
	pingreq       = []byte{pktPingreq << 4, 0}
	disconnectPkt = []byte{pktDisconnect << 4, 0}
)

var (
	errMalformed = errors.New("mqtt: malformed packet")
	errTooLarge  = errors.New("mqtt: packet exceeds limit")
)

// appendRemLen appends the variable-length "remaining length" (§2.2.3).
func appendRemLen(b []byte, n int) []byte {
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			return b
		}
	}
}

// appendString appends a length-prefixed UTF-8 string (§1.5.3).
func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// appendConnect appends a CONNECT for an anonymous client.
func appendConnect(b []byte, clientID string, keepAlive uint16, clean bool) []byte {
	var flags byte
	if clean {
		flags |= 0x02
	}
	// Variable header is 10 bytes: "MQTT" name (6), level (1), flags (1), keep alive (2).
	b = append(b, pktConnect<<4)
	b = appendRemLen(b, 10+2+len(clientID))
	b = appendString(b, "MQTT")
	b = append(b, 4, flags)
	b = binary.BigEndian.AppendUint16(b, keepAlive)
	return appendString(b, clientID)
}

// appendSubscribe appends a SUBSCRIBE with a single topic filter.
func appendSubscribe(b []byte, id uint16, filter string, qos byte) []byte {
	b = append(b, pktSubscribe<<4|0x02) // bits 3..0 are reserved as 0010
	b = appendRemLen(b, 2+2+len(filter)+1)
	b = binary.BigEndian.AppendUint16(b, id)
	b = appendString(b, filter)
	return append(b, qos)
}

// appendAck appends one of the two-byte acknowledgements: PUBACK, PUBREC,
// PUBREL or PUBCOMP. PUBREL is the only one with mandatory flag bits.
func appendAck(b []byte, typ byte, id uint16) []byte {
	h := typ << 4
	if typ == pktPubrel {
		h |= 0x02
	}
	return append(b, h, 2, byte(id>>8), byte(id))
}

// appendPublishHeader appends the fixed header and topic of a PUBLISH whose
// payload is payloadLen bytes. The packet identifier (QoS > 0) and payload
// follow; keeping them out lets a publisher precompute this prefix once.
func appendPublishHeader(b []byte, topic string, qos byte, payloadLen int) []byte {
	rl := 2 + len(topic) + payloadLen
	if qos > 0 {
		rl += 2
	}
	b = append(b, pktPublish<<4|qos<<1)
	b = appendRemLen(b, rl)
	return appendString(b, topic)
}

// appendConnect5 appends an MQTT 5 CONNECT for an anonymous client with no
// properties (§3.1): everything at its default.
func appendConnect5(b []byte, clientID string, keepAlive uint16, clean bool) []byte {
	var flags byte
	if clean {
		flags |= 0x02
	}
	// Variable header: name (6), level (1), flags (1), keep alive (2), properties (1).
	b = append(b, pktConnect<<4)
	b = appendRemLen(b, 11+2+len(clientID))
	b = appendString(b, "MQTT")
	b = append(b, 5, flags)
	b = binary.BigEndian.AppendUint16(b, keepAlive)
	b = append(b, 0)
	return appendString(b, clientID)
}

// appendSubscribe5 appends an MQTT 5 SUBSCRIBE with no properties; the
// options byte carries only the maximum QoS (§3.8.3.1).
func appendSubscribe5(b []byte, id uint16, filter string, qos byte) []byte {
	b = append(b, pktSubscribe<<4|0x02)
	b = appendRemLen(b, 2+1+2+len(filter)+1)
	b = binary.BigEndian.AppendUint16(b, id)
	b = append(b, 0)
	b = appendString(b, filter)
	return append(b, qos)
}

// appendPublishHeader5 is appendPublishHeader for MQTT 5: the remaining
// length also counts the empty property list, written after the packet
// identifier (or right after the topic at QoS 0).
func appendPublishHeader5(b []byte, topic string, qos byte, payloadLen int) []byte {
	rl := 2 + len(topic) + 1 + payloadLen
	if qos > 0 {
		rl += 2
	}
	b = append(b, pktPublish<<4|qos<<1)
	b = appendRemLen(b, rl)
	return appendString(b, topic)
}

// readRemLen decodes the remaining length from r.
func readRemLen(r io.ByteReader) (int, error) {
	n, mul := 0, 1
	for i := 0; i < 4; i++ {
		d, err := r.ReadByte()
		if err != nil {
			return 0, err
		}
		n += int(d&0x7f) * mul
		if d&0x80 == 0 {
			return n, nil
		}
		mul *= 128
	}
	return 0, errMalformed
}

// packetReader reads whole packets into a reused buffer so the steady state
// allocates nothing.
type packetReader struct {
	br  *bufio.Reader
	buf []byte
}

// next returns the header byte and body of the next packet. body aliases an
// internal buffer and is valid only until the following call.
func (r *packetReader) next() (byte, []byte, error) {
	h, err := r.br.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, err := readRemLen(r.br)
	if err != nil {
		return 0, nil, err
	}
	if n > maxPacket {
		return 0, nil, errTooLarge
	}
	if cap(r.buf) < n {
		r.buf = make([]byte, n)
	}
	body := r.buf[:n]
	if _, err := io.ReadFull(r.br, body); err != nil {
		return 0, nil, err
	}
	return h, body, nil
}

// publishView is a decoded PUBLISH; slices alias the reader's buffer.
type publishView struct {
	qos     byte
	dup     bool
	id      uint16
	topic   []byte
	payload []byte
}

// parsePublish decodes an MQTT 3.1.1 PUBLISH body given its header byte.
func parsePublish(h byte, body []byte) (publishView, error) {
	return parsePublishV(h, body, false)
}

// uvarint decodes an MQTT variable byte integer at the start of b and
// returns it with its encoded length.
func uvarint(b []byte) (int, int, error) {
	n, mul := 0, 1
	for i := 0; i < 4 && i < len(b); i++ {
		n += int(b[i]&0x7f) * mul
		if b[i]&0x80 == 0 {
			return n, i + 1, nil
		}
		mul *= 128
	}
	return 0, 0, errMalformed
}

// parsePublishV decodes a PUBLISH body; v5 skips the property list.
func parsePublishV(h byte, body []byte, v5 bool) (publishView, error) {
	p := publishView{qos: (h >> 1) & 3, dup: h&0x08 != 0}
	if p.qos == 3 || len(body) < 2 {
		return p, errMalformed
	}
	tl := int(binary.BigEndian.Uint16(body))
	pos := 2 + tl
	if pos > len(body) {
		return p, errMalformed
	}
	p.topic = body[2:pos]
	if p.qos > 0 {
		if pos+2 > len(body) {
			return p, errMalformed
		}
		p.id = binary.BigEndian.Uint16(body[pos:])
		pos += 2
	}
	if v5 {
		pl, n, err := uvarint(body[pos:])
		if err != nil || pos+n+pl > len(body) {
			return p, errMalformed
		}
		pos += n + pl
	}
	p.payload = body[pos:]
	return p, nil
}

// ackID decodes the packet identifier of a two-byte acknowledgement.
func ackID(body []byte) (uint16, error) {
	if len(body) < 2 {
		return 0, errMalformed
	}
	return binary.BigEndian.Uint16(body), nil
}

// mqttConn is one MQTT 3.1.1 or 5 client connection over TCP or WebSocket.
type mqttConn struct {
	stream
	v5     bool
	pr     packetReader
	ackBuf [4]byte
	// QoS 2 packet ids received but not yet released (PUBREL). A PUBLISH
	// repeating one of them is a legal retransmission, not a new message.
	// Allocated on first use so idle connections stay small.
	pending bitset

	// Publishing: the precomputed fixed header and topic.
	qos     byte
	head    []byte
	recvMax int // MQTT 5: the broker's Receive Maximum (0 for 3.1.1)
}

// newMQTT completes the CONNECT/CONNACK handshake on nc synchronously,
// before any reader goroutine exists.
func newMQTT(nc net.Conn, o dialOpts, v5 bool) (*mqttConn, error) {
	c := &mqttConn{stream: newStream(nc, o.sz), v5: v5}
	c.pr = packetReader{br: c.br, buf: make([]byte, 0, 256)}
	ka := uint16(o.keepAlive / time.Second)
	// -persistent: MQTT 3.1.1 only (an MQTT 5 CONNECT without a Session
	// Expiry Interval ends its session with the connection anyway).
	connect := appendConnect(nil, o.clientID, ka, !persistentSessions || o.forget)
	if v5 {
		connect = appendConnect5(nil, o.clientID, ka, true)
	}
	if err := c.writeFlush(connect); err != nil {
		nc.Close()
		return nil, err
	}
	h, body, err := c.pr.next()
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("waiting for CONNACK: %w", err)
	}
	if h>>4 != pktConnack || len(body) < 2 {
		nc.Close()
		return nil, fmt.Errorf("expected CONNACK, got packet type %d", h>>4)
	}
	if body[1] != 0 {
		nc.Close()
		return nil, fmt.Errorf("CONNACK %w with code %d", errRefused, body[1])
	}
	if v5 {
		if c.recvMax, err = connackReceiveMax(body[2:]); err != nil {
			nc.Close()
			return nil, err
		}
	}
	return c, nil
}

// connackReceiveMax reads the Receive Maximum from an MQTT 5 CONNACK's
// properties (§3.2.2.3.3): the broker's bound on our unacknowledged QoS
// 1/2 publishes, 65535 when absent.
func connackReceiveMax(props []byte) (int, error) {
	pl, n, err := uvarint(props)
	if err != nil || n+pl > len(props) {
		return 0, errMalformed
	}
	props = props[n : n+pl]
	recvMax := 65535
	for len(props) > 0 {
		id := props[0]
		props = props[1:]
		var size int
		switch id {
		case 0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2a: // byte
			size = 1
		case 0x13, 0x21, 0x22, 0x23: // two-byte integer
			size = 2
		case 0x02, 0x11, 0x18, 0x27: // four-byte integer
			size = 4
		case 0x0b: // variable byte integer
			_, vn, err := uvarint(props)
			if err != nil {
				return 0, errMalformed
			}
			size = vn
		case 0x03, 0x08, 0x12, 0x15, 0x1a, 0x1c, 0x1f, 0x09, 0x16: // string, binary
			if len(props) < 2 {
				return 0, errMalformed
			}
			size = 2 + int(binary.BigEndian.Uint16(props))
		case 0x26: // string pair
			if len(props) < 2 {
				return 0, errMalformed
			}
			k := 2 + int(binary.BigEndian.Uint16(props))
			if len(props) < k+2 {
				return 0, errMalformed
			}
			size = k + 2 + int(binary.BigEndian.Uint16(props[k:]))
		default:
			return 0, fmt.Errorf("%w: CONNACK property 0x%02x", errMalformed, id)
		}
		if size > len(props) {
			return 0, errMalformed
		}
		if id == 0x21 {
			recvMax = int(binary.BigEndian.Uint16(props))
		}
		props = props[size:]
	}
	return recvMax, nil
}

// subscribe sends one SUBSCRIBE and waits for its SUBACK.
func (c *mqttConn) subscribe(filter string, qos byte) (byte, error) {
	const id = 1
	if err := c.writeFlush(c.subscribePacket(nil, id, filter, qos)); err != nil {
		return 0, err
	}
	for {
		h, body, err := c.pr.next()
		if err != nil {
			return 0, fmt.Errorf("waiting for SUBACK: %w", err)
		}
		if h>>4 != pktSuback {
			// Nothing else should arrive on a fresh clean session, but a
			// stray PINGRESP or similar is not worth failing the run for.
			continue
		}
		if len(body) < 3 || binary.BigEndian.Uint16(body) != id {
			return 0, errMalformed
		}
		codes := body[2:]
		if c.v5 {
			pl, n, err := uvarint(codes)
			if err != nil || n+pl >= len(codes) {
				return 0, errMalformed
			}
			codes = codes[n+pl:]
		}
		if codes[0] >= 0x80 {
			return 0, fmt.Errorf("subscription to %q %w (code 0x%02x)", filter, errRefused, codes[0])
		}
		return codes[0], nil
	}
}

// subscribePacket appends a SUBSCRIBE in the connection's protocol version.
func (c *mqttConn) subscribePacket(b []byte, id uint16, filter string, qos byte) []byte {
	if c.v5 {
		return appendSubscribe5(b, id, filter, qos)
	}
	return appendSubscribe(b, id, filter, qos)
}

func (c *mqttConn) preparePublish(p *publisher, topic string) error {
	if c.v5 && p.qos > 0 && (p.window == 0 || p.window > int64(c.recvMax)) {
		// Exceeding it is a protocol error the broker disconnects for.
		return fmt.Errorf("the broker's Receive Maximum is %d: use a -window of at most that", c.recvMax)
	}
	c.qos = p.qos
	if c.v5 {
		c.head = appendPublishHeader5(nil, topic, p.qos, len(p.body))
	} else {
		c.head = appendPublishHeader(nil, topic, p.qos, len(p.body))
	}
	return nil
}

func (c *mqttConn) writePublishLocked(seq, _ int64, body []byte) error {
	if _, err := c.bw.Write(c.head); err != nil {
		return err
	}
	if c.qos > 0 {
		id := packetID(seq)
		if err := c.bw.WriteByte(byte(id >> 8)); err != nil {
			return err
		}
		if err := c.bw.WriteByte(byte(id)); err != nil {
			return err
		}
	}
	if c.v5 {
		if err := c.bw.WriteByte(0); err != nil { // no properties
			return err
		}
	}
	_, err := c.bw.Write(body)
	return err
}

// writeAckLocked buffers an acknowledgement; the caller holds mu and flushes
// later, so a burst of incoming messages costs one write syscall, not one
// each. The two-byte form is valid in MQTT 5 too (reason code 0 implied).
func (c *mqttConn) writeAckLocked(typ byte, id uint16) error {
	// A local array would escape through bufio's io.Writer and cost an
	// allocation per ack; the connection's scratch space does not.
	_, err := c.bw.Write(appendAck(c.ackBuf[:0], typ, id))
	return err
}

// ping sends PINGREQ if nothing was written for longer than idle. Keep-alive
// is measured from the client's last packet (§3.1.2.10).
func (c *mqttConn) ping(idle time.Duration) error {
	if benchNow()-c.lastWrite.Load() < int64(idle) {
		return nil
	}
	return c.writeFlush(pingreq)
}

// disconnect sends DISCONNECT (the same two bytes in 3.1.1 and 5) and
// closes the socket.
func (c *mqttConn) disconnect() { c.closeWith(disconnectPkt) }

// readLoop acknowledges deliveries per the QoS handshakes and flushes only
// when the socket has nothing more buffered, so acks for a burst share one
// write.
func (c *mqttConn) readLoop(r *reader) error {
	dirty := false
	for {
		h, body, err := c.pr.next()
		if err != nil {
			return err
		}
		switch h >> 4 {
		case pktPublish:
			pv, err := parsePublishV(h, body, c.v5)
			if err != nil {
				return err
			}
			deliver := true
			switch pv.qos {
			case 1:
				dirty = true
				c.mu.Lock()
				err = c.writeAckLocked(pktPuback, pv.id)
				c.mu.Unlock()
			case 2:
				if c.pending == nil {
					c.pending = newBitset(1 << 16)
				}
				deliver = !c.pending.testAndSet(uint32(pv.id))
				dirty = true
				c.mu.Lock()
				err = c.writeAckLocked(pktPubrec, pv.id)
				c.mu.Unlock()
			}
			if err != nil {
				return err
			}
			if deliver && r.sub != nil {
				r.sub.deliver(pv.payload, benchNow())
			}
		case pktPubrel:
			id, err := ackID(body)
			if err != nil {
				return err
			}
			if c.pending != nil {
				c.pending[id/64] &^= 1 << (id % 64)
			}
			dirty = true
			c.mu.Lock()
			err = c.writeAckLocked(pktPubcomp, id)
			c.mu.Unlock()
			if err != nil {
				return err
			}
		case pktPuback, pktPubcomp:
			if r.pub == nil {
				return fmt.Errorf("unexpected packet type %d on a subscriber", h>>4)
			}
			// QoS 1 completes with PUBACK, QoS 2 with PUBCOMP; anything
			// else is a broker bug worth counting, not crashing on.
			want := pktPuback
			if r.pub.qos == 2 {
				want = pktPubcomp
			}
			if r.pub.qos == 0 || h>>4 != want {
				r.pub.badAcks.Add(1)
				continue
			}
			// MQTT 5: a reason code of 0x80 or above is a refusal.
			if len(body) > 2 && body[2] >= 0x80 {
				return fmt.Errorf("publish %w with reason code 0x%02x", errRefused, body[2])
			}
			r.pub.onAck()
		case pktPubrec:
			if r.pub == nil || r.pub.qos != 2 {
				return errors.New("unexpected PUBREC")
			}
			id, err := ackID(body)
			if err != nil {
				return err
			}
			if len(body) > 2 && body[2] >= 0x80 {
				return fmt.Errorf("publish %w with reason code 0x%02x", errRefused, body[2])
			}
			dirty = true
			c.mu.Lock()
			err = c.writeAckLocked(pktPubrel, id)
			c.mu.Unlock()
			if err != nil {
				return err
			}
		case pktPingresp, pktSuback:
		case pktDisconnect:
			rc := byte(0)
			if len(body) > 0 {
				rc = body[0]
			}
			return fmt.Errorf("broker sent DISCONNECT (reason code 0x%02x)", rc)
		default:
			return fmt.Errorf("unexpected packet type %d", h>>4)
		}
		if dirty && c.br.Buffered() == 0 {
			c.mu.Lock()
			err := c.flushLocked()
			c.mu.Unlock()
			if err != nil {
				return err
			}
			dirty = false
		}
	}
}

// persistentSessions (-persistent) connects every client with clean
// session 0, so that a broker with a durable store writes its QoS 1/2
// messages to disk; the default clean sessions never touch it. MQTT 3.1.1
// only: the broker's session.default_expiry makes those sessions persist.
var persistentSessions bool
