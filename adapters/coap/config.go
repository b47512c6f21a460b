package coap

import (
	"errors"
	"fmt"
	"time"

	"github.com/iotgw/iotgw/internal/dtlsnet"
	"github.com/iotgw/iotgw/internal/listen"
)

// Notification types (the `coap.notify_type` values).
const (
	// NotifyQoS sends QoS 0 notifications as NON and QoS 1/2 as CON (the
	// default, as in EMQX).
	NotifyQoS = "qos"
	// NotifyCON sends every notification as CON.
	NotifyCON = "con"
	// NotifyNON sends every notification as NON; QoS 1/2 deliveries are
	// then acknowledged to the core as soon as they are sent.
	NotifyNON = "non"
)

// Config is the `coap` configuration section.
type Config struct {
	// UDP is the UDP listen address; empty disables it.
	UDP string
	// DTLS is the listen address of CoAP over DTLS (coaps); on only with
	// DTLSSecure set (TLS material configured for it), "" disables.
	DTLS string
	// DTLSSecure is the DTLS listener's material and bounds (main builds
	// it from the tls section merged with coap.dtls_config).
	DTLSSecure *dtlsnet.Secure
	// ConnectionRequired makes connection mode mandatory: publish,
	// observe and read requests must then carry a valid clientid and
	// token obtained from POST /mqtt/connection.
	ConnectionRequired bool
	// Heartbeat is the connection-mode heartbeat interval: a connection
	// without any request for 1.5 × Heartbeat is closed and its session
	// (with its observations) ends.
	Heartbeat time.Duration
	// DefaultQoSCon and DefaultQoSNon are the QoS of a publish, and the
	// maximum QoS of an observation, whose query has no qos, by message
	// type (EMQX's `publish_qos`/`subscribe_qos = coap`).
	DefaultQoSCon int
	DefaultQoSNon int
	// NotifyType is NotifyQoS, NotifyCON or NotifyNON.
	NotifyType string
	// MaxBodySize bounds a request body, block-wise transfers included;
	// larger requests get 4.13 Request Entity Too Large.
	MaxBodySize int
	// BlockSize is the block size (16..1024, a power of two) used for
	// Block2 responses and notifications larger than it.
	BlockSize int
	// AckTimeout is the CoAP ACK_TIMEOUT for CON notifications.
	AckTimeout time.Duration
	// MaxRetransmit is how many times a CON notification is retransmitted
	// before the observation is removed.
	MaxRetransmit int
	// MaxPendingQoS0 bounds QoS 0 notifications waiting for one client;
	// beyond it they are dropped and counted.
	MaxPendingQoS0 int
	// ReadBuffer is the UDP socket receive buffer asked of the kernel
	// (SO_RCVBUF; Linux caps it at net.core.rmem_max), so that bursts from
	// many senders are not dropped before the gateway reads them; 0 keeps
	// the kernel default.
	ReadBuffer int
	// ExchangeLifetime bounds how long an idle client's message-id
	// deduplication state and unfinished block-wise transfers are kept.
	ExchangeLifetime time.Duration
}

// DefaultConfig returns the defaults documented in configs/iotgw.yaml.
func DefaultConfig() Config {
	return Config{
		UDP:              ":5683",
		DTLS:             ":5684",
		Heartbeat:        30 * time.Second,
		DefaultQoSCon:    1,
		DefaultQoSNon:    0,
		NotifyType:       NotifyQoS,
		MaxBodySize:      4 << 20,
		BlockSize:        1024,
		AckTimeout:       2 * time.Second,
		MaxRetransmit:    4,
		MaxPendingQoS0:   1000,
		ReadBuffer:       4 << 20,
		ExchangeLifetime: 247 * time.Second, // EXCHANGE_LIFETIME, RFC 7252 §4.8.2
	}
}

// Validate reports every problem in c, joined.
func (c Config) Validate() error {
	var errs []error
	if c.UDP != "" {
		if err := listen.CheckAddr(c.UDP); err != nil {
			errs = append(errs, fmt.Errorf("coap.udp: %q: %w", c.UDP, err))
		}
	}
	if c.DTLS != "" {
		if err := listen.CheckAddr(c.DTLS); err != nil {
			errs = append(errs, fmt.Errorf("coap.dtls: %q: %w", c.DTLS, err))
		}
	}
	if c.Heartbeat <= 0 {
		errs = append(errs, fmt.Errorf("coap.heartbeat: %v must be positive", c.Heartbeat))
	}
	if c.DefaultQoSCon < 0 || c.DefaultQoSCon > 2 {
		errs = append(errs, fmt.Errorf("coap.default_qos_con: %d is not 0, 1 or 2", c.DefaultQoSCon))
	}
	if c.DefaultQoSNon < 0 || c.DefaultQoSNon > 2 {
		errs = append(errs, fmt.Errorf("coap.default_qos_non: %d is not 0, 1 or 2", c.DefaultQoSNon))
	}
	switch c.NotifyType {
	case NotifyQoS, NotifyCON, NotifyNON:
	default:
		errs = append(errs, fmt.Errorf("coap.notify_type: %q is not %s, %s or %s", c.NotifyType, NotifyQoS, NotifyCON, NotifyNON))
	}
	if c.MaxBodySize < 1 {
		errs = append(errs, fmt.Errorf("coap.max_body_size: %d must be positive", c.MaxBodySize))
	}
	if _, ok := szxOf(c.BlockSize); !ok {
		errs = append(errs, fmt.Errorf("coap.block_size: %d is not 16, 32, 64, 128, 256, 512 or 1024", c.BlockSize))
	}
	if c.AckTimeout < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("coap.ack_timeout: %v is below 10ms", c.AckTimeout))
	}
	// go-coap drops an exchange at its first check once the count is
	// reached, so 0 would leave no time for the ACK at all.
	if c.MaxRetransmit < 1 || c.MaxRetransmit > 20 {
		errs = append(errs, fmt.Errorf("coap.max_retransmit: %d is not within 1..20", c.MaxRetransmit))
	}
	if c.MaxPendingQoS0 < 1 {
		errs = append(errs, errors.New("coap.max_pending_qos0: must be at least 1"))
	}
	if c.ReadBuffer < 0 {
		errs = append(errs, fmt.Errorf("coap.read_buffer: %d must not be negative", c.ReadBuffer))
	}
	if c.ExchangeLifetime < time.Second {
		errs = append(errs, fmt.Errorf("coap.exchange_lifetime: %v is below 1s", c.ExchangeLifetime))
	}
	return errors.Join(errs...)
}
