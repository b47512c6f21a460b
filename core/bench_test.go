package core

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iotgw/iotgw/core/store"
)

// nullSink accepts and forgets deliveries, so benchmarks measure the core.
type nullSink struct{}

func (nullSink) Deliver(Delivery) bool { return true }
func (nullSink) Close(error)           {}

func benchBroker(b *testing.B, subscribers int, qos byte, opts ...Option) (*Broker, *Session) {
	cfg := DefaultConfig()
	cfg.SysInterval = 0
	br, err := New(cfg, nil, opts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(br.Close)
	for i := 0; i < subscribers; i++ {
		s, _, err := br.Connect(context.Background(), ConnectRequest{ClientID: "sub" + strconv.Itoa(i), CleanStart: true, Sink: nullSink{}})
		if err != nil {
			b.Fatal(err)
		}
		s.Start()
		s.Subscribe("bench/+/x", SubOptions{QoS: qos})
	}
	pub, _, err := br.Connect(context.Background(), ConnectRequest{ClientID: "pub", CleanStart: true, Sink: nullSink{}})
	if err != nil {
		b.Fatal(err)
	}
	pub.Start()
	return br, pub
}

// BenchmarkPublishFanout publishes one message to N QoS 0 subscribers:
// the allocations reported are the publish path's own (the message is
// allocated by the caller, as an adapter does).
func BenchmarkPublishFanout(b *testing.B) { benchFanout(b, 0) }

// BenchmarkPublishFanoutArrived is BenchmarkPublishFanout with messages
// that carry a receive time, as MQTT-SN and CoAP publish them: each is
// logged for the order replay (order.go), the cost this measures.
func BenchmarkPublishFanoutArrived(b *testing.B) { benchFanout(b, time.Now().UnixNano()) }

// BenchmarkPublishFanoutStore is BenchmarkPublishFanout with a store, as
// the gateway runs by default: QoS 0 to clean sessions must still cost no
// allocation (the publication's empty write batch is recycled).
func BenchmarkPublishFanoutStore(b *testing.B) { benchFanout(b, 0, WithStore(store.NewMemory())) }

// arrivalCases are the sub-benchmarks without and with receive times.
func arrivalCases() []struct {
	name string
	at   int64
} {
	return []struct {
		name string
		at   int64
	}{{"plain", 0}, {"arrived", time.Now().UnixNano()}}
}

// BenchmarkPublishParallel publishes from one session per goroutine to
// one subscriber; with "arrived" every message has a receive time, and
// the order log's shards are the only state the publishers share besides
// the subscriber.
func BenchmarkPublishParallel(b *testing.B) {
	for _, c := range arrivalCases() {
		b.Run(c.name, func(b *testing.B) {
			br, _ := benchBroker(b, 1, 0)
			var next atomic.Int64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				pub, _, err := br.Connect(context.Background(), ConnectRequest{ClientID: "ppub" + strconv.FormatInt(next.Add(1), 10),
					CleanStart: true, Sink: nullSink{}})
				if err != nil {
					b.Error(err)
					return
				}
				pub.Start()
				payload := []byte("21.5")
				for pb.Next() {
					if err := pub.Publish(&Message{Topic: "bench/a/x", Payload: payload, Arrived: c.at}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// benchFanout publishes with arrival time at (0: none).
func benchFanout(b *testing.B, at int64, opts ...Option) {
	for _, n := range []int{1, 10, 100} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			_, pub := benchBroker(b, n, 0, opts...)
			payload := []byte("21.5")
			msgs := make([]Message, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				m := &msgs[i]
				m.Topic, m.Payload, m.Arrived = "bench/a/x", payload, at
				if err := pub.Publish(m); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}

// BenchmarkPublishQoS1 measures the QoS 1 path: inflight bookkeeping and
// the ack that frees the window.
func BenchmarkPublishQoS1(b *testing.B) {
	_, pub := benchBroker(b, 0, 1)
	br := pub.b
	sink := &ackSink{}
	s, _, _ := br.Connect(context.Background(), ConnectRequest{ClientID: "acker", CleanStart: true, Sink: sink})
	sink.s = s
	s.Start()
	s.Subscribe("bench/+/x", SubOptions{QoS: 1})
	msgs := make([]Message, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m := &msgs[i]
		m.Topic, m.QoS = "bench/a/x", 1
		pub.Publish(m)
		s.Acked(sink.last)
	}
}

type ackSink struct {
	s    *Session
	last uint16
}

func (a *ackSink) Deliver(d Delivery) bool { a.last = d.ID; return true }
func (a *ackSink) Close(error)             {}

// BenchmarkPublishRing publishes QoS 0 to one subscriber from a ring of
// messages reused once their delivery is done (nullSink keeps nothing),
// so that the figures are the publish path's alone: the fan-out
// benchmarks above also count the page faults of their b.N fresh
// messages. "arrived" gives every message a receive time, so each is
// logged for the order replay.
func BenchmarkPublishRing(b *testing.B) {
	for _, c := range arrivalCases() {
		b.Run(c.name, func(b *testing.B) {
			_, pub := benchBroker(b, 1, 0)
			var ring [4096]Message
			payload := []byte("21.5")
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				m := &ring[i%len(ring)]
				*m = Message{Topic: "bench/a/x", Payload: payload, Arrived: c.at}
				if err := pub.Publish(m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
