package interop

// MQTT 3.1.1 over TCP and over WebSocket, and over their TLS twins,
// driven by Eclipse Paho's paho.mqtt.golang.

import (
	"crypto/tls"
	"net"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	paho3 "github.com/eclipse/paho.mqtt.golang"
)

func protoMQTT311() *proto {
	return &proto{name: "mqtt311", caps: mqtt311Caps(), dial: func(t testing.TB, e *env, id string, w *will) client {
		return dialPaho3(t, e.gw.MQTTURL(), id, w)
	}}
}

func protoMQTTWS() *proto {
	return &proto{name: "mqttws", caps: mqtt311Caps(), dial: func(t testing.TB, e *env, id string, w *will) client {
		return dialPaho3(t, e.gw.WSURL(), id, w)
	}}
}

func mqtt311Caps() caps {
	return caps{
		pubQoS:     []int{0, 1, 2},
		seesQoS:    true,
		seesRetain: true,
		will:       true,
		maxIn: func(topic, _ string) int {
			return mqttMaxPayload(mqttMaxPacket, topic, false, 0)
		},
		maxOut: func(string) int { return unlimited },
	}
}

type paho3Client struct {
	c    paho3.Client
	in   chan delivery
	mu   sync.Mutex
	conn net.Conn // the connection Paho opened, so Kill can cut it
}

func dialPaho3(t testing.TB, brokerURL, id string, w *will) *paho3Client {
	t.Helper()
	return dialPaho3TLS(t, brokerURL, id, w, nil)
}

// dialPaho3TLS is dialPaho3 for a tls:// or wss:// brokerURL too, with
// tlsc as the client's TLS configuration.
func dialPaho3TLS(t testing.TB, brokerURL, id string, w *will, tlsc *tls.Config) *paho3Client {
	t.Helper()
	pc := &paho3Client{in: make(chan delivery, 4096)}
	o := paho3.NewClientOptions().AddBroker(brokerURL).SetClientID(id).SetProtocolVersion(4).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).SetKeepAlive(60 * time.Second).
		SetConnectTimeout(waitTimeout).SetWriteTimeout(waitTimeout).SetOrderMatters(true)
	o.SetDefaultPublishHandler(func(_ paho3.Client, m paho3.Message) {
		d := delivery{Topic: m.Topic(), Payload: m.Payload(), QoS: int(m.Qos()), Dup: m.Duplicate(), Retain: 0}
		if m.Retained() {
			d.Retain = 1
		}
		pc.in <- d
	})
	if w != nil {
		o.SetBinaryWill(w.Topic, w.Payload, w.QoS, w.Retain)
	}
	// Paho opens the connection through this function so that Kill can
	// close it under the client, as a network failure would.
	o.SetCustomOpenConnectionFn(func(u *url.URL, opts paho3.ClientOptions) (net.Conn, error) {
		var nc net.Conn
		var err error
		switch u.Scheme {
		case "ws", "wss":
			nc, err = paho3.NewWebsocket(u.String(), tlsc, waitTimeout, http.Header{},
				&paho3.WebsocketOptions{Proxy: func(*http.Request) (*url.URL, error) { return nil, nil }})
		case "tls", "ssl":
			nc, err = tls.DialWithDialer(&net.Dialer{Timeout: waitTimeout}, "tcp", u.Host, tlsc)
		default:
			nc, err = net.DialTimeout("tcp", u.Host, waitTimeout)
		}
		if err == nil {
			pc.mu.Lock()
			pc.conn = nc
			pc.mu.Unlock()
		}
		return nc, err
	})
	pc.c = paho3.NewClient(o)
	if tok := pc.c.Connect(); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatalf("paho3 %s connect to %s: %v", id, brokerURL, tok.Error())
	}
	t.Cleanup(pc.Close)
	return pc
}

func (pc *paho3Client) Subscribe(t testing.TB, filter string, qos byte) {
	t.Helper()
	tok := pc.c.Subscribe(filter, qos, nil)
	if !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatalf("paho3 subscribe %s: %v", filter, tok.Error())
	}
	// One filter, one result (Paho keys a shared subscription's result
	// by the filter without its $share/{group}/ prefix).
	for _, got := range tok.(*paho3.SubscribeToken).Result() {
		if got != qos {
			t.Fatalf("paho3 subscribe %s: granted QoS %d, want %d", filter, got, qos)
		}
	}
}

func (pc *paho3Client) Publish(t testing.TB, m msg) {
	t.Helper()
	tok := pc.c.Publish(m.Topic, byte(m.QoS), m.Retain, m.Payload)
	if !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatalf("paho3 publish %s: %v", m.Topic, tok.Error())
	}
}

func (pc *paho3Client) Next(t testing.TB) delivery {
	t.Helper()
	select {
	case d := <-pc.in:
		return d
	case <-time.After(waitTimeout):
		t.Fatalf("paho3: no message within %v", waitTimeout)
		return delivery{}
	}
}

func (pc *paho3Client) Close() {
	if pc.c.IsConnected() {
		pc.c.Disconnect(100)
	}
}

// Kill closes the TCP or WebSocket connection without DISCONNECT.
func (pc *paho3Client) Kill(t testing.TB) {
	pc.mu.Lock()
	nc := pc.conn
	pc.mu.Unlock()
	if nc == nil {
		t.Fatal("paho3: no connection to kill")
	}
	nc.Close()
}
