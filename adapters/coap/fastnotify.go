package coap

import (
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	coapNet "github.com/plgd-dev/go-coap/v3/net"

	"github.com/iotgw/iotgw/core"
)

// Option numbers of a notification [RFC 7252 §5.10, RFC 7641 §2].
const (
	optObserve      = 6
	optLocationPath = 8
	optMaxAge       = 14
)

// deliverInline sends a QoS 0 delivery as NON notifications from the
// caller's goroutine, sparing the hop to the endpoint's writer, and
// reports whether it did. It declines (the writer then sends it, as
// before) whenever order or state ask for the writer: something queued or
// being sent, an observation not ready or gone, a CON notification due
// (notify_type, the liveness check of RFC 7641 §4.5), a body that needs
// block-wise transfer, or a delivery the core wants acknowledged.
// Called without ep.mu; the UDP write does not block.
func (ep *endpoint) deliverInline(d core.Delivery) bool {
	s := ep.srv
	if d.Msg == nil || d.QoS != 0 || d.Release || d.ID != 0 ||
		s.cfg.NotifyType == NotifyCON || len(d.Msg.Payload) > s.cfg.BlockSize {
		return false
	}
	addr, laddr := ep.currentAddr()
	via := s.pathOf(laddr)
	if via == nil {
		return false
	}
	cc, err := via.conn(addr, laddr)
	if err != nil {
		return false
	}
	now := time.Now()
	ep.mu.Lock()
	if ep.closed || ep.busy || len(ep.queue) > 0 {
		ep.mu.Unlock()
		return false
	}
	for _, id := range d.SubIDs {
		o := ep.obs[id]
		if o == nil || !o.ready || o.removed || (!o.lastCON.IsZero() && now.Sub(o.lastCON) > livenessInterval) {
			ep.mu.Unlock()
			return false
		}
	}
	var out [][]byte
	for _, id := range d.SubIDs {
		o := ep.obs[id]
		if o.lastCON.IsZero() {
			o.lastCON = now // as notify does: the liveness interval starts now
		}
		mid := uint16(cc.GetMessageID())
		ep.recordNONLocked(mid, o)
		out = append(out, appendNotification(nil, mid, o.token, ep.nextSeqLocked(), d.Msg, o.wildcard, now))
	}
	ep.busy = true
	ep.mu.Unlock()

	var cm *coapNet.ControlMessage
	if t, ok := via.(*transport); ok && t.wildcard && laddr != nil {
		cm = &coapNet.ControlMessage{Dst: laddr.IP}
	}
	for _, b := range out {
		s.b.Stats().WireBytesSent.Add(uint64(len(b)))
		_ = via.send(b, addr, cm) // lost like any NON datagram
		s.pc.Out(pktNON)
		s.pc.Out(pktNotification)
	}
	ep.mu.Lock()
	ep.busy = false
	queued := len(ep.queue) > 0
	ep.mu.Unlock()
	if queued {
		ep.signal() // a delivery that arrived meanwhile waits for the writer
	}
	return true
}

// appendNotification encodes a NON 2.05 notification of msg, as
// setRepresentation fills one for go-coap: Observe, the topic as
// Location-Path for a wildcard observation, Content-Format, Max-Age from
// the expiry, and the payload. Options go in ascending number order
// [RFC 7252 §3.1].
func appendNotification(b []byte, mid uint16, token []byte, seq uint32, msg *core.Message, wildcard bool, now time.Time) []byte {
	b = append(b, 0x40|byte(message.NonConfirmable)<<4|byte(len(token)), byte(codes.Content), byte(mid>>8), byte(mid))
	b = append(b, token...)
	last := 0
	b, last = appendOption(b, last, optObserve, appendUint(nil, seq))
	if wildcard && topicFitsOptions(msg.Topic) {
		b, last = appendOption(b, last, optLocationPath, []byte("ps"))
		start := 0
		for i := 0; i <= len(msg.Topic); i++ {
			if i == len(msg.Topic) || msg.Topic[i] == '/' {
				b, last = appendOption(b, last, optLocationPath, []byte(msg.Topic[start:i]))
				start = i + 1
			}
		}
	}
	if cf, ok := contentFormatOf(msg); ok {
		b, last = appendOption(b, last, optContentFormat, appendUint(nil, uint32(cf)))
	}
	if secs, ok := msg.RemainingExpiry(now); ok {
		b, _ = appendOption(b, last, optMaxAge, appendUint(nil, secs))
	}
	if len(msg.Payload) > 0 {
		b = append(b, 0xff)
		b = append(b, msg.Payload...)
	}
	return b
}

// topicFitsOptions reports whether every level of topic fits in one
// Location-Path option (255 bytes); addTopicOption leaves the topic out
// otherwise.
func topicFitsOptions(topic string) bool {
	run := 0
	for i := 0; i < len(topic); i++ {
		if topic[i] == '/' {
			run = 0
			continue
		}
		if run++; run > 255 {
			return false
		}
	}
	return true
}

// appendUint appends v as a CoAP uint option value: big-endian, without
// leading zero bytes, so 0 is empty [RFC 7252 §3.2].
func appendUint(b []byte, v uint32) []byte {
	switch {
	case v == 0:
		return b
	case v < 1<<8:
		return append(b, byte(v))
	case v < 1<<16:
		return append(b, byte(v>>8), byte(v))
	case v < 1<<24:
		return append(b, byte(v>>16), byte(v>>8), byte(v))
	}
	return append(b, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

// appendOption appends option num after option prev with the delta and
// length encoding of RFC 7252 §3.1, and returns num as the new prev.
func appendOption(b []byte, prev, num int, v []byte) ([]byte, int) {
	delta, length := num-prev, len(v)
	i := len(b)
	b = append(b, 0)
	dn, b := optionNibble(b, delta)
	ln, b := optionNibble(b, length)
	b[i] = byte(dn<<4 | ln)
	return append(b, v...), num
}

// optionNibble returns the nibble for an option delta or length and
// appends its extended bytes.
func optionNibble(b []byte, v int) (int, []byte) {
	switch {
	case v < 13:
		return v, b
	case v < 269:
		return 13, append(b, byte(v-13))
	}
	return 14, append(b, byte((v-269)>>8), byte(v-269))
}
