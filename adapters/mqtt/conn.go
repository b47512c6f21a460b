package mqtt

import (
	"bufio"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/iotgw/iotgw/adapters/mqtt/codec"
	"github.com/iotgw/iotgw/core"
)

// conn is one MQTT network connection: a reader goroutine that decodes
// packets and calls the core, and a writer goroutine that drains the
// outbound queue, coalescing whatever is pending into one socket write.
// It is the core.Sink of its session.
type conn struct {
	srv      *Server
	nc       net.Conn
	listener string
	remote   string
	// br is borrowed from readerPool only while bytes are arriving; an
	// idle connection waits on a one-byte read and holds no buffer.
	br    *bufio.Reader
	first firstByte

	// Reader-goroutine state. version is written once, before the CONNACK
	// is queued; the writer reads it only after taking an item from the
	// queue under mu, which orders the two.
	version      byte
	clientID     string
	sess         *core.Session
	keepAlive    time.Duration
	connected    bool
	publishWill  bool // false after a clean DISCONNECT
	aliasesIn    map[uint16]string
	maxOutPacket int                   // the client's Maximum Packet Size (0: none)
	aliasOutMax  int                   // the client's Topic Alias Maximum (0: none)
	expiry0      bool                  // v5: CONNECT asked for session expiry 0
	qos2Held     int                   // inbound QoS 2 ids awaiting PUBREL (v5 flow control)
	acks         *ackPipe              // ordered, durable acknowledgements; nil until needed
	pending      *pendingConnect       // CONNECT awaiting enhanced authentication
	authConv     core.AuthConversation // authentication exchange in progress
	authMethod   string                // method the connection authenticated with
	lastDeadline time.Time

	mu          sync.Mutex
	out         []outItem
	spare       []outItem
	pendingQoS0 int
	closing     bool
	closeErr    error
	writing     bool              // a writer goroutine is running
	wake        chan struct{}     // wakes a running writer
	writerDone  chan struct{}     // closed by the writer that closes the socket
	aliasesOut  map[string]uint16 // outbound topic aliases; used by the writer only
}

// outItem is a control packet or a delivery waiting for the writer.
type outItem struct {
	pkt codec.Packet
	d   core.Delivery
}

var _ core.Sink = (*conn)(nil)

func newConn(s *Server, nc net.Conn, listener string) *conn {
	remote := nc.RemoteAddr().String()
	return &conn{
		srv:         s,
		nc:          nc,
		listener:    listener,
		remote:      remote,
		publishWill: true,
		wake:        make(chan struct{}, 1),
		writerDone:  make(chan struct{}),
	}
}

// logAt logs with the connection's fields. The fields are attached per
// call rather than kept in a derived logger: a logger per connection
// costs kilobytes of idle memory, and logging is rare.
func (c *conn) logAt(level zapcore.Level, msg string, fields ...zap.Field) {
	if ce := c.srv.log.Check(level, msg); ce != nil {
		fields = append(fields, zap.String("remote", c.remote), zap.String("listener", c.listener))
		if c.clientID != "" {
			fields = append(fields, zap.String("client_id", c.clientID))
		}
		ce.Write(fields...)
	}
}

// Deliver queues a delivery for the writer; it never blocks. QoS 0 beyond
// MaxPendingQoS0 is refused (the core counts the drop).
func (c *conn) Deliver(d core.Delivery) bool {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return false
	}
	if d.QoS == 0 && !d.Release {
		if c.pendingQoS0 >= c.srv.cfg.MaxPendingQoS0 {
			c.mu.Unlock()
			return false
		}
		c.pendingQoS0++
	}
	c.out = append(c.out, outItem{d: d})
	if len(c.out) == 1 {
		c.wakeWriterLocked()
	}
	c.mu.Unlock()
	return true
}

// send queues a control packet.
func (c *conn) send(p codec.Packet) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	c.out = append(c.out, outItem{pkt: p})
	if len(c.out) == 1 {
		c.wakeWriterLocked()
	}
	c.mu.Unlock()
}

// Close implements core.Sink: the connection flushes what is queued (plus
// an MQTT 5 DISCONNECT naming the reason) and closes.
func (c *conn) Close(reason error) {
	c.mu.Lock()
	v5 := c.version == codec.V5 && c.connected
	c.mu.Unlock()
	var last codec.Packet
	if v5 {
		last = &codec.Disconnect{ReasonCode: reasonFor(reason)}
	}
	c.closeWith(last, reason)
}

// closeWith queues an optional final packet and marks the connection
// closing; the writer flushes and closes the socket.
func (c *conn) closeWith(last codec.Packet, reason error) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	if last != nil {
		c.out = append(c.out, outItem{pkt: last})
	}
	c.closing = true
	c.closeErr = reason
	c.wakeWriterLocked()
	c.mu.Unlock()
	// A peer that stops reading must not hold the shutdown up for long.
	_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
}

// writeLoop encodes everything queued into one buffer and writes it with
// one call: many packets, one syscall, under load.
func (c *conn) writeLoop() {
	defer c.srv.wg.Done()
	var buf []byte
	var pub codec.Publish
	var props []codec.UserProperty
	var idle *time.Timer
	stats := c.srv.b.Stats()
	for {
		c.mu.Lock()
		items := c.out
		c.out = c.spare[:0]
		c.spare = nil
		c.pendingQoS0 = 0
		closing := c.closing
		c.mu.Unlock()
		if len(items) == 0 {
			if closing {
				c.nc.Close()
				close(c.writerDone)
				return
			}
			if cap(buf) > 2*writeChunk {
				buf = nil // an idle connection keeps no large buffer
			}
			if !c.waitForWork(&idle) {
				return
			}
			continue
		}
		buf = buf[:0]
		for i := range items {
			var err error
			buf, props, err = c.appendItem(buf, &items[i], &pub, props)
			if err != nil {
				c.logAt(zap.WarnLevel, "encode failed", zap.Error(err))
			}
			items[i] = outItem{}
			// Flush every writeChunk bytes: a long queue goes out in a
			// few large writes, not one huge buffer.
			if len(buf) >= writeChunk && i < len(items)-1 {
				if !c.flush(buf, closing, stats) {
					return
				}
				buf = buf[:0]
			}
		}
		c.mu.Lock()
		c.spare = items[:0]
		c.mu.Unlock()
		if len(buf) > 0 && !c.flush(buf, closing, stats) {
			return
		}
	}
}

// writeChunk is the size at which the writer flushes mid-batch.
const writeChunk = 64 << 10

// flush writes buf to the socket; on failure it marks the connection
// closing, closes the socket and reports false (the writer then exits).
func (c *conn) flush(buf []byte, closing bool, stats *core.Stats) bool {
	if !closing {
		_ = c.nc.SetWriteDeadline(time.Now().Add(c.srv.cfg.WriteTimeout))
	}
	n, err := c.nc.Write(buf)
	stats.WireBytesSent.Add(uint64(n))
	if err == nil {
		return true
	}
	c.logAt(zap.DebugLevel, "write failed", zap.Error(err))
	c.mu.Lock()
	c.closing = true
	c.out = nil
	c.writing = false
	c.mu.Unlock()
	c.nc.Close()
	close(c.writerDone)
	return false
}

// writerLinger is how long an idle writer goroutine waits for more work
// before it exits; the next packet starts a new one. Idle connections
// then cost one goroutine, not two.
const writerLinger = 2 * time.Second

// waitForWork blocks until the writer is woken, or retires the writer
// after writerLinger without work (returning false).
func (c *conn) waitForWork(idle **time.Timer) bool {
	if *idle == nil {
		*idle = time.NewTimer(writerLinger)
	} else {
		(*idle).Reset(writerLinger)
	}
	select {
	case <-c.wake:
		(*idle).Stop()
		return true
	case <-(*idle).C:
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.out) > 0 || c.closing {
		return true
	}
	c.writing = false
	c.spare = nil
	return false
}

// wakeWriterLocked starts the writer goroutine if it is not running, or
// wakes it. c.mu must be held.
func (c *conn) wakeWriterLocked() {
	if !c.writing {
		c.writing = true
		c.srv.wg.Add(1)
		go c.writeLoop()
		return
	}
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *conn) appendItem(buf []byte, it *outItem, pub *codec.Publish, props []codec.UserProperty) ([]byte, []codec.UserProperty, error) {
	if it.pkt != nil {
		c.srv.pc.Out(int(it.pkt.Type()))
		b, err := codec.Append(buf, it.pkt, c.version)
		return b, props, err
	}
	d := &it.d
	if d.Release {
		c.srv.pc.Out(int(codec.TypePubrel))
		b, err := codec.Append(buf, &codec.Ack{Kind: codec.TypePubrel, PacketID: d.ID}, c.version)
		return b, props, err
	}
	m := d.Msg
	*pub = codec.Publish{Topic: m.Topic, Payload: m.Payload, QoS: d.QoS, Retain: d.Retain, Dup: d.Dup, PacketID: d.ID}
	if c.version == codec.V5 {
		props = c.publishProps(pub, d, props)
		if c.maxOutPacket > 0 && codec.Size(pub, c.version) > c.maxOutPacket {
			// Too big for this client: it is not sent, and the session
			// treats it as delivered [MQTT-3.1.2-25].
			c.logAt(zap.DebugLevel, "message exceeds client's maximum packet size", zap.String("topic", m.Topic))
			if d.QoS > 0 {
				c.sess.AckedBy(c, d.ID)
			}
			return buf, props, nil
		}
		if c.aliasOutMax > 0 {
			c.applyAlias(pub)
		}
	}
	c.srv.pc.Out(int(codec.TypePublish))
	b, err := codec.Append(buf, pub, c.version)
	return b, props, err
}

// applyAlias uses a topic alias towards a client that accepts them
// (3.3.2.3.4): a topic seen before goes out as its alias alone; new
// topics get the next alias until the client's maximum is reached.
func (c *conn) applyAlias(pub *codec.Publish) {
	if c.aliasesOut == nil {
		c.aliasesOut = make(map[string]uint16)
	}
	if a, ok := c.aliasesOut[pub.Topic]; ok {
		pub.Topic = ""
		pub.Props.TopicAlias = a
		pub.Props.Set(codec.PropTopicAlias)
		return
	}
	if n := len(c.aliasesOut); n < c.aliasOutMax && n < 65535 {
		a := uint16(n + 1)
		c.aliasesOut[pub.Topic] = a
		pub.Props.TopicAlias = a
		pub.Props.Set(codec.PropTopicAlias)
	}
}

// publishProps fills an outbound PUBLISH's MQTT 5 properties from the
// message; user properties go through a scratch slice reused per writer.
func (c *conn) publishProps(pub *codec.Publish, d *core.Delivery, scratch []codec.UserProperty) []codec.UserProperty {
	m := d.Msg
	p := &pub.Props
	if m.PayloadFormat != 0 {
		p.PayloadFormat = m.PayloadFormat
		p.Set(codec.PropPayloadFormat)
	}
	if secs, ok := m.RemainingExpiry(time.Now()); ok {
		if secs == 0 {
			secs = 1
		}
		p.MessageExpiry = secs
		p.Set(codec.PropMessageExpiry)
	}
	if m.ContentType != "" {
		p.ContentType = m.ContentType
		p.Set(codec.PropContentType)
	}
	if m.ResponseTopic != "" {
		p.ResponseTopic = m.ResponseTopic
		p.Set(codec.PropResponseTopic)
	}
	if m.CorrelationData != nil {
		p.CorrelationData = m.CorrelationData
		p.Set(codec.PropCorrelationData)
	}
	if len(d.SubIDs) > 0 {
		p.SubscriptionIDs = d.SubIDs
		p.Set(codec.PropSubscriptionID)
	}
	if len(m.UserProps) > 0 {
		scratch = scratch[:0]
		for _, u := range m.UserProps {
			scratch = append(scratch, codec.UserProperty{Key: u.Key, Value: u.Value})
		}
		p.User = scratch
		p.Set(codec.PropUser)
	}
	return scratch
}

// readLoop decodes packets until the connection ends, then detaches the
// session (publishing the will unless the client disconnected cleanly).
func (c *conn) readLoop() {
	defer c.srv.wg.Done()
	defer c.finish()
	stats := c.srv.b.Stats()
	_ = c.nc.SetReadDeadline(time.Now().Add(c.srv.cfg.ConnectTimeout))
	defer c.releaseReader()
	for {
		if c.br == nil || c.br.Buffered() == 0 {
			if c.connected {
				c.refreshDeadline()
			}
			if err := c.awaitData(); err != nil {
				c.readFailed(nil, err)
				return
			}
		}
		pkt, n, err := codec.ReadPacket(c.br, c.version, c.srv.cfg.MaxPacketSize)
		stats.WireBytesReceived.Add(uint64(n))
		if err != nil {
			c.readFailed(pkt, err)
			return
		}
		c.srv.pc.In(int(pkt.Type()))
		if err := c.handle(pkt); err != nil {
			if !errors.Is(err, errClientDisconnected) {
				c.logAt(zap.InfoLevel, "closing connection", zap.Error(err))
			}
			return
		}
	}
}

var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}

// firstByte replays the byte awaitData read, then reads the socket.
type firstByte struct {
	nc  net.Conn
	b   [1]byte
	has bool
}

func (f *firstByte) Read(p []byte) (int, error) {
	if f.has && len(p) > 0 {
		p[0] = f.b[0]
		f.has = false
		return 1, nil // do not block for more: bufio asks again when it needs it
	}
	return f.nc.Read(p)
}

// awaitData gives the read buffer back while the connection is idle and
// blocks on a one-byte read; when data arrives it borrows a buffer again.
// This keeps idle connections small at the cost of one extra read per
// burst of packets.
func (c *conn) awaitData() error {
	c.releaseReader()
	c.first.nc = c.nc
	if _, err := io.ReadFull(c.nc, c.first.b[:]); err != nil {
		return err
	}
	c.first.has = true
	c.br = readerPool.Get().(*bufio.Reader)
	c.br.Reset(&c.first)
	return nil
}

func (c *conn) releaseReader() {
	if c.br != nil && c.br.Buffered() == 0 {
		c.br.Reset(nil)
		readerPool.Put(c.br)
		c.br = nil
	}
}

// refreshDeadline allows 1.5 times the keep alive between packets
// [MQTT-3.1.2-24]; it runs only when the reader is about to block.
func (c *conn) refreshDeadline() {
	if c.keepAlive <= 0 {
		return
	}
	now := time.Now()
	// Re-arming costs a timer update; skip it when the last one is recent
	// enough that the deadline can only be later, never earlier, than due.
	if now.Sub(c.lastDeadline) < 50*time.Millisecond {
		return
	}
	c.lastDeadline = now
	_ = c.nc.SetReadDeadline(now.Add(c.keepAlive * 3 / 2))
}

var errClientDisconnected = errors.New("client disconnected")

// readFailed reports why reading stopped: EOF, a deadline (keep alive or
// connect timeout), or a malformed packet.
func (c *conn) readFailed(pkt codec.Packet, err error) {
	var ne net.Error
	var ce *codec.Error
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed):
		c.logAt(zap.DebugLevel, "connection closed by peer")
		c.closeWith(nil, err)
	case errors.As(err, &ne) && ne.Timeout():
		if !c.connected {
			c.logAt(zap.InfoLevel, "no CONNECT within the connect timeout", zap.Duration("timeout", c.srv.cfg.ConnectTimeout))
			c.closeWith(nil, err)
			return
		}
		c.logAt(zap.InfoLevel, "keep alive expired", zap.Duration("keep_alive", c.keepAlive))
		c.fail(codec.KeepAliveTimeout, err)
	case errors.As(err, &ce):
		c.logAt(zap.InfoLevel, "bad packet", zap.Error(err))
		if !c.connected {
			if cp, ok := pkt.(*codec.Connect); ok && ce.Code == codec.UnsupportedProtocolVersion {
				c.refuseConnect(cp, codec.UnsupportedProtocolVersion)
				return
			}
			if ok := pkt != nil; ok && c.version == codec.V5 {
				c.fail(ce.Code, err)
				return
			}
			c.closeWith(nil, err)
			return
		}
		c.fail(ce.Code, err)
	default:
		c.logAt(zap.DebugLevel, "read failed", zap.Error(err))
		c.closeWith(nil, err)
	}
}

// fail closes the connection after an error; MQTT 5 clients get a
// DISCONNECT with the reason code first [MQTT-4.13.1-1].
func (c *conn) fail(rc codec.ReasonCode, err error) {
	var last codec.Packet
	if c.version == codec.V5 && c.connected && rc >= 0x80 {
		last = &codec.Disconnect{ReasonCode: rc}
	}
	c.closeWith(last, err)
}

// finish runs when the reader stops: detach the session and wait for the
// writer to flush and close.
func (c *conn) finish() {
	c.closeWith(nil, nil)
	if c.sess != nil {
		c.sess.Disconnect(c, core.DisconnectOptions{PublishWill: c.publishWill})
	}
	<-c.writerDone
	c.nc.Close()
	c.srv.forget(c)
}
