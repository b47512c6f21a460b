package main

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// CoAP (RFC 7252) message types, codes and options this client uses.
const (
	coapCON byte = 0
	coapNON byte = 1
	coapACK byte = 2
	coapRST byte = 3

	coapEmpty   byte = 0x00
	coapGET     byte = 0x01
	coapPOST    byte = 0x02
	coapDELETE  byte = 0x04
	coapContent byte = 0x45 // 2.05

	optObserve  = 6
	optURIPath  = 11
	optURIQuery = 15

	coapTokenLen = 4
)

var errCoAPMalformed = errors.New("coap: malformed message")

// coapConn is one CoAP client: a connected UDP socket, connectionless in
// iotgw's terms (the gateway names the client after its address).
//
// Mapping onto iotgw (README "CoAP quick start", adapters/coap): a publisher
// POSTs to /ps/{topic}?qos=N, as CON at QoS 1/2 (the piggybacked 2.04 ACK,
// sent once the core accepted the message, is the publish acknowledgement)
// and as NON at QoS 0 (the gateway's NON 2.04 answers are read and dropped).
// A subscriber GETs /ps/{filter}?qos=N with Observe: 0; notifications are
// CON at QoS 1/2, acknowledged with an empty ACK, and NON at QoS 0. iotgw
// sends one CON notification per client at a time, so a QoS 1 subscriber's
// rate is bounded by its round trip.
//
// Message ids: go-coap, under iotgw, answers a message id it has seen from
// the same address in the last 247 s (EXCHANGE_LIFETIME) from its response
// cache without processing the request. Publishers therefore number their
// messages from a random start (NON: see nonBase) and refuse to send more than
// 32,000 of them.
type coapConn struct {
	udpConn
	mid uint16 // next id for messages other than publishes

	// Publishing.
	pub     *publisher
	con     bool
	midBase uint16 // message id of sequence number 0
	opts    []byte // options and payload marker of every publish
	fl      *inflight
	rtx     []byte

	// Subscribing.
	token  [coapTokenLen]byte
	filter string
}

// coapMaxMsgs bounds messages per publisher: message ids must not repeat
// within one run (see coapConn), nor meet the gateway's own ids (nonBase).
const coapMaxMsgs = 32000

func dialCoAP(o dialOpts) (*coapConn, error) {
	c := &coapConn{}
	if err := c.udpConn.dial(o); err != nil {
		return nil, err
	}
	var r [2 + coapTokenLen]byte
	_, _ = rand.Read(r[:])
	c.mid = binary.BigEndian.Uint16(r[:])
	copy(c.token[:], r[2:])
	// A CoAP ping (empty CON, answered by RST or an empty ACK) tells us
	// the gateway is there before anything is timed.
	mid := c.nextMID()
	ctx, cancel := c.setupCtx(time.Until(o.deadline))
	defer cancel()
	err := c.exchange(ctx, []byte{0x40, coapEmpty, byte(mid >> 8), byte(mid)}, 500*time.Millisecond,
		func(b []byte) (bool, error) {
			m, err := parseCoAP(b)
			return err == nil && (m.typ == coapRST || m.typ == coapACK) && m.mid == mid, nil
		})
	if err != nil {
		c.uc.Close()
		return nil, fmt.Errorf("waiting for the answer to a CoAP ping: %w", err)
	}
	return c, nil
}

func (c *coapConn) nextMID() uint16 {
	c.mid++
	return c.mid
}

// coapMsg is a parsed message; slices alias the datagram.
type coapMsg struct {
	typ, code byte
	mid       uint16
	token     []byte
	payload   []byte
}

func parseCoAP(b []byte) (coapMsg, error) {
	var m coapMsg
	if len(b) < 4 || b[0]>>6 != 1 {
		return m, errCoAPMalformed
	}
	tkl := int(b[0] & 0x0f)
	m.typ, m.code, m.mid = (b[0]>>4)&3, b[1], binary.BigEndian.Uint16(b[2:])
	if tkl > 8 || 4+tkl > len(b) {
		return m, errCoAPMalformed
	}
	m.token = b[4 : 4+tkl]
	pos := 4 + tkl
	for pos < len(b) {
		if b[pos] == 0xff {
			m.payload = b[pos+1:]
			return m, nil
		}
		d, l := int(b[pos]>>4), int(b[pos]&0x0f)
		pos++
		switch d {
		case 13:
			pos++
		case 14:
			pos += 2
		case 15:
			return m, errCoAPMalformed
		}
		switch l {
		case 13:
			if pos >= len(b) {
				return m, errCoAPMalformed
			}
			l = int(b[pos]) + 13
			pos++
		case 14:
			if pos+1 >= len(b) {
				return m, errCoAPMalformed
			}
			l = int(binary.BigEndian.Uint16(b[pos:])) + 269
			pos += 2
		case 15:
			return m, errCoAPMalformed
		}
		pos += l
	}
	if pos > len(b) {
		return m, errCoAPMalformed
	}
	return m, nil
}

// appendOption appends option num after option prev (options go in
// ascending order, each coded as the delta from the previous one).
func appendOption(b []byte, prev, num int, val string) []byte {
	ext := func(v int) (byte, []byte) {
		switch {
		case v < 13:
			return byte(v), nil
		case v < 269:
			return 13, []byte{byte(v - 13)}
		}
		return 14, []byte{byte((v - 269) >> 8), byte(v - 269)}
	}
	dn, dx := ext(num - prev)
	ln, lx := ext(len(val))
	b = append(b, dn<<4|ln)
	b = append(b, dx...)
	b = append(b, lx...)
	return append(b, val...)
}

// appendPubSubOptions appends [Observe,] Uri-Path ps/{levels...} and
// Uri-Query qos=N.
func appendPubSubOptions(b []byte, observe bool, topic string, qos byte) []byte {
	prev := 0
	if observe {
		b = appendOption(b, prev, optObserve, "") // 0: register
		prev = optObserve
	}
	b = appendOption(b, prev, optURIPath, "ps")
	for _, level := range strings.Split(topic, "/") {
		b = appendOption(b, optURIPath, optURIPath, level)
	}
	return appendOption(b, optURIPath, optURIQuery, "qos="+strconv.Itoa(int(qos)))
}

// appendHeader appends the fixed header and token.
func appendCoAPHeader(b []byte, typ, code byte, mid uint16, token []byte) []byte {
	b = append(b, 0x40|typ<<4|byte(len(token)), code, byte(mid>>8), byte(mid))
	return append(b, token...)
}

func (c *coapConn) subscribe(filter string, qos byte) (byte, error) {
	mid := c.nextMID()
	req := appendCoAPHeader(nil, coapCON, coapGET, mid, c.token[:])
	req = appendPubSubOptions(req, true, filter, qos)
	ctx, cancel := c.setupCtx(10 * time.Second)
	defer cancel()
	var code byte
	err := c.exchange(ctx, req, time.Second, func(b []byte) (bool, error) {
		m, err := parseCoAP(b)
		if err != nil {
			return false, nil
		}
		switch {
		case m.typ == coapACK && m.mid == mid && m.code == coapEmpty:
			return false, nil // separate response follows
		case m.typ == coapACK && m.mid == mid:
			code = m.code
			return true, nil
		case bytes.Equal(m.token, c.token[:]) && m.code != coapEmpty:
			if m.typ == coapCON {
				_ = c.write([]byte{0x60, coapEmpty, byte(m.mid >> 8), byte(m.mid)})
			}
			code = m.code
			return true, nil
		}
		return false, nil
	})
	if err != nil {
		return 0, fmt.Errorf("waiting for the observe response: %w", err)
	}
	if code != coapContent {
		return 0, fmt.Errorf("observe %q %w with %d.%02d", filter, errRefused, code>>5, code&0x1f)
	}
	c.filter = filter
	return qos, nil
}

func (c *coapConn) preparePublish(p *publisher, topic string) error {
	if p.msgs > coapMaxMsgs {
		return fmt.Errorf("coap: at most %d messages per publisher (message ids must not repeat)", coapMaxMsgs)
	}
	c.pub, c.con = p, p.qos > 0
	if c.con {
		c.midBase = c.nextMID()
	} else {
		base, err := c.nonBase(topic)
		if err != nil {
			return err
		}
		c.midBase = base
	}
	c.mid = c.midBase + coapMaxMsgs - 1 // pings continue after the publishes' ids
	c.opts = appendPubSubOptions(nil, false, topic, p.qos)
	c.opts = append(c.opts, 0xff)
	if c.con {
		c.fl = newInflight(int(p.window))
		c.rtx = append([]byte(nil), p.body...)
	}
	c.wbuf = make([]byte, 0, 4+coapTokenLen+len(c.opts)+len(p.body))
	return nil
}

// nonBase picks the first message id of NON publishes. go-coap (v3.5)
// caches its answer to a NON request under the answer's own message id,
// drawn from a per-client counter, and treats any later request carrying
// that id as a duplicate: it resends the cached answer and the publish is
// silently lost. Publishing with ids that count up next to the gateway's
// counter would lose every other message once the two ranges meet. So a
// NON read of the topic first reveals the counter (the id of its NON
// answer), and the publishes start half the id space away from it: both
// advance by one per message, so they never meet within coapMaxMsgs.
func (c *coapConn) nonBase(topic string) (uint16, error) {
	mid := c.nextMID()
	req := appendCoAPHeader(nil, coapNON, coapGET, mid, c.token[:])
	req = appendOption(req, 0, optURIPath, "ps")
	for _, level := range strings.Split(topic, "/") {
		req = appendOption(req, optURIPath, optURIPath, level)
	}
	ctx, cancel := c.setupCtx(10 * time.Second)
	defer cancel()
	var server uint16
	err := c.exchange(ctx, req, 500*time.Millisecond, func(b []byte) (bool, error) {
		m, err := parseCoAP(b)
		if err != nil || !bytes.Equal(m.token, c.token[:]) || m.code == coapEmpty || m.typ == coapACK {
			return false, nil
		}
		if m.typ == coapCON {
			_ = c.write([]byte{0x60, coapEmpty, byte(m.mid >> 8), byte(m.mid)})
		}
		server = m.mid
		return true, nil
	})
	if err != nil {
		return 0, fmt.Errorf("waiting for the answer to a NON read of %q: %w", topic, err)
	}
	return server + 0x8000, nil
}

// appendPublish appends POST seq: the message id and token are derived
// from the sequence number.
func (c *coapConn) appendPublish(b []byte, seq int64, body []byte) []byte {
	typ := coapNON
	if c.con {
		typ = coapCON
	}
	var tok [coapTokenLen]byte
	binary.BigEndian.PutUint32(tok[:], uint32(seq))
	b = appendCoAPHeader(b, typ, coapPOST, c.midBase+uint16(seq), tok[:])
	b = append(b, c.opts...)
	return append(b, body...)
}

func (c *coapConn) writePublishLocked(seq, sentAt int64, body []byte) error {
	if c.con {
		c.fl.add(seq, sentAt)
	}
	c.wbuf = c.appendPublish(c.wbuf[:0], seq, body)
	return c.writeLocked(c.wbuf)
}

// retransmit resends CON publishes that waited longer than -retry for their
// ACK, with the same message id, so the gateway's deduplication answers a
// publish it already processed from its cache.
func (c *coapConn) retransmit() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := benchNow()
	return c.fl.due(now-int64(c.retry), func(s *flightSlot) error {
		s.lastTx = now
		c.pub.retransmits.Add(1)
		stampPayload(c.rtx, s.sentAt, c.pub.id, uint32(s.seq))
		c.wbuf = c.appendPublish(c.wbuf[:0], s.seq, c.rtx)
		return c.writeLocked(c.wbuf)
	})
}

// ping sends a CoAP ping if nothing was sent for idle.
func (c *coapConn) ping(idle time.Duration) error {
	if benchNow()-c.lastWrite.Load() < int64(idle) {
		return nil
	}
	c.mu.Lock()
	mid := c.nextMID()
	c.mu.Unlock()
	return c.write([]byte{0x40, coapEmpty, byte(mid >> 8), byte(mid)})
}

// disconnect ends an observation with DELETE /ps/{filter} (NON, not
// waited for), so the gateway does not keep notifying a closed port.
func (c *coapConn) disconnect() {
	if c.filter != "" {
		c.mu.Lock()
		req := appendCoAPHeader(nil, coapNON, coapDELETE, c.nextMID(), nil)
		prev := 0
		req = appendOption(req, prev, optURIPath, "ps")
		for _, level := range strings.Split(c.filter, "/") {
			req = appendOption(req, optURIPath, optURIPath, level)
		}
		_ = c.uc.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
		_ = c.writeLocked(req)
		c.mu.Unlock()
	}
	_ = c.uc.Close()
}

func (c *coapConn) readLoop(r *reader) error {
	var tick time.Duration
	if c.fl != nil {
		tick = max(c.retry/4, 10*time.Millisecond)
	}
	var next time.Time
	var ack [4]byte
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
		m, err := parseCoAP(c.rbuf[:n])
		if err != nil {
			return err
		}
		switch m.typ {
		case coapACK:
			if c.fl != nil && m.code != coapEmpty {
				if err := c.onAck(r, m); err != nil {
					return err
				}
			}
			continue
		case coapRST:
			if c.fl != nil {
				return errors.New("coap: gateway reset a publish")
			}
			continue
		case coapCON:
			// Every CON gets its ACK, whatever it is; a retransmitted
			// notification is acknowledged again.
			b := append(ack[:0], 0x60, coapEmpty, byte(m.mid>>8), byte(m.mid))
			if err := c.write(b); err != nil {
				return err
			}
		}
		if c.pub != nil && !c.con && m.code>>5 >= 4 {
			// The answer to a NON publish: 2.04 is ignored, a refusal is not.
			return fmt.Errorf("coap: NON publish %w with %d.%02d", errRefused, m.code>>5, m.code&0x1f)
		}
		if r.sub == nil || !bytes.Equal(m.token, c.token[:]) {
			continue // e.g. NON 2.04 answers to NON publishes
		}
		switch {
		case m.code == coapContent:
			r.sub.deliver(m.payload, benchNow())
		case m.code>>5 >= 4:
			return fmt.Errorf("coap: observation ended with %d.%02d", m.code>>5, m.code&0x1f)
		}
	}
}

// onAck completes a CON publish: its piggybacked response must be a 2.xx.
func (c *coapConn) onAck(r *reader, m coapMsg) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	low := c.fl.low
	seq := low + int64(m.mid-c.midBase-uint16(low))
	s := c.fl.get(seq)
	if s == nil {
		return nil // the answer to a retransmission
	}
	if m.code>>5 != 2 {
		return fmt.Errorf("coap: publish %w with %d.%02d", errRefused, m.code>>5, m.code&0x1f)
	}
	r.pub.ackTo(c.fl.done(s))
	return nil
}
