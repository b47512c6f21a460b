// Command queuefill queues QoS 1 messages for an offline persistent MQTT
// subscriber, to measure the gateway's memory and store growth (see
// docs/performance.md, "Durable store"). It connects a subscriber with
// clean session 0, subscribes to qf/# at QoS 1 and disconnects, then
// publishes -n QoS 1 messages (pipelined, -window unacknowledged) and
// reports the rate; with -drain it reconnects the subscriber and receives
// (and acknowledges) every message.
package main

import (
	"bufio"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

type conn struct {
	nc net.Conn
	r  *bufio.Reader
	w  *bufio.Writer
}

func dial(addr, id string, clean bool) *conn {
	nc, err := net.Dial("tcp", addr)
	check(err)
	c := &conn{nc: nc, r: bufio.NewReaderSize(nc, 1<<16), w: bufio.NewWriterSize(nc, 1<<16)}
	var flags byte
	if clean {
		flags = 0x02
	}
	c.packet(0x10, append([]byte{0, 4, 'M', 'Q', 'T', 'T', 4, flags, 0, 0}, str(id)...))
	check(c.w.Flush())
	if typ, b := c.read(); typ != 0x20 || len(b) != 2 || b[1] != 0 {
		fail("CONNACK %x % x", typ, b)
	}
	return c
}

func str(s string) []byte { return append(binary.BigEndian.AppendUint16(nil, uint16(len(s))), s...) }

func (c *conn) packet(h byte, body []byte) {
	c.w.WriteByte(h)
	n := len(body)
	for {
		b := byte(n % 128)
		n /= 128
		if n > 0 {
			b |= 0x80
		}
		c.w.WriteByte(b)
		if n == 0 {
			break
		}
	}
	c.w.Write(body)
}

func (c *conn) read() (byte, []byte) {
	h, err := c.r.ReadByte()
	check(err)
	n, mul := 0, 1
	for {
		b, err := c.r.ReadByte()
		check(err)
		n += int(b&0x7f) * mul
		mul *= 128
		if b&0x80 == 0 {
			break
		}
	}
	body := make([]byte, n)
	_, err = io.ReadFull(c.r, body)
	check(err)
	return h, body
}

func check(err error) {
	if err != nil {
		fail("%v", err)
	}
}

func fail(f string, a ...any) {
	fmt.Fprintf(os.Stderr, "queuefill: "+f+"\n", a...)
	os.Exit(1)
}

func main() {
	addr := flag.String("addr", "127.0.0.1:1883", "broker host:port")
	n := flag.Int("n", 1000000, "messages")
	window := flag.Int("window", 1000, "unacknowledged publishes")
	size := flag.Int("size", 64, "payload bytes")
	drain := flag.Bool("drain", false, "then reconnect the subscriber and receive every message")
	flag.Parse()
	subID := fmt.Sprintf("queuefill-%d", os.Getpid())

	s := dial(*addr, subID, false)
	s.packet(0x82, append(append([]byte{0, 1}, str("qf/#")...), 1))
	check(s.w.Flush())
	if typ, b := s.read(); typ != 0x90 || len(b) != 3 || b[2] != 1 {
		fail("SUBACK %x % x", typ, b)
	}
	s.packet(0xE0, nil)
	s.w.Flush()
	s.nc.Close()

	p := dial(*addr, subID+"-pub", true)
	credit := make(chan struct{}, *window)
	done := make(chan struct{})
	go func() {
		for i := 0; i < *n; i++ {
			if typ, _ := p.read(); typ != 0x40 {
				fail("expected PUBACK, got %x", typ)
			}
			<-credit
		}
		close(done)
	}()
	payload := make([]byte, *size)
	topic := str("qf/t")
	start := time.Now()
	for i := 0; i < *n; i++ {
		select {
		case credit <- struct{}{}:
		default:
			check(p.w.Flush())
			credit <- struct{}{}
		}
		id := uint16(i%65535) + 1
		body := append(append(append([]byte{}, topic...), byte(id>>8), byte(id)), payload...)
		p.packet(0x32, body)
	}
	check(p.w.Flush())
	<-done
	el := time.Since(start)
	fmt.Printf("queued %d QoS 1 messages (%d-byte payload) in %.1fs: %.0f msg/s\n", *n, *size, el.Seconds(), float64(*n)/el.Seconds())
	p.packet(0xE0, nil)
	p.w.Flush()
	p.nc.Close()
	if !*drain {
		return
	}
	start = time.Now()
	s = dial(*addr, subID, false)
	for got := 0; got < *n; {
		typ, b := s.read()
		if typ>>4 != 3 {
			continue
		}
		tl := int(binary.BigEndian.Uint16(b))
		id := b[2+tl : 4+tl]
		s.packet(0x40, []byte{id[0], id[1]})
		got++
		if s.r.Buffered() == 0 {
			check(s.w.Flush())
		}
	}
	check(s.w.Flush())
	fmt.Printf("drained %d in %.1fs\n", *n, time.Since(start).Seconds())
}
