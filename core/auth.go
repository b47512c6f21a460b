package core

import "context"

// ClientInfo describes a client for authentication and authorization.
type ClientInfo struct {
	Protocol string
	ClientID string
	Username string
	Password []byte
	Listener string
	Remote   string
	// CertCommonName is the common name of the client's verified TLS
	// certificate ("" without one), for hooks (${cert_common_name}).
	CertCommonName string
	// Grant is what authentication gave the client beyond entry
	// (superuser, own rules, an expiry); nil for most clients.
	Grant *Grant
}

// Action is what a client wants to do on a topic.
type Action int

// Actions checked by an Authorizer.
const (
	ActionPublish Action = iota + 1
	ActionSubscribe
)

// String returns the action's configuration spelling.
func (a Action) String() string {
	switch a {
	case ActionPublish:
		return "publish"
	case ActionSubscribe:
		return "subscribe"
	}
	return "unknown"
}

// Authenticator checks a client's credentials at connect time. It returns
// nil to accept, ErrBadCredentials or ErrNotAuthorized to refuse.
type Authenticator interface {
	Authenticate(ctx context.Context, c *ClientInfo) error
}

// Authorizer decides whether a client may publish to a topic or subscribe to
// a filter. It is called on the publish path, so it must be fast.
type Authorizer interface {
	Authorize(c *ClientInfo, action Action, topic string) bool
}

// Access is one publish or subscribe in full, for an AccessAuthorizer.
type Access struct {
	Action Action
	// Topic is the topic name of a publish, the filter of a subscribe.
	Topic string
	// QoS is the message's QoS or the subscription's maximum.
	QoS byte
	// Retain is the message's retain flag (false for a subscribe).
	Retain bool
}

// AccessAuthorizer is an Authorizer that also wants the QoS and retain
// flag where the broker knows them (an HTTP hook's ${qos}, ${retain}); the
// broker calls AuthorizeAccess then, Authorize where it knows only the
// topic (an adapter's pre-check).
type AccessAuthorizer interface {
	Authorizer
	AuthorizeAccess(c *ClientInfo, a Access) bool
}

// AllowAll is the default Authenticator and Authorizer: it accepts everyone.
type AllowAll struct{}

// Authenticate accepts every client.
func (AllowAll) Authenticate(context.Context, *ClientInfo) error { return nil }

// Authorize allows every action.
func (AllowAll) Authorize(*ClientInfo, Action, string) bool { return true }

var (
	_ Authenticator = AllowAll{}
	_ Authorizer    = AllowAll{}
)
