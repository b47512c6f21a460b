package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"strconv"
	"testing"
	"time"
)

// udpSink is a loopback UDP socket that nothing reads: writes to it succeed
// (and are dropped once its buffer is full), so publishing costs only the
// client's own work.
func udpSink(t testing.TB) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc.LocalAddr().String()
}

func dialSink(t testing.TB, u *udpConn, addr string) {
	t.Helper()
	if err := u.dial(dialOpts{addr: addr, deadline: time.Now().Add(time.Minute), sz: bufSizes{read: 4 << 10}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.uc.Close() })
}

// TestClientsPublishWithoutAllocating pins the lean-client property for every
// protocol: after setup, publishing allocates nothing per message.
func TestClientsPublishWithoutAllocating(t *testing.T) {
	const msgs = 2000
	publishers := map[string]func() *publisher{
		"mqtt5": func() *publisher {
			c := testMQTT(nil, nil, io.Discard)
			c.v5, c.recvMax = true, 65535
			return testPublisher(0, c, "bench/pairs/0", 1, msgs, 64, 100)
		},
		"stomp": func() *publisher {
			c := &stompConn{stream: stream{bw: bufio.NewWriterSize(io.Discard, 64<<10)}}
			p := newPublisher(0, c, 1, msgs, 64, 100, false, time.Second)
			_ = c.preparePublish(p, "bench/pairs/0")
			return p
		},
		"mqttsn": func() *publisher {
			c := &snConn{}
			dialSink(t, &c.udpConn, udpSink(t))
			p := newPublisher(0, c, 1, msgs, 64, 100, false, time.Second)
			c.pub, c.qos, c.fl, c.topicID = p, 1, newInflight(msgs), 7
			c.wbuf = make([]byte, 0, 128)
			return p
		},
		"coap": func() *publisher {
			c := &coapConn{}
			dialSink(t, &c.udpConn, udpSink(t))
			p := newPublisher(0, c, 1, msgs, 64, 100, false, time.Second)
			if err := c.preparePublish(p, "bench/pairs/0"); err != nil {
				t.Fatal(err)
			}
			c.fl = newInflight(msgs)
			return p
		},
	}
	for name, mk := range publishers {
		p := mk()
		allocs := testing.AllocsPerRun(3, func() {
			p.sent = 0
			if fl := flightOf(p.w); fl != nil {
				*fl = inflight{slots: fl.slots, mask: fl.mask}
			}
			if err := p.send(msgs); err != nil {
				t.Fatal(err)
			}
		})
		if allocs > 0 {
			t.Errorf("%s: publishing %d messages allocated %.0f times", name, msgs, allocs)
		}
	}
}

func flightOf(w wire) *inflight {
	switch c := w.(type) {
	case *snConn:
		return c.fl
	case *coapConn:
		return c.fl
	}
	return nil
}

// TestSTOMPReceiveWithoutAllocating feeds a subscriber MESSAGE frames in
// client-individual mode, with a heart-beat EOL between some: every message
// is delivered and ACKed by the id in its ack header, without allocating.
func TestSTOMPReceiveWithoutAllocating(t *testing.T) {
	const msgs = 2000
	var frames []byte
	payload := make([]byte, 64)
	for seq := uint32(0); seq < msgs; seq++ {
		stampPayload(payload, 0, 0, seq)
		frames = append(frames, "MESSAGE\nsubscription:0\nmessage-id:"...)
		frames = strconv.AppendInt(frames, int64(seq), 10)
		frames = append(frames, "\ndestination:bench/pairs/0\nack:a"...)
		frames = strconv.AppendInt(frames, int64(seq), 10)
		frames = append(frames, "\ncontent-length:64\n\n"...)
		frames = append(frames, payload...)
		frames = append(frames, 0)
		if seq%7 == 0 {
			frames = append(frames, '\n')
		}
	}
	pub := newPublisher(0, nil, 1, msgs, 64, 100, false, time.Second)
	sub := newSubscriber(0, []*publisher{pub}, msgs)
	var out bytes.Buffer
	out.Grow(64 << 10)
	var in bytes.Reader
	c := &stompConn{stream: stream{br: bufio.NewReaderSize(&in, 64<<10), bw: bufio.NewWriterSize(&out, 1<<20)}}
	r := &reader{sub: sub}
	allocs := testing.AllocsPerRun(3, func() {
		in.Reset(frames)
		c.br.Reset(&in)
		out.Reset()
		sub.sources[0].seen = newBitset(msgs) // one allocation per run, not per message
		if err := c.readLoop(r); err != io.EOF {
			t.Fatal(err)
		}
	})
	if allocs > 1 {
		t.Errorf("receiving %d messages allocated %.0f times", msgs, allocs)
	}
	if sub.unique.Load() != 4*msgs || sub.dups != 0 || sub.foreign != 0 {
		t.Errorf("unique %d dups %d foreign %d", sub.unique.Load(), sub.dups, sub.foreign)
	}
	if !bytes.HasPrefix(out.Bytes(), []byte("ACK\nid:a0\n\n\x00ACK\nid:a1\n\n\x00")) {
		t.Errorf("acks start %q", out.Bytes()[:min(out.Len(), 40)])
	}
}

func TestCoAPCodec(t *testing.T) {
	// POST /ps/a/bb?qos=1, CON, token 0 0 0 1, payload "x".
	c := &coapConn{con: true, midBase: 0x1234}
	c.opts = append(appendPubSubOptions(nil, false, "a/bb", 1), 0xff)
	b := c.appendPublish(nil, 1, []byte("x"))
	want := []byte{0x44, 0x02, 0x12, 0x35, 0, 0, 0, 1,
		0xb2, 'p', 's', 0x01, 'a', 0x02, 'b', 'b', 0x45, 'q', 'o', 's', '=', '1', 0xff, 'x'}
	if !bytes.Equal(b, want) {
		t.Fatalf("publish\n got % x\nwant % x", b, want)
	}
	m, err := parseCoAP(b)
	if err != nil || m.typ != coapCON || m.code != coapPOST || m.mid != 0x1235 || string(m.payload) != "x" ||
		!bytes.Equal(m.token, []byte{0, 0, 0, 1}) {
		t.Fatalf("parsed %+v, %v", m, err)
	}
	// Extended option delta and length (13 and 14 forms) parse back.
	long := string(bytes.Repeat([]byte{'z'}, 300))
	b = appendCoAPHeader(nil, coapNON, coapContent, 1, nil)
	b = appendOption(b, 0, optURIPath, string(bytes.Repeat([]byte{'y'}, 20)))
	b = appendOption(b, optURIPath, 300, long)
	b = append(b, 0xff, 'p')
	if m, err := parseCoAP(b); err != nil || string(m.payload) != "p" {
		t.Fatalf("extended options: %+v, %v", m, err)
	}
	if _, err := parseCoAP([]byte{0x40, 0x45, 0, 1, 0xd1}); err == nil {
		t.Fatal("truncated option accepted")
	}
}

func TestMQTTSNCodec(t *testing.T) {
	c := &snConn{qos: 1, topicID: 0x0102}
	b := c.appendPublish(nil, 0x0304, true, []byte("hi"))
	want := []byte{9, snPublish, 0xa0, 1, 2, 3, 4, 'h', 'i'}
	if !bytes.Equal(b, want) {
		t.Fatalf("publish % x, want % x", b, want)
	}
	typ, body, err := snParse(b)
	if err != nil || typ != snPublish || string(body[5:]) != "hi" {
		t.Fatalf("parse: %x %q %v", typ, body, err)
	}
	// The three-byte length form above 255 bytes.
	big := c.appendPublish(nil, 1, false, make([]byte, 300))
	if big[0] != 1 || int(binary.BigEndian.Uint16(big[1:])) != len(big) {
		t.Fatalf("long form header % x, length %d", big[:4], len(big))
	}
	if typ, body, err := snParse(big); err != nil || typ != snPublish || len(body) != 305 {
		t.Fatalf("long form parse: %x %d %v", typ, len(body), err)
	}
	// Message ids map back to in-flight sequence numbers across the wrap.
	c.fl = newInflight(8)
	c.fl.low, c.fl.high = 65530, 65537
	for seq := int64(65530); seq < 65537; seq++ {
		if got := c.seqOf(packetID(seq)); got != seq {
			t.Errorf("seqOf(packetID(%d)) = %d", seq, got)
		}
	}
}

func TestInflightRing(t *testing.T) {
	f := newInflight(5) // 8 slots
	for seq := int64(0); seq < 5; seq++ {
		f.add(seq, seq*10)
	}
	if f.done(f.get(2)) != 0 || f.done(f.get(0)) != 1 || f.get(0) != nil {
		t.Fatal("out-of-order completion moved the low-water mark wrongly")
	}
	if low := f.done(f.get(1)); low != 3 {
		t.Fatalf("low %d, want 3", low)
	}
	var due []int64
	_ = f.due(35, func(s *flightSlot) error { due = append(due, s.seq); return nil })
	if len(due) != 1 || due[0] != 3 {
		t.Fatalf("due %v, want [3] (sent at 30; 4 at 40 is not due)", due)
	}
}

func TestConnackReceiveMax(t *testing.T) {
	// Properties: session expiry (4 bytes), receive maximum 20, a user property.
	props := []byte{0x11, 0, 0, 0, 10, 0x21, 0, 20, 0x26, 0, 1, 'k', 0, 1, 'v'}
	b := append([]byte{byte(len(props))}, props...)
	if rm, err := connackReceiveMax(b); err != nil || rm != 20 {
		t.Fatalf("receive maximum %d, %v", rm, err)
	}
	if rm, err := connackReceiveMax([]byte{0}); err != nil || rm != 65535 {
		t.Fatalf("default receive maximum %d, %v", rm, err)
	}
	if _, err := connackReceiveMax([]byte{2, 0x21, 0}); err == nil {
		t.Fatal("truncated property accepted")
	}
}
