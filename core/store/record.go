package store

import (
	"fmt"
	"time"
)

// Kind names a record kind; Load hands records of every kind back through
// the Record interface.
type Kind uint8

// Record kinds, in the order Load returns them within one session
// (KindSession … KindMessage), followed by the broker-wide kinds.
const (
	KindSession Kind = iota + 1
	KindSubscription
	KindInbound
	KindRegistration
	KindMessage
	KindRetained
	KindWill
	KindDelayed
	KindBan
)

var kindNames = [...]string{"", "session", "subscription", "inbound", "registration", "message", "retained", "will", "delayed", "ban"}

func (k Kind) String() string {
	if int(k) < len(kindNames) && k != 0 {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Record is one stored record as Load returns it: *Session, *Subscription,
// *Inbound, *Registration, *SessionMessage, *Retained, *PendingWill or
// *Delayed or *Ban. Every record Load hands out is freshly allocated; the receiver
// may keep it.
type Record interface {
	Kind() Kind
}

// UserProperty mirrors core.UserProperty: order and duplicates are kept.
type UserProperty struct {
	Key   string
	Value string
}

// Origin mirrors core.Origin without its per-incarnation session key,
// which does not survive a restart.
type Origin struct {
	Protocol string
	ClientID string
	Username string
	Listener string
}

// Message mirrors core.Message. Times are absolute (wall clock), so a
// message's expiry keeps counting while the gateway is down. Empty byte
// slices load back as nil.
type Message struct {
	Topic           string
	Payload         []byte
	QoS             byte
	Retain          bool
	ContentType     string
	PayloadFormat   byte
	ExpiresAt       time.Time // zero: never
	ResponseTopic   string
	CorrelationData []byte
	UserProps       []UserProperty
	Created         time.Time
	Origin          Origin
}

// Will is a connected client's will and its delay (MQTT 5 Will Delay
// Interval).
type Will struct {
	Msg   Message
	Delay time.Duration
}

// Session is a persistent session's own state. Its subscriptions,
// messages, inbound QoS 2 ids and adapter registrations are separate
// records under the same client id, so that each changes with one small
// write; DeleteSession removes them all at once.
type Session struct {
	ClientID string
	Protocol string
	Username string
	// Expiry is how long the session outlives its connection;
	// math.MaxInt64 (core.NeverExpire) passes through unchanged.
	Expiry time.Duration
	// DisconnectedAt is when the connection ended; zero while connected
	// (after a crash the loader picks the restart time, or the last time
	// the store knew of; that is the caller's choice).
	DisconnectedAt time.Time
	// Will is the connected client's will, nil if none. A will waiting for
	// its delay after a disconnect is a PendingWill instead.
	Will *Will
}

// Subscription is one subscription of a session, with the filter as the
// client subscribed it (including any "$share/{group}/" or "$queue/").
type Subscription struct {
	ClientID          string
	Filter            string
	QoS               byte
	NoLocal           bool
	RetainAsPublished bool
	RetainHandling    byte
	ID                uint32 // subscription identifier, 0 for none
}

// State is where a session's QoS 1/2 message stands.
type State uint8

const (
	// StateQueued: waiting behind the inflight window; no packet id yet.
	StateQueued State = iota
	// StateSent: handed to the client under PacketID, not yet
	// acknowledged (resent with DUP after a restart).
	StateSent
	// StateReceived: QoS 2 PUBREC seen, PUBREL sent, awaiting PUBCOMP.
	// The message body is no longer kept.
	StateReceived
)

func (s State) String() string {
	switch s {
	case StateQueued:
		return "queued"
	case StateSent:
		return "sent"
	case StateReceived:
		return "received"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// SessionMessage is one outbound QoS 1/2 message of a session, queued or
// inflight. Seq orders a session's messages (queue order, and resend order
// of the inflight ones); it is the record's key with ClientID, so a state
// change is a Put of the same ClientID and Seq.
type SessionMessage struct {
	ClientID string
	Seq      uint64
	State    State
	PacketID uint16 // zero while queued
	QoS      byte   // effective delivery QoS
	Retain   bool   // retain flag as delivered
	SubIDs   []uint32
	Filter   string // the matching filter
	// Share is the shared subscription ("$share/{group}/{filter}" as
	// subscribed) whose group chose this session, "" if none.
	Share string
	Msg   *Message // nil in StateReceived
}

// Inbound is an inbound QoS 2 packet id awaiting PUBREL [MQTT-4.3.3-2].
type Inbound struct {
	ClientID string
	PacketID uint16
}

// Registration is an adapter's opaque per-session state, e.g. the MQTT-SN
// topic registry of a persistent session.
type Registration struct {
	ClientID string
	Adapter  string
	Data     []byte
}

// Retained is the retained message of Msg.Topic.
type Retained struct {
	Msg Message
}

// PendingWill is a will waiting for its delay after its session's
// connection ended; at most one per client id. DeleteSession does not
// remove it: an ending session publishes its will.
type PendingWill struct {
	ClientID string
	Due      time.Time
	Msg      Message
}

// Delayed is a "$delayed/{seconds}/{topic}" message waiting for Due; Msg
// carries the real topic. ID is chosen by the caller, unique among pending
// delayed messages (Load returns them in ID order).
type Delayed struct {
	ID  uint64
	Due time.Time
	Msg Message
}

// Ban is one entry of the broker's ban list: connections from the client
// id, user name or address (Value; an address is stored as a CIDR prefix,
// "192.0.2.7/32") are refused until Until (zero: permanent). Field is
// "clientid", "username" or "address"; Field and Value are the key.
type Ban struct {
	Field   string
	Value   string
	Until   time.Time
	Created time.Time
	Reason  string
}

// Kind implements Record.
func (*Session) Kind() Kind { return KindSession }

// Kind implements Record.
func (*Subscription) Kind() Kind { return KindSubscription }

// Kind implements Record.
func (*Inbound) Kind() Kind { return KindInbound }

// Kind implements Record.
func (*Registration) Kind() Kind { return KindRegistration }

// Kind implements Record.
func (*SessionMessage) Kind() Kind { return KindMessage }

// Kind implements Record.
func (*Retained) Kind() Kind { return KindRetained }

// Kind implements Record.
func (*PendingWill) Kind() Kind { return KindWill }

// Kind implements Record.
func (*Delayed) Kind() Kind { return KindDelayed }

// Kind implements Record.
func (*Ban) Kind() Kind { return KindBan }

// Handler dispatches loaded records by kind: pass h.Handle to Store.Load.
// A nil function skips its kind.
type Handler struct {
	Session      func(*Session) error
	Subscription func(*Subscription) error
	Inbound      func(*Inbound) error
	Registration func(*Registration) error
	Message      func(*SessionMessage) error
	Retained     func(*Retained) error
	Will         func(*PendingWill) error
	Delayed      func(*Delayed) error
	Ban          func(*Ban) error
}

// Handle calls the function for r's kind.
func (h Handler) Handle(r Record) error {
	switch r := r.(type) {
	case *Session:
		if h.Session != nil {
			return h.Session(r)
		}
	case *Subscription:
		if h.Subscription != nil {
			return h.Subscription(r)
		}
	case *Inbound:
		if h.Inbound != nil {
			return h.Inbound(r)
		}
	case *Registration:
		if h.Registration != nil {
			return h.Registration(r)
		}
	case *SessionMessage:
		if h.Message != nil {
			return h.Message(r)
		}
	case *Retained:
		if h.Retained != nil {
			return h.Retained(r)
		}
	case *PendingWill:
		if h.Will != nil {
			return h.Will(r)
		}
	case *Delayed:
		if h.Delayed != nil {
			return h.Delayed(r)
		}
	case *Ban:
		if h.Ban != nil {
			return h.Ban(r)
		}
	}
	return nil
}
