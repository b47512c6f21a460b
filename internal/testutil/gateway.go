// Package testutil starts a whole gateway for black-box tests: from a YAML
// string, on 127.0.0.1 port 0, with the real addresses read back.
package testutil

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/iotgw/iotgw/cmd/iotgw/app"
	"github.com/iotgw/iotgw/internal/testutil/poll"
)

// baseYAML puts every listener on a free loopback port; a test's own YAML
// is applied on top of it (later keys win).
const baseYAML = `
mqtt:
  tcp: 127.0.0.1:0
  ws: 127.0.0.1:0
  tls: 127.0.0.1:0
  wss: 127.0.0.1:0
stomp:
  tcp: 127.0.0.1:0
  ws: 127.0.0.1:0
  tls: 127.0.0.1:0
  wss: 127.0.0.1:0
mqttsn:
  udp: 127.0.0.1:0
  dtls: 127.0.0.1:0
coap:
  udp: 127.0.0.1:0
  dtls: 127.0.0.1:0
http:
  listen: 127.0.0.1:0
sys:
  interval: 0
store:
  engine: memory
`

// Gateway is a running gateway for one test.
type Gateway struct {
	*app.Gateway
	Config app.Config
}

// Start runs a gateway configured by baseYAML merged with extra YAML and
// stops it when the test ends. Logs go to the test's log (debug level with
// IOTGW_TEST_DEBUG=1, warnings otherwise).
func Start(t testing.TB, extra string) *Gateway {
	t.Helper()
	cfg, err := app.Load([]byte(mergeYAML(baseYAML, extra)), nil)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	level := zap.WarnLevel
	if os.Getenv("IOTGW_TEST_DEBUG") != "" {
		level = zap.DebugLevel
	}
	log := zaptest.NewLogger(t, zaptest.Level(level))
	g, err := app.Start(context.Background(), cfg, log)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := g.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return &Gateway{Gateway: g, Config: cfg}
}

// HTTPURL returns the http:// base URL of the management listener.
func (g *Gateway) HTTPURL() string { return "http://" + g.Addr("http").String() }

// MQTTAddr returns host:port of the MQTT TCP listener.
func (g *Gateway) MQTTAddr() string { return g.Addr("mqtt.tcp").String() }

// MQTTURL returns tcp://host:port of the MQTT TCP listener.
func (g *Gateway) MQTTURL() string { return "tcp://" + g.MQTTAddr() }

// WSURL returns the ws:// URL of the MQTT WebSocket listener.
func (g *Gateway) WSURL() string { return "ws://" + g.Addr("mqtt.ws").String() + g.Config.MQTT.WSPath }

// MQTTSNAddr returns host:port of the MQTT-SN UDP listener.
func (g *Gateway) MQTTSNAddr() string { return g.Addr("mqttsn.udp").String() }

// CoAPAddr returns host:port of the CoAP UDP listener.
func (g *Gateway) CoAPAddr() string { return g.Addr("coap.udp").String() }

// STOMPAddr returns host:port of the STOMP TCP listener.
func (g *Gateway) STOMPAddr() string { return g.Addr("stomp.tcp").String() }

// STOMPWSURL returns the ws:// URL of the STOMP WebSocket listener.
func (g *Gateway) STOMPWSURL() string {
	return "ws://" + g.Addr("stomp.ws").String() + g.Config.STOMP.WSPath
}

// MQTTTLSAddr returns host:port of the MQTT over TLS listener (on when
// the test's YAML configures a certificate; see PKI.TLSYAML).
func (g *Gateway) MQTTTLSAddr() string { return g.Addr("mqtt.tls").String() }

// WSSURL returns the wss:// URL of the MQTT WebSocket over TLS listener.
func (g *Gateway) WSSURL() string {
	return "wss://" + g.Addr("mqtt.wss").String() + g.Config.MQTT.WSPath
}

// STOMPTLSAddr returns host:port of the STOMP over TLS listener.
func (g *Gateway) STOMPTLSAddr() string { return g.Addr("stomp.tls").String() }

// STOMPWSSURL returns the wss:// URL of the STOMP WebSocket over TLS
// listener.
func (g *Gateway) STOMPWSSURL() string {
	return "wss://" + g.Addr("stomp.wss").String() + g.Config.STOMP.WSPath
}

// CoAPDTLSAddr returns host:port of the CoAP over DTLS listener (on when
// the test's YAML configures a certificate or pre-shared keys).
func (g *Gateway) CoAPDTLSAddr() string { return g.Addr("coap.dtls").String() }

// MQTTSNDTLSAddr returns host:port of the MQTT-SN over DTLS listener.
func (g *Gateway) MQTTSNDTLSAddr() string { return g.Addr("mqttsn.dtls").String() }

// mergeYAML merges two YAML documents of "section: {key: value}" maps:
// a section's keys (two-space indented lines) from extra replace those of
// base; the lines below a key (block-style list items, deeper indents)
// travel with it.
func mergeYAML(base, extra string) string {
	type entry struct {
		key   string
		lines []string
	}
	sections := map[string][]*entry{}
	var order []string
	for _, doc := range []string{base, extra} {
		cur := ""
		var last *entry
		for _, line := range strings.Split(doc, "\n") {
			if strings.TrimSpace(line) == "" {
				continue
			}
			switch {
			case !strings.HasPrefix(line, " ") && !strings.HasPrefix(line, "\t"):
				cur = strings.TrimSuffix(strings.TrimSpace(line), ":")
				if _, ok := sections[cur]; !ok {
					order = append(order, cur)
					sections[cur] = nil
				}
				last = nil
			case strings.HasPrefix(line, "  ") && !strings.HasPrefix(line, "   ") && !strings.HasPrefix(strings.TrimSpace(line), "-"):
				k, _, _ := strings.Cut(strings.TrimSpace(line), ":")
				last = nil
				for _, e := range sections[cur] {
					if e.key == k {
						e.lines = []string{line}
						last = e
					}
				}
				if last == nil {
					last = &entry{key: k, lines: []string{line}}
					sections[cur] = append(sections[cur], last)
				}
			case last != nil:
				last.lines = append(last.lines, line)
			}
		}
	}
	var b strings.Builder
	for _, s := range order {
		b.WriteString(s + ":\n")
		for _, e := range sections[s] {
			for _, l := range e.lines {
				b.WriteString(l + "\n")
			}
		}
	}
	return b.String()
}

// Eventually polls cond every few milliseconds until it holds or timeout
// passes (poll.Eventually, re-exported for the black-box tests).
var Eventually = poll.Eventually
