package core

import "errors"

// Sentinel errors returned by the broker and sessions. Each adapter maps
// them, in one place, onto its protocol's reason codes.
var (
	ErrNotAuthorized       = errors.New("not authorized")
	ErrBadCredentials      = errors.New("bad user name or password")
	ErrClientIDInvalid     = errors.New("client identifier not valid")
	ErrSessionTakenOver    = errors.New("session taken over")
	ErrServerShuttingDown  = errors.New("server shutting down")
	ErrInvalidTopic        = errors.New("topic name invalid")
	ErrInvalidFilter       = errors.New("topic filter invalid")
	ErrSharedNotSupported  = errors.New("shared subscriptions not supported")
	ErrQuotaExceeded       = errors.New("quota exceeded")
	ErrPacketIDNotFound    = errors.New("packet identifier not found")
	ErrTopicTooLong        = errors.New("topic exceeds configured limits")
	ErrServerUnavailable   = errors.New("server unavailable")
	ErrSessionClosed       = errors.New("session closed")
	ErrWildcardUnsupported = errors.New("wildcard subscriptions not supported")
	ErrServerBusy          = errors.New("server busy")
)
