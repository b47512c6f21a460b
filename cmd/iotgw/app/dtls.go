package app

import (
	"strconv"

	"go.uber.org/zap"

	"github.com/iotgw/iotgw/internal/dtlsnet"
	"github.com/iotgw/iotgw/internal/tlsconf"
)

// datagramSecure describes one DTLS listener: its key and address, the
// section that may override tls for it, and where its DTLS side goes in
// the adapter's configuration.
type datagramSecure struct {
	key, addr, section string
	target             **dtlsnet.Secure
}

// setupDTLS gives coap.dtls and mqttsn.dtls their DTLS side when TLS
// material (a certificate, or pre-shared keys: DTLS can run PSK-only) is
// configured for them; the others stay off (logged once). Sources are
// shared with the TLS listeners whose merged sections are equal. Called
// by setupTLS's caller after it, so closeTLS undoes both on error.
func (g *Gateway) setupDTLS(cfg *Config) error {
	specs := []datagramSecure{
		{"coap.dtls", cfg.CoAP.DTLS, "coap.dtls_config", &cfg.CoAP.DTLSSecure},
		{"mqttsn.dtls", cfg.MQTTSN.DTLS, "mqttsn.dtls_config", &cfg.MQTTSN.DTLSSecure},
	}
	var off []string
	for _, sp := range specs {
		if sp.addr == "" {
			continue
		}
		tc := cfg.TLSFor(sp.section)
		if tc.CertFile == "" && tc.PSKFile == "" {
			off = append(off, sp.key)
			continue
		}
		src, err := g.tlsSource(tc)
		if err != nil {
			g.closeTLS()
			return err
		}
		opts, err := src.DTLSServerOptions()
		if err != nil {
			g.closeTLS()
			return err
		}
		*sp.target = &dtlsnet.Secure{
			Options:              opts,
			HandshakeTimeout:     tc.HandshakeTimeout,
			MaxHandshakesPerAddr: tc.MaxHandshakesPerAddr,
			Identity:             src.DTLSIdentity,
			RequireIdentity:      tc.Identity != tlsconf.IdentityNone,
		}
		g.secured = append(g.secured, securedListener{key: sp.key, src: src})
		g.log.Info("secured listener on", zap.String("listener", sp.key), zap.String("addr", sp.addr),
			zap.Bool("certificate", tc.CertFile != ""), zap.Bool("psk", tc.PSKFile != ""),
			zap.String("client_auth", tc.ClientAuth), zap.Bool("connection_id", tc.ConnectionID))
	}
	if len(off) > 0 {
		g.log.Info("secured listeners off: no certificate or pre-shared keys (set tls.cert_file and tls.key_file, or tls.psk_file)",
			zap.Strings("listeners", off))
	}
	return nil
}

// dtlsStats returns the counters of each DTLS listener that is on, by key.
func (g *Gateway) dtlsStats() map[string]*dtlsnet.Stats {
	m := map[string]*dtlsnet.Stats{}
	// Called from the $SYS loop, which Start begins only once every
	// adapter is set and started (so these fields need no lock).
	if g.CoAP != nil {
		if st := g.CoAP.DTLSStats(); st != nil {
			m["coap.dtls"] = st
		}
	}
	if g.MQTTSN != nil {
		if st := g.MQTTSN.DTLSStats(); st != nil {
			m["mqttsn.dtls"] = st
		}
	}
	return m
}

// sysDTLS adds each DTLS listener's handshake and record counters to
// $SYS, under $SYS/broker/listeners/<key>/.
func (g *Gateway) sysDTLS(add func(topic, value string)) {
	for key, st := range g.dtlsStats() {
		p := "$SYS/broker/listeners/" + key + "/"
		u := func(name string, v uint64) { add(p+name, strconv.FormatUint(v, 10)) }
		u("handshakes", st.Handshakes.Load())
		u("handshake_failures", st.HandshakeFailures.Load())
		u("handshake_timeouts", st.HandshakeTimeouts.Load())
		u("handshakes_refused", st.HandshakesRefused.Load())
		u("record_errors", st.RecordErrors.Load())
		add(p+"handshakes_in_flight", strconv.FormatInt(st.InFlight.Load(), 10))
		add(p+"sessions", strconv.FormatInt(st.Sessions.Load(), 10))
	}
}
