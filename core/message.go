// Package core is iotgw's protocol-agnostic engine: one topic space, sessions
// with QoS 1/2 state, retained messages, wills and $SYS. Adapters translate
// their wire protocols into the types defined here; nothing in this package
// knows a wire format.
package core

import "time"

// Protocol names used in Origin.Protocol and in $SYS/metrics labels.
const (
	ProtoMQTT   = "mqtt"
	ProtoMQTTSN = "mqttsn"
	ProtoCoAP   = "coap"
	ProtoSTOMP  = "stomp"
	ProtoSys    = "sys"
)

// UserProperty is one MQTT 5 user property (or a STOMP application header);
// order and duplicates are preserved because MQTT 5 requires it [MQTT-3.3.2-18].
type UserProperty struct {
	Key   string
	Value string
}

// Origin records who published a message, for no-local, logging and ACLs.
type Origin struct {
	Protocol string // one of the Proto* constants
	ClientID string
	Username string
	Listener string // e.g. "tcp", "ws"
	// sessionKey identifies the publishing session incarnation, so that
	// no-local can compare identities without comparing client ids (a
	// taken-over session has the same client id but is a new incarnation).
	sessionKey string
}

// Message is the common message model. MQTT 5's property set is the model
// because it is the richest of the four protocols; the others map onto it.
// A Message is shared read-only between all the subscribers it is delivered
// to: never modify one after it has been published.
type Message struct {
	Topic           string
	Payload         []byte
	QoS             byte
	Retain          bool
	ContentType     string
	PayloadFormat   byte      // 0 unspecified bytes, 1 UTF-8
	ExpiresAt       time.Time // zero: never expires
	ResponseTopic   string
	CorrelationData []byte
	UserProps       []UserProperty
	Created         time.Time
	Origin          Origin
	// Arrived is the kernel receive time of the packet that carried the
	// message (SO_TIMESTAMPNS), in Unix nanoseconds; 0 when unknown. The
	// core orders publications against subscriptions by it (order.go);
	// it is not stored or forwarded.
	Arrived int64
}

// Expired reports whether the message's expiry has passed at now.
func (m *Message) Expired(now time.Time) bool {
	return !m.ExpiresAt.IsZero() && !now.Before(m.ExpiresAt)
}

// RemainingExpiry returns the whole seconds left before the message expires,
// rounded up, and false when the message never expires. Subscribers see the
// remaining interval, not the original one [MQTT-3.3.2-6].
func (m *Message) RemainingExpiry(now time.Time) (uint32, bool) {
	if m.ExpiresAt.IsZero() {
		return 0, false
	}
	d := m.ExpiresAt.Sub(now)
	if d <= 0 {
		return 0, true
	}
	secs := (d + time.Second - 1) / time.Second
	if secs > 0xFFFFFFFF {
		secs = 0xFFFFFFFF
	}
	return uint32(secs), true
}

// Delivery is one message on its way to one session's connection.
type Delivery struct {
	Msg *Message // shared and read-only; nil when Release is set
	// ID identifies the delivery within its session for acknowledgement
	// (the MQTT/MQTT-SN packet id); zero for QoS 0.
	ID     uint16
	QoS    byte     // effective QoS: min(message QoS, subscription QoS)
	Retain bool     // retain flag as it must appear on the wire
	Dup    bool     // a redelivery of ID
	SubIDs []uint32 // subscription identifiers of every matching subscription
	Filter string   // the (first) matching filter, for adapters that route by subscription
	// Release asks the adapter to resend the release step (MQTT PUBREL) of
	// a QoS 2 delivery whose receipt (PUBREC) was already acknowledged, as
	// required when a session resumes [MQTT-4.4.0-1].
	Release bool
}
