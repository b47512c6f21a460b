package coap

import (
	"strconv"
	"strings"

	"github.com/plgd-dev/go-coap/v3/net/blockwise"

	"github.com/iotgw/iotgw/core"
)

// contentFormats is the part of the IANA "CoAP Content-Formats" registry
// (RFC 7252 §12.3 and its updates) that maps onto MQTT 5 content types.
var contentFormats = map[uint16]string{
	0:     "text/plain;charset=utf-8",
	16:    `application/cose;cose-type="cose-encrypt0"`,
	17:    `application/cose;cose-type="cose-mac0"`,
	18:    `application/cose;cose-type="cose-sign1"`,
	19:    "application/ace+cbor",
	21:    "image/gif",
	22:    "image/jpeg",
	23:    "image/png",
	40:    "application/link-format",
	41:    "application/xml",
	42:    "application/octet-stream",
	47:    "application/exi",
	50:    "application/json",
	51:    "application/json-patch+json",
	52:    "application/merge-patch+json",
	60:    "application/cbor",
	61:    "application/cwt",
	62:    "application/multipart-core",
	63:    "application/cbor-seq",
	96:    `application/cose;cose-type="cose-encrypt"`,
	97:    `application/cose;cose-type="cose-mac"`,
	98:    `application/cose;cose-type="cose-sign"`,
	101:   "application/cose-key",
	102:   "application/cose-key-set",
	110:   "application/senml+json",
	111:   "application/sensml+json",
	112:   "application/senml+cbor",
	113:   "application/sensml+cbor",
	114:   "application/senml-exi",
	115:   "application/sensml-exi",
	256:   "application/coap-group+json",
	310:   "application/senml+xml",
	311:   "application/sensml+xml",
	320:   "application/senml-etch+json",
	322:   "application/senml-etch+cbor",
	432:   "application/td+json",
	10000: "application/vnd.ocf+cbor",
	11542: "application/vnd.oma.lwm2m+tlv",
	11543: "application/vnd.oma.lwm2m+json",
	11544: "application/vnd.oma.lwm2m+cbor",
	20000: "text/css",
	30000: "image/svg+xml",
}

// contentFormatByType is the reverse of contentFormats, keyed by the
// normalised media type.
var contentFormatByType = func() map[string]uint16 {
	m := make(map[string]uint16, len(contentFormats)+2)
	for n, t := range contentFormats {
		m[t] = n
	}
	// Common spellings MQTT publishers use for plain text.
	m["text/plain"] = 0
	m["text/plain;charset=us-ascii"] = 0
	return m
}()

// cfUserProperty carries a Content-Format number that has no registered
// media type, so that CoAP-to-CoAP traffic keeps it.
const cfUserProperty = "coap-content-format"

// normalizeMediaType lower-cases a media type and removes white space
// outside quoted strings, so "Text/Plain; charset=UTF-8" finds its entry.
func normalizeMediaType(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	quoted := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			quoted = !quoted
		case !quoted && (c == ' ' || c == '\t'):
			continue
		case !quoted && c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		}
		b.WriteByte(c)
	}
	return b.String()
}

// applyContentFormat records a request's Content-Format in msg: the
// registered media type as MQTT 5 content type, or, for an unregistered
// number, a user property.
func applyContentFormat(msg *core.Message, cf uint32) {
	if t, ok := contentFormats[uint16(cf)]; ok && cf <= 0xFFFF {
		msg.ContentType = t
		return
	}
	msg.UserProps = append(msg.UserProps, core.UserProperty{Key: cfUserProperty, Value: strconv.FormatUint(uint64(cf), 10)})
}

// contentFormatOf returns the Content-Format number for a message, if it
// has one: from its content type, else from the user property.
func contentFormatOf(m *core.Message) (uint16, bool) {
	if m.ContentType != "" {
		norm := normalizeMediaType(m.ContentType)
		if n, ok := contentFormatByType[norm]; ok {
			return n, true
		}
		// "application/json;charset=utf-8" and similar: the parameters
		// add nothing the registry distinguishes.
		if i := strings.IndexByte(norm, ';'); i > 0 {
			if n, ok := contentFormatByType[norm[:i]]; ok {
				return n, true
			}
		}
	}
	for _, p := range m.UserProps {
		if p.Key == cfUserProperty {
			if n, err := strconv.ParseUint(p.Value, 10, 16); err == nil {
				return uint16(n), true
			}
		}
	}
	return 0, false
}

// szxOf maps a block size onto its RFC 7959 §2.2 SZX exponent.
func szxOf(size int) (blockwise.SZX, bool) {
	for szx := blockwise.SZX16; szx <= blockwise.SZX1024; szx++ {
		if int(szx.Size()) == size {
			return szx, true
		}
	}
	return 0, false
}
