package core

import "errors"

// PasswordMethod is an enhanced authentication method (MQTT 5) without a
// conversation: its Authentication Data is the credential itself, a bearer
// token such as a JWT ("JWT"). The adapter hands the data to the
// authentication chain as the client's password, in CONNECT (Connect with
// ConnectRequest.AuthMethod set) and in a re-authentication (AUTH 0x19,
// Reauthenticate), so a token takes the same path as one sent in the
// password field; the method only gives the client a way to present a
// fresh token on a live connection, which MQTT 5 allows only under the
// method of the CONNECT [MQTT-4.12.1-1].
type PasswordMethod string

var _ AuthMethod = PasswordMethod("")

// Name returns the method's name.
func (m PasswordMethod) Name() string { return string(m) }

var errPasswordMethod = errors.New("a password method has no conversation")

// Start is never used: adapters recognise a PasswordMethod and pass its
// data to the chain (IsPasswordMethod).
func (m PasswordMethod) Start([]byte) (AuthConversation, []byte, error) {
	return nil, nil, errPasswordMethod
}

// IsPasswordMethod reports whether m carries its credential as data.
func IsPasswordMethod(m AuthMethod) bool {
	_, ok := m.(PasswordMethod)
	return ok
}
