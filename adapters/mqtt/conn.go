package mqtt

import (
	"bufio"
	"errors"
	"io"
	"net"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/iotgw/iotgw/adapters/mqtt/codec"
	"github.com/iotgw/iotgw/core"
	"github.com/iotgw/iotgw/internal/streamconn"
)

// conn is one MQTT network connection on the shared stream engine
// (internal/streamconn: reader and writer goroutines, idle hand-over,
// queue, graceful close); this type is its MQTT side, the codec and the
// handlers, and the core.Sink of its session.
type conn struct {
	eng      streamconn.Conn[outItem]
	srv      *Server
	listener string
	remote   string

	// Reader-goroutine state. version and connected are written under the
	// engine's lock, which Close takes to read them from other goroutines;
	// the writer reads version after taking items from the queue under the
	// same lock.
	version      byte
	clientID     string
	sess         *core.Session
	keepAlive    time.Duration
	connected    bool
	publishWill  bool // false after a clean DISCONNECT
	aliasesIn    map[uint16]string
	maxOutPacket int                       // the client's Maximum Packet Size (0: none)
	aliasOutMax  int                       // the client's Topic Alias Maximum (0: none)
	expiry0      bool                      // v5: CONNECT asked for session expiry 0
	qos2Held     int                       // inbound QoS 2 ids awaiting PUBREL (v5 flow control)
	acks         *streamconn.Pipe[outItem] // ordered, durable acknowledgements; nil until needed
	pending      *pendingConnect           // CONNECT awaiting enhanced authentication
	authConv     core.AuthConversation     // authentication exchange in progress
	authMethod   string                    // method the connection authenticated with
	aliasesOut   map[string]uint16         // outbound topic aliases; used by the writer only
	limit        *core.ClientLimit         // limits.client_* budget; nil without one
}

// outItem is a control packet, an acknowledgement or a delivery waiting
// for the writer. Acknowledgements carry their three fields by value
// (codec.Ack with its properties is large, and a pointer would cost an
// allocation per ack).
type outItem struct {
	pkt codec.Packet
	ack ackItem
	d   core.Delivery
}

// ackItem is a PUBACK, PUBREC, PUBREL or PUBCOMP (kind 0: none).
type ackItem struct {
	kind codec.PacketType
	rc   codec.ReasonCode
	id   uint16
}

var (
	_ core.Sink  = (*conn)(nil)
	_ core.Pacer = (*conn)(nil)
)

func newConn(s *Server, nc net.Conn, listener string, opts streamconn.Options) *conn {
	c := &conn{
		srv:         s,
		listener:    listener,
		remote:      nc.RemoteAddr().String(),
		publishWill: true,
		limit:       s.b.NewClientLimit(),
	}
	c.eng.Init(s.g, c, nc, opts)
	return c
}

// LogAt logs with the connection's fields. The fields are attached per
// call rather than kept in a derived logger: a logger per connection
// costs kilobytes of idle memory, and logging is rare.
func (c *conn) LogAt(level zapcore.Level, msg string, fields ...zap.Field) {
	if ce := c.srv.log.Check(level, msg); ce != nil {
		fields = append(fields, zap.String("remote", c.remote), zap.String("listener", c.listener))
		if c.clientID != "" {
			fields = append(fields, zap.String("client_id", c.clientID))
		}
		ce.Write(fields...)
	}
}

func (c *conn) logAt(level zapcore.Level, msg string, fields ...zap.Field) {
	c.LogAt(level, msg, fields...)
}

// Deliver queues a delivery for the writer (or writes it at once to an
// idle connection); it never blocks. QoS 0 beyond the pending bound is
// refused (the core counts the drop).
func (c *conn) Deliver(d core.Delivery) bool {
	return c.eng.Deliver(outItem{d: d}, d.QoS == 0 && !d.Release)
}

// Room implements core.Pacer.
func (c *conn) Room() <-chan struct{} { return c.eng.Room() }

// send queues a control packet from any goroutine; the reader calls reply
// instead, which saves the writer goroutine.
func (c *conn) send(p codec.Packet) { c.eng.Send(outItem{pkt: p}) }

// reply queues a control packet from the reader goroutine, which writes
// it at the end of its burst.
func (c *conn) reply(p codec.Packet) { c.eng.Reply(outItem{pkt: p}) }

// Close implements core.Sink: the connection flushes what is queued (plus
// an MQTT 5 DISCONNECT naming the reason) and closes.
func (c *conn) Close(reason error) {
	c.eng.Lock()
	v5 := c.version == codec.V5 && c.connected
	c.eng.Unlock()
	var last codec.Packet
	if v5 {
		rc := reasonFor(reason)
		if rc == codec.Banned {
			// 0x8A is a CONNACK code only [MQTT-3.14.2-1]: a client
			// banned while connected is told "not authorized".
			rc = codec.NotAuthorized
		}
		last = &codec.Disconnect{ReasonCode: rc}
	}
	c.closeWith(last, reason)
}

// closeWith queues an optional final packet and starts the graceful
// close (streamconn.Conn.CloseWith).
func (c *conn) closeWith(last codec.Packet, reason error) {
	if reason != nil && !errors.Is(reason, errClientDisconnected) {
		c.logAt(zap.DebugLevel, "closing", zap.Error(reason))
	}
	if last == nil {
		c.eng.CloseWith(nil)
		return
	}
	c.eng.CloseWith(&outItem{pkt: last})
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

// writeScratch is a writer's reusable encoding state, kept in the
// engine's pooled batch.
type writeScratch struct {
	pub   codec.Publish
	ack   codec.Ack
	props []codec.UserProperty
}

// Encode implements streamconn.Proto: it appends one queued item.
func (c *conn) Encode(b *streamconn.Batch, it *outItem) {
	w, _ := b.Scratch.(*writeScratch)
	if w == nil {
		w = new(writeScratch)
		b.Scratch = w
	}
	var err error
	switch {
	case it.pkt != nil:
		c.srv.pc.Out(int(it.pkt.Type()))
		b.Buf, err = codec.Append(b.Buf, it.pkt, c.version)
	case it.ack.kind != 0:
		c.srv.pc.Out(int(it.ack.kind))
		w.ack = codec.Ack{Kind: it.ack.kind, PacketID: it.ack.id, ReasonCode: it.ack.rc}
		b.Buf, err = codec.Append(b.Buf, &w.ack, c.version)
	default:
		err = c.appendDelivery(b, &it.d, w)
	}
	if err != nil {
		c.logAt(zap.WarnLevel, "encode failed", zap.Error(err))
	}
}

func (c *conn) appendDelivery(b *streamconn.Batch, d *core.Delivery, w *writeScratch) error {
	var err error
	if d.Release {
		c.srv.pc.Out(int(codec.TypePubrel))
		w.ack = codec.Ack{Kind: codec.TypePubrel, PacketID: d.ID}
		b.Buf, err = codec.Append(b.Buf, &w.ack, c.version)
		return err
	}
	m := d.Msg
	pub := &w.pub
	*pub = codec.Publish{Topic: m.Topic, Payload: m.Payload, QoS: d.QoS, Retain: d.Retain, Dup: d.Dup, PacketID: d.ID}
	if c.version == codec.V5 {
		w.props = c.publishProps(pub, d, w.props)
		if c.maxOutPacket > 0 && codec.Size(pub, c.version) > c.maxOutPacket {
			// Too big for this client: it is not sent, and the session
			// treats it as delivered [MQTT-3.1.2-25] once the batch is
			// out (never from inside a Sink call: Written).
			c.logAt(zap.DebugLevel, "message exceeds client's maximum packet size", zap.String("topic", m.Topic))
			if d.QoS > 0 {
				b.Acks = append(b.Acks, d.ID)
			}
			return nil
		}
		if c.aliasOutMax > 0 {
			c.applyAlias(pub)
		}
	}
	c.srv.pc.Out(int(codec.TypePublish))
	b.Buf, err = codec.Append(b.Buf, pub, c.version)
	return err
}

// Written implements streamconn.Proto: deliveries the client could not
// take are complete.
func (c *conn) Written(acks []uint16) {
	for _, id := range acks {
		c.sess.AckedBy(c, id)
	}
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

// Next implements streamconn.Proto: one packet read and handled.
func (c *conn) Next(r *bufio.Reader) error {
	pkt, _, err := codec.ReadPacket(r, c.version, c.srv.cfg.MaxPacketSize)
	if err != nil {
		c.readFailed(pkt, err)
		return err
	}
	c.srv.pc.In(int(pkt.Type()))
	if herr := c.handle(pkt); herr != nil {
		if !errors.Is(herr, errClientDisconnected) {
			c.logAt(zap.InfoLevel, "closing connection", zap.Error(herr))
		}
		return herr
	}
	return nil
}

// IdleDeadline implements streamconn.Proto: 1.5 times the keep alive
// after the last input [MQTT-3.1.2-24]; none without keep alive.
func (c *conn) IdleDeadline(last time.Time) time.Time {
	if c.keepAlive > 0 {
		return last.Add(c.keepAlive * 3 / 2)
	}
	return time.Time{}
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

// Ended implements streamconn.Proto: the session is detached, publishing
// the will unless the client disconnected cleanly.
func (c *conn) Ended() {
	if c.sess != nil {
		c.sess.Disconnect(c, core.DisconnectOptions{PublishWill: c.publishWill})
	}
	c.srv.forget(c)
}

// pingresp is PINGRESP on the wire, the same in every version.
var pingresp = []byte{0xD0, 0x00}

// Quick implements streamconn.Quicker: a PINGREQ [MQTT-3.12.4-1] read by
// the wait is answered without decoding.
func (c *conn) Quick(in []byte) (int, []byte) {
	if len(in) < 2 || in[0] != 0xC0 || in[1] != 0x00 || !c.connected {
		return 0, nil
	}
	c.srv.pc.In(int(codec.TypePingreq))
	c.srv.pc.Out(int(codec.TypePingresp))
	return 2, pingresp
}
