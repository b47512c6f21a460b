package interop

import (
	"bufio"
	"net"
	"os/exec"
	"testing"
)

// TestWills: every client that can leave a will (MQTT 3.1.1 over TCP and
// WebSocket, MQTT 5, MQTT-SN) loses its connection without a clean
// disconnect; each will reaches a subscriber of every protocol, at the
// will's QoS, with the MQTT 5 will's content type where the subscriber
// carries one. The wills are retained, so a subscriber of every protocol
// that arrives afterwards gets each of them flagged retained.
//
// MQTT clients are cut off at the socket (TCP or WebSocket closed under
// the client library); the MQTT-SN client falls silent and the gateway
// declares it lost after 1.5 × its 1 s keep alive (MQTT-SN has no other
// unclean ending: its DISCONNECT is always clean).
//
// paho.golang v0.22.0 packs will properties with the CONNECT property set
// (packets.Properties.Pack(CONNECT) writes no Content Type, Message
// Expiry, Payload Format, Response Topic or Correlation Data), so its
// will carries none; an MQTT 5 will with properties comes from Eclipse
// Mosquitto's mosquitto_sub (-D will ...), killed with SIGKILL, when it
// is installed.
func TestWills(t *testing.T) {
	e := startEnv(t, "")
	subs := map[string]client{}
	for _, s := range e.protos {
		c := s.dial(t, e, uniqueID("will-sub-"+s.name), nil)
		c.Subscribe(t, "wills/#", 1)
		subs[s.name] = c
	}

	type source struct {
		p *proto
		w *will
	}
	var sources []source
	for _, p := range e.protos {
		if !p.caps.will {
			continue
		}
		w := &will{Topic: "wills/" + p.name, Payload: []byte(p.name + " client gone \x00\xff"), QoS: 1, Retain: true,
			KeepAlive: 1}
		sources = append(sources, source{p, w})
	}
	if len(sources) < 4 {
		t.Fatalf("%d protocols with wills, want at least 4 (MQTT 3.1.1, MQTT 5, MQTT/WS, MQTT-SN)", len(sources))
	}
	for _, src := range sources {
		c := src.p.dial(t, e, uniqueID("will-"+src.p.name), src.w)
		k, ok := c.(killer)
		if !ok {
			t.Fatalf("%s client cannot lose its connection", src.p.name)
		}
		k.Kill(t)
	}
	if mw := mosquittoWill(t, e); mw != nil {
		sources = append(sources, source{nil, mw})
	}

	wants := func(s *proto, retain int) []want {
		var ws []want
		for _, src := range sources {
			w := want{topic: src.w.Topic, payload: src.w.Payload, qos: int(src.w.QoS), retain: retain}
			if src.w.ContentType != "" && s.caps.contentType {
				w.ct = &src.w.ContentType
			}
			ws = append(ws, w)
		}
		return ws
	}
	for _, s := range e.protos {
		t.Run("to-"+s.name, func(t *testing.T) {
			expectAll(t, subs[s.name], wants(s, 0)...)
		})
	}
	for _, s := range e.protos {
		t.Run("retained-to-"+s.name, func(t *testing.T) {
			late := s.dial(t, e, uniqueID("will-late-"+s.name), nil)
			late.Subscribe(t, "wills/#", 1)
			expectAll(t, late, wants(s, 1)...)
		})
	}
}

// mosquittoWill connects Mosquitto's mosquitto_sub as an MQTT 5 client
// whose will has a content type, waits until it is subscribed, and kills
// it. It returns nil when mosquitto_sub is not installed.
func mosquittoWill(t *testing.T, e *env) *will {
	t.Helper()
	bin, err := exec.LookPath("mosquitto_sub")
	if err != nil {
		t.Log("mosquitto_sub not installed: no MQTT 5 will with properties (scripts/test.sh installs it)")
		return nil
	}
	w := &will{Topic: "wills/mosquitto-v5", Payload: []byte("mosquitto_sub killed"), QoS: 1, Retain: true,
		ContentType: "text/plain;charset=utf-8"}
	host, port, _ := net.SplitHostPort(e.gw.MQTTAddr())
	// A retained marker on the topic it subscribes to tells us, by being
	// printed, that the client is connected and subscribed.
	ready := "wills-ready/" + uniqueID("mosquitto")
	marker := e.proto(t, "mqtt311").dial(t, e, uniqueID("marker"), nil)
	marker.Publish(t, msg{Topic: ready, Payload: []byte("ready"), QoS: 1, Retain: true})
	cmd := exec.Command(bin, "-h", host, "-p", port, "-V", "5", "-i", uniqueID("mosquitto-will"), "-q", "1", "-t", ready,
		"--will-topic", w.Topic, "--will-payload", string(w.Payload), "--will-qos", "1", "--will-retain",
		"-D", "will", "content-type", w.ContentType)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("mosquitto_sub printed %q, %v", line, err)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	marker.Publish(t, msg{Topic: ready, Payload: nil, QoS: 1, Retain: true}) // clear the marker
	return w
}
