package coap

import (
	"bytes"
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/udp/coder"

	"github.com/iotgw/iotgw/core"
)

// fastSeeds add fast-path shapes to datagramSeeds: extended option deltas
// and lengths, a payload marker with nothing after it, a truncated option.
var fastSeeds = [][]byte{
	// NON POST mid 9, no token; Uri-Path "ps" "t"; Uri-Query of 14 bytes
	// (length nibble 13, extended 1); payload "p".
	{0x50, 0x02, 0x00, 0x09, 0xb2, 'p', 's', 0x01, 't', 0x4d, 0x01, 'q', '=', '0', '&', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 0xff, 'p'},
	// CON PUT; Uri-Path "ps" "t"; payload marker and no payload (format error).
	{0x40, 0x03, 0x00, 0x0a, 0xb2, 'p', 's', 0x01, 't', 0xff},
	// CON POST; Uri-Path "ps" then an option claiming 5 bytes with 2 left.
	{0x40, 0x02, 0x00, 0x0b, 0xb2, 'p', 's', 0x05, 'a', 'b'},
	// CON POST; Uri-Path "ps" "a%2Fb"; Content-Format twice.
	{0x40, 0x02, 0x00, 0x0c, 0xb2, 'p', 's', 0x05, 'a', '%', '2', 'F', 'b', 0x11, 0x32, 0x01, 0x00},
}

// FuzzParseFastPublish: the fast path's parser never panics, and whatever
// it accepts, go-coap's decoder and the adapter's request parser accept
// too and read the same way (same type, method, id, token, topic, query,
// Content-Format and payload): the fast path serves nothing go-coap's
// path would have answered differently.
func FuzzParseFastPublish(f *testing.F) {
	for _, s := range append(append([][]byte{}, datagramSeeds...), fastSeeds...) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fp, ok := parseFastPublish(data, 1024)
		if !ok {
			return
		}
		m := pool.NewMessage(context.Background())
		if _, err := m.UnmarshalWithDecoder(coder.DefaultCoder, data); err != nil {
			t.Fatalf("fast path took %x, go-coap refuses it: %v", data, err)
		}
		req, rerr := parseRequest(m)
		if rerr != nil {
			t.Fatalf("fast path took %x, parseRequest refuses it: %v", data, rerr)
		}
		body, err := readBody(m, 1024)
		if err != nil {
			t.Fatalf("body: %v", err)
		}
		if req.method != fp.code || req.con != fp.con || uint16(m.MessageID()) != fp.mid ||
			!bytes.Equal(req.token, fp.token) && len(fp.token) > 0 || req.topic() != fp.topic() ||
			!reflect.DeepEqual(req.q, fp.q) || req.hasCF != fp.hasCF || req.cf != fp.cf || !bytes.Equal(body, fp.payload) {
			t.Fatalf("%x read differently:\nfast %+v\nreq  %+v body %q", data, fp, req, body)
		}
	})
}

// TestParseFastPublishDeclines: what the fast path must leave to go-coap.
func TestParseFastPublishDeclines(t *testing.T) {
	for name, b := range map[string][]byte{
		"GET":            {0x40, 0x01, 0x00, 0x01, 0xb2, 'p', 's', 0x01, 't'},
		"ACK":            {0x60, 0x02, 0x00, 0x01, 0xb2, 'p', 's', 0x01, 't'},
		"version 2":      {0x80, 0x02, 0x00, 0x01, 0xb2, 'p', 's', 0x01, 't'},
		"token 9":        {0x49, 0x02, 0x00, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 9},
		"short":          {0x40, 0x02, 0x00},
		"not /ps":        {0x40, 0x02, 0x00, 0x01, 0xb2, 'q', 's', 0x01, 't'},
		"Uri-Host":       {0x40, 0x02, 0x00, 0x01, 0x31, 'h', 0x82, 'p', 's', 0x01, 't'},
		"Block1":         {0x40, 0x02, 0x00, 0x01, 0xb2, 'p', 's', 0x01, 't', 0xd1, 0x02, 0x08},
		"empty payload":  fastSeeds[1],
		"truncated":      fastSeeds[2],
		"two CF":         fastSeeds[3],
		"bad qos":        datagramSeeds[5],
		"reserved delta": {0x40, 0x02, 0x00, 0x01, 0xf0},
	} {
		if _, ok := parseFastPublish(b, 1024); ok {
			t.Errorf("%s: taken by the fast path", name)
		}
	}
	big := append([]byte{0x40, 0x02, 0x00, 0x01, 0xb2, 'p', 's', 0x01, 't', 0xff}, make([]byte, 65)...)
	if _, ok := parseFastPublish(big, 64); ok {
		t.Error("a body over the limit (4.13 is go-coap's path's answer) was taken")
	}
}

// TestAppendNotificationMatchesGoCoap: the inline notification encoder
// writes what go-coap writes for the same notification (setRepresentation
// on a pool message), option for option.
func TestAppendNotificationMatchesGoCoap(t *testing.T) {
	now := time.Now()
	long := string(bytes.Repeat([]byte{'x'}, 300))
	for _, tc := range []struct {
		msg      *core.Message
		wildcard bool
		seq      uint32
	}{
		{&core.Message{Topic: "a/b", Payload: []byte("hello")}, false, 0},
		{&core.Message{Topic: "a/b", Payload: []byte("{}"), ContentType: "application/json"}, true, 1},
		{&core.Message{Topic: "s/k/t", ContentType: "text/plain;charset=utf-8", ExpiresAt: now.Add(90 * time.Second)}, true, 300},
		{&core.Message{Topic: "a//" + long + "/c", Payload: []byte("z"),
			UserProps: []core.UserProperty{{Key: cfUserProperty, Value: "65000"}}}, true, 0xFFFFFF},
		{&core.Message{Topic: "l/" + string(bytes.Repeat([]byte{'y'}, 250)), Payload: []byte("z")}, true, 70000},
	} {
		got := appendNotification(nil, 0x1234, []byte{9, 8}, tc.seq, tc.msg, tc.wildcard, now)
		m := pool.NewMessage(context.Background())
		m.SetCode(codes.Content)
		m.SetType(message.NonConfirmable)
		m.SetMessageID(0x1234)
		m.SetToken([]byte{9, 8})
		m.SetObserve(tc.seq)
		setRepresentation(m, tc.msg, nil, tc.wildcard)
		want, err := m.MarshalWithEncoder(coder.DefaultCoder)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("topic %.20q seq %d:\n got %x\nwant %x", tc.msg.Topic, tc.seq, got, want)
		}
	}
}
