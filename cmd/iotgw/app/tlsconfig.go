package app

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/spf13/cast"

	"github.com/iotgw/iotgw/internal/tlsconf"
)

// tlsKey is one key of a tls section and how it is stored: the shared
// section and every listener's own section have the same keys.
type tlsKey struct {
	name  string
	def   any
	apply func(c *tlsconf.Config, v any) error
}

func tlsKeys() []tlsKey {
	d := tlsconf.DefaultConfig()
	type tc = tlsconf.Config
	return []tlsKey{
		{"cert_file", d.CertFile, str(func(c *tc) *string { return &c.CertFile })},
		{"key_file", d.KeyFile, str(func(c *tc) *string { return &c.KeyFile })},
		{"ca_file", d.CAFile, str(func(c *tc) *string { return &c.CAFile })},
		{"client_auth", d.ClientAuth, str(func(c *tc) *string { return &c.ClientAuth })},
		{"min_version", d.MinVersion, str(func(c *tc) *string { return &c.MinVersion })},
		{"cipher_suites", []any{}, strList(func(c *tc) *[]string { return &c.CipherSuites })},
		{"alpn", []any{}, strList(func(c *tc) *[]string { return &c.ALPN })},
		{"identity", d.Identity, str(func(c *tc) *string { return &c.Identity })},
		{"crl_file", d.CRLFile, str(func(c *tc) *string { return &c.CRLFile })},
		{"psk_file", d.PSKFile, str(func(c *tc) *string { return &c.PSKFile })},
		{"connection_id", d.ConnectionID, boolean(func(c *tc) *bool { return &c.ConnectionID })},
		{"max_handshakes_per_addr", d.MaxHandshakesPerAddr, integer(func(c *tc) *int { return &c.MaxHandshakesPerAddr })},
		{"handshake_timeout", d.HandshakeTimeout.String(), duration(func(c *tc) *time.Duration { return &c.HandshakeTimeout })},
		{"reload_interval", d.ReloadInterval.String(), duration(func(c *tc) *time.Duration { return &c.ReloadInterval })},
	}
}

// tlsSettings are the rows of the shared tls section.
func tlsSettings() []setting {
	var rows []setting
	for _, k := range tlsKeys() {
		rows = append(rows, setting{"tls." + k.name, k.def, func(c *Config, v any) error { return k.apply(&c.TLS, v) }})
	}
	return rows
}

// tlsOverrideSettings are the rows of a listener's own tls section at key
// section (e.g. "mqtt.tls_config"): the keys of tls, without defaults, so
// only those the file or the environment set replace the shared ones
// (see TLSFor). A listener adds them to settings() next to its own keys.
func tlsOverrideSettings(section string) []setting {
	var rows []setting
	for _, k := range tlsKeys() {
		rows = append(rows, setting{section + "." + k.name, nil, func(c *Config, v any) error {
			if v == nil {
				return nil // not set: inherited from tls
			}
			if c.tlsOverrides == nil {
				c.tlsOverrides = map[string]*tlsconf.Override{}
			}
			o := c.tlsOverrides[section]
			if o == nil {
				o = &tlsconf.Override{Section: section, Values: tlsconf.DefaultConfig(), Set: map[string]bool{}}
				c.tlsOverrides[section] = o
			}
			o.Set[k.name] = true
			return k.apply(&o.Values, v)
		}})
	}
	return rows
}

// TLSFor returns the TLS configuration of the listener whose own section
// is at key section ("mqtt.tls_config", "coap.dtls_config", ...): the
// shared tls section with every key that section sets replacing the
// shared one. Errors about it name the key where each value came from.
// With "" or a section that sets nothing it is the shared section. The
// listener makes its tlsconf.Source from it.
func (c Config) TLSFor(section string) tlsconf.Config {
	if o := c.tlsOverrides[section]; o != nil {
		return c.TLS.Merge(*o)
	}
	return c.TLS
}

// validateTLS checks the shared section and every listener's merged one;
// a problem of a shared key is reported once, not once per listener.
func (c Config) validateTLS() error {
	var errs []error
	seen := map[string]bool{}
	add := func(err error) {
		if err == nil {
			return
		}
		for _, line := range strings.Split(err.Error(), "\n") {
			if !seen[line] {
				seen[line] = true
				errs = append(errs, errors.New(line))
			}
		}
	}
	add(c.TLS.Validate())
	sections := make([]string, 0, len(c.tlsOverrides))
	for section := range c.tlsOverrides {
		sections = append(sections, section)
	}
	sort.Strings(sections)
	for _, section := range sections {
		add(c.TLSFor(section).Validate())
	}
	return errors.Join(errs...)
}

// strList sets a list of names from a YAML list, or from a string of
// names separated by commas or spaces (an environment variable).
func strList[T any](f func(c *T) *[]string) func(*T, any) error {
	return func(c *T, v any) error {
		var list []string
		if s, ok := v.(string); ok {
			list = strings.FieldsFunc(s, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
		} else {
			l, err := cast.ToStringSliceE(v)
			if err != nil {
				return fmt.Errorf("want a list of names: %w", err)
			}
			list = l
		}
		if len(list) == 0 {
			list = nil // [] and unset are the same
		}
		*f(c) = list
		return nil
	}
}
