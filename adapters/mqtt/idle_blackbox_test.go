package mqtt_test

// Idle connections: after a burst a connection settles to one goroutine
// (its reader hands over to a small idle one, and no writer stays), and an
// idle connection still gets everything: deliveries, acks, ping answers.
// Like the leak test this one is not parallel: it counts goroutines.

import (
	"bufio"
	"bytes"
	"fmt"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/iotgw/iotgw/adapters/mqtt/codec"
	"github.com/iotgw/iotgw/internal/testutil"
)

// wsRaw is a raw MQTT 3.1.1 client over WebSocket, one packet a message.
type wsRaw struct {
	t  *testing.T
	ws *websocket.Conn
}

func (w *wsRaw) send(p codec.Packet) {
	w.t.Helper()
	b, err := codec.Append(nil, p, codec.V311)
	if err != nil {
		w.t.Fatal(err)
	}
	if err := w.ws.WriteMessage(websocket.BinaryMessage, b); err != nil {
		w.t.Fatalf("websocket write: %v", err)
	}
}

func (w *wsRaw) expect(want codec.PacketType) codec.Packet {
	w.t.Helper()
	_ = w.ws.SetReadDeadline(time.Now().Add(waitTimeout))
	_, msg, err := w.ws.ReadMessage()
	if err != nil {
		w.t.Fatalf("websocket read, want %s: %v", want, err)
	}
	p, _, err := codec.ReadPacket(bufio.NewReader(bytes.NewReader(msg)), codec.V311, 0)
	if err != nil || p.Type() != want {
		w.t.Fatalf("got %v (%v), want %s", p, err, want)
	}
	return p
}

// settled waits until the goroutines are at most base+want (plus a small
// slack for the runtime), and fails with a dump if they never are.
func settled(t *testing.T, base, want int, when string) {
	t.Helper()
	const slack = 3
	deadline := time.Now().Add(waitTimeout)
	for runtime.NumGoroutine() > base+want+slack {
		if time.Now().After(deadline) {
			var sb strings.Builder
			_ = pprof.Lookup("goroutine").WriteTo(&sb, 1)
			t.Fatalf("%s: %d goroutines, want at most %d (+%d slack) for %d idle connections:\n%s",
				when, runtime.NumGoroutine(), base+want, slack, want, sb.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// And each waits on the small idle goroutine, not on the reader that
	// handled its burst (whose stack has grown).
	testutil.Eventually(t, waitTimeout, func() bool {
		var sb strings.Builder
		_ = pprof.Lookup("goroutine").WriteTo(&sb, 2)
		return strings.Count(sb.String(), "streamconn.(*Conn[...]).idleRead(") >= want
	}, when+": every idle connection's goroutine to be an idleRead")
}

func TestIdleConnectionsOneGoroutineAndStillServed(t *testing.T) {
	g := testutil.Start(t, "")
	runtime.GC()
	base := runtime.NumGoroutine()

	const n = 10
	tcp := make([]*rawClient, n)
	for i := range tcp {
		r := dialRaw(t, g.MQTTAddr())
		r.connectOK(&codec.Connect{ClientID: uniqueID("idle"), CleanStart: true, KeepAlive: 60})
		r.send(&codec.Subscribe{PacketID: 1, Subscriptions: []codec.Subscription{{Filter: fmt.Sprintf("idle/%d", i), QoS: 1}}})
		r.expect("SUBACK")
		tcp[i] = r
	}
	ws := &wsRaw{t: t, ws: dialWS(t, g.WSURL())}
	ws.send(&codec.Connect{ProtocolLevel: codec.V311, ClientID: uniqueID("idle-ws"), CleanStart: true, KeepAlive: 60})
	ws.expect(codec.TypeConnack)
	ws.send(&codec.Subscribe{PacketID: 1, Subscriptions: []codec.Subscription{{Filter: "idle/ws", QoS: 1}}})
	ws.expect(codec.TypeSuback)
	settled(t, base, n+1, "after connecting")

	// Every idle connection is still fully served, and settles again.
	for round := range 2 {
		pub := tcp[0]
		for i := range tcp {
			pub.send(&codec.Publish{Topic: fmt.Sprintf("idle/%d", i), QoS: 1, PacketID: uint16(100 + i), Payload: []byte("m")})
			// The publisher's PUBACK and, on its own topic, the delivery
			// come in either order.
			packets := 1
			if i == 0 {
				packets = 2
			}
			for range packets {
				p := pub.expect("PUBACK or PUBLISH")
				if m, ok := p.(*codec.Publish); ok {
					pub.send(&codec.Ack{Kind: codec.TypePuback, PacketID: m.PacketID})
				}
			}
			if i > 0 {
				m, ok := tcp[i].expect("delivery").(*codec.Publish)
				if !ok || m.Topic != fmt.Sprintf("idle/%d", i) {
					t.Fatalf("round %d: client %d got %v, want its delivery", round, i, m)
				}
				tcp[i].send(&codec.Ack{Kind: codec.TypePuback, PacketID: m.PacketID})
			}
		}
		// QoS 2 from an idle connection: the whole exchange.
		r := tcp[n-1]
		r.send(&codec.Publish{Topic: "idle/none", QoS: 2, PacketID: 7, Payload: []byte("x")})
		if p := r.expect("PUBREC"); p.Type() != codec.TypePubrec {
			t.Fatalf("got %s, want PUBREC", p.Type())
		}
		r.send(&codec.Ack{Kind: codec.TypePubrel, PacketID: 7})
		if p := r.expect("PUBCOMP"); p.Type() != codec.TypePubcomp {
			t.Fatalf("got %s, want PUBCOMP", p.Type())
		}
		for _, r := range tcp {
			r.send(&codec.Pingreq{})
			if p := r.expect("PINGRESP"); p.Type() != codec.TypePingresp {
				t.Fatalf("got %s, want PINGRESP", p.Type())
			}
		}
		pub.send(&codec.Publish{Topic: "idle/ws", QoS: 1, PacketID: 99, Payload: []byte("w")})
		m := ws.expect(codec.TypePublish).(*codec.Publish)
		if string(m.Payload) != "w" {
			t.Fatalf("websocket delivery %q", m.Payload)
		}
		ws.send(&codec.Ack{Kind: codec.TypePuback, PacketID: m.PacketID})
		ws.send(&codec.Pingreq{})
		ws.expect(codec.TypePingresp)
		pub.expect("PUBACK")
		settled(t, base, n+1, fmt.Sprintf("after round %d", round))
	}
}
