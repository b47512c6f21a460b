package stomp_test

// Browser tests: a page using npm's @stomp/stompjs over WebSocket (and
// over WebSocket over TLS, stomp.wss), in headless Debian chromium driven
// by npm's playwright-core, with an MQTT 5 client over plaintext TCP on
// the other side. Skipped when node, chromium or the npm packages are
// missing (adapters/stomp/testdata/browser/setup.sh installs them).

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/iotgw/iotgw/adapters/mqtt/codec"
	"github.com/iotgw/iotgw/internal/testutil"
)

func TestBrowserStompJS(t *testing.T) {
	t.Parallel()
	node := testutil.Browser(t, "testdata/browser", "@stomp/stompjs", "playwright-core")
	e := startEnv(t, nil)
	runStompJS(t, node, e.mqtt, e.ws, "")
}

// TestBrowserStompJSOverWSS runs the same page over stomp.wss, Chromium
// trusting the test CA's server key alone (by its SPKI hash).
func TestBrowserStompJSOverWSS(t *testing.T) {
	t.Parallel()
	node := testutil.Browser(t, "testdata/browser", "@stomp/stompjs", "playwright-core")
	pki := testutil.NewPKI(t, "stomp-wss")
	srv := pki.Server("server")
	g := testutil.Start(t, pki.TLSYAML(srv))
	runStompJS(t, node, g.MQTTAddr(), g.STOMPWSSURL(), srv.SPKIHash())
}

// runStompJS runs page.html against the STOMP WebSocket url (spki: the
// trusted server key of a wss:// one), an MQTT 5 client at mqttAddr on
// the other side, and checks what the page saw.
func runStompJS(t *testing.T, node, mqttAddr, url, spki string) {
	m5 := dialMQTT5(t, mqttAddr)
	m5.send(&codec.Subscribe{PacketID: 1, Subscriptions: []codec.Subscription{{Filter: "web/#", QoS: 1}}})
	if _, ok := m5.read().(*codec.Suback); !ok {
		t.Fatal("no SUBACK")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	np := testutil.StartNode(t, ctx, node, "testdata/browser/run.mjs", url, spki)
	stdout, stderr := &np.Stdout, &np.Stderr
	proc := &browserProc{exited: np.Exited}
	_ = m5.nc.SetReadDeadline(time.Now().Add(40 * time.Second))

	var done []byte
	for done == nil {
		p := proc.readPublish(t, m5, stderr)
		switch p.Topic {
		case "web/bin":
			if !bytes.Equal(p.Payload, []byte{0, 1, 0, 255}) || p.Props.ContentType != "application/octet-stream" {
				t.Errorf("binary body %v content type %q", p.Payload, p.Props.ContentType)
			}
			back := &codec.Publish{Topic: "web/binback", Payload: p.Payload}
			m5.send(back)
		case "web/out":
			if string(p.Payload) != "ready" || p.Props.ContentType != "application/json" {
				t.Errorf("web/out %q content type %q", p.Payload, p.Props.ContentType)
			}
			if len(p.Props.User) != 1 || p.Props.User[0] != (codec.UserProperty{Key: "x-web", Value: "yes"}) {
				t.Errorf("web/out user properties %v", p.Props.User)
			}
			in := &codec.Publish{Topic: "web/in", Payload: []byte("to the browser"), QoS: 1, PacketID: 7}
			in.Props.ContentType = "text/plain"
			in.Props.Set(codec.PropContentType)
			in.Props.User = []codec.UserProperty{{Key: "x-from-mqtt", Value: "m5"}}
			m5.send(in)
			m5.send(&codec.Publish{Topic: "web/a/wild", Payload: []byte("wildcard")})
		case "web/done":
			done = p.Payload
		}
	}
	if err := proc.wait(); err != nil {
		t.Fatalf("browser: %v\n%s", err, stderr.String())
	}
	var res struct {
		Connected struct{ Version, HeartBeat, Server string }
		Wild      struct{ Body, Destination string }
		First     struct {
			Body, Destination, ContentType, Custom string
			Redelivered                            *string
		}
		Second struct {
			Body        string
			Redelivered *string
		}
		Binary         []byte
		StillConnected bool
	}
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("browser output %q: %v\n%s", stdout.String(), err, stderr.String())
	}
	if res.Connected.Version != "1.2" || res.Connected.HeartBeat != "1000,1000" {
		t.Errorf("CONNECTED %+v", res.Connected)
	}
	if res.Wild.Body != "wildcard" || res.Wild.Destination != "web/a/wild" {
		t.Errorf("wildcard delivery %+v", res.Wild)
	}
	if res.First.Body != "to the browser" || res.First.ContentType != "text/plain" || res.First.Custom != "m5" || res.First.Redelivered != nil {
		t.Errorf("first delivery %+v", res.First)
	}
	if res.Second.Body != "to the browser" || res.Second.Redelivered == nil || *res.Second.Redelivered != "true" {
		t.Errorf("redelivery after NACK %+v", res.Second)
	}
	if !bytes.Equal(res.Binary, []byte{0, 1, 0, 255}) {
		t.Errorf("binary body back %v", res.Binary)
	}
	if !res.StillConnected {
		t.Error("the connection did not survive 2.5 s on heart-beats alone")
	}
}

// browserProc is the node process, whose end is noticed while reading.
type browserProc struct {
	exited <-chan error
	ended  bool
	err    error
}

func (b *browserProc) wait() error {
	if !b.ended {
		b.err, b.ended = <-b.exited, true
	}
	return b.err
}

// readPublish reads the next PUBLISH, failing early if the browser
// process fails first.
func (b *browserProc) readPublish(t *testing.T, m5 *mqtt5Client, stderr *bytes.Buffer) *codec.Publish {
	t.Helper()
	type result struct {
		p   codec.Packet
		err error
	}
	rc := make(chan result, 1)
	go func() {
		p, _, err := codec.ReadPacket(m5.br, codec.V5, 0)
		rc <- result{p, err}
	}()
	exited := b.exited
	if b.ended {
		exited = nil
	}
	for {
		select {
		case r := <-rc:
			if r.err != nil {
				t.Fatalf("MQTT 5 read: %v\nbrowser: %s", r.err, stderr.String())
			}
			if p, ok := r.p.(*codec.Publish); ok {
				if p.QoS == 1 {
					m5.send(&codec.Ack{Kind: codec.TypePuback, PacketID: p.PacketID})
				}
				return p
			}
			go func() {
				p, _, err := codec.ReadPacket(m5.br, codec.V5, 0)
				rc <- result{p, err}
			}()
		case err := <-exited:
			b.err, b.ended, exited = err, true, nil
			if err != nil {
				t.Fatalf("browser failed: %v\n%s", err, stderr.String())
			}
		}
	}
}
