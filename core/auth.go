package core

import (
	"context"
	"time"
)

// ClientInfo describes a client for authentication and authorization.
type ClientInfo struct {
	Protocol string
	ClientID string
	Username string
	Password []byte
	Listener string
	Remote   string
	// CertCN is the common name of the client's verified TLS certificate
	// ("" without one), for ${cert_cn} in access rules and hooks.
	CertCN string
	// KeepAlive is the connection's keep alive (ConnectRequest.KeepAlive).
	KeepAlive time.Duration
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

// Access is what a client asks to do: publish to a topic name (with that
// QoS and retain flag) or subscribe to a filter (at that maximum QoS).
type Access struct {
	Action Action
	Topic  string
	QoS    byte
	Retain bool
}

// Authorizer decides whether a client may publish to a topic or subscribe to
// a filter. It is called on the publish path, so it must be fast.
type Authorizer interface {
	Authorize(c *ClientInfo, a Access) bool
}

// AllowAll is the default Authenticator and Authorizer: it accepts everyone.
type AllowAll struct{}

// Authenticate accepts every client.
func (AllowAll) Authenticate(context.Context, *ClientInfo) error { return nil }

// Authorize allows every action.
func (AllowAll) Authorize(*ClientInfo, Access) bool { return true }

var (
	_ Authenticator = AllowAll{}
	_ Authorizer    = AllowAll{}
)
