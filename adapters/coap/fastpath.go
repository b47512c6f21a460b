package coap

import (
	"strings"
	"sync/atomic"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	coapNet "github.com/plgd-dev/go-coap/v3/net"
)

// The fast path answers the request that makes up nearly all CoAP traffic
// to a gateway — a connectionless publish, CON or NON POST/PUT to
// /ps/{topic} with at most Uri-Path, Uri-Query and Content-Format options
// — in the read goroutine, without go-coap's per-request message pool,
// response writer, block-wise layer and goroutine hop. It gives the
// answers go-coap's path (pubsub.go) gives: the same deduplication state,
// the same core calls, the same codes and payloads. Anything else —
// another method, resource or option, block-wise bodies, connection mode,
// a value the request parser would refuse, a malformed datagram — goes to
// go-coap untouched, and is answered there.

// fastPub is a publish request the fast path serves. Its slices alias
// the datagram.
type fastPub struct {
	con      bool
	code     codes.Code
	mid      uint16
	token    []byte
	segments []string // Uri-Path, percent-decoded; segments[0] is "ps"
	q        query
	cf       uint32
	hasCF    bool
	payload  []byte
}

// Option numbers the fast path reads [RFC 7252 §5.10].
const (
	optURIPath       = 11
	optContentFormat = 12
	optURIQuery      = 15
)

// parseFastPublish parses b as a publish the fast path can answer. ok
// false leaves the datagram to go-coap: it is malformed or not a simple
// publish. It never panics: every length is checked against b.
func parseFastPublish(b []byte, maxBody int) (fp fastPub, ok bool) {
	// Header [RFC 7252 §3]: Ver 1, T CON or NON, TKL 0..8, code POST/PUT.
	if len(b) < 4 || b[0]>>6 != 1 {
		return fp, false
	}
	typ, tkl := message.Type(b[0]>>4&3), int(b[0]&0x0f)
	if (typ != message.Confirmable && typ != message.NonConfirmable) || tkl > 8 || len(b) < 4+tkl {
		return fp, false
	}
	fp.code = codes.Code(b[1])
	if fp.code != codes.POST && fp.code != codes.PUT {
		return fp, false
	}
	fp.con = typ == message.Confirmable
	fp.mid = uint16(b[2])<<8 | uint16(b[3])
	fp.token = b[4 : 4+tkl]
	fp.q.qos = -1
	i, num := 4+tkl, 0
	for i < len(b) {
		if b[i] == 0xff {
			// A payload marker followed by nothing is a format error
			// [RFC 7252 §3]: go-coap's decoder says so.
			fp.payload = b[i+1:]
			if len(fp.payload) == 0 || len(fp.payload) > maxBody {
				return fp, false
			}
			break
		}
		delta, n, ok := optionField(b, i+1, int(b[i]>>4))
		if !ok {
			return fp, false
		}
		length, m, ok := optionField(b, i+1+n, int(b[i]&0x0f))
		if !ok {
			return fp, false
		}
		i += 1 + n + m
		if length > len(b)-i {
			return fp, false
		}
		num += delta
		v := b[i : i+length]
		i += length
		switch {
		case num == optURIPath && length <= 255:
			fp.segments = append(fp.segments, percentDecode(string(v)))
		case num == optURIQuery && length <= 255:
			if fp.q.parse(string(v)) != nil {
				return fp, false // go-coap's path answers 4.00
			}
		case num == optContentFormat && length <= 2 && !fp.hasCF:
			fp.hasCF = true
			for _, c := range v {
				fp.cf = fp.cf<<8 | uint32(c)
			}
		default:
			return fp, false
		}
	}
	if len(fp.segments) < 2 || fp.segments[0] != "ps" {
		return fp, false
	}
	return fp, true
}

// optionField decodes an option delta or length nibble and its extended
// bytes at b[i:] [RFC 7252 §3.1]: the value and how many extended bytes it
// took; 15 is reserved (the payload marker's) and refused.
func optionField(b []byte, i, nibble int) (v, n int, ok bool) {
	switch nibble {
	case 13:
		if i >= len(b) {
			return 0, 0, false
		}
		return int(b[i]) + 13, 1, true
	case 14:
		if i+1 >= len(b) {
			return 0, 0, false
		}
		return int(b[i])<<8 | int(b[i+1]) + 269, 2, true
	case 15:
		return 0, 0, false
	}
	return nibble, 0, true
}

// topic is the publish topic, as request.topic computes it.
func (fp *fastPub) topic() string { return strings.Join(fp.segments[1:], "/") }

// fastRequest serves b, received at at (Unix ns, 0 unknown), on the fast
// path and reports whether it did; false hands it to go-coap. Counters, inactivity and deduplication are kept as
// go-coap's path keeps them.
func (s *Server) fastRequest(p *peerState, b []byte, cm *coapNet.ControlMessage, at int64) bool {
	if s.cfg.ConnectionRequired {
		return false
	}
	fp, ok := parseFastPublish(b, s.cfg.MaxBodySize)
	if !ok || fp.q.token != "" {
		return false // connection mode is served by go-coap's path
	}
	if fp.q.username != "" || len(fp.q.password) > 0 {
		// Checking credentials may take a slow password hash (tens of ms
		// of argon2id) or a call out: on go-coap's path it runs on the
		// peer's own goroutine, here it would stall the socket's read
		// loop, which serves every peer.
		return false
	}
	topic := fp.topic()
	if topic == "" || hasWildcard(topic) {
		return false // refused there with the same diagnostics
	}
	s.b.Stats().WireBytesReceived.Add(uint64(len(b)))
	if fp.con {
		s.pc.In(pktCON)
	} else {
		s.pc.In(pktNON)
	}
	if fp.code == codes.POST {
		s.pc.In(pktPOST)
	} else {
		s.pc.In(pktPUT)
	}
	p.mon.Notify()
	switch v, ack := p.dd.check(fp.mid, time.Now()); v {
	case dedupPending, dedupDrop:
		return true // [RFC 7252 §4.5], as in processReceived
	case dedupAnswer:
		p.via.queue(ack, p.raddr, cm)
		s.b.Stats().WireBytesSent.Add(uint64(len(ack)))
		return true
	}
	req := &request{method: fp.code, con: fp.con, q: fp.q, cf: fp.cf, hasCF: fp.hasCF,
		peerAddr: p.addr, genID: p.clientID, arrived: at}
	req.fromPeer(p)
	c, rerr := s.identify(req, p.raddr)
	if rerr == nil {
		rerr = s.authenticate(c)
	}
	if rerr == nil {
		rerr = s.overRate(req, len(fp.payload))
	}
	if rerr != nil {
		p.via.queue(s.fastAnswer(p, &fp, rerr), p.raddr, cm)
		return true
	}
	var body []byte
	if len(fp.payload) > 0 {
		body = append([]byte(nil), fp.payload...) // the read buffer is reused
	}
	msg := s.publishMessage(req, topic, body)
	// The answer waits for the store as go-coap's path does (a QoS ≥ 1
	// message bound for a persistent subscriber is acknowledged once
	// durable), but the read loop does not: the store's commit goroutine
	// sends a late answer itself. state: 0 while PublishAsAsync runs, 1
	// once it returned, 2 when done ran before that (with answer set).
	var state atomic.Uint32
	var answer []byte
	token := append([]byte(nil), fp.token...)
	fp.token = token
	err := s.b.PublishAsAsync(c.info, msg, func(err error) {
		a := s.fastAnswer(p, &fp, storeError(err))
		if state.CompareAndSwap(0, 2) {
			answer = a
			return
		}
		_ = p.via.send(a, p.raddr, cm)
	})
	if err != nil {
		p.via.queue(s.fastAnswer(p, &fp, coreError(err, false)), p.raddr, cm)
		return true
	}
	if !state.CompareAndSwap(0, 1) {
		p.via.queue(answer, p.raddr, cm)
	}
	return true
}

// storeError is the answer to a publish whose store commit failed (nil
// when it succeeded).
func storeError(err error) *reqError {
	if err == nil {
		return nil
	}
	return coreError(err, false)
}

// fastAnswer encodes the answer to fp — 2.04 Changed, or e's code with its
// diagnostic payload — as a piggybacked ACK of a CON request or a NON
// message with a fresh id for a NON one [RFC 7252 §5.2], and completes the
// request's deduplication entry (a CON request's answer is kept for its
// retransmissions).
func (s *Server) fastAnswer(p *peerState, fp *fastPub, e *reqError) []byte {
	typ, mid := message.Acknowledgement, fp.mid
	if !fp.con {
		typ, mid = message.NonConfirmable, uint16(p.cc.GetMessageID())
	}
	code, diag := codes.Changed, ""
	if e != nil {
		code, diag = e.code, e.msg
	}
	b := make([]byte, 0, 4+len(fp.token)+7+len(diag))
	b = append(b, 0x40|byte(typ)<<4|byte(len(fp.token)), byte(code), byte(mid>>8), byte(mid))
	b = append(b, fp.token...)
	if e != nil && e.maxAge > 0 {
		b, _ = appendOption(b, 0, optMaxAge, appendUint(nil, e.maxAge))
	}
	if diag != "" {
		b = append(b, 0xff)
		b = append(b, diag...)
	}
	var ack []byte
	if fp.con {
		ack = b
	}
	p.dd.done(fp.mid, ack)
	s.b.Stats().WireBytesSent.Add(uint64(len(b)))
	return b
}
