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
)

// baseYAML puts every listener on a free loopback port; a test's own YAML
// is applied on top of it (later keys win).
const baseYAML = `
mqtt:
  tcp: 127.0.0.1:0
  ws: 127.0.0.1:0
stomp:
  tcp: 127.0.0.1:0
  ws: 127.0.0.1:0
mqttsn:
  udp: 127.0.0.1:0
sys:
  interval: 0
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

// MQTTAddr returns host:port of the MQTT TCP listener.
func (g *Gateway) MQTTAddr() string { return g.Addr("mqtt.tcp").String() }

// MQTTURL returns tcp://host:port of the MQTT TCP listener.
func (g *Gateway) MQTTURL() string { return "tcp://" + g.MQTTAddr() }

// WSURL returns the ws:// URL of the MQTT WebSocket listener.
func (g *Gateway) WSURL() string { return "ws://" + g.Addr("mqtt.ws").String() + g.Config.MQTT.WSPath }

// MQTTSNAddr returns host:port of the MQTT-SN UDP listener.
func (g *Gateway) MQTTSNAddr() string { return g.Addr("mqttsn.udp").String() }

// STOMPAddr returns host:port of the STOMP TCP listener.
func (g *Gateway) STOMPAddr() string { return g.Addr("stomp.tcp").String() }

// STOMPWSURL returns the ws:// URL of the STOMP WebSocket listener.
func (g *Gateway) STOMPWSURL() string {
	return "ws://" + g.Addr("stomp.ws").String() + g.Config.STOMP.WSPath
}

// mergeYAML merges two YAML documents of "section: {key: value}" maps by
// concatenating their sections' lines; good enough for test configs,
// which are two levels deep.
func mergeYAML(base, extra string) string {
	sections := map[string][]string{}
	var order []string
	for _, doc := range []string{base, extra} {
		cur := ""
		for _, line := range strings.Split(doc, "\n") {
			if strings.TrimSpace(line) == "" {
				continue
			}
			if !strings.HasPrefix(line, " ") && !strings.HasPrefix(line, "\t") {
				cur = strings.TrimSuffix(strings.TrimSpace(line), ":")
				if _, ok := sections[cur]; !ok {
					order = append(order, cur)
					sections[cur] = nil
				}
				continue
			}
			sections[cur] = append(sections[cur], line)
		}
	}
	var b strings.Builder
	for _, s := range order {
		b.WriteString(s + ":\n")
		seen := map[string]int{}
		lines := sections[s]
		// Later duplicates of a key replace earlier ones.
		var out []string
		for _, l := range lines {
			k, _, _ := strings.Cut(strings.TrimSpace(l), ":")
			if i, ok := seen[k]; ok && !strings.HasPrefix(strings.TrimSpace(l), "-") {
				out[i] = l
				continue
			}
			seen[k] = len(out)
			out = append(out, l)
		}
		for _, l := range out {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// Eventually polls cond every few milliseconds until it holds or timeout
// passes; tests wait for conditions, never for fixed times.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v: %s", timeout, msg)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
