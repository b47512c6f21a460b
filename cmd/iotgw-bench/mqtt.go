package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// MQTT 3.1.1 control packet types (§2.2.1). Only the ones this client sends
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

// parsePublish decodes a PUBLISH body given its header byte.
func parsePublish(h byte, body []byte) (publishView, error) {
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

// conn is one MQTT client connection. A publisher goroutine and the
// connection's reader goroutine may both write (QoS 2 PUBREL, acks, pings),
// so the writer is guarded by mu; reading belongs to one goroutine only.
type conn struct {
	nc net.Conn
	pr packetReader

	mu        sync.Mutex
	bw        *bufio.Writer
	ackBuf    [4]byte
	lastWrite atomic.Int64 // benchNow() of the last flush, for keep-alive pings
}

// bufSizes picks per-connection buffer sizes. Publishers need big write
// buffers, subscribers big read buffers, and idle connections almost nothing
// (10,000 of them must not cost the load generator gigabytes).
type bufSizes struct{ read, write int }

// dialMQTT opens a TCP connection and completes the CONNECT/CONNACK handshake
// synchronously, before any reader goroutine exists.
func dialMQTT(addr, clientID string, keepAlive time.Duration, deadline time.Time, sz bufSizes) (*conn, error) {
	d := net.Dialer{Deadline: deadline}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	// The handshake and the whole run share one hard deadline so that a stuck
	// broker can never hang the benchmark.
	if err := nc.SetDeadline(deadline); err != nil {
		nc.Close()
		return nil, err
	}
	c := &conn{
		nc: nc,
		pr: packetReader{br: bufio.NewReaderSize(nc, sz.read), buf: make([]byte, 0, 256)},
		bw: bufio.NewWriterSize(nc, sz.write),
	}
	ka := uint16(keepAlive / time.Second)
	if err := c.writeFlush(appendConnect(nil, clientID, ka, true)); err != nil {
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
		return nil, fmt.Errorf("CONNACK refused with return code %d", body[1])
	}
	return c, nil
}

// subscribe sends one SUBSCRIBE and waits for its SUBACK. It must run before
// the reader goroutine starts. It returns the granted QoS.
func (c *conn) subscribe(filter string, qos byte) (byte, error) {
	const id = 1
	if err := c.writeFlush(appendSubscribe(nil, id, filter, qos)); err != nil {
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
		if body[2] == 0x80 {
			return 0, fmt.Errorf("subscription to %q refused", filter)
		}
		return body[2], nil
	}
}

// writeFlush writes b and flushes under the write lock.
func (c *conn) writeFlush(b []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.bw.Write(b); err != nil {
		return err
	}
	return c.flushLocked()
}

// writeAckLocked buffers an acknowledgement; the caller holds mu and flushes
// later, so a burst of incoming messages costs one write syscall, not one each.
func (c *conn) writeAckLocked(typ byte, id uint16) error {
	// A local array would escape through bufio's io.Writer and cost an
	// allocation per ack; the connection's scratch space does not.
	_, err := c.bw.Write(appendAck(c.ackBuf[:0], typ, id))
	return err
}

func (c *conn) flushLocked() error {
	c.lastWrite.Store(benchNow())
	return c.bw.Flush()
}

// ping sends PINGREQ if nothing was written for longer than idle. Keep-alive
// is measured from the client's last packet (§3.1.2.10).
func (c *conn) ping(idle time.Duration) error {
	if benchNow()-c.lastWrite.Load() < int64(idle) {
		return nil
	}
	return c.writeFlush(pingreq)
}

// disconnect sends DISCONNECT best-effort and closes the socket.
func (c *conn) disconnect() {
	c.mu.Lock()
	// A short deadline: a broker that stopped reading must not delay teardown.
	_ = c.nc.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
	_, _ = c.bw.Write(disconnectPkt)
	_ = c.bw.Flush()
	c.mu.Unlock()
	_ = c.nc.Close()
}

// persistentSessions (-persistent) connects every client with clean
// session 0, so that a broker with a durable store writes its QoS 1/2
// messages to disk; the default clean sessions never touch it.
var persistentSessions bool
