package mqttsn

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/iotgw/iotgw/internal/dtlsnet"
	"github.com/iotgw/iotgw/internal/listen"
)

// PredefinedTopic binds a topic id to a topic name for every client
// (§3 "predefined topic id"); clients use it without REGISTER.
type PredefinedTopic struct {
	ID    uint16
	Topic string
}

// Config is the `mqttsn` configuration section.
type Config struct {
	// UDP is the listen address; empty disables the gateway.
	UDP string
	// DTLS is the listen address of MQTT-SN over DTLS; on only with
	// DTLSSecure set (TLS material configured for it), "" disables.
	DTLS string
	// DTLSSecure is the DTLS listener's material and bounds (main builds
	// it from the tls section merged with mqttsn.dtls_config).
	DTLSSecure *dtlsnet.Secure
	// GatewayID is this gateway's id in ADVERTISE and GWINFO (§5.3.2).
	GatewayID int
	// AdvertiseInterval is the ADVERTISE period in seconds, also sent as
	// its Duration field (§5.4.1); 0 disables ADVERTISE.
	AdvertiseInterval int
	// AdvertiseAddress is where ADVERTISE goes, a broadcast address:port.
	AdvertiseAddress string
	// Predefined topics shared by every client.
	Predefined []PredefinedTopic
	// QoSMinus1 accepts PUBLISH with QoS -1 from clients that have not
	// connected (§6.8); they are published at QoS 0.
	QoSMinus1 bool
	// QoSMinus1ClientID is the client id QoS -1 publications are
	// authenticated, authorized and attributed as.
	QoSMinus1ClientID string
	// SessionExpiry is how long a clean-session-false session (its
	// subscriptions, topic registry and queued messages) outlives its
	// connection; 0 uses the core's session.default_expiry.
	SessionExpiry time.Duration
	// MaxSleepBuffer bounds the session's queue of messages for one
	// client, waiting while it sleeps (QoS 0 included) or behind its
	// inflight window (beyond it the session's queue-full policy applies).
	MaxSleepBuffer int
	// MaxPendingQoS0 bounds the QoS 0 messages this adapter holds for an
	// active or awake client, on their way to the wire. Under the
	// backpressure policy it is the point where publishers that can be
	// slowed (MQTT, STOMP, MQTT-SN QoS 1/2) wait; twice it, messages are
	// dropped (counted). Otherwise they are dropped beyond it.
	MaxPendingQoS0 int
	// RetryInterval is Tretry (§6.13): the wait for a reply before a
	// REGISTER, PUBLISH or PUBREL to a client is sent again.
	RetryInterval time.Duration
	// MaxRetries is Nretry (§6.13): retransmissions before an active
	// client is considered lost (an awake client goes back to sleep).
	MaxRetries int
	// MaxInflight is the number of unacknowledged QoS 1/2 PUBLISH messages
	// to one client; 1 follows §6.5 and the 2.0 drafts.
	MaxInflight int
	// MaxTopics bounds the topic ids registered per client.
	MaxTopics int
	// ConnectTimeout drops a client that does not finish CONNECT (will
	// and AUTH exchanges) in time.
	ConnectTimeout time.Duration
	// NewSessionRate limits new clients per source IP address, per second
	// (0: unlimited); NewSessionBurst is the burst allowed above it.
	NewSessionRate  float64
	NewSessionBurst int
	// MaxClients bounds the clients known to the gateway (0: unlimited).
	MaxClients int
	// RequireAuth makes the AUTH extension mandatory: a client that sent
	// no AUTH before its CONNECT must send one right after it.
	RequireAuth bool
}

// DefaultConfig returns the defaults documented in configs/iotgw.yaml.
func DefaultConfig() Config {
	return Config{
		UDP:               ":1884",
		DTLS:              ":1885",
		GatewayID:         1,
		AdvertiseAddress:  "255.255.255.255:1884",
		QoSMinus1:         true,
		QoSMinus1ClientID: "mqttsn-qos-1",
		SessionExpiry:     2 * time.Hour,
		MaxSleepBuffer:    1000,
		MaxPendingQoS0:    1000,
		RetryInterval:     10 * time.Second,
		MaxRetries:        3,
		MaxInflight:       1,
		MaxTopics:         4096,
		ConnectTimeout:    30 * time.Second,
		NewSessionRate:    50,
		NewSessionBurst:   100,
	}
}

// Validate reports every problem in c, joined.
func (c Config) Validate() error {
	var errs []error
	add := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("mqttsn.%s: "+format, append([]any{key}, a...)...))
	}
	if c.UDP != "" {
		if err := listen.CheckAddr(c.UDP); err != nil {
			add("udp", "%q: %v", c.UDP, err)
		}
	}
	if c.DTLS != "" {
		if err := listen.CheckAddr(c.DTLS); err != nil {
			add("dtls", "%q: %v", c.DTLS, err)
		}
	}
	if c.GatewayID < 0 || c.GatewayID > 255 {
		add("gateway_id", "%d is not within 0..255", c.GatewayID)
	}
	if c.AdvertiseInterval < 0 || c.AdvertiseInterval > 65535 {
		add("advertise_interval", "%d is not within 0..65535 seconds", c.AdvertiseInterval)
	}
	if c.AdvertiseInterval > 0 {
		if err := listen.CheckAddr(c.AdvertiseAddress); err != nil {
			add("advertise_address", "%q: %v", c.AdvertiseAddress, err)
		}
	}
	ids := make(map[uint16]bool)
	names := make(map[string]bool)
	for i, p := range c.Predefined {
		switch {
		case p.ID == 0 || p.ID == 0xFFFF:
			add("predefined", "entry %d: id %d is reserved (§5.3.11)", i, p.ID)
		case ids[p.ID]:
			add("predefined", "entry %d: id %d is defined twice", i, p.ID)
		}
		switch {
		case p.Topic == "" || strings.ContainsAny(p.Topic, "+#\x00"):
			add("predefined", "entry %d: topic %q is not a topic name", i, p.Topic)
		case names[p.Topic]:
			add("predefined", "entry %d: topic %q is defined twice", i, p.Topic)
		}
		ids[p.ID], names[p.Topic] = true, true
	}
	if c.QoSMinus1 && c.QoSMinus1ClientID == "" {
		add("qos_minus1_client_id", "must not be empty when qos_minus1 is on")
	}
	if c.SessionExpiry < 0 {
		add("session_expiry", "%v is negative", c.SessionExpiry)
	}
	if c.MaxSleepBuffer < 1 {
		add("max_sleep_buffer", "%d must be at least 1", c.MaxSleepBuffer)
	}
	if c.MaxPendingQoS0 < 1 {
		add("max_pending_qos0", "%d must be at least 1", c.MaxPendingQoS0)
	}
	if c.RetryInterval <= 0 {
		add("retry_interval", "%v must be positive", c.RetryInterval)
	}
	if c.MaxRetries < 0 || c.MaxRetries > 100 {
		add("max_retries", "%d is not within 0..100", c.MaxRetries)
	}
	if c.MaxInflight < 1 || c.MaxInflight > 65535 {
		add("max_inflight", "%d is not within 1..65535", c.MaxInflight)
	}
	if c.MaxTopics < 1 || c.MaxTopics > 65534 {
		add("max_topics", "%d is not within 1..65534", c.MaxTopics)
	}
	if c.ConnectTimeout <= 0 {
		add("connect_timeout", "%v must be positive", c.ConnectTimeout)
	}
	if c.NewSessionRate < 0 {
		add("new_session_rate", "%v is negative", c.NewSessionRate)
	}
	if c.NewSessionRate > 0 && c.NewSessionBurst < 1 {
		add("new_session_burst", "%d must be at least 1", c.NewSessionBurst)
	}
	if c.MaxClients < 0 {
		add("max_clients", "%d is negative", c.MaxClients)
	}
	return errors.Join(errs...)
}
