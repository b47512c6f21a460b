// Package stomp is iotgw's STOMP 1.0, 1.1 and 1.2 front end over TCP and
// WebSocket. Frames are split off the byte stream under the configured
// limits here and decoded/encoded with go-stomp's frame package; the
// connection state machine maps every frame onto core calls. A STOMP
// destination is an MQTT topic (SEND) or topic filter (SUBSCRIBE) verbatim.
//
// A client that sends a client-id header on CONNECT gets a persistent
// session (session_expiry): its subscriptions outlive the connection, and
// when it reconnects with the same client-id and subscribes to the same
// destinations again (under any subscription id), it receives what it left
// unacknowledged (redelivered:true) and what arrived meanwhile. Without
// client-id the session ends with the connection.
package stomp

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/iotgw/iotgw/internal/listen"
)

// Values of Config.UnknownID.
const (
	UnknownIDError  = "error"
	UnknownIDIgnore = "ignore"
)

// Config is the `stomp` configuration section.
type Config struct {
	// TCP is the TCP listen address; empty disables the listener.
	TCP string
	// WS is the WebSocket listen address; empty disables it.
	WS string
	// WSPath is the HTTP path of the WebSocket endpoints (ws and wss).
	WSPath string
	// TLS and WSS are the secured twins of TCP and WS (STOMP over TLS,
	// WebSocket over TLS); each runs only with its Secure set, which the
	// gateway does when a certificate is configured.
	TLS       string
	WSS       string
	TLSSecure *listen.Secure
	WSSSecure *listen.Secure
	// Host, when set, is the only virtual host accepted in CONNECT's host
	// header; empty accepts any (or none).
	Host string
	// DefaultQoS is the MQTT QoS of a SEND without a qos header.
	DefaultQoS int
	// HeartBeatMin is the shortest heart-beat interval the server agrees
	// to, in either direction; a client asking for more frequent beats is
	// held to it. Zero honours whatever the client asks.
	HeartBeatMin time.Duration
	// HeartBeatGrace multiplies the negotiated client heart-beat interval
	// to give the read timeout after which a silent client is dropped.
	HeartBeatGrace float64
	// MaxFrameSize bounds an inbound frame (command, headers and body).
	MaxFrameSize int
	// MaxHeaders bounds the number of headers of an inbound frame.
	MaxHeaders int
	// MaxHeaderLength bounds one header line (name, colon and value).
	MaxHeaderLength int
	// MaxSubscriptions bounds the subscriptions of one connection.
	MaxSubscriptions int
	// MaxPendingAcks bounds the messages awaiting acknowledgement on one
	// connection (the core's inflight window for it); beyond it the core
	// queues further messages.
	MaxPendingAcks int
	// MaxRedeliveries is how often one message is sent again (after a
	// NACK, or when a persistent session resumes with it unacknowledged)
	// before it is dropped (counted and logged).
	MaxRedeliveries int
	// SessionExpiry is how long the session of a client that names itself
	// with a client-id header on CONNECT outlives its connection: its
	// subscriptions keep collecting messages, and unacknowledged ones are
	// sent again when it reconnects with the same client-id. Zero ends
	// every session with its connection (as for clients without
	// client-id).
	SessionExpiry time.Duration
	// ResubscribeTimeout is how long a resumed session keeps a
	// subscription of its previous connection that the client has not
	// subscribed to again; its held messages are then dropped and it is
	// unsubscribed, so that it does not fill the pending-ack window.
	ResubscribeTimeout time.Duration
	// UnknownID is what an ACK or NACK naming a message-id that is not
	// awaiting acknowledgement, or an UNSUBSCRIBE naming no subscription,
	// gets: UnknownIDError (an ERROR frame, as brokers send) or
	// UnknownIDIgnore.
	UnknownID string
	// MaxTransactions bounds the open transactions of one connection.
	MaxTransactions int
	// MaxTransactionFrames bounds the SEND/ACK/NACK frames buffered in one
	// transaction.
	MaxTransactionFrames int
	// MaxPendingQoS0 bounds QoS 0 deliveries waiting in one connection's
	// write queue; beyond it they are dropped and counted.
	MaxPendingQoS0 int
	// ConnectTimeout closes a connection that sends no CONNECT in time.
	ConnectTimeout time.Duration
	// WriteTimeout closes a connection whose socket accepts no data for
	// this long.
	WriteTimeout time.Duration
}

// DefaultConfig returns the defaults documented in configs/iotgw.yaml.
func DefaultConfig() Config {
	return Config{
		TCP:                  ":61613",
		WS:                   ":61614",
		WSPath:               "/stomp",
		TLS:                  ":61615",
		WSS:                  ":61616",
		DefaultQoS:           1,
		HeartBeatMin:         100 * time.Millisecond,
		HeartBeatGrace:       1.5,
		MaxFrameSize:         1 << 20,
		MaxHeaders:           64,
		MaxHeaderLength:      8192,
		MaxSubscriptions:     100,
		MaxPendingAcks:       128,
		MaxRedeliveries:      5,
		SessionExpiry:        2 * time.Hour,
		ResubscribeTimeout:   30 * time.Second,
		UnknownID:            UnknownIDError,
		MaxTransactions:      16,
		MaxTransactionFrames: 1000,
		MaxPendingQoS0:       1000,
		ConnectTimeout:       10 * time.Second,
		WriteTimeout:         30 * time.Second,
	}
}

// Validate reports every problem in c, joined.
func (c Config) Validate() error {
	var errs []error
	for _, a := range []struct{ key, addr string }{{"stomp.tcp", c.TCP}, {"stomp.ws", c.WS}, {"stomp.tls", c.TLS}, {"stomp.wss", c.WSS}} {
		if a.addr == "" {
			continue
		}
		if err := listen.CheckAddr(a.addr); err != nil {
			errs = append(errs, fmt.Errorf("%s: %q: %w", a.key, a.addr, err))
		}
	}
	if (c.WS != "" || c.WSS != "") && !strings.HasPrefix(c.WSPath, "/") {
		errs = append(errs, fmt.Errorf("stomp.ws_path: %q must start with /", c.WSPath))
	}
	if c.DefaultQoS < 0 || c.DefaultQoS > 2 {
		errs = append(errs, fmt.Errorf("stomp.default_qos: %d is not 0, 1 or 2", c.DefaultQoS))
	}
	if c.HeartBeatMin < 0 {
		errs = append(errs, fmt.Errorf("stomp.heartbeat_min: %v is negative", c.HeartBeatMin))
	}
	if c.HeartBeatGrace < 1 || c.HeartBeatGrace > 10 {
		errs = append(errs, fmt.Errorf("stomp.heartbeat_grace: %v is not within 1..10", c.HeartBeatGrace))
	}
	if c.MaxFrameSize < 64 {
		errs = append(errs, fmt.Errorf("stomp.max_frame_size: %d is below 64", c.MaxFrameSize))
	}
	if c.MaxHeaders < 4 {
		errs = append(errs, fmt.Errorf("stomp.max_headers: %d is below 4", c.MaxHeaders))
	}
	if c.MaxHeaderLength < 32 {
		errs = append(errs, fmt.Errorf("stomp.max_header_length: %d is below 32", c.MaxHeaderLength))
	}
	if c.MaxSubscriptions < 1 {
		errs = append(errs, fmt.Errorf("stomp.max_subscriptions: %d is below 1", c.MaxSubscriptions))
	}
	if c.MaxPendingAcks < 1 || c.MaxPendingAcks > 65535 {
		errs = append(errs, fmt.Errorf("stomp.max_pending_acks: %d is not within 1..65535", c.MaxPendingAcks))
	}
	if c.MaxRedeliveries < 0 {
		errs = append(errs, fmt.Errorf("stomp.max_redeliveries: %d is negative", c.MaxRedeliveries))
	}
	if c.SessionExpiry < 0 {
		errs = append(errs, fmt.Errorf("stomp.session_expiry: %v is negative", c.SessionExpiry))
	}
	if c.ResubscribeTimeout <= 0 {
		errs = append(errs, errors.New("stomp.resubscribe_timeout: must be positive"))
	}
	if c.UnknownID != UnknownIDError && c.UnknownID != UnknownIDIgnore {
		errs = append(errs, fmt.Errorf("stomp.unknown_id: %q is not %s or %s", c.UnknownID, UnknownIDError, UnknownIDIgnore))
	}
	if c.MaxTransactions < 0 {
		errs = append(errs, fmt.Errorf("stomp.max_transactions: %d is negative", c.MaxTransactions))
	}
	if c.MaxTransactionFrames < 1 {
		errs = append(errs, fmt.Errorf("stomp.max_transaction_frames: %d is below 1", c.MaxTransactionFrames))
	}
	if c.MaxPendingQoS0 < 1 {
		errs = append(errs, fmt.Errorf("stomp.max_pending_qos0: %d is below 1", c.MaxPendingQoS0))
	}
	if c.ConnectTimeout <= 0 {
		errs = append(errs, errors.New("stomp.connect_timeout: must be positive"))
	}
	if c.WriteTimeout <= 0 {
		errs = append(errs, errors.New("stomp.write_timeout: must be positive"))
	}
	return errors.Join(errs...)
}
