package coap_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/iotgw/iotgw/adapters/coap"
	"github.com/iotgw/iotgw/internal/testutil"
)

// TestPublish: POST and PUT, CON and NON, at each QoS, with retain and a
// Content-Format, reach an MQTT subscriber; the content format becomes
// the MQTT 5 content type.
func TestPublish(t *testing.T) {
	g := startGateway(t, nil)
	sub := g.mqttClient(t)
	sub.subscribe("pub/#", 2)
	cc := g.coapClient(t)
	cases := []struct {
		name       string
		method     codes.Code
		non        bool
		query      []string
		wantQoS    byte
		wantRetain bool
	}{
		{"post-con-default", codes.POST, false, nil, 1, false},
		{"post-non-default", codes.POST, true, nil, 0, false},
		{"put-qos0", codes.PUT, false, []string{"qos=0"}, 0, false},
		{"post-qos1-retain", codes.POST, false, []string{"qos=1", "retain=true"}, 1, true},
		{"put-qos2-short", codes.PUT, true, []string{"q=2", "r=false"}, 2, false},
		{"post-qos2-retain", codes.POST, false, []string{"qos=2", "retain=true", "expiry=60"}, 2, true},
	}
	for _, tc := range cases {
		topic := "pub/" + tc.name
		var req, err = cc.NewPostRequest(ctxTimeout(t), "/ps/"+topic, message.AppJSON, bytes.NewReader([]byte(`{"n":"`+tc.name+`"}`)), queries(tc.query...)...)
		if tc.method == codes.PUT {
			req, err = cc.NewPutRequest(ctxTimeout(t), "/ps/"+topic, message.AppJSON, bytes.NewReader([]byte(`{"n":"`+tc.name+`"}`)), queries(tc.query...)...)
		}
		if err == nil && tc.non {
			req.SetType(message.NonConfirmable)
		}
		if r := do(t, cc, req, err); r.Code != codes.Changed {
			t.Fatalf("%s: got %v %q, want 2.04", tc.name, r.Code, r.Payload)
		}
		m := sub.next()
		want := mqttMsg{Topic: topic, Payload: `{"n":"` + tc.name + `"}`, QoS: tc.wantQoS}
		if m != want {
			t.Fatalf("%s: MQTT got %+v, want %+v", tc.name, m, want)
		}
		if tc.wantRetain {
			rm, ok := g.b.Retained(topic)
			if !ok || rm.ContentType != "application/json" || string(rm.Payload) != want.Payload {
				t.Fatalf("%s: retained %+v ok=%v", tc.name, rm, ok)
			}
			if strings.Contains(tc.name, "qos2") && rm.ExpiresAt.IsZero() {
				t.Fatalf("%s: expiry not applied", tc.name)
			}
		}
	}
	st := g.b.Stats()
	if st.WireBytesReceived.Load() == 0 || st.WireBytesSent.Load() == 0 {
		t.Fatalf("wire bytes not counted: in %d out %d", st.WireBytesReceived.Load(), st.WireBytesSent.Load())
	}
	// A late MQTT subscriber sees the retained ones with the retain flag.
	late := g.mqttClient(t)
	late.subscribe("pub/post-qos1-retain", 1)
	if m := late.next(); !m.Retained || m.Payload != `{"n":"post-qos1-retain"}` {
		t.Fatalf("late subscriber got %+v", m)
	}
}

// TestGetRetained: a plain GET returns the retained message with its
// Content-Format, or 4.04; the MQTT content type maps back.
func TestGetRetained(t *testing.T) {
	g := startGateway(t, nil)
	cc := g.coapClient(t)
	if r := get(t, cc, "/ps/room/temp"); r.Code != codes.NotFound {
		t.Fatalf("GET without retained: %v", r.Code)
	}
	if r := post(t, cc, "/ps/room/temp", message.AppCBOR, "\xa1\x01\x02", "retain=true"); r.Code != codes.Changed {
		t.Fatalf("publish: %v %q", r.Code, r.Payload)
	}
	r := get(t, cc, "/ps/room/temp")
	if r.Code != codes.Content || r.Payload != "\xa1\x01\x02" || r.CF != int(message.AppCBOR) {
		t.Fatalf("GET: %+v", r)
	}
	// From MQTT: no content type, so no Content-Format.
	pub := g.mqttClient(t)
	pub.publish("room/hum", 1, true, "41")
	r = get(t, cc, "/ps/room/hum")
	if r.Code != codes.Content || r.Payload != "41" || r.CF != -1 {
		t.Fatalf("GET of MQTT retained: %+v", r)
	}
	// An empty retained publish deletes it.
	if r := post(t, cc, "/ps/room/hum", message.TextPlain, "", "retain=true"); r.Code != codes.Changed {
		t.Fatalf("delete retained: %v", r.Code)
	}
	if r := get(t, cc, "/ps/room/hum"); r.Code != codes.NotFound {
		t.Fatalf("GET after delete: %v", r.Code)
	}
}

// TestErrorCodes: unknown path 4.04, wrong method 4.05, bad query value
// and bad topics 4.00 with a diagnostic payload, unknown critical option
// 4.02, and the resource directory.
func TestErrorCodes(t *testing.T) {
	g := startGateway(t, nil)
	cc := g.coapClient(t)
	rc := g.raw(t)
	type want struct {
		code codes.Code
		diag string
	}
	check := func(name string, r response, w want) {
		t.Helper()
		if r.Code != w.code || !strings.Contains(r.Payload, w.diag) {
			t.Errorf("%s: got %v %q, want %v containing %q", name, r.Code, r.Payload, w.code, w.diag)
		}
	}
	check("unknown path", get(t, cc, "/nope"), want{codes.NotFound, "/nope"})
	check("unknown mqtt path", post(t, cc, "/mqtt/other", message.TextPlain, "x"), want{codes.NotFound, ""})
	check("get connection", get(t, cc, "/mqtt/connection"), want{codes.MethodNotAllowed, "POST"})
	check("bad qos", post(t, cc, "/ps/a", message.TextPlain, "x", "qos=3"), want{codes.BadRequest, "qos"})
	check("bad retain", post(t, cc, "/ps/a", message.TextPlain, "x", "retain=maybe"), want{codes.BadRequest, "retain"})
	check("bad expiry", post(t, cc, "/ps/a", message.TextPlain, "x", "expiry=-1"), want{codes.BadRequest, "expiry"})
	check("empty topic", post(t, cc, "/ps", message.TextPlain, "x"), want{codes.BadRequest, "topic"})
	check("wildcard publish", post(t, cc, "/ps/a/+", message.TextPlain, "x"), want{codes.BadRequest, "+ or #"})
	check("wildcard read", get(t, cc, "/ps/a/#"), want{codes.BadRequest, "Observe"})
	check("sys publish", post(t, cc, "/ps/$SYS/x", message.TextPlain, "x"), want{codes.Forbidden, ""})
	check("bad token", post(t, cc, "/ps/a", message.TextPlain, "x", "clientid=c", "token=t"), want{codes.Unauthorized, "token"})
	wk := get(t, cc, "/.well-known/core")
	if wk.Code != codes.Content || wk.CF != int(message.AppLinkFormat) || !strings.Contains(wk.Payload, `</ps>;rt="core.ps";obs`) || !strings.Contains(wk.Payload, "</mqtt/connection>") {
		t.Errorf("/.well-known/core: %+v", wk)
	}
	if wk := get(t, cc, "/.well-known/core", "rt=core.ps"); wk.Code != codes.Content || strings.Contains(wk.Payload, "connection") || !strings.Contains(wk.Payload, "</ps>") {
		t.Errorf("/.well-known/core?rt=core.ps: %+v", wk)
	}
	if wk := get(t, cc, "/.well-known/core", "href=/mqtt*"); strings.Contains(wk.Payload, "</ps>") || !strings.Contains(wk.Payload, "</mqtt/connection>") {
		t.Errorf("/.well-known/core?href=/mqtt*: %+v", wk)
	}

	// Methods go-coap's client does not offer, and options, over raw UDP.
	raw := func(m message.Message) message.Message {
		rc.send(m)
		for {
			r := rc.mustRecv()
			if r.MessageID == m.MessageID {
				return r
			}
		}
	}
	ipatch := request(codes.Code(7), message.Confirmable, rc.nextMID(), []byte{1}, "/ps/a")
	if r := raw(ipatch); r.Code != codes.MethodNotAllowed || r.Type != message.Acknowledgement {
		t.Errorf("iPATCH: %v %v", r.Code, r.Type)
	}
	crit := request(codes.GET, message.Confirmable, rc.nextMID(), []byte{2}, "/ps/a")
	crit.Options = crit.Options.Add(message.Option{ID: 65001, Value: []byte("x")})
	if r := raw(crit); r.Code != codes.BadOption {
		t.Errorf("unknown critical option: %v %q", r.Code, r.Payload)
	}
	elective := request(codes.GET, message.Confirmable, rc.nextMID(), []byte{3}, "/ps/a")
	elective.Options = elective.Options.Add(message.Option{ID: 65000, Value: []byte("x")})
	if r := raw(elective); r.Code != codes.NotFound {
		t.Errorf("unknown elective option: %v %q", r.Code, r.Payload)
	}
}

// TestDuplicateCON: a retransmitted CON publish (same message id) is
// answered again but published once.
func TestDuplicateCON(t *testing.T) {
	g := startGateway(t, nil)
	sub := g.mqttClient(t)
	sub.subscribe("dup/#", 1)
	rc := g.raw(t)
	m := request(codes.POST, message.Confirmable, rc.nextMID(), []byte{9}, "/ps/dup/a")
	m.Payload = []byte("once")
	for i := 0; i < 3; i++ {
		rc.send(m)
		if r := rc.mustRecv(); r.Code != codes.Changed || r.MessageID != m.MessageID {
			t.Fatalf("attempt %d: %v mid %d", i, r.Code, r.MessageID)
		}
	}
	marker := request(codes.POST, message.Confirmable, rc.nextMID(), []byte{10}, "/ps/dup/marker")
	marker.Payload = []byte("marker")
	rc.send(marker)
	rc.mustRecv()
	if got := sub.next(); got.Payload != "once" {
		t.Fatalf("first: %+v", got)
	}
	if got := sub.next(); got.Payload != "marker" {
		t.Fatalf("duplicate published: %+v", got)
	}
}

// TestGarbage: malformed datagrams are dropped and counted; the sender
// and other clients keep working.
func TestGarbage(t *testing.T) {
	g := startGateway(t, nil)
	sub := g.mqttClient(t)
	sub.subscribe("g/#", 0)
	rc := g.raw(t)
	other := g.coapClient(t)
	garbage := [][]byte{
		{0x00},                         // truncated
		{0xff, 0xff, 0xff, 0xff},       // version 3
		{0x4f, 0x01, 0x00, 0x01},       // token length 15
		{0x48, 0x01, 0x00, 0x01, 1, 2}, // token shorter than announced
		{0x40, 0x01, 0x00, 0x01, 0xd1}, // option with missing extension
		append([]byte{0x40, 0x02, 0x00, 0x02, 0xb2, 'p', 's'}, bytes.Repeat([]byte{0xf0}, 3)...),
		[]byte("GET / HTTP/1.1\r\n\r\n"),
	}
	for _, b := range garbage {
		rc.sendBytes(b)
	}
	testutil.Eventually(t, waitTimeout, func() bool { return g.malformed() >= 5 }, "malformed datagrams counted")
	if r := post(t, other, "/ps/g/other", message.TextPlain, "fine"); r.Code != codes.Changed {
		t.Fatalf("other client: %v", r.Code)
	}
	if m := sub.next(); m.Payload != "fine" {
		t.Fatalf("got %+v", m)
	}
	m := request(codes.POST, message.Confirmable, rc.nextMID(), []byte{1}, "/ps/g/same")
	m.Payload = []byte("still")
	rc.send(m)
	if r := rc.mustRecv(); r.Code != codes.Changed {
		t.Fatalf("same sender after garbage: %v", r.Code)
	}
	if m := sub.next(); m.Payload != "still" {
		t.Fatalf("got %+v", m)
	}
}

// TestBodyLimit: a body beyond coap.max_body_size gets 4.13 with Size1,
// whether sent whole or block-wise.
func TestBodyLimit(t *testing.T) {
	g := startGateway(t, func(c *coap.Config) { c.MaxBodySize = 2000 })
	cc := g.coapClient(t)
	r := post(t, cc, "/ps/big", message.AppOctets, strings.Repeat("x", 3000))
	if r.Code != codes.RequestEntityTooLarge {
		t.Fatalf("block-wise 3000 bytes: %v %q", r.Code, r.Payload)
	}
	rc := g.raw(t)
	m := request(codes.POST, message.Confirmable, rc.nextMID(), []byte{1}, "/ps/big")
	m.Payload = bytes.Repeat([]byte("y"), 2500)
	rc.send(m)
	resp := rc.mustRecv()
	size1, err := resp.Options.GetUint32(message.Size1)
	if resp.Code != codes.RequestEntityTooLarge || err != nil || size1 != 2000 {
		t.Fatalf("whole 2500 bytes: %v size1=%d err=%v", resp.Code, size1, err)
	}
	if r := post(t, cc, "/ps/big", message.AppOctets, strings.Repeat("z", 1900)); r.Code != codes.Changed {
		t.Fatalf("1900 bytes: %v", r.Code)
	}
}
