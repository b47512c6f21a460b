package main

import (
	"bufio"
	"encoding/binary"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeBroker is a deliberately small MQTT 3.1.1 broker for tests. It lets us
// check the load generator's handshakes and accounting against injected
// faults that no real broker produces on demand.
type fakeBroker struct {
	t  *testing.T
	ln net.Listener

	// Fault injection, applied to the n-th forwarded message (1-based) of the
	// whole broker; 0 disables.
	dupEvery        int64 // deliver again as a new message (new packet id): a real duplicate
	retransmitEvery int64 // QoS 2: resend the PUBLISH with DUP=1 and the same id before PUBREL
	dropEvery       int64 // do not deliver at all
	delay           time.Duration

	forwarded  atomic.Int64
	pubrelSent atomic.Int64 // to subscribers
	pubcompIn  atomic.Int64 // from subscribers
	pubrelIn   atomic.Int64 // from publishers
	protoErrs  atomic.Int64

	mu    sync.Mutex
	conns []*fbConn
	wg    sync.WaitGroup
}

type fbConn struct {
	nc     net.Conn
	wmu    sync.Mutex
	bw     *bufio.Writer
	nextID uint16
	filter string
	qos    byte
	// QoS 2 messages from this publisher awaiting PUBREL, by packet id.
	held map[uint16][]byte
}

func startFakeBroker(t *testing.T) *fakeBroker {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &fakeBroker{t: t, ln: ln}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			c := &fbConn{nc: nc, bw: bufio.NewWriter(nc), held: map[uint16][]byte{}}
			b.mu.Lock()
			b.conns = append(b.conns, c)
			b.mu.Unlock()
			b.wg.Add(1)
			go func() {
				defer b.wg.Done()
				b.serve(c)
			}()
		}
	}()
	t.Cleanup(b.close)
	return b
}

func (b *fakeBroker) addr() string { return b.ln.Addr().String() }

func (b *fakeBroker) close() {
	b.ln.Close()
	b.mu.Lock()
	for _, c := range b.conns {
		c.nc.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

func (c *fbConn) write(p []byte) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.bw.Write(p)
	c.bw.Flush()
}

func (b *fakeBroker) serve(c *fbConn) {
	pr := packetReader{br: bufio.NewReader(c.nc)}
	for {
		h, body, err := pr.next()
		if err != nil {
			return
		}
		switch h >> 4 {
		case pktConnect:
			c.write([]byte{pktConnack << 4, 2, 0, 0})
		case pktSubscribe:
			id := binary.BigEndian.Uint16(body)
			fl := int(binary.BigEndian.Uint16(body[2:]))
			b.mu.Lock() // forwarders on other connections read these
			c.filter = string(body[4 : 4+fl])
			c.qos = body[4+fl]
			b.mu.Unlock()
			c.write([]byte{pktSuback << 4, 3, byte(id >> 8), byte(id), body[4+fl]})
		case pktPublish:
			pv, err := parsePublish(h, body)
			if err != nil {
				b.protoErrs.Add(1)
				return
			}
			topic := string(pv.topic)
			payload := append([]byte(nil), pv.payload...)
			switch pv.qos {
			case 0:
				b.forward(topic, payload, 0)
			case 1:
				c.write(appendAck(nil, pktPuback, pv.id))
				b.forward(topic, payload, 1)
			case 2:
				// Like mosquitto: hold until PUBREL, then route.
				c.held[pv.id] = append([]byte(topic+"\x00"), payload...)
				c.write(appendAck(nil, pktPubrec, pv.id))
			}
		case pktPubrel:
			b.pubrelIn.Add(1)
			id := binary.BigEndian.Uint16(body)
			m, ok := c.held[id]
			if !ok {
				b.protoErrs.Add(1)
			}
			delete(c.held, id)
			c.write(appendAck(nil, pktPubcomp, id))
			if ok {
				i := strings.IndexByte(string(m), 0)
				b.forward(string(m[:i]), m[i+1:], 2)
			}
		case pktPuback, pktPubcomp:
			if h>>4 == pktPubcomp {
				b.pubcompIn.Add(1)
			}
		case pktPubrec:
			b.pubrelSent.Add(1)
			c.write(appendAck(nil, pktPubrel, binary.BigEndian.Uint16(body)))
		case pktPingreq:
			c.write([]byte{pktPingresp << 4, 0})
		case pktDisconnect:
			c.nc.Close()
			return
		default:
			b.protoErrs.Add(1)
		}
	}
}

// matches implements the two filter forms the benchmark uses: exact topics
// and a trailing multi-level wildcard.
func matches(filter, topic string) bool {
	if p, ok := strings.CutSuffix(filter, "#"); ok {
		return strings.HasPrefix(topic, p)
	}
	return filter == topic
}

func (b *fakeBroker) forward(topic string, payload []byte, qos byte) {
	if b.delay > 0 {
		time.Sleep(b.delay)
	}
	n := b.forwarded.Add(1)
	if b.dropEvery > 0 && n%b.dropEvery == 0 {
		return
	}
	type target struct {
		c   *fbConn
		qos byte
	}
	var subs []target
	b.mu.Lock()
	for _, c := range b.conns {
		if c.filter != "" && matches(c.filter, topic) {
			subs = append(subs, target{c, c.qos})
		}
	}
	b.mu.Unlock()
	for _, t := range subs {
		s := t.c
		q := min(qos, t.qos)
		s.deliver(topic, payload, q, q == 2 && b.retransmitEvery > 0 && n%b.retransmitEvery == 0)
		if b.dupEvery > 0 && n%b.dupEvery == 0 {
			s.deliver(topic, payload, q, false)
		}
	}
}

// deliver sends a PUBLISH with a fresh packet id. With retransmit it then
// resends it with DUP=1 and the same id in the same write, so the copy is
// guaranteed to arrive before our PUBREL for it.
func (s *fbConn) deliver(topic string, payload []byte, qos byte, retransmit bool) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	p := appendPublishHeader(nil, topic, qos, len(payload))
	if qos > 0 {
		s.nextID++
		if s.nextID == 0 {
			s.nextID = 1
		}
		p = binary.BigEndian.AppendUint16(p, s.nextID)
	}
	p = append(p, payload...)
	s.bw.Write(p)
	if retransmit {
		p[0] |= 0x08
		s.bw.Write(p)
	}
	s.bw.Flush()
}
