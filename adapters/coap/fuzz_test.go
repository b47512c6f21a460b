package coap

import (
	"context"
	"strconv"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/udp/coder"

	"github.com/iotgw/iotgw/core"
)

// datagramSeeds are CoAP datagrams, byte-commented: header (ver/type/tkl,
// code, message id), token, options (delta/length nibbles), payload.
var datagramSeeds = [][]byte{
	// CON POST mid 1, token 0x01; Uri-Path "ps" "a"; Uri-Query "qos=1"; payload "x".
	{0x41, 0x02, 0x00, 0x01, 0x01, 0xb2, 'p', 's', 0x01, 'a', 0x45, 'q', 'o', 's', '=', '1', 0xff, 'x'},
	// CON GET, Observe 0 (delta 6, empty), Uri-Path "ps" "%23".
	{0x41, 0x01, 0x00, 0x02, 0x07, 0x60, 0x52, 'p', 's', 0x03, '%', '2', '3'},
	// NON PUT with Content-Format 50 (delta 12, 1 byte) after Uri-Path "ps" "t".
	{0x51, 0x03, 0x00, 0x03, 0x09, 0xb2, 'p', 's', 0x01, 't', 0x11, 50, 0xff, '{', '}'},
	// GET with Block2 num 1 size 1024 (option 23: delta 13, ext 10 after Uri-Path 11... from 0).
	{0x41, 0x01, 0x00, 0x04, 0x02, 0xb2, 'p', 's', 0x01, 'b', 0xc1, 0x16},
	// Unknown critical option 65001 (delta 14 ext 2 bytes).
	{0x40, 0x01, 0x00, 0x05, 0xe1, 0xfc, 0xdc, 'x'},
	// Bad query value and a Proxy-Uri.
	{0x40, 0x02, 0x00, 0x06, 0xb2, 'p', 's', 0x45, 'q', 'o', 's', '=', '9', 0xd4, 0x0b, 'c', 'o', 'a', 'p'},
	{0x40, 0x00, 0x00, 0x07},
	{0xff},
}

// FuzzParseRequest feeds datagrams through go-coap's decoder and then the
// adapter's request parsing, body limit and block-wise transfer keying:
// none may panic, and a parsed request's topic is consistent.
func FuzzParseRequest(f *testing.F) {
	for _, s := range datagramSeeds {
		f.Add(s)
	}
	s := New(DefaultConfig(), nil)
	s.cfg.MaxBodySize = 64
	f.Fuzz(func(t *testing.T, data []byte) {
		m := pool.NewMessage(context.Background())
		if _, err := m.UnmarshalWithDecoder(coder.DefaultCoder, data); err != nil {
			return
		}
		_ = s.exceedsBodyLimit(m)
		_ = s.bt.canonical("127.0.0.1:1", m, s.cfg.ExchangeLifetime)
		req, rerr := parseRequest(m)
		if rerr != nil {
			if rerr.code < 128 {
				t.Fatalf("error with a success code %v", rerr.code)
			}
			return
		}
		topic := req.topic()
		if len(req.segments) >= 2 && len(topic) < len(req.segments)-2 {
			t.Fatalf("topic %q shorter than its separators", topic)
		}
		if req.q.qos < -1 || req.q.qos > 2 {
			t.Fatalf("qos %d", req.q.qos)
		}
		_, _ = readBody(m, s.cfg.MaxBodySize)
	})
}

// FuzzContentType checks the content-type mapping: arbitrary MQTT content
// types never panic, and every Content-Format number survives the trip
// into a message and back.
func FuzzContentType(f *testing.F) {
	f.Add("application/json", uint16(50))
	f.Add("Text/Plain; Charset=UTF-8", uint16(0))
	f.Add(`application/cose; cose-type="cose-sign1"`, uint16(18))
	f.Add("application/x-unknown;a=\"b c\"", uint16(65000))
	f.Fuzz(func(t *testing.T, ct string, cf uint16) {
		_, _ = contentFormatOf(&core.Message{ContentType: ct,
			UserProps: []core.UserProperty{{Key: cfUserProperty, Value: ct}}})
		m := &core.Message{}
		applyContentFormat(m, uint32(cf))
		got, ok := contentFormatOf(m)
		if !ok || got != cf {
			if want, known := contentFormats[cf]; !known || contentFormatByType[want] == cf {
				t.Fatalf("cf %d: got %d ok=%v (content type %q)", cf, got, ok, m.ContentType)
			}
		}
		if n := normalizeMediaType(ct); len(n) > len(ct) {
			t.Fatalf("normalize grew %q to %q", ct, n)
		}
	})
}

// TestContentFormatTable: the registry table maps both ways.
func TestContentFormatTable(t *testing.T) {
	for n, name := range contentFormats {
		if back, ok := contentFormatByType[name]; !ok || back != n {
			t.Errorf("%d %q maps back to %d", n, name, back)
		}
		m := &core.Message{ContentType: name}
		if got, ok := contentFormatOf(m); !ok || got != n {
			t.Errorf("%q: %d %v", name, got, ok)
		}
	}
	for ct, want := range map[string]uint16{"TEXT/plain": 0, "application/json; charset=utf-8": 50, "application/senml+json": 110} {
		if got, ok := contentFormatOf(&core.Message{ContentType: ct}); !ok || got != want {
			t.Errorf("%q: %d %v, want %d", ct, got, ok, want)
		}
	}
	m := &core.Message{}
	applyContentFormat(m, 4242)
	if m.ContentType != "" || len(m.UserProps) != 1 || m.UserProps[0].Value != strconv.Itoa(4242) {
		t.Errorf("unregistered: %+v", m)
	}
}

// TestQueryParse covers the query keys, aliases and refusals.
func TestQueryParse(t *testing.T) {
	var q query
	q.qos = -1
	for _, opt := range []string{"c=dev", "t=tok", "u=user", "p=pa%2Bss", "q=2", "r=TRUE", "e=30", "unknown=1", "flag"} {
		if err := q.parse(opt); err != nil {
			t.Fatalf("%s: %v", opt, err)
		}
	}
	if q.clientID != "dev" || q.token != "tok" || q.username != "user" || string(q.password) != "pa+ss" ||
		q.qos != 2 || !q.retain || q.expiry.Seconds() != 30 || !q.hasExpiry {
		t.Fatalf("parsed %+v", q)
	}
	for _, bad := range []string{"qos=3", "qos=", "retain=yes", "expiry=1.5", "expiry=99999999999"} {
		if err := q.parse(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	if got := percentDecode("100%"); got != "100%" {
		t.Errorf("invalid escape: %q", got)
	}
	if got := percentDecode("%23"); got != "#" {
		t.Errorf("%%23: %q", got)
	}
}
