package stomp_test

// STOMP over the secured listeners (issue 15): stomp.py and go-stomp over
// stomp.tls, go-stomp over stomp.wss (a gorilla WebSocket trusting the
// test CA), client certificates (client_auth require and request, with
// identity cn the certificate's CN is the login acl.rules %u sees and
// the login header is ignored), and the ERROR frame that arrives over
// TLS while the client keeps writing.

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"os/exec"
	"strings"
	"testing"

	paho "github.com/eclipse/paho.mqtt.golang"
	gostomp "github.com/go-stomp/stomp/v3"
	"github.com/go-stomp/stomp/v3/frame"

	"github.com/iotgw/iotgw/internal/testutil"
)

func asWatcher(o *paho.ClientOptions) { o.SetUsername("watcher").SetPassword("secret") }

func dialTLS(t testing.TB, addr string, cfg *tls.Config) *tls.Conn {
	t.Helper()
	nc, err := tls.DialWithDialer(&net.Dialer{Timeout: waitTimeout}, "tcp", addr, cfg)
	if err != nil {
		t.Fatalf("TLS dial %s: %v", addr, err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc
}

// rawTLS is a raw STOMP client over TLS.
func rawTLS(t testing.TB, addr string, cfg *tls.Config) *rawStomp {
	t.Helper()
	nc := dialTLS(t, addr, cfg)
	return &rawStomp{t: t, nc: nc, r: frame.NewReader(nc)}
}

// rawWSS is a raw STOMP client over a secured WebSocket.
func rawWSS(t testing.TB, url string, cfg *tls.Config) *rawStomp {
	t.Helper()
	nc := testutil.DialWSS(t, url, "v12.stomp", true, cfg)
	return &rawStomp{t: t, nc: nc, r: frame.NewReader(bufio.NewReader(nc))}
}

func TestTLSPythonStomp(t *testing.T) {
	t.Parallel()
	python := needPythonStomp(t)
	for _, tc := range []struct {
		name    string
		tls     []string // keys of the tls section
		yaml    string
		in, out string
		client  bool
	}{
		{"server_certificate", nil, "", "pytls/in", "pytls/out", false},
		// The login stomp.py sends (mallory) is ignored: the CN is the
		// user, and %u lets it use its own topics only.
		{"client_certificate_identity", []string{"client_auth: require", "identity: cn"}, testutil.IdentityACL,
			"devices/py-dev/in", "devices/py-dev/out", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pki := testutil.NewPKI(t, "py-"+tc.name)
			g := testutil.Start(t, pki.TLSYAML(pki.Server("server"), tc.tls...)+tc.yaml)
			host, port, _ := net.SplitHostPort(g.STOMPTLSAddr())
			args := []string{"testdata/python/tls_client.py", host, port, pki.CAFile, tc.in, tc.out}
			if tc.client {
				c := pki.Client("py", "py-dev")
				args = append(args, c.CertFile, c.KeyFile)
			}
			p := connectPahoWith(t, g.MQTTAddr(), asWatcher)
			p.sub(tc.out, 1)
			ctx, cancel := context.WithTimeout(context.Background(), 3*waitTimeout)
			defer cancel()
			cmd := exec.CommandContext(ctx, python, args...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			var out []byte
			var runErr error
			done := make(chan struct{})
			go func() {
				out, runErr = cmd.Output()
				close(done)
			}()
			// next waits for python's message to MQTT, or for python to
			// end without sending it: then what it printed is the cause.
			// The bound is python's own (its start-up under a loaded CI
			// machine can take seconds), not paho's ten.
			next := func(want string) {
				t.Helper()
				select {
				case m := <-p.msgs:
					if m.Topic != tc.out || string(m.Payload) != want {
						t.Fatalf("MQTT got %s %q, want %q", m.Topic, m.Payload, want)
					}
				case <-done:
					t.Fatalf("python ended before sending %q: %v\nstdout %s\nstderr %s", want, runErr, out, stderr.String())
				}
			}
			next("ready")
			p.pub(tc.in, 1, false, "hello tls")
			next("got:hello tls")
			<-done
			if runErr != nil {
				t.Fatalf("python client: %v\nstdout %s\nstderr %s", runErr, out, stderr.String())
			}
			var res struct{ Receipt, Body, Destination string }
			if err := json.Unmarshal(out, &res); err != nil {
				t.Fatalf("python output %q: %v", out, err)
			}
			if res.Receipt != "r-ready" || res.Body != "hello tls" || res.Destination != tc.in {
				t.Errorf("python saw %+v", res)
			}
		})
	}
}

// TestTLSGoStomp: go-stomp over a tls.Dial connection to stomp.tls and
// over a gorilla WebSocket to stomp.wss: SEND with a receipt reaches an
// MQTT subscriber, a SUBSCRIBE gets what MQTT publishes.
func TestTLSGoStomp(t *testing.T) {
	t.Parallel()
	pki := testutil.NewPKI(t, "gostomp")
	g := testutil.Start(t, pki.TLSYAML(pki.Server("server")))
	for _, tc := range []struct {
		name string
		dial func(t *testing.T) net.Conn
	}{
		{"tls", func(t *testing.T) net.Conn { return dialTLS(t, g.STOMPTLSAddr(), pki.ClientConfig(nil)) }},
		{"wss", func(t *testing.T) net.Conn {
			return testutil.DialWSS(t, g.STOMPWSSURL(), "v12.stomp", true, pki.ClientConfig(nil))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := gostomp.Connect(tc.dial(t), gostomp.ConnOpt.Host("iotgw"), gostomp.ConnOpt.HeartBeat(0, 0))
			if err != nil {
				t.Fatalf("go-stomp connect over %s: %v", tc.name, err)
			}
			t.Cleanup(func() { _ = c.Disconnect() })
			p := connectPaho(t, g.MQTTAddr())
			p.sub("gs/"+tc.name+"/out", 1)
			if err := c.Send("gs/"+tc.name+"/out", "text/plain", []byte("over "+tc.name), gostomp.SendOpt.Receipt); err != nil {
				t.Fatalf("send with receipt: %v", err)
			}
			if m := p.next(); string(m.Payload) != "over "+tc.name {
				t.Errorf("MQTT got %s %q", m.Topic, m.Payload)
			}
			sub, err := c.Subscribe("gs/"+tc.name+"/in", gostomp.AckClientIndividual)
			if err != nil {
				t.Fatal(err)
			}
			syncStomp(t, c)
			p.pub("gs/"+tc.name+"/in", 1, false, "to "+tc.name)
			m := nextMsg(t, sub)
			if string(m.Body) != "to "+tc.name || m.Destination != "gs/"+tc.name+"/in" {
				t.Errorf("go-stomp got %s %q", m.Destination, m.Body)
			}
			if err := c.Ack(m); err != nil {
				t.Fatal(err)
			}
			syncStomp(t, c)
		})
	}
}

// TestTLSStompIdentity: with client_auth require and identity cn, a
// client certificate's CN is the STOMP login: the login and passcode
// headers are ignored, and %u lets alice use devices/alice/ only, over
// stomp.tls and stomp.wss. Without a certificate the handshake fails.
func TestTLSStompIdentity(t *testing.T) {
	t.Parallel()
	pki := testutil.NewPKI(t, "stomp-identity")
	g := testutil.Start(t, pki.TLSYAML(pki.Server("server"), "client_auth: require", "identity: cn")+testutil.IdentityACL)
	alice := pki.Client("alice", "alice")
	for _, tc := range []struct {
		name string
		dial func(t *testing.T, cfg *tls.Config) *rawStomp
	}{
		{"tls", func(t *testing.T, cfg *tls.Config) *rawStomp { return rawTLS(t, g.STOMPTLSAddr(), cfg) }},
		{"wss", func(t *testing.T, cfg *tls.Config) *rawStomp { return rawWSS(t, g.STOMPWSSURL(), cfg) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.dial(t, pki.ClientConfigSending(alice))
			r.connect("login:mallory", "passcode:wrong")
			r.write("SUBSCRIBE\nid:1\ndestination:devices/alice/#\nreceipt:s1\n\n\x00")
			r.expect(frame.RECEIPT)
			r.write("SEND\ndestination:devices/alice/t\nreceipt:r1\n\nmine\x00")
			// The RECEIPT and the MESSAGE of alice's own subscription, in
			// either order.
			got := map[string]bool{}
			for len(got) < 2 {
				f, err := nextFrame(r)
				if err != nil {
					t.Fatal(err)
				}
				got[f.Command] = true
				if f.Command == frame.MESSAGE && string(f.Body) != "mine" {
					t.Errorf("MESSAGE %q", f.Body)
				}
			}
			if !got[frame.RECEIPT] || !got[frame.MESSAGE] {
				t.Fatalf("got %v, want RECEIPT and MESSAGE", got)
			}
			// mallory's topic is not alice's.
			r.write("SEND\ndestination:devices/mallory/t\nreceipt:r2\n\nnot mine\x00")
			r.expectError("not authorized")
		})
	}
	// No certificate: refused at the handshake (TLS 1.3: the alert comes
	// with the first read).
	r := rawTLS(t, g.STOMPTLSAddr(), pki.ClientConfig(nil))
	_, _ = r.nc.Write([]byte("CONNECT\naccept-version:1.2\nhost:x\nlogin:alice\n\n\x00"))
	if f, err := r.read(); err == nil || !strings.Contains(err.Error(), "certificate required") {
		t.Errorf("STOMP over TLS without a certificate: %v %v, want the alert certificate required", f, err)
	}
}

// TestTLSStompClientAuthRequest: client_auth request with identity cn
// lets a client without a certificate through the handshake and refuses
// its CONNECT (ERROR not authorized) whatever login it sends; one with a
// certificate logs in as its CN.
func TestTLSStompClientAuthRequest(t *testing.T) {
	t.Parallel()
	pki := testutil.NewPKI(t, "stomp-request")
	g := testutil.Start(t, pki.TLSYAML(pki.Server("server"), "client_auth: request", "identity: cn")+testutil.IdentityACL)
	r := rawTLS(t, g.STOMPTLSAddr(), pki.ClientConfig(nil))
	r.write("CONNECT\naccept-version:1.2\nhost:x\nlogin:watcher\npasscode:secret\n\n\x00")
	r.expectError("not authorized")
	r = rawTLS(t, g.STOMPTLSAddr(), pki.ClientConfigSending(pki.Client("bob", "bob")))
	r.connect()
	r.write("SEND\ndestination:devices/bob/t\nreceipt:r1\n\nx\x00")
	r.expect(frame.RECEIPT)
}

// TestTLSErrorArrivesWhileClientWrites: close_test.go's ERROR cases over
// stomp.tls and stomp.wss: the ERROR, then close_notify and the end of
// the stream (or the WebSocket close), while the client keeps writing.
func TestTLSErrorArrivesWhileClientWrites(t *testing.T) {
	t.Parallel()
	pki := testutil.NewPKI(t, "stomp-close")
	yaml := closeYAML + pki.TLSYAML(pki.Server("server"))
	want := map[string]bool{"malformed_frame": true, "frame_too_large": true, "bad_login": true,
		"session_taken_over": true, "server_shutting_down": true}
	transports := []struct {
		name string
		dial func(t *testing.T, g *testutil.Gateway) *rawStomp
	}{
		{"tls", func(t *testing.T, g *testutil.Gateway) *rawStomp {
			return rawTLS(t, g.STOMPTLSAddr(), pki.ClientConfig(nil))
		}},
		{"wss", func(t *testing.T, g *testutil.Gateway) *rawStomp {
			return rawWSS(t, g.STOMPWSSURL(), pki.ClientConfig(nil))
		}},
	}
	n := 0
	for _, cf := range closeFrames {
		if !want[cf.name] {
			continue
		}
		n++
		for _, tp := range transports {
			t.Run(cf.name+"/"+tp.name, func(t *testing.T) {
				t.Parallel()
				cf.run(t, yaml, tp.dial)
			})
		}
	}
	if n != len(want) {
		t.Fatalf("found %d of the %d cases: renamed in close_test.go?", n, len(want))
	}
}
