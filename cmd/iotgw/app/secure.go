package app

import (
	"errors"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/iotgw/iotgw/internal/listen"
	"github.com/iotgw/iotgw/internal/tlsconf"
)

// securedListener is a secured listener that is on, with the TLS
// material it serves.
type securedListener struct {
	key string // "mqtt.tls", ...
	src *tlsconf.Source
	sec *listen.Secure
}

// streamSecure describes one secured stream listener: its key and
// address, the section that may override tls for it, what it offers by
// ALPN, and where its TLS side goes in the adapter's configuration.
type streamSecure struct {
	key, addr, section string
	alpn               []string
	target             **listen.Secure
}

// setupTLS gives every secured stream listener with an address its TLS
// side, when a certificate is configured for it; the others stay off
// (logged once). Listeners whose merged tls sections are equal share one
// Source, so their files are read and watched once. On error the sources
// made so far are closed.
func (g *Gateway) setupTLS(cfg *Config) error {
	specs := []streamSecure{
		// MQTT over TLS offers "mqtt" by ALPN, as AWS IoT and Mosquitto
		// clients expect; WebSocket needs HTTP/1.1.
		{"mqtt.tls", cfg.MQTT.TLS, "mqtt.tls_config", []string{"mqtt"}, &cfg.MQTT.TLSSecure},
		{"mqtt.wss", cfg.MQTT.WSS, "mqtt.tls_config", []string{"http/1.1"}, &cfg.MQTT.WSSSecure},
		{"stomp.tls", cfg.STOMP.TLS, "stomp.tls_config", nil, &cfg.STOMP.TLSSecure},
		{"stomp.wss", cfg.STOMP.WSS, "stomp.tls_config", []string{"http/1.1"}, &cfg.STOMP.WSSSecure},
	}
	var off []string
	for _, sp := range specs {
		if sp.addr == "" {
			continue
		}
		tc := cfg.TLSFor(sp.section)
		if tc.CertFile == "" {
			off = append(off, sp.key)
			continue
		}
		src, err := g.tlsSource(tc)
		if err != nil {
			g.closeTLS()
			return err
		}
		sc, err := src.ServerConfig(sp.alpn...)
		if err != nil {
			g.closeTLS()
			return err
		}
		sec := &listen.Secure{Config: sc, HandshakeTimeout: tc.HandshakeTimeout, MaxPerAddr: tc.MaxHandshakesPerAddr}
		if tc.Identity != tlsconf.IdentityNone {
			sec.Identity = src.Identity
		}
		*sp.target = sec
		g.secured = append(g.secured, securedListener{key: sp.key, src: src, sec: sec})
		g.log.Info("secured listener on", zap.String("listener", sp.key), zap.String("addr", sp.addr),
			zap.String("client_auth", tc.ClientAuth), zap.String("identity", tc.Identity))
	}
	if len(off) > 0 {
		g.log.Info("secured listeners off: no certificate (set tls.cert_file and tls.key_file, or try `iotgw cert dev DIR`)",
			zap.Strings("listeners", off))
	}
	return nil
}

// tlsSource returns the Source of a merged tls configuration, shared by
// listeners whose configurations are equal.
func (g *Gateway) tlsSource(tc tlsconf.Config) (*tlsconf.Source, error) {
	for _, s := range g.tlsSources {
		if reflect.DeepEqual(s.Config(), tc) {
			return s, nil
		}
	}
	src, err := tlsconf.NewSource(tc, g.log.Named("tls"))
	if err != nil {
		return nil, err
	}
	g.tlsSources = append(g.tlsSources, src)
	return src, nil
}

// closeTLS stops watching the TLS files.
func (g *Gateway) closeTLS() {
	for _, s := range g.tlsSources {
		_ = s.Close()
	}
	g.tlsSources = nil
}

// ReloadTLS re-reads every secured listener's TLS files now (SIGHUP).
// Material that fails to load is kept as it was; the errors, also logged,
// are returned joined.
func (g *Gateway) ReloadTLS() error {
	var errs []error
	for _, s := range g.tlsSources {
		errs = append(errs, s.Reload())
	}
	return errors.Join(errs...)
}

// TLSStatus returns the material in use by each secured listener that is
// on, by listener key.
func (g *Gateway) TLSStatus() map[string]tlsconf.Status {
	m := make(map[string]tlsconf.Status, len(g.secured))
	for _, l := range g.secured {
		m[l.key] = l.src.Status()
	}
	return m
}

// sysTLS adds each secured listener to $SYS, under
// $SYS/broker/listeners/<key>/: its failed handshakes, and its
// certificate: when it expires (RFC 3339 and seconds left, for an alert),
// its serial and subject, and how its renewals went.
func (g *Gateway) sysTLS(add func(topic, value string)) {
	now := time.Now()
	for _, l := range g.secured {
		st := l.src.Status()
		p := "$SYS/broker/listeners/" + l.key + "/"
		if l.sec != nil {
			add(p+"handshake_failures", strconv.FormatUint(l.sec.HandshakeFailures.Load(), 10))
			add(p+"handshakes_refused", strconv.FormatUint(l.sec.HandshakesRefused.Load(), 10))
		}
		// A DTLS listener may run on pre-shared keys alone: no
		// certificate to expire (an alert on a zero date would fire).
		if st.Serial != "" {
			add(p+"cert/not_after", st.NotAfter.UTC().Format(time.RFC3339))
			add(p+"cert/expires_in", strconv.FormatInt(int64(st.NotAfter.Sub(now)/time.Second), 10)+" seconds")
			add(p+"cert/serial", st.Serial)
			add(p+"cert/subject", st.Subject)
		}
		add(p+"cert/reloads", strconv.FormatUint(st.Reloads, 10))
		add(p+"cert/reload_failures", strconv.FormatUint(st.Failures, 10))
		add(p+"cert/last_error", strings.TrimSpace(st.LastError))
	}
}
