package mqtt_test

// Goroutine accounting: connections that come and go, however they end,
// leave no goroutine behind. This test is deliberately not parallel: the
// parallel tests are paused while it runs, so the goroutine count is its
// own.

import (
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/gorilla/websocket"

	"github.com/iotgw/iotgw/adapters/mqtt/codec"
	"github.com/iotgw/iotgw/internal/testutil"
)

func TestNoGoroutineLeak(t *testing.T) {
	g := testutil.Start(t, "mqtt:\n  connect_timeout: 300ms\n")
	// A subscriber that receives from the others keeps the routing path
	// busy during the churn.
	watcher, _ := connectPaho(t, g.MQTTURL(), uniqueID("leakwatch"), nil)
	watcher.subscribe("leak/#", 1)
	runtime.GC()
	base := runtime.NumGoroutine()

	const conns = 50
	for i := range conns {
		id := uniqueID("leak")
		switch i % 5 {
		case 0: // clean DISCONNECT, with a subscription and a will
			r := dialRaw(t, g.MQTTAddr())
			r.connectOK(willConnect(id, "leak/will", "x", 30))
			r.send(&codec.Subscribe{PacketID: 1, Subscriptions: []codec.Subscription{{Filter: "leak/x", QoS: 1}}})
			r.expect("SUBACK")
			r.send(&codec.Disconnect{})
			r.expectClosed("after DISCONNECT")
		case 1: // dropped without DISCONNECT, will published
			r := dialRaw(t, g.MQTTAddr())
			r.connectOK(willConnect(id, "leak/will", "dropped", 30))
			r.nc.Close()
			if m := watcher.next(); m.Payload != "dropped" {
				t.Fatalf("watcher got %v, want the will", m)
			}
		case 2: // never sends CONNECT; half of them closed by the broker
			r := dialRaw(t, g.MQTTAddr())
			if i%10 == 2 {
				r.expectClosed("no CONNECT")
			}
			r.nc.Close()
		case 3: // paho over TCP (persistent session) publishing
			c, _ := connectPaho(t, g.MQTTURL(), id, func(o *paho.ClientOptions) { o.SetCleanSession(false) })
			c.publish("leak/paho", 1, false, "paho")
			if m := watcher.next(); m.Payload != "paho" {
				t.Fatalf("watcher got %v", m)
			}
			c.Disconnect(100)
		case 4: // WebSocket, dropped mid-session
			ws := dialWS(t, g.WSURL())
			b, err := codec.Append(nil, &codec.Connect{ProtocolLevel: codec.V311, ClientID: id, CleanStart: true}, 0)
			if err != nil {
				t.Fatal(err)
			}
			if err := ws.WriteMessage(websocket.BinaryMessage, b); err != nil {
				t.Fatal(err)
			}
			_ = ws.SetReadDeadline(time.Now().Add(waitTimeout))
			if _, msg, err := ws.ReadMessage(); err != nil || len(msg) < 4 || msg[0] != 0x20 || msg[3] != 0 {
				t.Fatalf("websocket CONNACK: % x, %v", msg, err)
			}
			ws.Close()
		}
	}

	// Connections wind down asynchronously: first every session lets go
	// of its connection ...
	testutil.Eventually(t, waitTimeout, func() bool { return g.Broker.Stats().ClientsConnected.Load() == 1 },
		"every client but the watcher to be disconnected")
	// ... then the goroutines go. A small slack covers runtime and
	// client-library goroutines that come and go.
	const slack = 5
	deadline := time.Now().Add(waitTimeout)
	n := runtime.NumGoroutine()
	for n > base+slack {
		if time.Now().After(deadline) {
			var sb strings.Builder
			_ = pprof.Lookup("goroutine").WriteTo(&sb, 1)
			t.Fatalf("%d goroutines after %d connections came and went, %d before (slack %d):\n%s",
				n, conns, base, slack, sb.String())
		}
		time.Sleep(20 * time.Millisecond)
		n = runtime.NumGoroutine()
	}
	t.Logf("goroutines: %d before, %d after %d connections", base, n, conns)
}
