package coap_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/iotgw/iotgw/core"
)

// TestArrivalOrderAcrossClients is issue 14's "arrival order across
// connections" over CoAP: an observer's GET (Observe) reaches the gateway
// just before another peer's publish. The publish is answered on the read
// goroutine (fast path) while the registration waits for the observer's
// go-coap goroutine, so it is routed first almost every time; the
// observer must get it all the same (core/order.go), after its
// registration response.
func TestArrivalOrderAcrossClients(t *testing.T) {
	g := startGateway(t, nil)
	obs, pub := g.raw(t), g.raw(t)
	const trials = 50
	for i := range trials {
		time.Sleep(2 * time.Millisecond) // both peers idle, as in the issue
		token := []byte{0x5a, byte(i)}
		get := request(codes.GET, message.Confirmable, obs.nextMID(), token, "/ps/order/t", "qos=0")
		get.Options = get.Options.Add(message.Option{ID: message.Observe, Value: encodeUint(0)})
		obs.send(get)
		post := request(codes.POST, message.NonConfirmable, pub.nextMID(), []byte{1}, "/ps/order/t", "qos=0")
		post.Payload = []byte(strconv.Itoa(i))
		pub.send(post)
		if reg := obs.mustRecv(); reg.MessageID != get.MessageID || reg.Code != codes.Content {
			t.Fatalf("trial %d: registration answered %v %v mid %d", i, reg.Type, reg.Code, reg.MessageID)
		}
		n := obs.mustRecv()
		if string(n.Payload) != strconv.Itoa(i) || !bytesEqual(n.Token, token) {
			t.Fatalf("trial %d: notification %v %q token % x", i, n.Code, n.Payload, n.Token)
		}
		if n.Type == message.Confirmable {
			obs.reply(message.Acknowledgement, n.MessageID)
		}
		obs.send(request(codes.DELETE, message.Confirmable, obs.nextMID(), []byte{2}, "/ps/order/t"))
		if r := obs.mustRecv(); r.Code != codes.Deleted {
			t.Fatalf("trial %d: DELETE: %v", i, r.Code)
		}
	}
	if m, ok := obs.recv(50 * time.Millisecond); ok {
		t.Fatalf("unexpected %v %q (delivered twice?)", m.Code, m.Payload)
	}
	t.Logf("%d of %d publications were routed before the observation and replayed", g.b.Stats().MessagesReplayed.Load(), trials)
}

// Publications carry their datagram's receive time into the core, on the
// fast path and on go-coap's.
func TestPublishCarriesArrival(t *testing.T) {
	g := startGateway(t, nil)
	got := make(chan *core.Message, 4)
	s, _, err := g.b.Connect(t.Context(), core.ConnectRequest{ClientID: "observer", CleanStart: true, Sink: sinkFunc(func(d core.Delivery) { got <- d.Msg })})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	s.Subscribe("arr/+", core.SubOptions{})
	pub := g.raw(t)
	for _, c := range []struct {
		path string
		opts []message.Option
	}{
		{"/ps/arr/fast", nil},
		// An option the fast path does not take sends it to go-coap.
		{"/ps/arr/slow", []message.Option{{ID: message.Accept, Value: encodeUint(0)}}},
	} {
		before := time.Now().UnixNano()
		m := request(codes.POST, message.Confirmable, pub.nextMID(), []byte{3}, c.path)
		m.Options = append(m.Options, c.opts...)
		m.Payload = []byte("x")
		pub.send(m)
		if r := pub.mustRecv(); r.Code != codes.Changed {
			t.Fatalf("%s: %v", c.path, r.Code)
		}
		select {
		case msg := <-got:
			if msg.Arrived < before || msg.Arrived > time.Now().UnixNano() {
				t.Fatalf("%s: Arrived %d, want the datagram's receive time (after %d)", c.path, msg.Arrived, before)
			}
		case <-time.After(waitTimeout):
			t.Fatalf("%s: no delivery", c.path)
		}
	}
}

// sinkFunc is a core.Sink calling f for each delivery.
type sinkFunc func(core.Delivery)

func (f sinkFunc) Deliver(d core.Delivery) bool { f(d); return true }
func (sinkFunc) Close(error)                    {}
