// Package mqtt is iotgw's MQTT 3.1, 3.1.1 and 5.0 front end over TCP and
// WebSocket. The wire format lives in the codec subpackage; this package
// holds the connection state machine and the listeners, and maps every
// packet onto core calls.
package mqtt

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/iotgw/iotgw/internal/listen"
)

// Config is the `mqtt` configuration section.
type Config struct {
	// TCP is the TCP listen address; empty disables the listener.
	TCP string
	// WS is the WebSocket listen address; empty disables it.
	WS string
	// WSPath is the HTTP path of the WebSocket endpoints (ws and wss).
	WSPath string
	// TLS and WSS are the secured twins of TCP and WS (MQTT over TLS,
	// WebSocket over TLS); each runs only with its Secure set, which the
	// gateway does when a certificate is configured.
	TLS       string
	WSS       string
	TLSSecure *listen.Secure
	WSSSecure *listen.Secure
	// MaxPacketSize bounds an inbound packet, in bytes; a larger one
	// closes the connection (MQTT 5: DISCONNECT 0x95).
	MaxPacketSize int
	// ConnectTimeout closes a connection that sends no CONNECT in time.
	ConnectTimeout time.Duration
	// WriteTimeout closes a connection whose socket accepts no data for
	// this long (a dead or stuck peer).
	WriteTimeout time.Duration
	// MaxPendingQoS0 bounds QoS 0 messages waiting in one connection's
	// write queue; beyond it they are dropped and counted.
	MaxPendingQoS0 int
	// MaxKeepAlive (seconds) caps the keep alive a client may ask for; a
	// client asking for more, or for 0, is held to it (MQTT 5 tells it via
	// Server Keep Alive). Zero: no cap.
	MaxKeepAlive int
	// MaxQoS is the highest QoS granted to subscriptions and accepted on
	// publish.
	MaxQoS int
	// RetainAvailable allows retained messages.
	RetainAvailable bool
	// ReceiveMaximum is our MQTT 5 receive window for inbound QoS 1/2.
	ReceiveMaximum int
	// TopicAliasMaximum is how many inbound topic aliases an MQTT 5 client
	// may use.
	TopicAliasMaximum int
	// SharedSubscriptions, WildcardSubscriptions and
	// SubscriptionIdentifiers enable those features; MQTT 5 clients learn
	// the settings from CONNACK.
	SharedSubscriptions     bool
	WildcardSubscriptions   bool
	SubscriptionIdentifiers bool
	// AllowEmptyClientID accepts zero-length client ids (assigning one).
	AllowEmptyClientID bool
}

// DefaultConfig returns the defaults documented in configs/iotgw.yaml.
func DefaultConfig() Config {
	return Config{
		TCP:                ":1883",
		WS:                 ":8083",
		WSPath:             "/mqtt",
		TLS:                ":8883",
		WSS:                ":8084",
		MaxPacketSize:      1 << 20,
		ConnectTimeout:     10 * time.Second,
		WriteTimeout:       30 * time.Second,
		MaxPendingQoS0:     10000,
		MaxQoS:             2,
		RetainAvailable:    true,
		ReceiveMaximum:     1024,
		TopicAliasMaximum:  65535,
		AllowEmptyClientID: true,

		SharedSubscriptions:     true,
		WildcardSubscriptions:   true,
		SubscriptionIdentifiers: true,
	}
}

// Validate reports every problem in c, joined.
func (c Config) Validate() error {
	var errs []error
	for _, a := range []struct{ key, addr string }{{"mqtt.tcp", c.TCP}, {"mqtt.ws", c.WS}, {"mqtt.tls", c.TLS}, {"mqtt.wss", c.WSS}} {
		if a.addr == "" {
			continue
		}
		if err := listen.CheckAddr(a.addr); err != nil {
			errs = append(errs, fmt.Errorf("%s: %q: %v", a.key, a.addr, err))
		}
	}
	if (c.WS != "" || c.WSS != "") && !strings.HasPrefix(c.WSPath, "/") {
		errs = append(errs, fmt.Errorf("mqtt.ws_path: %q must start with /", c.WSPath))
	}
	if c.MaxPacketSize < 16 || c.MaxPacketSize > 268435460 {
		errs = append(errs, fmt.Errorf("mqtt.max_packet_size: %d is not within 16..268435460", c.MaxPacketSize))
	}
	if c.ConnectTimeout <= 0 {
		errs = append(errs, errors.New("mqtt.connect_timeout: must be positive"))
	}
	if c.WriteTimeout <= 0 {
		errs = append(errs, errors.New("mqtt.write_timeout: must be positive"))
	}
	if c.MaxPendingQoS0 < 1 {
		errs = append(errs, errors.New("mqtt.max_pending_qos0: must be at least 1"))
	}
	if c.MaxKeepAlive < 0 || c.MaxKeepAlive > 65535 {
		errs = append(errs, fmt.Errorf("mqtt.max_keepalive: %d is not within 0..65535", c.MaxKeepAlive))
	}
	if c.MaxQoS < 0 || c.MaxQoS > 2 {
		errs = append(errs, fmt.Errorf("mqtt.max_qos: %d is not 0, 1 or 2", c.MaxQoS))
	}
	if c.ReceiveMaximum < 1 || c.ReceiveMaximum > 65535 {
		errs = append(errs, fmt.Errorf("mqtt.receive_maximum: %d is not within 1..65535", c.ReceiveMaximum))
	}
	if c.TopicAliasMaximum < 0 || c.TopicAliasMaximum > 65535 {
		errs = append(errs, fmt.Errorf("mqtt.topic_alias_maximum: %d is not within 0..65535", c.TopicAliasMaximum))
	}
	return errors.Join(errs...)
}
