package mqttsn_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/iotgw/iotgw/adapters/mqttsn/codec"
	"github.com/iotgw/iotgw/adapters/mqttsn/sntest"
	"github.com/iotgw/iotgw/core"
)

// TestArrivalOrderAcrossClients is issue 14's "arrival order across
// connections" over MQTT-SN: client B sends SUBSCRIBE and client A, on its
// own socket, publishes right after it, both idle before. The gateway
// reads B's datagram first but may route A's publication before B's
// subscription is added (each client has its own worker goroutine); B
// must get the message every time, replayed if need be (core/order.go).
func TestArrivalOrderAcrossClients(t *testing.T) {
	g := startGateway(t, testConfig())
	for _, qos := range []byte{0, 1} {
		t.Run("qos"+strconv.Itoa(int(qos)), func(t *testing.T) {
			sub := sntest.Dial(t, g.snAddr)
			sub.Connect(uniqueID("sub"), true, 60)
			pub := sntest.Dial(t, g.snAddr)
			pub.Connect(uniqueID("pub"), true, 60)
			const trials = 50
			before := g.b.Stats().MessagesReplayed.Load()
			for i := range trials {
				time.Sleep(2 * time.Millisecond) // both connections idle, as in the issue
				flags := codec.Flags{QoS: qos, TopicIDType: codec.TopicPredefined}
				sub.Send(&codec.Subscribe{Kind: codec.TypeSubscribe, Flags: flags, MsgID: sub.NextID(), TopicID: 1})
				var pubID uint16
				if qos > 0 {
					pubID = pub.NextID()
				}
				pub.Send(&codec.Publish{Flags: flags, TopicID: 1, MsgID: pubID, Data: []byte(strconv.Itoa(i))})
				sub.ExpectCode(codec.TypeSuback, codec.Accepted)
				p := sub.ExpectPublish(strconv.Itoa(i))
				sub.Ack(p)
				if qos > 0 {
					pub.ExpectCode(codec.TypePuback, codec.Accepted)
				}
				sub.Send(&codec.Subscribe{Kind: codec.TypeUnsubscribe, Flags: codec.Flags{TopicIDType: codec.TopicPredefined},
					MsgID: sub.NextID(), TopicID: 1})
				sub.Expect(codec.TypeUnsuback)
			}
			sub.Quiet(50 * time.Millisecond) // nothing twice
			t.Logf("%d of %d publications were routed before the subscription and replayed",
				g.b.Stats().MessagesReplayed.Load()-before, trials)
		})
	}
}

// The datagram's receive time reaches the core with the publication.
func TestPublishCarriesArrival(t *testing.T) {
	g := startGateway(t, testConfig())
	got := make(chan *core.Message, 1)
	s, _, err := g.b.Connect(t.Context(), core.ConnectRequest{ClientID: "observer", CleanStart: true, Sink: sinkFunc(func(d core.Delivery) {
		select {
		case got <- d.Msg:
		default:
		}
	})})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	s.Subscribe("pre/one", core.SubOptions{})
	pub := sntest.Dial(t, g.snAddr)
	pub.Connect(uniqueID("pub"), true, 60)
	before := time.Now().UnixNano()
	pub.Publish(codec.TopicPredefined, 1, 0, false, "x")
	select {
	case m := <-got:
		if m.Arrived < before || m.Arrived > time.Now().UnixNano() {
			t.Fatalf("Arrived %d, want the datagram's receive time (after %d)", m.Arrived, before)
		}
	case <-time.After(waitTimeout):
		t.Fatal("no delivery")
	}
}

// sinkFunc is a core.Sink calling f for each delivery.
type sinkFunc func(core.Delivery)

func (f sinkFunc) Deliver(d core.Delivery) bool { f(d); return true }
func (sinkFunc) Close(error)                    {}
