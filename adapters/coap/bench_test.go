package coap_test

// Benchmarks of the publish and notification paths, with raw UDP clients
// (no client library cost in the profile):
//
//	go test -run '^$' -bench . -benchmem -cpuprofile cpu.out ./adapters/coap/

import (
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"

	"github.com/iotgw/iotgw/core"
)

// benchWindow is how many requests a benchmark client keeps outstanding.
const benchWindow = 32

// idsPerSocket bounds the message ids one client socket uses, so that none
// repeats within EXCHANGE_LIFETIME (it would be a duplicate).
const idsPerSocket = 30000

func benchPublish(b *testing.B, typ message.Type) {
	g := startGateway(b, nil)
	raddr, err := net.ResolveUDPAddr("udp", g.addr)
	if err != nil {
		b.Fatal(err)
	}
	m := request(codes.POST, typ, 0, []byte{1, 2, 3, 4}, "/ps/bench/pub", "qos=0")
	m.Payload = []byte("0123456789012345678901234567890123456789")
	buf := make([]byte, 256)
	n, err := coder.DefaultCoder.Encode(m, buf)
	if err != nil {
		b.Fatal(err)
	}
	datagram := buf[:n]
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for sent := 0; sent < b.N; {
		batch := min(b.N-sent, idsPerSocket)
		runPublishSocket(b, raddr, datagram, batch)
		sent += batch
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msg/s")
}

// runPublishSocket sends count publishes from a fresh socket, keeping
// benchWindow of them unanswered at most.
func runPublishSocket(b *testing.B, raddr *net.UDPAddr, datagram []byte, count int) {
	c, err := net.DialUDP("udp", nil, raddr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadBuffer(4 << 20)
	credit := make(chan struct{}, benchWindow)
	for i := 0; i < benchWindow; i++ {
		credit <- struct{}{}
	}
	var got atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		rb := make([]byte, 2048)
		for got.Load() < int64(count) {
			_ = c.SetReadDeadline(time.Now().Add(waitTimeout))
			n, err := c.Read(rb)
			if err != nil {
				return
			}
			if n >= 4 && rb[1] == byte(codes.Changed) {
				got.Add(1)
				credit <- struct{}{}
			}
		}
	}()
	d := append([]byte(nil), datagram...)
	for i := 0; i < count; i++ {
		select {
		case <-credit:
		case <-done:
			b.Fatalf("replies stopped at %d of %d", got.Load(), count)
		}
		d[2], d[3] = byte(i>>8), byte(i)
		if _, err := c.Write(d); err != nil {
			b.Fatal(err)
		}
	}
	<-done
	if got.Load() < int64(count) {
		b.Fatalf("%d of %d answered", got.Load(), count)
	}
}

// BenchmarkPublishCON: QoS 0 publishes as CON requests, 32 outstanding.
func BenchmarkPublishCON(b *testing.B) { benchPublish(b, message.Confirmable) }

// BenchmarkPublishNON: publishes as NON requests, 32 outstanding.
func BenchmarkPublishNON(b *testing.B) { benchPublish(b, message.NonConfirmable) }

// BenchmarkNotify: messages published in the core reach one raw observer
// as NON notifications (QoS 0); at most benchWindow are in transit.
func BenchmarkNotify(b *testing.B) {
	benchNotify(b, "0")
}

// BenchmarkNotifyCON: QoS 1 messages as CON notifications, each ACKed by
// the observer (one in flight per client, RFC 7641 §4.5.1).
func BenchmarkNotifyCON(b *testing.B) {
	benchNotify(b, "1")
}

func benchNotify(b *testing.B, qos string) {
	g := startGateway(b, nil)
	rc := g.raw(b)
	_ = rc.conn.SetReadBuffer(4 << 20)
	rc.observe([]byte{9, 9}, 0, "/ps/bench/n", "qos="+qos)
	msg := &core.Message{Topic: "bench/n", Payload: []byte("0123456789012345678901234567890123456789"), QoS: qos[0] - '0'}
	credit := make(chan struct{}, benchWindow)
	for i := 0; i < benchWindow; i++ {
		credit <- struct{}{}
	}
	done := make(chan struct{})
	var got atomic.Int64
	go func() {
		defer close(done)
		rb := make([]byte, 2048)
		ack := []byte{0x60, 0, 0, 0}
		for got.Load() < int64(b.N) {
			_ = rc.conn.SetReadDeadline(time.Now().Add(waitTimeout))
			n, err := rc.conn.Read(rb)
			if err != nil {
				return
			}
			if n < 4 || rb[1] != byte(codes.Content) {
				continue
			}
			if rb[0]>>4&3 == byte(message.Confirmable) {
				ack[2], ack[3] = rb[2], rb[3]
				_, _ = rc.conn.Write(ack)
			}
			got.Add(1)
			credit <- struct{}{}
		}
	}()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		select {
		case <-credit:
		case <-done:
			b.Fatalf("notifications stopped at %d of %d", got.Load(), b.N)
		}
		if err := g.b.Publish(msg); err != nil {
			b.Fatal(err)
		}
	}
	<-done
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msg/s")
	if got.Load() < int64(b.N) {
		b.Fatalf("%d of %d notified", got.Load(), b.N)
	}
}
