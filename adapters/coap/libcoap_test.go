package coap_test

// Interoperability with libcoap's command line client (Debian package
// libcoap3-bin, binary coap-client-notls). The tests skip when it is not
// installed.

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iotgw/iotgw/internal/testutil"
)

func coapClientBin(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("coap-client-notls")
	if err != nil {
		t.Skip("coap-client-notls not installed (apt-get install libcoap3-bin)")
	}
	return bin
}

// libcoap runs coap-client-notls to completion and returns its output.
func libcoap(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("coap-client %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// TestLibcoap: publish with Content-Format, retain and QoS; read the
// retained message; error codes with diagnostics; connection mode; a
// 3 KB block-wise publish; and an observation (wildcard, retained first,
// a 3 KB block-wise notification) — all with libcoap's client against the
// gateway, and MQTT on the other side.
func TestLibcoap(t *testing.T) {
	bin := coapClientBin(t)
	g := startGateway(t, nil)
	u := "coap://" + g.addr
	sub := g.mqttClient(t)
	sub.subscribe("lib/#", 2)

	libcoap(t, bin, "-m", "post", "-t", "50", "-e", `{"t":21}`, u+"/ps/lib/temp?qos=2&retain=true")
	if m := sub.next(); m != (mqttMsg{Topic: "lib/temp", Payload: `{"t":21}`, QoS: 2}) {
		t.Fatalf("MQTT got %+v", m)
	}
	if rm, ok := g.b.Retained("lib/temp"); !ok || rm.ContentType != "application/json" {
		t.Fatalf("retained: %+v %v", rm, ok)
	}
	libcoap(t, bin, "-m", "put", "-N", "-e", "non", u+"/ps/lib/non")
	if m := sub.next(); m != (mqttMsg{Topic: "lib/non", Payload: "non", QoS: 0}) {
		t.Fatalf("NON PUT: MQTT got %+v", m)
	}
	if out := strings.TrimSpace(libcoap(t, bin, u+"/ps/lib/temp")); out != `{"t":21}` {
		t.Fatalf("GET retained: %q", out)
	}
	if out := libcoap(t, bin, u+"/ps/lib/none"); !strings.HasPrefix(out, "4.04") {
		t.Fatalf("GET missing: %q", out)
	}
	if out := libcoap(t, bin, "-m", "post", "-e", "x", u+"/ps/lib/a?qos=9"); !strings.HasPrefix(out, "4.00") || !strings.Contains(out, "qos") {
		t.Fatalf("bad qos: %q", out)
	}
	if out := libcoap(t, bin, "-m", "post", "-e", "x", u+"/ps/lib/%23"); !strings.HasPrefix(out, "4.00") {
		t.Fatalf("wildcard publish: %q", out)
	}
	if out := libcoap(t, bin, "-m", "delete", u+"/nowhere"); !strings.HasPrefix(out, "4.04") {
		t.Fatalf("unknown path: %q", out)
	}
	if out := libcoap(t, bin, "-m", "fetch", u+"/ps/lib/temp"); !strings.HasPrefix(out, "4.05") {
		t.Fatalf("FETCH: %q", out)
	}
	if out := libcoap(t, bin, u+"/.well-known/core"); !strings.Contains(out, "</ps>") {
		t.Fatalf("discovery: %q", out)
	}

	token := strings.TrimSpace(libcoap(t, bin, "-m", "post", u+"/mqtt/connection?clientid=lc1&username=u&password=p"))
	if len(token) != 16 {
		t.Fatalf("connection token: %q", token)
	}
	libcoap(t, bin, "-m", "post", "-e", "conn", u+"/ps/lib/conn?clientid=lc1&token="+token)
	if m := sub.next(); m.Topic != "lib/conn" || m.Payload != "conn" {
		t.Fatalf("connection-mode publish: MQTT got %+v", m)
	}
	if out := libcoap(t, bin, "-m", "put", u+"/mqtt/connection?clientid=lc1&token=bad"); !strings.HasPrefix(out, "4.01") {
		t.Fatalf("bad heartbeat: %q", out)
	}
	libcoap(t, bin, "-m", "delete", u+"/mqtt/connection?clientid=lc1&token="+token)

	big := strings.Repeat("libcoap-block-wise-", 162)[:3072]
	file := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(file, []byte(big), 0o600); err != nil {
		t.Fatal(err)
	}
	libcoap(t, bin, "-m", "put", "-b", "1024", "-f", file, u+"/ps/lib/big?qos=1")
	if m := sub.next(); m.Topic != "lib/big" || m.Payload != big {
		t.Fatalf("block-wise publish: MQTT got %d bytes on %s", len(m.Payload), m.Topic)
	}

	// Observe lib/# for two seconds: the retained message first, then a
	// QoS 1 and a 3 KB QoS 0 message published over MQTT.
	base := g.b.SessionCount()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-s", "2", "-B", "4", "-w", u+"/ps/lib/%23?qos=1")
	outc := make(chan string, 1)
	go func() {
		out, _ := cmd.CombinedOutput()
		outc <- string(out)
	}()
	testutil.Eventually(t, waitTimeout, func() bool { return g.b.SessionCount() == base+1 }, "libcoap observer registered")
	sub.publish("lib/obs", 1, false, "n1")
	sub.publish("lib/obs", 0, false, big)
	out := <-outc
	want := `{"t":21}` + "\n" + "n1\n" + big + "\n"
	if !strings.Contains(out, want) {
		t.Fatalf("observe output (%d bytes): %q", len(out), out)
	}
	testutil.Eventually(t, waitTimeout, func() bool { return g.b.SessionCount() == base }, "libcoap observer gone")
}
