package mqtt

import (
	"bufio"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"go.uber.org/zap"

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
	log      *zap.Logger
	listener string
	remote   string
	br       *bufio.Reader

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
	wake        chan struct{}
	writerDone  chan struct{}
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
		log:         s.log.With(zap.String("remote", remote), zap.String("listener", listener)),
		br:          bufio.NewReaderSize(nc, 4096),
		publishWill: true,
		wake:        make(chan struct{}, 1),
		writerDone:  make(chan struct{}),
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
	first := len(c.out) == 1
	c.mu.Unlock()
	if first {
		c.signal()
	}
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
	first := len(c.out) == 1
	c.mu.Unlock()
	if first {
		c.signal()
	}
}

func (c *conn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
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
	c.mu.Unlock()
	// A peer that stops reading must not hold the shutdown up for long.
	_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	c.signal()
}

// writeLoop encodes everything queued into one buffer and writes it with
// one call: many packets, one syscall, under load.
func (c *conn) writeLoop() {
	defer c.srv.wg.Done()
	defer close(c.writerDone)
	var buf []byte
	var pub codec.Publish
	var props []codec.UserProperty
	var aliases map[string]uint16 // outbound topic aliases; writer-owned
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
				return
			}
			if cap(buf) > 64<<10 {
				buf = nil // an idle connection keeps no large buffer
			}
			<-c.wake
			continue
		}
		buf = buf[:0]
		for i := range items {
			var err error
			buf, props, err = c.appendItem(buf, &items[i], &pub, props, &aliases)
			if err != nil {
				c.log.Warn("encode failed", zap.Error(err))
			}
			items[i] = outItem{}
		}
		c.mu.Lock()
		c.spare = items[:0]
		c.mu.Unlock()
		if len(buf) == 0 {
			continue
		}
		if !closing {
			_ = c.nc.SetWriteDeadline(time.Now().Add(c.srv.cfg.WriteTimeout))
		}
		n, err := c.nc.Write(buf)
		stats.WireBytesSent.Add(uint64(n))
		if err != nil {
			c.log.Debug("write failed", zap.Error(err))
			c.mu.Lock()
			c.closing = true
			c.out = nil
			c.mu.Unlock()
			c.nc.Close()
			return
		}
	}
}

func (c *conn) appendItem(buf []byte, it *outItem, pub *codec.Publish, props []codec.UserProperty, aliases *map[string]uint16) ([]byte, []codec.UserProperty, error) {
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
			c.log.Debug("message exceeds client's maximum packet size", zap.String("topic", m.Topic))
			if d.QoS > 0 {
				c.sess.Acked(d.ID)
			}
			return buf, props, nil
		}
		if c.aliasOutMax > 0 {
			c.applyAlias(pub, aliases)
		}
	}
	c.srv.pc.Out(int(codec.TypePublish))
	b, err := codec.Append(buf, pub, c.version)
	return b, props, err
}

// applyAlias uses a topic alias towards a client that accepts them
// [MQTT-3.3.2-?]: a topic seen before goes out as its alias alone; new
// topics get the next alias until the client's maximum is reached.
func (c *conn) applyAlias(pub *codec.Publish, aliases *map[string]uint16) {
	if *aliases == nil {
		*aliases = make(map[string]uint16)
	}
	if a, ok := (*aliases)[pub.Topic]; ok {
		pub.Topic = ""
		pub.Props.TopicAlias = a
		pub.Props.Set(codec.PropTopicAlias)
		return
	}
	if n := len(*aliases); n < c.aliasOutMax && n < 65535 {
		a := uint16(n + 1)
		(*aliases)[pub.Topic] = a
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
	for {
		if c.connected && c.br.Buffered() == 0 {
			c.refreshDeadline()
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
				c.log.Info("closing connection", zap.Error(err))
			}
			return
		}
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
		c.log.Debug("connection closed by peer")
		c.closeWith(nil, err)
	case errors.As(err, &ne) && ne.Timeout():
		if !c.connected {
			c.log.Info("no CONNECT within the connect timeout", zap.Duration("timeout", c.srv.cfg.ConnectTimeout))
			c.closeWith(nil, err)
			return
		}
		c.log.Info("keep alive expired", zap.Duration("keep_alive", c.keepAlive))
		c.fail(codec.KeepAliveTimeout, err)
	case errors.As(err, &ce):
		c.log.Info("bad packet", zap.Error(err))
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
		c.log.Debug("read failed", zap.Error(err))
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
