// Package app turns configuration (embedded defaults, a YAML file and
// IOTGW_* environment variables, through viper) into a running gateway.
// It is the only place that touches viper; every other package takes its
// typed Config.
package app

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cast"
	"github.com/spf13/viper"

	"github.com/iotgw/iotgw/adapters/coap"
	"github.com/iotgw/iotgw/adapters/mqtt"
	"github.com/iotgw/iotgw/adapters/mqttsn"
	"github.com/iotgw/iotgw/adapters/stomp"
	"github.com/iotgw/iotgw/core"
	"github.com/iotgw/iotgw/core/store"
	"github.com/iotgw/iotgw/internal/auth/httphook"
	jwtauth "github.com/iotgw/iotgw/internal/auth/jwt"
	"github.com/iotgw/iotgw/internal/auth/passwd"
	"github.com/iotgw/iotgw/internal/tlsconf"
)

// Config is the whole gateway's typed configuration.
type Config struct {
	LogLevel  string
	LogFormat string
	Core      core.Config
	MQTT      mqtt.Config
	STOMP     stomp.Config
	MQTTSN    mqttsn.Config
	CoAP      coap.Config
	ACL       core.ACL
	// Store is where sessions, queued messages and retained messages are
	// kept across restarts.
	Store store.Config
	// Users and AllowAnonymous configure password authentication (and
	// SCRAM-SHA-256 for MQTT 5 enhanced authentication).
	Users          []core.User
	AllowAnonymous bool
	// ACLFile holds more access rules (acl.file), reloaded on change.
	ACLFile string
	// AuthChain orders the authentication backends by name (auth.chain);
	// empty: every configured backend in the default order.
	AuthChain []string
	// anonymousExplicit records that auth.allow_anonymous was set, and
	// anonymousOffBecause why it was turned off when it was not
	// (secureDefaults).
	anonymousExplicit   bool
	anonymousOffBecause string
	// JWT is the auth.jwt backend (on when it has a key source).
	JWT jwtauth.Config
	// PasswordFile is the password file backend (auth.password_file).
	PasswordFile passwd.Config
	// TLS is the shared tls section of every secured listener; TLSFor
	// merges a listener's own section into it.
	TLS tlsconf.Config
	// tlsOverrides are the listeners' own tls sections that set a key, by
	// section key ("mqtt.tls_config"); see tlsOverrideSettings.
	tlsOverrides map[string]*tlsconf.Override
	// AuthHTTP is the authentication hook (auth.http), ACLHTTP the
	// authorization hook (acl.http); off without a URL.
	AuthHTTP httphook.Config
	ACLHTTP  httphook.Config
	// HTTP is the management listener (http).
	HTTP HTTPConfig
	// values are every key's value as loaded, for the running
	// configuration (Gateway.RunningConfig); path, doc and environ where
	// it came from, for a reload.
	values  map[string]any
	path    string
	doc     []byte
	environ []string
	// rawYAML is the document being loaded, for keys whose case the
	// loader loses (httphook.go, restoreKeyCase).
	rawYAML []byte
}

// setting is one configuration key: its default and how it is stored into
// Config. Keeping the table in one place makes the unknown-key check, the
// environment overrides and the documentation agree.
type setting struct {
	key   string
	def   any
	apply func(c *Config, v any) error
}

// The setters are generic over the struct they fill, so a section type
// of another package (tlsconf.Config) is set the same way as Config.

func str[T any](f func(c *T) *string) func(*T, any) error {
	return func(c *T, v any) error {
		s, err := cast.ToStringE(v)
		*f(c) = s
		return err
	}
}

func integer[T any](f func(c *T) *int) func(*T, any) error {
	return func(c *T, v any) error {
		n, err := cast.ToIntE(v)
		*f(c) = n
		return err
	}
}

func boolean[T any](f func(c *T) *bool) func(*T, any) error {
	return func(c *T, v any) error {
		b, err := cast.ToBoolE(v)
		*f(c) = b
		return err
	}
}

func float[T any](f func(c *T) *float64) func(*T, any) error {
	return func(c *T, v any) error {
		x, err := cast.ToFloat64E(v)
		*f(c) = x
		return err
	}
}

func duration[T any](f func(c *T) *time.Duration) func(*T, any) error {
	return func(c *T, v any) error {
		// A bare number is seconds, the unit every protocol here uses.
		if n, err := cast.ToIntE(v); err == nil {
			*f(c) = time.Duration(n) * time.Second
			return nil
		}
		d, err := cast.ToDurationE(v)
		*f(c) = d
		return err
	}
}

func settings() []setting {
	dc := core.DefaultConfig()
	dm := mqtt.DefaultConfig()
	ds := stomp.DefaultConfig()
	dn := mqttsn.DefaultConfig()
	dc2 := coap.DefaultConfig()
	dst := store.DefaultConfig()
	dj := jwtauth.DefaultConfig()
	dpw := passwd.DefaultConfig()
	dl := dc.Limits
	return append([]setting{
		{"log.level", "info", str(func(c *Config) *string { return &c.LogLevel })},
		{"log.format", "console", str(func(c *Config) *string { return &c.LogFormat })},

		{"mqtt.tcp", dm.TCP, str(func(c *Config) *string { return &c.MQTT.TCP })},
		{"mqtt.ws", dm.WS, str(func(c *Config) *string { return &c.MQTT.WS })},
		{"mqtt.ws_path", dm.WSPath, str(func(c *Config) *string { return &c.MQTT.WSPath })},
		{"mqtt.tls", dm.TLS, str(func(c *Config) *string { return &c.MQTT.TLS })},
		{"mqtt.wss", dm.WSS, str(func(c *Config) *string { return &c.MQTT.WSS })},
		{"mqtt.max_packet_size", dm.MaxPacketSize, integer(func(c *Config) *int { return &c.MQTT.MaxPacketSize })},
		{"mqtt.connect_timeout", dm.ConnectTimeout.String(), duration(func(c *Config) *time.Duration { return &c.MQTT.ConnectTimeout })},
		{"mqtt.write_timeout", dm.WriteTimeout.String(), duration(func(c *Config) *time.Duration { return &c.MQTT.WriteTimeout })},
		{"mqtt.max_pending_qos0", dm.MaxPendingQoS0, integer(func(c *Config) *int { return &c.MQTT.MaxPendingQoS0 })},
		{"mqtt.max_keepalive", dm.MaxKeepAlive, integer(func(c *Config) *int { return &c.MQTT.MaxKeepAlive })},
		{"mqtt.max_qos", dm.MaxQoS, integer(func(c *Config) *int { return &c.MQTT.MaxQoS })},
		{"mqtt.retain_available", dm.RetainAvailable, boolean(func(c *Config) *bool { return &c.MQTT.RetainAvailable })},
		{"mqtt.receive_maximum", dm.ReceiveMaximum, integer(func(c *Config) *int { return &c.MQTT.ReceiveMaximum })},
		{"mqtt.topic_alias_maximum", dm.TopicAliasMaximum, integer(func(c *Config) *int { return &c.MQTT.TopicAliasMaximum })},
		{"mqtt.shared_subscriptions", dm.SharedSubscriptions, boolean(func(c *Config) *bool { return &c.MQTT.SharedSubscriptions })},
		{"mqtt.wildcard_subscriptions", dm.WildcardSubscriptions, boolean(func(c *Config) *bool { return &c.MQTT.WildcardSubscriptions })},
		{"mqtt.subscription_identifiers", dm.SubscriptionIdentifiers, boolean(func(c *Config) *bool { return &c.MQTT.SubscriptionIdentifiers })},
		{"mqtt.allow_empty_client_id", dm.AllowEmptyClientID, boolean(func(c *Config) *bool { return &c.MQTT.AllowEmptyClientID })},

		{"stomp.tcp", ds.TCP, str(func(c *Config) *string { return &c.STOMP.TCP })},
		{"stomp.ws", ds.WS, str(func(c *Config) *string { return &c.STOMP.WS })},
		{"stomp.ws_path", ds.WSPath, str(func(c *Config) *string { return &c.STOMP.WSPath })},
		{"stomp.tls", ds.TLS, str(func(c *Config) *string { return &c.STOMP.TLS })},
		{"stomp.wss", ds.WSS, str(func(c *Config) *string { return &c.STOMP.WSS })},
		{"stomp.host", ds.Host, str(func(c *Config) *string { return &c.STOMP.Host })},
		{"stomp.default_qos", ds.DefaultQoS, integer(func(c *Config) *int { return &c.STOMP.DefaultQoS })},
		{"stomp.heartbeat_min", ds.HeartBeatMin.String(), duration(func(c *Config) *time.Duration { return &c.STOMP.HeartBeatMin })},
		{"stomp.heartbeat_grace", ds.HeartBeatGrace, float(func(c *Config) *float64 { return &c.STOMP.HeartBeatGrace })},
		{"stomp.max_frame_size", ds.MaxFrameSize, integer(func(c *Config) *int { return &c.STOMP.MaxFrameSize })},
		{"stomp.max_headers", ds.MaxHeaders, integer(func(c *Config) *int { return &c.STOMP.MaxHeaders })},
		{"stomp.max_header_length", ds.MaxHeaderLength, integer(func(c *Config) *int { return &c.STOMP.MaxHeaderLength })},
		{"stomp.max_subscriptions", ds.MaxSubscriptions, integer(func(c *Config) *int { return &c.STOMP.MaxSubscriptions })},
		{"stomp.max_pending_acks", ds.MaxPendingAcks, integer(func(c *Config) *int { return &c.STOMP.MaxPendingAcks })},
		{"stomp.max_redeliveries", ds.MaxRedeliveries, integer(func(c *Config) *int { return &c.STOMP.MaxRedeliveries })},
		{"stomp.max_transactions", ds.MaxTransactions, integer(func(c *Config) *int { return &c.STOMP.MaxTransactions })},
		{"stomp.max_transaction_frames", ds.MaxTransactionFrames, integer(func(c *Config) *int { return &c.STOMP.MaxTransactionFrames })},
		{"stomp.max_pending_qos0", ds.MaxPendingQoS0, integer(func(c *Config) *int { return &c.STOMP.MaxPendingQoS0 })},
		{"stomp.connect_timeout", ds.ConnectTimeout.String(), duration(func(c *Config) *time.Duration { return &c.STOMP.ConnectTimeout })},
		{"stomp.session_expiry", ds.SessionExpiry.String(), duration(func(c *Config) *time.Duration { return &c.STOMP.SessionExpiry })},
		{"stomp.resubscribe_timeout", ds.ResubscribeTimeout.String(), duration(func(c *Config) *time.Duration { return &c.STOMP.ResubscribeTimeout })},
		{"stomp.unknown_id", ds.UnknownID, str(func(c *Config) *string { return &c.STOMP.UnknownID })},
		{"stomp.write_timeout", ds.WriteTimeout.String(), duration(func(c *Config) *time.Duration { return &c.STOMP.WriteTimeout })},

		{"mqttsn.udp", dn.UDP, str(func(c *Config) *string { return &c.MQTTSN.UDP })},
		{"mqttsn.dtls", dn.DTLS, str(func(c *Config) *string { return &c.MQTTSN.DTLS })},
		{"mqttsn.gateway_id", dn.GatewayID, integer(func(c *Config) *int { return &c.MQTTSN.GatewayID })},
		{"mqttsn.advertise_interval", dn.AdvertiseInterval, integer(func(c *Config) *int { return &c.MQTTSN.AdvertiseInterval })},
		{"mqttsn.advertise_address", dn.AdvertiseAddress, str(func(c *Config) *string { return &c.MQTTSN.AdvertiseAddress })},
		{"mqttsn.predefined", []any{}, snPredefined},
		{"mqttsn.qos_minus1", dn.QoSMinus1, boolean(func(c *Config) *bool { return &c.MQTTSN.QoSMinus1 })},
		{"mqttsn.qos_minus1_client_id", dn.QoSMinus1ClientID, str(func(c *Config) *string { return &c.MQTTSN.QoSMinus1ClientID })},
		{"mqttsn.session_expiry", dn.SessionExpiry.String(), duration(func(c *Config) *time.Duration { return &c.MQTTSN.SessionExpiry })},
		{"mqttsn.max_sleep_buffer", dn.MaxSleepBuffer, integer(func(c *Config) *int { return &c.MQTTSN.MaxSleepBuffer })},
		{"mqttsn.max_pending_qos0", dn.MaxPendingQoS0, integer(func(c *Config) *int { return &c.MQTTSN.MaxPendingQoS0 })},
		{"mqttsn.retry_interval", dn.RetryInterval.String(), duration(func(c *Config) *time.Duration { return &c.MQTTSN.RetryInterval })},
		{"mqttsn.max_retries", dn.MaxRetries, integer(func(c *Config) *int { return &c.MQTTSN.MaxRetries })},
		{"mqttsn.max_inflight", dn.MaxInflight, integer(func(c *Config) *int { return &c.MQTTSN.MaxInflight })},
		{"mqttsn.max_topics", dn.MaxTopics, integer(func(c *Config) *int { return &c.MQTTSN.MaxTopics })},
		{"mqttsn.connect_timeout", dn.ConnectTimeout.String(), duration(func(c *Config) *time.Duration { return &c.MQTTSN.ConnectTimeout })},
		{"mqttsn.new_session_rate", dn.NewSessionRate, float(func(c *Config) *float64 { return &c.MQTTSN.NewSessionRate })},
		{"mqttsn.new_session_burst", dn.NewSessionBurst, integer(func(c *Config) *int { return &c.MQTTSN.NewSessionBurst })},
		{"mqttsn.max_clients", dn.MaxClients, integer(func(c *Config) *int { return &c.MQTTSN.MaxClients })},
		{"mqttsn.require_auth", dn.RequireAuth, boolean(func(c *Config) *bool { return &c.MQTTSN.RequireAuth })},

		{"coap.udp", dc2.UDP, str(func(c *Config) *string { return &c.CoAP.UDP })},
		{"coap.dtls", dc2.DTLS, str(func(c *Config) *string { return &c.CoAP.DTLS })},
		{"coap.connection_required", dc2.ConnectionRequired, boolean(func(c *Config) *bool { return &c.CoAP.ConnectionRequired })},
		{"coap.heartbeat", dc2.Heartbeat.String(), duration(func(c *Config) *time.Duration { return &c.CoAP.Heartbeat })},
		{"coap.default_qos_con", dc2.DefaultQoSCon, integer(func(c *Config) *int { return &c.CoAP.DefaultQoSCon })},
		{"coap.default_qos_non", dc2.DefaultQoSNon, integer(func(c *Config) *int { return &c.CoAP.DefaultQoSNon })},
		{"coap.notify_type", dc2.NotifyType, str(func(c *Config) *string { return &c.CoAP.NotifyType })},
		{"coap.max_body_size", dc2.MaxBodySize, integer(func(c *Config) *int { return &c.CoAP.MaxBodySize })},
		{"coap.block_size", dc2.BlockSize, integer(func(c *Config) *int { return &c.CoAP.BlockSize })},
		{"coap.ack_timeout", dc2.AckTimeout.String(), duration(func(c *Config) *time.Duration { return &c.CoAP.AckTimeout })},
		{"coap.max_retransmit", dc2.MaxRetransmit, integer(func(c *Config) *int { return &c.CoAP.MaxRetransmit })},
		{"coap.max_pending_qos0", dc2.MaxPendingQoS0, integer(func(c *Config) *int { return &c.CoAP.MaxPendingQoS0 })},
		{"coap.read_buffer", dc2.ReadBuffer, integer(func(c *Config) *int { return &c.CoAP.ReadBuffer })},
		{"coap.exchange_lifetime", dc2.ExchangeLifetime.String(), duration(func(c *Config) *time.Duration { return &c.CoAP.ExchangeLifetime })},

		{"session.max_inflight", dc.MaxInflight, integer(func(c *Config) *int { return &c.Core.MaxInflight })},
		{"session.max_queued", dc.MaxQueued, integer(func(c *Config) *int { return &c.Core.MaxQueued })},
		{"session.queue_full_policy", dc.QueueFullPolicy, str(func(c *Config) *string { return &c.Core.QueueFullPolicy })},
		{"session.backpressure_timeout", dc.BackpressureTimeout.String(), duration(func(c *Config) *time.Duration { return &c.Core.BackpressureTimeout })},
		{"session.queue_qos0", dc.QueueQoS0, boolean(func(c *Config) *bool { return &c.Core.QueueQoS0 })},
		{"session.default_expiry", dc.DefaultExpiry.String(), duration(func(c *Config) *time.Duration { return &c.Core.DefaultExpiry })},
		{"session.max_expiry", dc.MaxExpiry.String(), duration(func(c *Config) *time.Duration { return &c.Core.MaxExpiry })},
		{"session.order_window", dc.OrderWindow.String(), duration(func(c *Config) *time.Duration { return &c.Core.OrderWindow })},

		{"limits.max_topic_levels", dc.MaxTopicLevels, integer(func(c *Config) *int { return &c.Core.MaxTopicLevels })},
		{"limits.max_topic_length", dc.MaxTopicLength, integer(func(c *Config) *int { return &c.Core.MaxTopicLength })},
		{"limits.max_retained", dc.MaxRetained, integer(func(c *Config) *int { return &c.Core.MaxRetained })},
		{"limits.max_connections", dc.MaxConnections, integer(func(c *Config) *int { return &c.Core.MaxConnections })},
		{"limits.max_subscriptions", dc.MaxSubscriptions, integer(func(c *Config) *int { return &c.Core.MaxSubscriptions })},
		{"limits.max_message_expiry", dc.MaxMessageExpiry.String(), duration(func(c *Config) *time.Duration { return &c.Core.MaxMessageExpiry })},
		{"limits.max_delayed", dc.MaxDelayed, integer(func(c *Config) *int { return &c.Core.MaxDelayed })},

		// Limits per client and per source (core/limits.go), and the ban list's.
		{"limits.client_msg_rate", dl.ClientMsgRate, float(func(c *Config) *float64 { return &c.Core.Limits.ClientMsgRate })},
		{"limits.client_msg_burst", dl.ClientMsgBurst, integer(func(c *Config) *int { return &c.Core.Limits.ClientMsgBurst })},
		{"limits.client_bytes_rate", dl.ClientBytesRate, float(func(c *Config) *float64 { return &c.Core.Limits.ClientBytesRate })},
		{"limits.client_bytes_burst", dl.ClientBytesBurst, integer(func(c *Config) *int { return &c.Core.Limits.ClientBytesBurst })},
		{"limits.connect_rate", dl.ConnectRate, float(func(c *Config) *float64 { return &c.Core.Limits.ConnectRate })},
		{"limits.connect_burst", dl.ConnectBurst, integer(func(c *Config) *int { return &c.Core.Limits.ConnectBurst })},
		{"limits.connect_rate_per_addr", dl.ConnectRatePerAddr, float(func(c *Config) *float64 { return &c.Core.Limits.ConnectRatePerAddr })},
		{"limits.connect_burst_per_addr", dl.ConnectBurstPerAddr, integer(func(c *Config) *int { return &c.Core.Limits.ConnectBurstPerAddr })},
		{"limits.login_failures", dl.LoginFailures, integer(func(c *Config) *int { return &c.Core.Limits.LoginFailures })},
		{"limits.login_window", dl.LoginWindow.String(), duration(func(c *Config) *time.Duration { return &c.Core.Limits.LoginWindow })},
		{"limits.login_delay", dl.LoginDelay.String(), duration(func(c *Config) *time.Duration { return &c.Core.Limits.LoginDelay })},
		{"limits.login_delay_max", dl.LoginDelayMax.String(), duration(func(c *Config) *time.Duration { return &c.Core.Limits.LoginDelayMax })},
		{"limits.login_ban_failures", dl.LoginBanFailures, integer(func(c *Config) *int { return &c.Core.Limits.LoginBanFailures })},
		{"limits.ban_time", dl.BanTime.String(), duration(func(c *Config) *time.Duration { return &c.Core.Limits.BanTime })},
		{"limits.max_connection_lifetime", dl.MaxConnectionLifetime.String(), duration(func(c *Config) *time.Duration { return &c.Core.Limits.MaxConnectionLifetime })},

		{"shared.strategy", dc.SharedStrategy, str(func(c *Config) *string { return &c.Core.SharedStrategy })},

		{"auth.allow_anonymous", true, boolean(func(c *Config) *bool { return &c.AllowAnonymous })},
		{"auth.users", []any{}, authUsers},
		{"auth.chain", []any{}, strList(func(c *Config) *[]string { return &c.AuthChain })},

		{"auth.jwt.secret", dj.Secret, str(func(c *Config) *string { return &c.JWT.Secret })},
		{"auth.jwt.secret_file", dj.SecretFile, str(func(c *Config) *string { return &c.JWT.SecretFile })},
		{"auth.jwt.public_key_file", dj.PublicKeyFile, str(func(c *Config) *string { return &c.JWT.PublicKeyFile })},
		{"auth.jwt.jwks_url", dj.JWKSURL, str(func(c *Config) *string { return &c.JWT.JWKSURL })},
		{"auth.jwt.jwks_refresh", dj.JWKSRefresh.String(), duration(func(c *Config) *time.Duration { return &c.JWT.JWKSRefresh })},
		{"auth.jwt.jwks_min_interval", dj.JWKSMinInterval.String(), duration(func(c *Config) *time.Duration { return &c.JWT.JWKSMinInterval })},
		{"auth.jwt.from", dj.From, str(func(c *Config) *string { return &c.JWT.From })},
		{"auth.jwt.leeway", dj.Leeway.String(), duration(func(c *Config) *time.Duration { return &c.JWT.Leeway })},
		{"auth.jwt.require_exp", dj.RequireExp, boolean(func(c *Config) *bool { return &c.JWT.RequireExp })},
		{"auth.jwt.verify_claims", map[string]any{}, jwtVerifyClaims},
		{"auth.jwt.acl_claim", dj.ACLClaim, str(func(c *Config) *string { return &c.JWT.ACLClaim })},
		{"auth.jwt.superuser_claim", dj.SuperuserClaim, str(func(c *Config) *string { return &c.JWT.SuperuserClaim })},
		{"auth.jwt.on_error", dj.OnError, str(func(c *Config) *string { return &c.JWT.OnError })},
		{"auth.jwt.timeout", dj.Timeout.String(), duration(func(c *Config) *time.Duration { return &c.JWT.Timeout })},
		{"auth.password_file", "", str(func(c *Config) *string { return &c.PasswordFile.File })},
		{"auth.password_file_reload_interval", dpw.ReloadInterval.String(), duration(func(c *Config) *time.Duration { return &c.PasswordFile.ReloadInterval })},
		{"auth.password_cache_ttl", dpw.CacheTTL.String(), duration(func(c *Config) *time.Duration { return &c.PasswordFile.CacheTTL })},

		{"acl.default", "allow", aclDefault},
		{"acl.rules", []any{}, aclRules},
		{"acl.file", "", str(func(c *Config) *string { return &c.ACLFile })},

		{"sys.interval", dc.SysInterval.String(), duration(func(c *Config) *time.Duration { return &c.Core.SysInterval })},

		{"store.engine", dst.Engine, str(func(c *Config) *string { return &c.Store.Engine })},
		{"store.dir", dst.Dir, str(func(c *Config) *string { return &c.Store.Dir })},
		{"store.fsync", dst.Fsync, str(func(c *Config) *string { return &c.Store.Fsync })},
		{"store.batch_window", dst.BatchWindow.String(), duration(func(c *Config) *time.Duration { return &c.Store.BatchWindow })},
	}, append(append(secureSettings(), httpHookSettings()...), httpSettings()...)...)
}

// secureSettings are the tls section and the listeners' own sections
// (mqtt.tls_config serves mqtt.tls and mqtt.wss, stomp.tls_config
// stomp.tls and stomp.wss, coap.dtls_config coap.dtls, mqttsn.dtls_config
// mqttsn.dtls).
func secureSettings() []setting {
	rows := tlsSettings()
	for _, section := range tlsSections {
		rows = append(rows, tlsOverrideSettings(section)...)
	}
	return rows
}

// tlsSections are the listeners' own tls sections.
var tlsSections = []string{"mqtt.tls_config", "stomp.tls_config", "coap.dtls_config", "mqttsn.dtls_config", "http.tls_config"}

func aclDefault(c *Config, v any) error {
	s, err := cast.ToStringE(v)
	if err != nil {
		return err
	}
	switch s {
	case "allow":
		c.ACL.DefaultAllow = true
	case "deny":
		c.ACL.DefaultAllow = false
	default:
		return fmt.Errorf("%q is not allow or deny", s)
	}
	return nil
}

// snPredefined parses mqttsn.predefined, a list of {id, topic} maps.
func snPredefined(c *Config, v any) error {
	list, err := cast.ToSliceE(v)
	if err != nil {
		return err
	}
	c.MQTTSN.Predefined = nil
	var errs []error
	for i, item := range list {
		m, err := cast.ToStringMapE(item)
		if err != nil {
			errs = append(errs, fmt.Errorf("[%d]: %v", i, err))
			continue
		}
		var p mqttsn.PredefinedTopic
		for k, val := range m {
			switch k {
			case "id":
				id, err := cast.ToUint16E(val)
				if err != nil {
					errs = append(errs, fmt.Errorf("[%d].id: %v", i, err))
				}
				p.ID = id
			case "topic":
				p.Topic = cast.ToString(val)
			default:
				errs = append(errs, fmt.Errorf("[%d].%s: unknown key (want id, topic)", i, k))
			}
		}
		c.MQTTSN.Predefined = append(c.MQTTSN.Predefined, p)
	}
	return errors.Join(errs...)
}

// authUsers parses the list of {username, password} maps.
func authUsers(c *Config, v any) error {
	list, err := cast.ToSliceE(v)
	if err != nil {
		return err
	}
	c.Users = nil
	var errs []error
	for i, item := range list {
		m, err := cast.ToStringMapStringE(item)
		if err != nil {
			errs = append(errs, fmt.Errorf("[%d]: %v", i, err))
			continue
		}
		var u core.User
		for k, val := range m {
			switch k {
			case "username":
				u.Username = val
			case "password":
				u.Password = val
			default:
				errs = append(errs, fmt.Errorf("[%d].%s: unknown user key", i, k))
			}
		}
		c.Users = append(c.Users, u)
	}
	return errors.Join(errs...)
}

// aclRules parses acl.rules.
func aclRules(c *Config, v any) error {
	rules, err := parseRules(v)
	c.ACL.Rules = rules
	return err
}

// parseRules parses an ordered list of rule maps {permission, action,
// topic, clientid, username, protocol, listener, qos, retain} (acl.rules,
// and the rules of acl.file).
func parseRules(v any) ([]core.ACLRule, error) {
	list, err := cast.ToSliceE(v)
	if err != nil {
		return nil, err
	}
	var rules []core.ACLRule
	var errs []error
	for i, item := range list {
		m, err := cast.ToStringMapE(item)
		if err != nil {
			errs = append(errs, fmt.Errorf("[%d]: %v", i, err))
			continue
		}
		r := core.ACLRule{Action: "all"}
		for k, raw := range m {
			val := cast.ToString(raw)
			switch k {
			case "permission":
				switch val {
				case "allow":
					r.Allow = true
				case "deny":
				default:
					errs = append(errs, fmt.Errorf("[%d].permission: %q is not allow or deny", i, val))
				}
			case "action":
				r.Action = val
			case "topic":
				r.Topic = val
			case "clientid":
				r.ClientID = val
			case "username":
				r.Username = val
			case "protocol":
				r.Protocol = val
			case "listener":
				r.Listener = val
			case "qos":
				qs, err := cast.ToIntSliceE(raw)
				if err != nil {
					if q, err2 := cast.ToIntE(raw); err2 == nil {
						qs, err = []int{q}, nil
					}
				}
				if err != nil {
					errs = append(errs, fmt.Errorf("[%d].qos: want a QoS or a list of them: %v", i, err))
				}
				for _, q := range qs {
					r.QoS = append(r.QoS, byte(min(max(q, 0), 255)))
				}
			case "retain":
				b, err := cast.ToBoolE(raw)
				if err != nil {
					errs = append(errs, fmt.Errorf("[%d].retain: %v", i, err))
				}
				r.Retain = &b
			default:
				errs = append(errs, fmt.Errorf("[%d].%s: unknown rule key", i, k))
			}
		}
		if _, ok := m["permission"]; !ok {
			errs = append(errs, fmt.Errorf("[%d].permission: missing", i))
		}
		rules = append(rules, r)
	}
	return rules, errors.Join(errs...)
}

// Keys returns every configuration key, sorted.
func Keys() []string {
	var ks []string
	for _, s := range settings() {
		ks = append(ks, s.key)
	}
	sort.Strings(ks)
	return ks
}

// Load builds the configuration from the embedded defaults, then the YAML
// document yamlDoc (may be empty), then IOTGW_<SECTION>_<KEY> environment
// variables (an empty value counts: it disables a listener). Every problem
// is reported, naming its key.
func Load(yamlDoc []byte, environ []string) (Config, error) {
	return load(yamlDoc, environ, settings())
}

// load is Load with the table of keys as a parameter, for tests of rows
// not in the gateway's table yet.
func load(yamlDoc []byte, environ []string, all []setting) (Config, error) {
	v := viper.New()
	v.SetConfigType("yaml")
	known := make(map[string]bool, len(all))
	for _, s := range all {
		if s.def != nil { // a listener's own tls keys have none: unset means inherited
			v.SetDefault(s.key, s.def)
		}
		known[s.key] = true
	}
	var errs []error
	explicit := map[string]bool{} // keys the file or the environment set
	if len(bytes.TrimSpace(yamlDoc)) > 0 {
		if err := v.ReadConfig(bytes.NewReader(yamlDoc)); err != nil {
			return Config{}, fmt.Errorf("config: %w", err)
		}
		fileKeys := viper.New()
		fileKeys.SetConfigType("yaml")
		_ = fileKeys.ReadConfig(bytes.NewReader(yamlDoc))
		for _, k := range fileKeys.AllKeys() {
			explicit[k] = true
			if !known[k] && !isMapKey(k, all) {
				errs = append(errs, fmt.Errorf("%s: unknown configuration key", k))
			}
		}
	}
	for _, kv := range environ {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, "IOTGW_") {
			continue
		}
		key := envKey(name, known)
		if key == "" {
			errs = append(errs, fmt.Errorf("%s: environment variable names no configuration key", name))
			continue
		}
		v.Set(key, val)
		explicit[key] = true
	}
	cfg := Config{Core: core.DefaultConfig(), MQTT: mqtt.DefaultConfig(), STOMP: stomp.DefaultConfig(), MQTTSN: mqttsn.DefaultConfig(), CoAP: coap.DefaultConfig(), TLS: tlsconf.DefaultConfig(), rawYAML: yamlDoc}
	cfg.values = make(map[string]any, len(all))
	for _, s := range all {
		if err := s.apply(&cfg, v.Get(s.key)); err != nil {
			errs = append(errs, fmt.Errorf("%s: bad value %v: %v", s.key, v.Get(s.key), err))
		}
		if val := v.Get(s.key); val != nil {
			cfg.values[s.key] = val
		}
	}
	cfg.doc, cfg.environ = yamlDoc, environ
	cfg.rawYAML = nil
	cfg.anonymousExplicit = explicit["auth.allow_anonymous"]
	cfg.secureDefaults()
	if len(errs) == 0 {
		errs = append(errs, cfg.Validate())
	}
	return cfg, errors.Join(errs...)
}

// secureDefaults turns anonymous access off once anything restricts who
// connects — an authentication backend, or client certificates on a
// secured listener — unless auth.allow_anonymous was set explicitly: an
// operator who configures credentials does not mean to leave a way round
// them. auth.allow_anonymous stays true for a bare `go run`.
func (c *Config) secureDefaults() {
	if c.anonymousExplicit || !c.AllowAnonymous {
		return
	}
	if names, err := c.chainNames(); err == nil && len(names) > 0 {
		c.AllowAnonymous = false
		c.anonymousOffBecause = "authentication backends " + strings.Join(names, ", ")
		return
	}
	for _, section := range append([]string{""}, tlsSections...) {
		if t := c.TLSFor(section); t.CertFile != "" && t.ClientAuth != tlsconf.ClientAuthNone {
			c.AllowAnonymous = false
			c.anonymousOffBecause = "client certificates (" + t.Key("client_auth") + ": " + t.ClientAuth + ")"
			return
		}
	}
}

// envKey maps IOTGW_MQTT_WS_PATH to "mqtt.ws_path" (and
// IOTGW_MQTT_TLS_CONFIG_CERT_FILE to "mqtt.tls_config.cert_file"): the
// name of every known key with its dots as underscores, since keys contain
// underscores themselves. Case does not matter after the prefix.
func envKey(name string, known map[string]bool) string {
	rest := strings.ToLower(strings.TrimPrefix(name, "IOTGW_"))
	for k := range known {
		if strings.ReplaceAll(k, ".", "_") == rest {
			return k
		}
	}
	return ""
}

// LoadFile is Load with the YAML read from path ("" for none) and the
// process environment.
func LoadFile(path string) (Config, error) {
	var doc []byte
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return Config{}, fmt.Errorf("config: %w", err)
		}
		doc = b
	}
	cfg, err := Load(doc, os.Environ())
	cfg.path = path
	return cfg, err
}

// Validate checks every section.
func (c Config) Validate() error {
	var errs []error
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log.level: %q is not debug, info, warn or error", c.LogLevel))
	}
	if c.LogFormat != "console" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("log.format: %q is not console or json", c.LogFormat))
	}
	errs = append(errs, c.Core.Validate(), c.MQTT.Validate(), c.STOMP.Validate(), c.MQTTSN.Validate(), c.CoAP.Validate(), c.ACL.Validate(), c.Store.Validate(), c.validateTLS())
	if _, err := core.NewUsers(c.Users); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, c.AuthHTTP.Validate("auth.http", httphook.AuthKind), c.ACLHTTP.Validate("acl.http", httphook.ACLKind))
	if _, err := c.chainNames(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, c.JWT.Validate(), c.HTTP.validate(&c))
	return errors.Join(errs...)
}
