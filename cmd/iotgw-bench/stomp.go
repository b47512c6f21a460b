package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// stompConn is one STOMP 1.2 client connection over TCP or WebSocket.
//
// Mapping onto iotgw (README "STOMP quick start"): SEND carries a qos
// header, and at QoS 1/2 a receipt header whose RECEIPT is the publish
// acknowledgement (iotgw sends it once the core has accepted the message).
// SUBSCRIBE uses ack:auto at QoS 0 and ack:client-individual (plus a qos
// header at QoS 2) otherwise, and each MESSAGE is then ACKed by the id in
// its ack header. Heart-beats are off (0,0): runs are short.
type stompConn struct {
	stream

	// Publishing.
	qos     byte
	prefix  []byte // SEND frame up to the receipt header
	scratch []byte

	// Reading (reader goroutine only).
	body  []byte
	ack   []byte // the ack header of the frame being read
	rcpt  []byte // its receipt-id header
	emsg  []byte // its message header (ERROR frames)
	clen  int    // its content-length, -1 when absent
	frame []byte // command of the frame being read
}

const stompEOF = "\x00"

var (
	stompDisconnect = []byte("DISCONNECT\n\n\x00")
	stompMessage    = []byte("MESSAGE")
	stompReceipt    = []byte("RECEIPT")
	stompError      = []byte("ERROR")
	stompConnected  = []byte("CONNECTED")
)

// newSTOMP sends CONNECT and waits for CONNECTED, before any reader
// goroutine exists.
func newSTOMP(nc net.Conn, o dialOpts) (*stompConn, error) {
	c := &stompConn{stream: newStream(nc, o.sz)}
	connect := "CONNECT\naccept-version:1.2\nhost:" + hostOnly(o.addr) + "\nheart-beat:0,0\n\n" + stompEOF
	if err := c.writeFlush([]byte(connect)); err != nil {
		nc.Close()
		return nil, err
	}
	if err := c.readFrame(); err != nil {
		nc.Close()
		return nil, fmt.Errorf("waiting for CONNECTED: %w", err)
	}
	switch {
	case bytes.Equal(c.frame, stompConnected):
		return c, nil
	case bytes.Equal(c.frame, stompError):
		nc.Close()
		return nil, fmt.Errorf("CONNECT %w: %s", errRefused, c.emsg)
	}
	nc.Close()
	return nil, fmt.Errorf("expected CONNECTED, got %q", c.frame)
}

// hostOnly is the host part of addr, for CONNECT's host header.
func hostOnly(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return "localhost"
}

// subscribeFrame is a SUBSCRIBE (id 0) to dest. With receipt the broker
// answers RECEIPT receipt-id:sub once the subscription is in place; the
// order scenario leaves it out so that nothing waits for it.
func subscribeFrame(dest string, qos byte, receipt bool) []byte {
	f := "SUBSCRIBE\nid:0\ndestination:" + dest + "\n"
	if qos == 0 {
		f += "ack:auto\n"
	} else {
		f += "ack:client-individual\nqos:" + strconv.Itoa(int(qos)) + "\n"
	}
	if receipt {
		f += "receipt:sub\n"
	}
	return []byte(f + "\n" + stompEOF)
}

func (c *stompConn) subscribe(filter string, qos byte) (byte, error) {
	if err := c.writeFlush(subscribeFrame(filter, qos, true)); err != nil {
		return 0, err
	}
	for {
		if err := c.readFrame(); err != nil {
			return 0, fmt.Errorf("waiting for the SUBSCRIBE receipt: %w", err)
		}
		switch {
		case bytes.Equal(c.frame, stompReceipt) && string(c.rcpt) == "sub":
			return qos, nil
		case bytes.Equal(c.frame, stompError):
			return 0, fmt.Errorf("subscription to %q %w: %s", filter, errRefused, c.emsg)
		}
	}
}

func (c *stompConn) preparePublish(p *publisher, topic string) error {
	c.qos = p.qos
	c.prefix = fmt.Appendf(nil, "SEND\ndestination:%s\nqos:%d\ncontent-length:%d\n", topic, p.qos, len(p.body))
	return nil
}

func (c *stompConn) writePublishLocked(seq, _ int64, body []byte) error {
	b := append(c.scratch[:0], c.prefix...)
	if c.qos > 0 {
		b = append(b, "receipt:"...)
		b = strconv.AppendInt(b, seq, 10)
		b = append(b, '\n')
	}
	b = append(b, '\n')
	c.scratch = b
	if _, err := c.bw.Write(b); err != nil {
		return err
	}
	if _, err := c.bw.Write(body); err != nil {
		return err
	}
	return c.bw.WriteByte(0)
}

// ping does nothing: heart-beats are negotiated off.
func (c *stompConn) ping(time.Duration) error { return nil }

func (c *stompConn) disconnect() { c.closeWith(stompDisconnect) }

// readFrame reads the next frame's command, the headers the benchmark
// needs, and its body into c.body. Heart-beat EOLs between frames are
// skipped. It allocates nothing in the steady state.
func (c *stompConn) readFrame() error {
	var line []byte
	var err error
	for {
		line, err = c.br.ReadSlice('\n')
		if err != nil {
			return err
		}
		line = trimEOL(line)
		if len(line) > 0 {
			break
		}
	}
	c.frame = append(c.frame[:0], line...)
	c.ack, c.rcpt, c.emsg = c.ack[:0], c.rcpt[:0], c.emsg[:0]
	c.clen = -1
	var seenAck, seenRcpt, seenMsg, seenLen bool
	for {
		line, err = c.br.ReadSlice('\n')
		if err != nil {
			return err
		}
		line = trimEOL(line)
		if len(line) == 0 {
			break
		}
		k, v, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			continue
		}
		// STOMP 1.2: the first of repeated headers wins.
		switch string(k) {
		case "ack":
			if !seenAck {
				c.ack, seenAck = append(c.ack, v...), true
			}
		case "receipt-id":
			if !seenRcpt {
				c.rcpt, seenRcpt = append(c.rcpt, v...), true
			}
		case "message":
			if !seenMsg {
				c.emsg, seenMsg = append(c.emsg, v...), true
			}
		case "content-length":
			if !seenLen {
				n, err := strconv.Atoi(string(v))
				if err != nil || n < 0 || n > maxPacket {
					return fmt.Errorf("stomp: bad content-length %q", v)
				}
				c.clen, seenLen = n, true
			}
		}
	}
	if c.clen >= 0 {
		if cap(c.body) < c.clen {
			c.body = make([]byte, c.clen)
		}
		c.body = c.body[:c.clen]
		if _, err := io.ReadFull(c.br, c.body); err != nil {
			return err
		}
		nul, err := c.br.ReadByte()
		if err != nil {
			return err
		}
		if nul != 0 {
			return fmt.Errorf("stomp: %s body not NUL-terminated", c.frame)
		}
		return nil
	}
	// No content-length: the body ends at the first NUL.
	c.body = c.body[:0]
	for {
		b, err := c.br.ReadSlice(0)
		c.body = append(c.body, b...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return err
		}
		c.body = c.body[:len(c.body)-1]
		return nil
	}
}

func trimEOL(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte{'\n'})
	return bytes.TrimSuffix(b, []byte{'\r'})
}

// readLoop accounts MESSAGE frames, ACKs them in client-individual mode,
// and counts RECEIPTs as publish acknowledgements. Acks are flushed once
// the socket has nothing more buffered.
func (c *stompConn) readLoop(r *reader) error {
	dirty := false
	for {
		if err := c.readFrame(); err != nil {
			return err
		}
		switch {
		case bytes.Equal(c.frame, stompMessage):
			if len(c.ack) > 0 {
				c.mu.Lock()
				_, _ = c.bw.WriteString("ACK\nid:")
				_, _ = c.bw.Write(c.ack)
				_, err := c.bw.WriteString("\n\n\x00")
				c.mu.Unlock()
				if err != nil {
					return err
				}
				dirty = true
			}
			if r.sub != nil {
				r.sub.deliver(c.body, benchNow())
			}
		case bytes.Equal(c.frame, stompReceipt):
			if r.pub == nil || r.pub.qos == 0 {
				if r.pub != nil {
					r.pub.badAcks.Add(1)
				}
				continue
			}
			r.pub.onAck()
		case bytes.Equal(c.frame, stompError):
			return fmt.Errorf("stomp ERROR: %s", c.emsg)
		default:
			return fmt.Errorf("stomp: unexpected %q frame", c.frame)
		}
		if dirty && c.br.Buffered() == 0 {
			c.mu.Lock()
			err := c.flushLocked()
			c.mu.Unlock()
			if err != nil {
				return err
			}
			dirty = false
		}
	}
}
