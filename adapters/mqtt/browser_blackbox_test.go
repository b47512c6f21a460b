package mqtt_test

// Browser test: a page using npm's mqtt (mqtt.js) over WebSocket over TLS
// (mqtt.wss), in headless Debian chromium driven by npm's playwright-core,
// with a paho.mqtt.golang client over plaintext TCP on the other side.
// Chromium trusts the test CA's server key alone, by its SPKI hash
// (--ignore-certificate-errors-spki-list); a second gateway with a
// certificate of another CA must stay unreachable. Skipped when node,
// chromium or the npm packages are missing
// (adapters/mqtt/testdata/browser/setup.sh installs them).

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/iotgw/iotgw/internal/testutil"
)

func TestBrowserMQTTJSOverWSS(t *testing.T) {
	t.Parallel()
	node := testutil.Browser(t, "testdata/browser", "mqtt", "playwright-core")
	pki := testutil.NewPKI(t, "browser-wss")
	srv := pki.Server("server")
	g := testutil.Start(t, pki.TLSYAML(srv))
	other := testutil.NewPKI(t, "browser-untrusted")
	g2 := testutil.Start(t, other.TLSYAML(other.Server("server")))

	goSide, _ := connectPaho(t, g.MQTTURL(), uniqueID("go-plain"), nil)
	goSide.subscribe("web/out", 1)
	goSide.subscribe("web/done", 1)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	proc := testutil.StartNode(t, ctx, node, "testdata/browser/run.mjs", g.WSSURL(), srv.SPKIHash(), g2.WSSURL())
	stdout, stderr, exited := &proc.Stdout, &proc.Stderr, proc.Exited

	// The Go side answers "ready" and waits for the page's summary; the
	// node process may end before that summary reaches it.
	var done string
	var procErr error
	ended := false
	for done == "" {
		select {
		case m := <-goSide.msgs:
			switch m.Topic {
			case "web/out":
				if m.Payload != "ready" || m.QoS != 1 {
					t.Errorf("web/out %v", m)
				}
				goSide.publish("web/in", 1, false, "to the browser")
				goSide.publish("web/a/wild", 0, false, "wildcard")
			case "web/done":
				done = m.Payload
			}
		case procErr = <-exited:
			ended, exited = true, nil
			if procErr != nil {
				t.Fatalf("browser: %v\n%s", procErr, stderr.String())
			}
		case <-ctx.Done():
			t.Fatalf("no summary from the browser: %v\n%s", ctx.Err(), stderr.String())
		}
	}
	if !ended {
		if procErr = <-exited; procErr != nil {
			t.Fatalf("browser: %v\n%s", procErr, stderr.String())
		}
	}

	type rec struct {
		Topic, Body string
		QoS         int
		ContentType *string
		User        map[string]string
	}
	var res struct {
		Untrusted string
		Connack   struct{ ReasonCode int }
		Granted   []int
		FromGo    rec
		Wild      rec
		Echo      rec
	}
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("browser output %q: %v\n%s", stdout.String(), err, stderr.String())
	}
	var fromGoSide map[string]any
	if err := json.Unmarshal([]byte(done), &fromGoSide); err != nil || fromGoSide["done"] != true {
		t.Errorf("web/done payload %q: %v", done, err)
	}
	if res.Untrusted == "connected" || res.Untrusted == "not tried" {
		t.Errorf("a certificate of another CA: %q, want the connection refused", res.Untrusted)
	}
	if res.Connack.ReasonCode != 0 {
		t.Errorf("CONNACK reason code %d", res.Connack.ReasonCode)
	}
	if len(res.Granted) != 3 || res.Granted[0] != 1 || res.Granted[1] != 0 || res.Granted[2] != 1 {
		t.Errorf("granted QoS %v, want [1 0 1]", res.Granted)
	}
	if res.FromGo.Body != "to the browser" || res.FromGo.QoS != 1 {
		t.Errorf("from the plaintext Go client: %+v", res.FromGo)
	}
	if res.Wild.Body != "wildcard" || res.Wild.Topic != "web/a/wild" || res.Wild.QoS != 0 {
		t.Errorf("wildcard delivery %+v", res.Wild)
	}
	if res.Echo.Body != "echo over wss" || res.Echo.QoS != 1 || res.Echo.ContentType == nil ||
		*res.Echo.ContentType != "text/plain" || res.Echo.User["x-web"] != "yes" {
		t.Errorf("the page's own MQTT 5 publication back: %+v", res.Echo)
	}
	if t.Failed() || testing.Verbose() {
		t.Logf("untrusted gateway: %s; browser stderr:\n%s", res.Untrusted, strings.TrimSpace(stderr.String()))
	}
}
