package mqtt_test

// The gateway's last packet arrives over TLS too (issue 15, and issue 14
// item 3 for the plaintext listeners: close_blackbox_test.go). Over TLS
// the graceful close is close_notify, then the end of the TCP stream
// (tcpconn.TLS.CloseWrite), then draining; a client that keeps writing
// must still read the reason and then a clean end (io.EOF after
// close_notify), never a reset. The cases are close_blackbox_test.go's,
// over mqtt.tls and mqtt.wss.

import (
	"bufio"
	"testing"

	"github.com/iotgw/iotgw/internal/testutil"
)

func TestTLSCloseReasonArrivesWhileClientWrites(t *testing.T) {
	t.Parallel()
	pki := testutil.NewPKI(t, "close-tls")
	tlsYAML := pki.TLSYAML(pki.Server("server"))
	transports := []struct {
		name string
		dial func(t testing.TB, g *testutil.Gateway) *v5Raw
	}{
		{"tls", func(t testing.TB, g *testutil.Gateway) *v5Raw {
			return &v5Raw{dialRawTLS(t, g.MQTTTLSAddr(), pki.ClientConfig(nil))}
		}},
		{"wss", func(t testing.TB, g *testutil.Gateway) *v5Raw {
			nc := testutil.DialWSS(t, g.WSSURL(), "mqtt", false, pki.ClientConfig(nil))
			return &v5Raw{&rawClient{t: t, nc: nc, br: bufio.NewReader(nc)}}
		}},
	}
	// A reason of the adapter, of the core (takeover, shutdown) and a
	// refused CONNECT of each version. (Not the takeover behind a
	// backlog: it passes over TLS, but like its plaintext twin it is reset
	// now and then under -race, when the slowed client still holds in its
	// receive buffer what the gateway's kernel has seen acknowledged.)
	want := map[string]bool{"receive_maximum_exceeded_0x93": true, "session_taken_over_0x8e": true,
		"server_shutting_down_0x8b": true, "v311_anonymous_refused_0x05": true, "v5_bad_credentials_0x86": true}
	var cases []closeCase
	for _, cs := range [][]closeCase{closeDisconnectCases, closeConnackCases} {
		for _, cc := range cs {
			if want[cc.name] {
				cc.yaml += "\n" + tlsYAML
				if cc.reps == 0 || cc.reps > 5 {
					cc.reps = 5
				}
				cases = append(cases, cc)
			}
		}
	}
	if len(cases) != len(want) {
		t.Fatalf("found %d of the %d cases: renamed in close_blackbox_test.go?", len(cases), len(want))
	}
	for _, cc := range cases {
		for _, tp := range transports {
			t.Run(cc.name+"/"+tp.name, func(t *testing.T) {
				t.Parallel()
				cc.run(t, tp.dial)
			})
		}
	}
}
