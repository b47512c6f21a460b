package api_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/go-stomp/stomp/v3"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"

	"github.com/iotgw/iotgw/adapters/mqttsn/codec"
	"github.com/iotgw/iotgw/adapters/mqttsn/sntest"
	"github.com/iotgw/iotgw/core"
	"github.com/iotgw/iotgw/internal/testutil"
)

const wait = 20 * time.Second

// mqtt5 connects a paho.golang client; disc receives the server's
// DISCONNECT, in gets publications.
func mqtt5(t *testing.T, g *testutil.Gateway, id string) (c *paho.Client, disc chan *paho.Disconnect, in chan *paho.Publish) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", g.MQTTAddr(), wait)
	if err != nil {
		t.Fatal(err)
	}
	disc, in = make(chan *paho.Disconnect, 1), make(chan *paho.Publish, 100)
	c = paho.NewClient(paho.ClientConfig{ClientID: id, Conn: nc, PacketTimeout: wait,
		OnServerDisconnect: func(d *paho.Disconnect) { disc <- d },
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			in <- pr.Packet
			return true, nil
		}},
		OnClientError: func(error) {}})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if ca, err := c.Connect(ctx, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30}); err != nil || ca.ReasonCode != 0 {
		t.Fatalf("mqtt connect %s: %v", id, err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	return c, disc, in
}

func stompDial(t *testing.T, g *testutil.Gateway, id string) *stomp.Conn {
	t.Helper()
	c, err := stomp.Dial("tcp", g.STOMPAddr(), stomp.ConnOpt.AcceptVersion(stomp.V12), stomp.ConnOpt.Host("iotgw"),
		stomp.ConnOpt.HeartBeat(0, 0), stomp.ConnOpt.Header("client-id", id))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.MustDisconnect() })
	return c
}

// stompSync returns once the gateway has handled every frame sent
// before (a receipt comes back in order).
func stompSync(t *testing.T, c *stomp.Conn) {
	t.Helper()
	if err := c.Send("sync/x", "", nil, stomp.SendOpt.Header("qos", "0"), stomp.SendOpt.Receipt); err != nil {
		t.Fatal(err)
	}
}

func snDial(t *testing.T, g *testutil.Gateway, id string) *sntest.Client {
	t.Helper()
	ua, err := net.ResolveUDPAddr("udp", g.MQTTSNAddr())
	if err != nil {
		t.Fatal(err)
	}
	c := sntest.Dial(t, ua)
	c.Connect(id, true, 60)
	return c
}

// coapObserve observes topic as client id; notes gets every notification
// after the registration response.
func coapObserve(t *testing.T, g *testutil.Gateway, id, topic string) chan *pool.Message {
	t.Helper()
	cc, err := udp.Dial(g.CoAPAddr(), options.WithErrors(func(error) {}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	notes := make(chan *pool.Message, 100)
	registered := make(chan codes.Code, 1)
	var once sync.Once
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	_, err = cc.Observe(ctx, "/ps/"+topic, func(m *pool.Message) {
		first := false
		once.Do(func() { first = true; registered <- m.Code() })
		if first {
			return
		}
		m.Hijack() // kept past the callback
		notes <- m
	}, message.Option{ID: message.URIQuery, Value: []byte("clientid=" + id)}, message.Option{ID: message.URIQuery, Value: []byte("qos=0")})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-registered:
		if code != codes.Content {
			t.Fatalf("coap observe: %v", code)
		}
	case <-time.After(wait):
		t.Fatal("coap observe: no registration")
	}
	return notes
}

// TestKickEachProtocol: DELETE /api/v1/clients/{id} closes an MQTT 5, a
// STOMP, an MQTT-SN and a CoAP client, each with its protocol's close,
// and the bulk kick does the same.
func TestKickEachProtocol(t *testing.T) {
	g, k := startAPI(t, "")
	admin := newClient(t, g, basic("ops", k.admin))
	_, disc, _ := mqtt5(t, g, "kick-mqtt")
	sc := stompDial(t, g, "kick-stomp")
	sub, err := sc.Subscribe("kick/stomp", stomp.AckAuto)
	if err != nil {
		t.Fatal(err)
	}
	stompSync(t, sc)
	sn := snDial(t, g, "kick-sn")
	notes := coapObserve(t, g, "kick-coap", "kick/coap")

	var got Page
	admin.json("GET", "/api/v1/clients?prefix=kick-", nil, 200, &got)
	if len(got.Data) != 4 {
		t.Fatalf("clients: %+v", got)
	}
	for _, c := range got.Data {
		if !c.Connected || c.Protocol == "" {
			t.Errorf("client %+v", c)
		}
	}
	var one struct {
		ClientID         string `json:"client_id"`
		Protocol         string
		Address          string
		KeepAlive        int                       `json:"keep_alive"`
		SubscriptionList []struct{ Filter string } `json:"subscription_list"`
	}
	admin.json("GET", "/api/v1/clients/kick-stomp", nil, 200, &one)
	if one.Protocol != "stomp" || one.Address == "" || len(one.SubscriptionList) != 1 || one.SubscriptionList[0].Filter != "kick/stomp" {
		t.Fatalf("kick-stomp: %+v", one)
	}
	admin.json("GET", "/api/v1/clients/kick-mqtt", nil, 200, &one)
	if one.KeepAlive != 30 {
		t.Fatalf("kick-mqtt keep alive %d", one.KeepAlive)
	}

	for _, id := range []string{"kick-mqtt", "kick-stomp", "kick-sn"} {
		if code, body := admin.do("DELETE", "/api/v1/clients/"+id, nil); code != http.StatusNoContent {
			t.Fatalf("kick %s: %d %s", id, code, body)
		}
	}
	select {
	case d := <-disc:
		if d.ReasonCode != 0x98 {
			t.Fatalf("MQTT 5 DISCONNECT reason %#x, want 0x98", d.ReasonCode)
		}
	case <-time.After(wait):
		t.Fatal("MQTT 5 client saw no DISCONNECT")
	}
	select {
	case m := <-sub.C:
		if m == nil || m.Err == nil || !strings.Contains(m.Err.Error(), "administrator") {
			t.Fatalf("STOMP: %+v, want an ERROR", m)
		}
	case <-time.After(wait):
		t.Fatal("STOMP client saw no ERROR")
	}
	sn.Expect(codec.TypeDisconnect)

	var res Page
	admin.json("POST", "/api/v1/clients/kick", []string{"kick-coap", "nobody"}, 200, &res)
	select {
	case m := <-notes:
		if m.Code() != codes.ServiceUnavailable {
			t.Fatalf("CoAP final notification %v, want 5.03", m.Code())
		}
	case <-time.After(wait):
		t.Fatal("CoAP observer saw no final notification")
	}
	if code, _ := admin.do("DELETE", "/api/v1/clients/nobody", nil); code != http.StatusNotFound {
		t.Fatalf("kick of nobody: %d", code)
	}
}

// TestClientsPagination walks 10,000 sessions in pages of 1,000 and of
// 333 with filters: every session once, in order.
func TestClientsPagination(t *testing.T) {
	g, k := startAPI(t, "")
	viewer := newClient(t, g, basic("view", k.viewer))
	const n = 10000
	for i := 0; i < n; i++ {
		proto := core.ProtoMQTT
		if i%2 == 1 {
			proto = core.ProtoSTOMP
		}
		_, _, err := g.Broker.Connect(context.Background(), core.ConnectRequest{ClientID: fmt.Sprintf("dev-%05d", i),
			Protocol: proto, Listener: "tcp", Remote: "127.0.0.1:1", CleanStart: true, Sink: nopSink{}})
		if err != nil {
			t.Fatal(err)
		}
	}
	walk := func(query string, limit int) []string {
		var ids []string
		cursor := ""
		for pages := 0; ; pages++ {
			if pages > n {
				t.Fatal("pagination does not end")
			}
			var p Page
			viewer.json("GET", fmt.Sprintf("/api/v1/clients?limit=%d&cursor=%s%s", limit, cursor, query), nil, 200, &p)
			for _, c := range p.Data {
				ids = append(ids, c.ClientID)
			}
			if p.NextCursor == "" {
				return ids
			}
			cursor = p.NextCursor
		}
	}
	ids := walk("&prefix=dev-", 1000)
	if len(ids) != n {
		t.Fatalf("%d sessions listed, want %d", len(ids), n)
	}
	for i, id := range ids {
		if id != fmt.Sprintf("dev-%05d", i) {
			t.Fatalf("[%d] = %s", i, id)
		}
	}
	if stomps := walk("&protocol=stomp&connected=true", 333); len(stomps) != n/2 || stomps[0] != "dev-00001" {
		t.Fatalf("stomp filter: %d, first %v", len(stomps), stomps[:1])
	}
	if none := walk("&connected=false&prefix=dev-", 100); len(none) != 0 {
		t.Fatalf("offline: %d", len(none))
	}
	if code, _ := viewer.do("GET", "/api/v1/clients?limit=0", nil); code != http.StatusBadRequest {
		t.Fatalf("limit=0: %d", code)
	}
}

type nopSink struct{}

func (nopSink) Deliver(core.Delivery) bool { return true }
func (nopSink) Close(error)                {}

// Page is a list answer.
type Page struct {
	Data []struct {
		ClientID  string `json:"client_id"`
		Protocol  string
		Connected bool
		Kicked    bool
		Status    int
		Topic     string
		Filter    string
	}
	NextCursor string `json:"next_cursor"`
}
