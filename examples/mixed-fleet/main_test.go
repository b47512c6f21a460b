package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/iotgw/iotgw/internal/testutil"
)

// syncBuffer is an io.Writer the dashboard and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestDemo runs the demo on free ports: the dashboard prints readings of
// both sensor kinds, the page is served with the STOMP URL, a WebSocket
// client speaking STOMP the way the page does receives readings, and a
// SEND from it reaches the dashboard.
func TestDemo(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &syncBuffer{}
	ready := make(chan addrs, 1)
	done := make(chan error, 1)
	o := options{interval: 50 * time.Millisecond, snSensors: 2, coapSensor: 2, httpAddr: "127.0.0.1:0", listen: "127.0.0.1"}
	go func() { done <- run(ctx, o, out, ready) }()
	var a addrs
	select {
	case a = <-ready:
	case err := <-done:
		t.Fatalf("run: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("demo did not start")
	}

	testutil.Eventually(t, 30*time.Second, func() bool {
		s := out.String()
		return strings.Contains(s, "fleet/mqttsn/2/temperature") && strings.Contains(s, "MQTT-SN") &&
			strings.Contains(s, "fleet/coap/2/humidity") && strings.Contains(s, "(application/json")
	}, "dashboard readings from MQTT-SN and CoAP")

	resp, err := http.Get(a.http)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), a.stompWS) {
		t.Fatalf("page: %d, STOMP URL %s in it: %v", resp.StatusCode, a.stompWS, strings.Contains(string(body), a.stompWS))
	}

	d := websocket.Dialer{Subprotocols: []string{"v12.stomp"}}
	ws, _, err := d.Dial(a.stompWS, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	send := func(f string) {
		if err := ws.WriteMessage(websocket.TextMessage, []byte(f)); err != nil {
			t.Fatal(err)
		}
	}
	read := func() string {
		_ = ws.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, m, err := ws.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		return string(m)
	}
	send("CONNECT\naccept-version:1.2\nhost:localhost\nheart-beat:0,0\n\n\x00")
	if f := read(); !strings.HasPrefix(f, "CONNECTED\n") {
		t.Fatalf("got %q", f)
	}
	send("SUBSCRIBE\nid:fleet\ndestination:fleet/#\nack:auto\n\n\x00")
	seen := map[string]bool{}
	for !seen["MQTT-SN"] || !seen["CoAP"] {
		f := read()
		if !strings.HasPrefix(f, "MESSAGE\n") || !strings.Contains(f, "\ndestination:fleet/") {
			t.Fatalf("got %q", f)
		}
		for _, via := range []string{"MQTT-SN", "CoAP"} {
			if strings.Contains(f, `"via":"`+via+`"`) {
				seen[via] = true
			}
		}
	}
	send("SEND\ndestination:fleet/cmd\ncontent-type:text/plain\nqos:1\n\nlights on\x00")
	testutil.Eventually(t, 30*time.Second, func() bool {
		return strings.Contains(out.String(), `fleet/cmd                        "lights on" (text/plain)`)
	}, "the browser's command on the dashboard")

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("demo did not stop")
	}
}
