package stomp

import (
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/iotgw/iotgw/core"
)

// Header names this adapter gives a meaning beyond go-stomp's constants.
const (
	hdrQoS           = "qos"
	hdrRetain        = "retain"
	hdrReplyTo       = "reply-to"
	hdrCorrelationID = "correlation-id"
	hdrExpires       = "expires"
	hdrRedelivered   = "redelivered"
	hdrClientID      = "client-id"
)

// sendProtocolHeaders are the SEND headers that are STOMP protocol (or
// mapped onto a message field), so they never become MQTT 5 user
// properties.
var sendProtocolHeaders = map[string]bool{
	frame.Destination: true, frame.ContentLength: true, frame.ContentType: true,
	frame.Receipt: true, frame.Transaction: true, hdrQoS: true, hdrRetain: true,
}

// messageReservedHeaders are the MESSAGE headers the adapter writes itself;
// a user property of the same name is not copied, so it cannot shadow or
// duplicate them.
var messageReservedHeaders = map[string]bool{
	frame.Destination: true, frame.ContentLength: true, frame.ContentType: true,
	frame.Subscription: true, frame.MessageId: true, frame.Ack: true,
	frame.Receipt: true, frame.Transaction: true, hdrRedelivered: true, hdrRetain: true,
}

// messageFromSend builds the core message of a SEND frame: the destination
// is the MQTT topic verbatim (as EMQX's gateway does), the body is the
// payload, content-type is the MQTT 5 content type, qos and retain are
// iotgw's own headers, reply-to/correlation-id/expires map onto the MQTT 5
// response topic, correlation data and message expiry, and every other
// header becomes a user property, in order.
func messageFromSend(f *frame.Frame, defaultQoS byte, checkTopic func(string) error) (*core.Message, error) {
	dest, ok := f.Header.Contains(frame.Destination)
	if !ok || dest == "" {
		return nil, fmt.Errorf("%w: SEND without destination", errMissingHeader)
	}
	m := &core.Message{Topic: dest, Payload: f.Body, QoS: defaultQoS}
	if m.Payload == nil {
		m.Payload = []byte{}
	}
	m.ContentType = f.Header.Get(frame.ContentType)
	if v, ok := f.Header.Contains(hdrQoS); ok {
		if len(v) != 1 || v[0] < '0' || v[0] > '2' {
			return nil, fmt.Errorf("%w: qos %q is not 0, 1 or 2", errBadHeader, v)
		}
		m.QoS = v[0] - '0'
	}
	if v, ok := f.Header.Contains(hdrRetain); ok {
		r, err := strconv.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("%w: retain %q is not a boolean", errBadHeader, v)
		}
		m.Retain = r
	}
	// The mapped headers whose value was taken; one that cannot be mapped
	// (a reply-to that is no MQTT topic) stays a user property instead of
	// being lost.
	consumed := map[string]bool{}
	if v, ok := f.Header.Contains(hdrReplyTo); ok && checkTopic(v) == nil {
		m.ResponseTopic = v
		consumed[hdrReplyTo] = true
	}
	if v, ok := f.Header.Contains(hdrCorrelationID); ok {
		m.CorrelationData = []byte(v)
		consumed[hdrCorrelationID] = true
	}
	if v, ok := f.Header.Contains(hdrExpires); ok {
		// ActiveMQ's convention: milliseconds since the epoch, 0 never.
		if ms, err := strconv.ParseInt(v, 10, 64); err == nil && ms >= 0 {
			if ms > 0 {
				m.ExpiresAt = time.UnixMilli(ms)
			}
			consumed[hdrExpires] = true
		}
	}
	for i := 0; i < f.Header.Len(); i++ {
		k, v := f.Header.GetAt(i)
		if sendProtocolHeaders[k] || consumed[k] {
			continue
		}
		m.UserProps = append(m.UserProps, core.UserProperty{Key: k, Value: v})
	}
	return m, nil
}

// messageFrame builds the MESSAGE frame of one delivery to one
// subscription [STOMP 1.2 "MESSAGE"]: the concrete destination, the
// subscription id, a message-id unique on the connection, ack (1.2, when
// the subscription acknowledges), content-type and content-length (always,
// so bodies with NUL octets survive), then the mapped MQTT 5 fields and
// user properties.
func messageFrame(d *core.Delivery, sub *subscription, msgID string, v12, redelivered bool) *frame.Frame {
	m := d.Msg
	// The entries are gathered on the stack (for the usual few headers)
	// and copied once into a header of the exact size, rather than grown
	// by Add.
	var arr [32]string
	h := append(arr[:0],
		frame.Destination, m.Topic,
		frame.Subscription, sub.id,
		frame.MessageId, msgID,
	)
	if v12 && sub.ack != ackAuto {
		h = append(h, frame.Ack, msgID)
	}
	if m.ContentType != "" {
		h = append(h, frame.ContentType, m.ContentType)
	}
	h = append(h, frame.ContentLength, strconv.Itoa(len(m.Payload)))
	if redelivered {
		h = append(h, hdrRedelivered, "true")
	}
	if d.Retain {
		h = append(h, hdrRetain, "true")
	}
	if m.ResponseTopic != "" {
		h = append(h, hdrReplyTo, m.ResponseTopic)
	}
	if m.CorrelationData != nil && utf8.Valid(m.CorrelationData) {
		h = append(h, hdrCorrelationID, string(m.CorrelationData))
	}
	if !m.ExpiresAt.IsZero() {
		h = append(h, hdrExpires, strconv.FormatInt(m.ExpiresAt.UnixMilli(), 10))
	}
	for _, u := range m.UserProps {
		if u.Key == "" || messageReservedHeaders[u.Key] ||
			(u.Key == hdrReplyTo && m.ResponseTopic != "") ||
			(u.Key == hdrCorrelationID && m.CorrelationData != nil) ||
			(u.Key == hdrExpires && !m.ExpiresAt.IsZero()) {
			continue
		}
		h = append(h, u.Key, u.Value)
	}
	return &frame.Frame{Command: frame.MESSAGE, Header: frame.NewHeader(h...), Body: m.Payload}
}
