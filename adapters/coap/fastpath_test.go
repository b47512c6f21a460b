package coap_test

import (
	"bytes"
	"net"
	"strconv"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/iotgw/iotgw/adapters/coap"
)

// viaGoCoap marks a request so that the fast path leaves it to go-coap's
// path: a Uri-Host option, which the handlers ignore [RFC 7252 §5.10.1].
func viaGoCoap(m message.Message) message.Message {
	m.Options = append(message.Options{{ID: message.URIHost, Value: []byte("localhost")}}, m.Options...)
	return m
}

// TestFastPathMatchesGoCoapPath: a publish answered by the fast path and
// the same publish answered by go-coap's path (made to go there by a
// Uri-Host option) get the same answer — type, code, token, options and
// diagnostic payload; the message id is the request's for a CON request
// and a fresh one of the gateway's for a NON one — and publish the same
// message. A retransmitted CON publish gets the first answer again, byte
// for byte, and is published once [RFC 7252 §4.5].
func TestFastPathMatchesGoCoapPath(t *testing.T) {
	g := startGateway(t, nil)
	sub := g.mqttClient(t)
	sub.subscribe("eq/#", 1)
	rc := g.raw(t)
	cases := []struct {
		name    string
		typ     message.Type
		code    codes.Code
		path    string
		qs      []string
		cf      int // -1: none
		payload string
		want    codes.Code
	}{
		{"CON POST", message.Confirmable, codes.POST, "/ps/eq/a", []string{"qos=1"}, -1, "p1", codes.Changed},
		{"NON PUT json retain", message.NonConfirmable, codes.PUT, "/ps/eq/b", []string{"q=0", "r=1", "e=60"}, 50, "{}", codes.Changed},
		{"CON empty body text", message.Confirmable, codes.POST, "/ps/eq/c", nil, 0, "", codes.Changed},
		{"CON percent-encoded level", message.Confirmable, codes.POST, "/ps/eq/d%2Fe", []string{"clientid=dev1"}, -1, "x", codes.Changed},
		{"NON refused topic", message.NonConfirmable, codes.POST, "/ps/eq/\x00", nil, -1, "x", codes.BadRequest},
		{"CON refused topic", message.Confirmable, codes.POST, "/ps/eq/\x00", nil, -1, "x", codes.BadRequest},
	}
	for i, tc := range cases {
		var answers [2]message.Message
		for path := 0; path < 2; path++ {
			m := request(tc.code, tc.typ, rc.nextMID(), []byte{byte(i), byte(path)}, tc.path, tc.qs...)
			if tc.cf >= 0 {
				m.Options = m.Options.Add(message.Option{ID: message.ContentFormat, Value: encodeUint(uint32(tc.cf))})
			}
			m.Payload = []byte(tc.payload)
			if path == 1 {
				m = viaGoCoap(m)
			}
			rc.send(m)
			r := rc.mustRecv()
			wantType := message.Acknowledgement
			if tc.typ == message.NonConfirmable {
				wantType = message.NonConfirmable
			}
			if r.Type != wantType || r.Code != tc.want || !bytes.Equal(r.Token, m.Token) ||
				(wantType == message.Acknowledgement) != (r.MessageID == m.MessageID) {
				t.Fatalf("%s, path %d: %v %v token %x mid %d (request %d)", tc.name, path, r.Type, r.Code, r.Token, r.MessageID, m.MessageID)
			}
			r.MessageID, r.Token = 0, nil
			answers[path] = r
			if tc.want == codes.Changed {
				got := sub.next()
				if got.Payload != tc.payload {
					t.Fatalf("%s, path %d: published %+v", tc.name, path, got)
				}
			}
		}
		if a, b := answers[0], answers[1]; a.Code != b.Code || a.Type != b.Type ||
			!optionsEqual(a.Options, b.Options) || !bytes.Equal(a.Payload, b.Payload) {
			t.Errorf("%s: fast path %v %v %q, go-coap path %v %v %q", tc.name, a.Code, a.Options, a.Payload, b.Code, b.Options, b.Payload)
		}
	}

	// Duplicates: the same bytes back, one publication.
	for path := 0; path < 2; path++ {
		m := request(codes.POST, message.Confirmable, rc.nextMID(), []byte{0xd0, byte(path)}, "/ps/eq/dup", "qos=1")
		m.Payload = []byte("dup" + strconv.Itoa(path))
		if path == 1 {
			m = viaGoCoap(m)
		}
		var first []byte
		for try := 0; try < 3; try++ {
			rc.send(m)
			b, ok := rc.recvBytes(waitTimeout)
			if !ok {
				t.Fatalf("path %d try %d: no answer", path, try)
			}
			if try == 0 {
				first = b
			} else if !bytes.Equal(b, first) {
				t.Fatalf("path %d retransmission %d: %x, first answer %x", path, try, b, first)
			}
		}
		if got := sub.next(); got.Payload != string(m.Payload) {
			t.Fatalf("path %d: %+v", path, got)
		}
	}
	// Nothing more (no second copy of a duplicate) before a marker.
	marker := request(codes.POST, message.Confirmable, rc.nextMID(), []byte{0xee}, "/ps/eq/marker")
	marker.Payload = []byte("marker")
	rc.send(marker)
	rc.mustRecv()
	if got := sub.next(); got.Payload != "marker" {
		t.Fatalf("unexpected %+v", got)
	}
}

func optionsEqual(a, b message.Options) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].ID != b[i].ID || !bytes.Equal(a[i].Value, b[i].Value) {
			return false
		}
	}
	return true
}

// TestFastPathBurst: many publishes sent back to back arrive in few read
// batches and are all answered, each once.
func TestFastPathBurst(t *testing.T) {
	g := startGateway(t, nil)
	sub := g.mqttClient(t)
	sub.subscribe("burst/t", 0)
	rc := g.raw(t)
	_ = rc.conn.SetReadBuffer(1 << 20)
	const n = 100
	mids := map[int32]bool{}
	for i := 0; i < n; i++ {
		m := request(codes.POST, message.Confirmable, rc.nextMID(), []byte{byte(i)}, "/ps/burst/t", "qos=0")
		m.Payload = []byte("b")
		mids[m.MessageID] = true
		rc.send(m)
	}
	for len(mids) > 0 {
		r := rc.mustRecv()
		if r.Type != message.Acknowledgement || r.Code != codes.Changed || !mids[r.MessageID] {
			t.Fatalf("unexpected %v %v mid %d (%d unanswered)", r.Type, r.Code, r.MessageID, len(mids))
		}
		delete(mids, r.MessageID)
	}
}

// TestWildcardListenerFastPath: on a listener bound to every address (the default
// ":5683", here dual-stack on port 0) the destination of each datagram
// comes with it, and publishes, their answers and QoS 0 notifications
// work on both paths.
func TestWildcardListenerFastPath(t *testing.T) {
	g := startGateway(t, func(c *coap.Config) { c.UDP = ":0" })
	_, port, err := net.SplitHostPort(g.addr)
	if err != nil {
		t.Fatal(err)
	}
	g.addr = net.JoinHostPort("127.0.0.1", port)
	obs := g.raw(t)
	obs.observe([]byte{4, 4}, 0, "/ps/wild/t", "qos=0")
	rc := g.raw(t)
	for path := 0; path < 2; path++ {
		m := request(codes.POST, message.Confirmable, rc.nextMID(), []byte{byte(path)}, "/ps/wild/t", "qos=0")
		m.Payload = []byte("w" + strconv.Itoa(path))
		if path == 1 {
			m = viaGoCoap(m)
		}
		rc.send(m)
		if r := rc.mustRecv(); r.Code != codes.Changed || r.MessageID != m.MessageID {
			t.Fatalf("path %d: %v mid %d", path, r.Code, r.MessageID)
		}
		if n := obs.mustRecv(); string(n.Payload) != string(m.Payload) || n.Type != message.NonConfirmable {
			t.Fatalf("path %d: notification %v %q", path, n.Type, n.Payload)
		}
	}
}
