package core

import (
	"errors"
	"fmt"
	"time"
)

// Queue-full policies for a session's queue of undelivered QoS 1/2 messages.
const (
	DropOldest = "drop_oldest"
	DropNew    = "drop_new"
	// Backpressure keeps every QoS 1/2 message for a connected client and
	// slows its publishers instead (offline sessions fall back to
	// drop_oldest: an absent client cannot drain).
	Backpressure = "backpressure"
)

// Config holds the core's settings. cmd/iotgw fills it from the `session`,
// `limits` and `sys` configuration sections.
type Config struct {
	// MaxInflight bounds the unacknowledged QoS 1/2 deliveries per session
	// (the outbound window); a client's smaller Receive Maximum wins.
	MaxInflight int
	// MaxQueued bounds the messages a session holds beyond its inflight
	// window, online or offline.
	MaxQueued int
	// QueueFullPolicy is Backpressure, DropOldest or DropNew; every drop
	// is counted.
	QueueFullPolicy string
	// BackpressureTimeout bounds how long a publisher is held back by one
	// congested subscriber before its acknowledgement goes out anyway.
	BackpressureTimeout time.Duration
	// QueueQoS0 also queues QoS 0 messages for offline persistent sessions.
	QueueQoS0 bool
	// DefaultExpiry is the session expiry given to protocol versions that
	// have no expiry of their own (MQTT 3.1.1 clean session false, MQTT-SN,
	// STOMP); zero means such sessions never expire.
	DefaultExpiry time.Duration
	// MaxExpiry caps any session expiry a client asks for (zero: no cap).
	MaxExpiry time.Duration
	// SysInterval is the period of $SYS publications; zero disables them.
	SysInterval time.Duration
	// MaxTopicLevels and MaxTopicLength limit topic names and filters
	// (zero: no limit beyond the protocol's).
	MaxTopicLevels int
	MaxTopicLength int
	// MaxRetained bounds the retained store (zero: unlimited).
	MaxRetained int
	// MaxConnections bounds connected clients over all protocols (0: no
	// limit); a connection beyond it is refused as server busy.
	MaxConnections int
	// MaxSubscriptions bounds one session's subscriptions (0: no limit).
	MaxSubscriptions int
	// MaxMessageExpiry caps a message's expiry interval; messages without
	// one get it too (0: no cap).
	MaxMessageExpiry time.Duration
	// MaxDelayed bounds pending $delayed/{seconds}/{topic} messages; 0
	// disables delayed publishing (such topics are then ordinary).
	MaxDelayed int
	// OrderWindow is how long the core remembers recent publications
	// (those with Message.Arrived set) to give them to a subscription whose
	// SUBSCRIBE arrived before them but was added after they were routed
	// (order.go); 0 disables it (session.order_window).
	OrderWindow time.Duration
	// SharedStrategy picks the member of a shared subscription group that
	// receives a message: round_robin, random, sticky, hash_clientid or
	// hash_topic.
	SharedStrategy string
	// Limits are the limits per client and per source and the ban
	// list's (limits.go).
	Limits LimitsConfig
	// Version is reported on $SYS/broker/version.
	Version string
}

// DefaultConfig returns the defaults documented in configs/iotgw.yaml.
func DefaultConfig() Config {
	return Config{
		MaxInflight:         128,
		MaxQueued:           10000,
		QueueFullPolicy:     Backpressure,
		BackpressureTimeout: 10 * time.Second,
		DefaultExpiry:       2 * time.Hour,
		SysInterval:         10 * time.Second,
		SharedStrategy:      SharedRoundRobin,
		MaxDelayed:          10000,
		OrderWindow:         DefaultOrderWindow,
		Limits:              DefaultLimits(),
		Version:             "iotgw dev",
	}
}

// Validate reports every problem in c, joined.
func (c Config) Validate() error {
	var errs []error
	if c.MaxInflight < 1 || c.MaxInflight > 65535 {
		errs = append(errs, fmt.Errorf("session.max_inflight: %d is not within 1..65535", c.MaxInflight))
	}
	if c.MaxQueued < 0 {
		errs = append(errs, fmt.Errorf("session.max_queued: %d is negative", c.MaxQueued))
	}
	if c.QueueFullPolicy != DropOldest && c.QueueFullPolicy != DropNew && c.QueueFullPolicy != Backpressure {
		errs = append(errs, fmt.Errorf("session.queue_full_policy: %q is not %s, %s or %s", c.QueueFullPolicy, Backpressure, DropOldest, DropNew))
	}
	if c.BackpressureTimeout <= 0 {
		errs = append(errs, fmt.Errorf("session.backpressure_timeout: %v must be positive", c.BackpressureTimeout))
	}
	if c.DefaultExpiry < 0 {
		errs = append(errs, fmt.Errorf("session.default_expiry: %v is negative", c.DefaultExpiry))
	}
	if c.MaxExpiry < 0 {
		errs = append(errs, fmt.Errorf("session.max_expiry: %v is negative", c.MaxExpiry))
	}
	if c.OrderWindow < 0 {
		errs = append(errs, fmt.Errorf("session.order_window: %v is negative", c.OrderWindow))
	}
	if c.SysInterval < 0 {
		errs = append(errs, fmt.Errorf("sys.interval: %v is negative", c.SysInterval))
	}
	if c.MaxTopicLevels < 0 || c.MaxTopicLength < 0 || c.MaxRetained < 0 {
		errs = append(errs, errors.New("limits: max_topic_levels, max_topic_length and max_retained must not be negative"))
	}
	if c.MaxConnections < 0 || c.MaxSubscriptions < 0 || c.MaxMessageExpiry < 0 || c.MaxDelayed < 0 {
		errs = append(errs, errors.New("limits: max_connections, max_subscriptions, max_message_expiry and max_delayed must not be negative"))
	}
	errs = append(errs, c.Limits.validate()...)
	switch c.SharedStrategy {
	case SharedRoundRobin, SharedRandom, SharedSticky, SharedHashClientID, SharedHashTopic:
	default:
		errs = append(errs, fmt.Errorf("shared.strategy: %q is not round_robin, random, sticky, hash_clientid or hash_topic", c.SharedStrategy))
	}
	return errors.Join(errs...)
}
