package coap_test

// CoAP over DTLS with RFC 9146 connection IDs (tls.connection_id): a
// go-coap DTLS client whose UDP source address changes mid-session (a NAT
// rebinding, simulated by moving the client's socket to a new port under
// the pion/dtls session) keeps its session, its requests and its
// observation, without a new handshake.

import (
	"bytes"
	"context"
	"testing"
	"time"

	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/options"

	"github.com/iotgw/iotgw/internal/testutil"
)

func TestDTLSConnectionIDRebind(t *testing.T) {
	pki := testutil.NewPKI(t, "coap-cid")
	psk := pki.PSKFile("keys.psk", map[string][]byte{dtlsIdentity: []byte(dtlsKey)})
	g := testutil.Start(t, "tls:\n  psk_file: "+psk+"\n  connection_id: true\n")
	sub := (&gateway{mqttURL: g.MQTTURL()}).mqttClient(t)
	sub.subscribe("cid/#", 1)

	// go-coap's Dial makes its own socket; its Client runs over a
	// session we make, here on a socket that can move.
	rc := testutil.NewRebindConn(t)
	dc, err := testutil.DialDTLS(t, rc, g.CoAPDTLSAddr(), waitTimeout, testutil.PSKOptions(dtlsIdentity, dtlsKey)...)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	cc := coapdtls.Client(dc, options.WithErrors(func(error) {}), options.WithCloseSocket())
	defer cc.Close()

	notes := make(chan string, 8)
	registered := make(chan codes.Code, 1)
	first := true
	obs, err := cc.Observe(ctx, "/ps/cid/cmd", func(m *pool.Message) {
		if first { // the registration response; the callback runs in order
			first = false
			registered <- m.Code()
			return
		}
		body, _ := m.ReadBody()
		notes <- string(body)
	})
	if err != nil {
		t.Fatalf("observe: %v", err)
	}
	defer func() {
		// Bounded: without an answer (a test that failed because the
		// session was lost) Cancel would wait for ever.
		cctx, ccancel := context.WithTimeout(context.Background(), time.Second)
		defer ccancel()
		_ = obs.Cancel(cctx)
	}()
	select {
	case code := <-registered:
		if code != codes.Content {
			t.Fatalf("observe: %v", code)
		}
	case <-time.After(waitTimeout):
		t.Fatal("no registration response")
	}
	put := func(body string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		resp, err := cc.Put(ctx, "/ps/cid/temp", message.TextPlain, bytes.NewReader([]byte(body)))
		if err != nil {
			t.Fatalf("PUT %s: %v", body, err)
		}
		if resp.Code() != codes.Changed {
			t.Fatalf("PUT %s: %v", body, resp.Code())
		}
	}
	note := func(want string) {
		t.Helper()
		select {
		case n := <-notes:
			if n != want {
				t.Fatalf("notification %q, want %q", n, want)
			}
		case <-time.After(waitTimeout):
			t.Fatalf("no notification %q", want)
		}
	}
	put("1")
	if m := sub.next(); m.Topic != "cid/temp" || m.Payload != "1" {
		t.Fatalf("MQTT got %+v", m)
	}
	sub.publish("cid/cmd", 1, false, "on")
	note("on")
	if m := sub.next(); m.Topic != "cid/cmd" { // its own, through cid/#
		t.Fatalf("MQTT got %+v", m)
	}

	// The address changes; the connection ID keeps the session: the
	// next request is answered, and the observation, registered from
	// the old address, notifies the new one.
	before := rc.LocalAddr().String()
	rc.Rebind(t)
	if rc.LocalAddr().String() == before {
		t.Fatal("the client socket did not move")
	}
	put("2")
	if m := sub.next(); m.Topic != "cid/temp" || m.Payload != "2" {
		t.Fatalf("MQTT got %+v after the rebinding", m)
	}
	sub.publish("cid/cmd", 1, false, "off")
	note("off")
	st := g.CoAP.DTLSStats()
	if n := st.Handshakes.Load(); n != 1 {
		t.Fatalf("%d handshakes, want the one session", n)
	}
	if n := st.Sessions.Load(); n != 1 {
		t.Fatalf("%d sessions, want the one", n)
	}
}
