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
	"github.com/iotgw/iotgw/internal/linger"
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
	lastInput    time.Time             // when the reader last ran out of input
	lingerSet    time.Time             // when the linger deadline was last set
	lingering    bool                  // the read deadline is the linger, not the keep alive

	mu          sync.Mutex
	out         []outItem
	spare       []outItem
	pendingQoS0 int
	closing     bool
	closeErr    error
	writing     bool              // someone writes the queue: a writer goroutine, or the reader at the end of a burst
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
	c.startWriterLocked()
	c.mu.Unlock()
	return true
}

// send queues a control packet for the writer. Any goroutine may call it;
// the reader calls reply instead, which saves the writer goroutine.
func (c *conn) send(p codec.Packet) {
	c.enqueue(p, false)
}

// reply queues a control packet from the reader goroutine. Unless a writer
// is running, the reader writes it itself when its burst of input ends
// (flushReplies): a connection that only connects, subscribes and pings
// never needs a second goroutine.
func (c *conn) reply(p codec.Packet) {
	c.enqueue(p, true)
}

func (c *conn) enqueue(p codec.Packet, fromReader bool) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	c.out = append(c.out, outItem{pkt: p})
	if !fromReader || c.writing {
		c.startWriterLocked()
	}
	c.mu.Unlock()
}

// startWriterLocked makes sure what is queued gets written: it starts a
// writer goroutine when nobody is writing, else wakes the running writer
// when the queue has just become non-empty (with more, it was woken
// already). c.mu must be held.
func (c *conn) startWriterLocked() {
	if !c.writing {
		c.writing = true
		c.srv.wg.Add(1)
		go c.writeLoop()
		return
	}
	if len(c.out) == 1 {
		c.wakeWriterLocked()
	}
}

// kickWriter hands the reader's pending replies to a writer goroutine;
// the reader calls it before it may block inside a handler (waiting for
// room in the ack pipe or at a congested subscriber), so that earlier
// acknowledgements do not wait for the end of its burst.
func (c *conn) kickWriter() {
	c.mu.Lock()
	if len(c.out) > 0 && !c.closing {
		c.startWriterLocked()
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
	if c.writing {
		c.wakeWriterLocked()
	} else {
		c.startWriterLocked()
	}
	c.mu.Unlock()
	// A peer that stops reading must not hold the shutdown up for long.
	_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
}

// writeLoop is the writer goroutine: it drains the queue, then lingers
// briefly for more work before it exits.
func (c *conn) writeLoop() {
	defer c.srv.wg.Done()
	var w writeScratch
	defer w.release()
	var idle *time.Timer
	for c.drain(false, &w) {
		if !c.waitForWork(&idle) {
			return
		}
	}
}

// writeScratch is a writer's reusable state; the buffer comes from
// writeBufPool on first use and goes back when the writer is done (the
// writer goroutine keeps it across wakes: no pool round trip per batch).
type writeScratch struct {
	bp    *[]byte
	pub   codec.Publish
	props []codec.UserProperty
}

func (w *writeScratch) buf() []byte {
	if w.bp == nil {
		w.bp = writeBufPool.Get().(*[]byte)
	}
	return (*w.bp)[:0]
}

func (w *writeScratch) release() {
	if w.bp != nil && cap(*w.bp) <= 2*writeChunk {
		writeBufPool.Put(w.bp) // a huge one is left to the GC
	}
	w.bp = nil
}

// flushReplies is the reader's end of a burst: unless a writer goroutine
// is running (which then writes them), the reader writes the replies it
// queued itself, acting as the writer until the queue is empty.
func (c *conn) flushReplies() {
	c.mu.Lock()
	if c.writing || len(c.out) == 0 {
		c.mu.Unlock()
		return
	}
	c.writing = true
	c.mu.Unlock()
	var w writeScratch
	c.drain(true, &w)
	w.release()
}

// writeBufPool holds write buffers: a connection has one only while it
// writes, so an idle one keeps none.
var writeBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// drain encodes everything queued into one buffer and writes it with one
// call (many packets, one syscall, under load), until the queue is empty.
// The caller has set c.writing. It reports false when the connection's
// writing is over (closed or failed: the socket is closed). The reader
// (reader true) writes one batch and then stops being the writer: writing
// is cleared under the same lock that saw the queue empty, so a packet
// queued later starts a writer goroutine, and one already queued gets one.
func (c *conn) drain(reader bool, w *writeScratch) bool {
	stats := c.srv.b.Stats()
	for {
		c.mu.Lock()
		items := c.out
		c.out = c.spare[:0]
		c.spare = nil
		c.pendingQoS0 = 0
		closing := c.closing
		if len(items) == 0 {
			if closing {
				c.mu.Unlock()
				c.nc.Close()
				close(c.writerDone)
				return false
			}
			if reader {
				c.writing = false
			}
			c.mu.Unlock()
			return true
		}
		c.mu.Unlock()
		buf := w.buf()
		for i := range items {
			var err error
			buf, w.props, err = c.appendItem(buf, &items[i], &w.pub, w.props)
			if err != nil {
				c.logAt(zap.WarnLevel, "encode failed", zap.Error(err))
			}
			items[i] = outItem{}
			// Flush every writeChunk bytes: a long queue goes out in a
			// few large writes, not one huge buffer.
			if len(buf) >= writeChunk && i < len(items)-1 {
				if !c.flush(buf, closing, stats) {
					*w.bp = buf
					return false
				}
				buf = buf[:0]
			}
		}
		*w.bp = buf
		if len(buf) > 0 && !c.flush(buf, closing, stats) {
			return false
		}
		if reader {
			// One batch only: deliveries may keep coming, and the reader
			// must get back to reading. Whatever came meanwhile goes to a
			// writer goroutine.
			c.mu.Lock()
			if len(c.out) == 0 && !c.closing {
				c.writing = false
				c.out = nil
			} else {
				c.srv.wg.Add(1)
				go c.writeLoop()
			}
			c.mu.Unlock()
			return true
		}
		c.mu.Lock()
		c.spare = items[:0]
		c.mu.Unlock()
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
// then cost one goroutine, not two, and a short linger keeps the
// goroutines of connections that just received something from piling up
// (each holds a stack) while still sparing a busy one the restarts.
const writerLinger = 100 * time.Millisecond

// waitForWork blocks until the writer is woken, or retires the writer
// after writerLinger without work (returning false).
func (c *conn) waitForWork(idle **time.Timer) bool {
	if linger.Wait(c.wake, idle, writerLinger) {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.out) > 0 || c.closing {
		return true
	}
	c.writing = false
	c.out = nil
	c.spare = nil
	return false
}

// wakeWriterLocked wakes a running writer goroutine. c.mu must be held.
func (c *conn) wakeWriterLocked() { linger.Wake(c.wake) }

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

// readLoop is the connection's first reader goroutine.
func (c *conn) readLoop() {
	_ = c.nc.SetReadDeadline(time.Now().Add(c.srv.cfg.ConnectTimeout))
	c.readBursts(nil)
}

// readBursts decodes packets and calls the core; err is a read error that
// ended the wait before it. It returns in one of two ways: the connection
// ended (it detaches the session, publishing the will unless the client
// disconnected cleanly), or the input paused for readerLinger and it
// handed the connection to a fresh goroutine (idleRead).
//
// Why the hand-over: handling packets (CONNECT, SUBSCRIBE, routing a
// publication) grows a goroutine's stack to several KiB, and the runtime
// shrinks it only by halves at garbage collections, which are rare when
// nothing happens. An idle connection's goroutine would keep that stack
// for its whole life; a new one that only waits for a byte starts small.
func (c *conn) readBursts(err error) {
	defer c.srv.wg.Done()
	stats := c.srv.b.Stats()
	for {
		if err == nil && !c.first.has && (c.br == nil || c.br.Buffered() == 0) {
			c.flushReplies()
			var idle bool
			idle, err = c.awaitData()
			if idle {
				c.srv.wg.Add(1)
				go c.idleRead()
				return
			}
		}
		if err != nil {
			c.readFailed(nil, err)
			c.finish()
			return
		}
		if c.br == nil {
			c.borrowReader()
		}
		pkt, n, rerr := codec.ReadPacket(c.br, c.version, c.srv.cfg.MaxPacketSize)
		stats.WireBytesReceived.Add(uint64(n))
		if rerr != nil {
			c.readFailed(pkt, rerr)
			c.finish()
			return
		}
		c.srv.pc.In(int(pkt.Type()))
		if herr := c.handle(pkt); herr != nil {
			if !errors.Is(herr, errClientDisconnected) {
				c.logAt(zap.InfoLevel, "closing connection", zap.Error(herr))
			}
			c.finish()
			return
		}
	}
}

// idleRead is the goroutine of an idle connection: it holds no buffer and
// a minimal stack while it waits for the next byte, then carries on as
// the reader. It must stay shallow: its frame and those of the read it
// calls are all the stack an idle connection has.
func (c *conn) idleRead() {
	c.keepAliveDeadline(c.lastInput)
	c.readBursts(c.readFirst())
}

// keepAliveDeadline allows 1.5 times the keep alive after the input at
// from [MQTT-3.1.2-24] (no deadline without keep alive) and ends the
// linger.
func (c *conn) keepAliveDeadline(from time.Time) {
	c.lingering = false
	if c.keepAlive > 0 {
		_ = c.nc.SetReadDeadline(from.Add(c.keepAlive * 3 / 2))
	} else {
		_ = c.nc.SetReadDeadline(time.Time{})
	}
}

// readerLinger is how long the reader waits for more input after a burst
// before it hands the connection to a fresh goroutine (readBursts).
// Short enough that idle connections soon shed their stacks, long enough
// that a busy connection rarely pays for a new goroutine.
const readerLinger = 100 * time.Millisecond

var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}

// firstByte is the read buffer's source: it replays the byte awaitData
// read, then reads the socket.
type firstByte struct {
	c   *conn
	b   [1]byte
	has bool
}

func (f *firstByte) Read(p []byte) (int, error) {
	if f.has && len(p) > 0 {
		p[0] = f.b[0]
		f.has = false
		return 1, nil // do not block for more: bufio asks again when it needs it
	}
	c := f.c
	n, err := c.nc.Read(p)
	if n == 0 && c.lingering && isTimeout(err) {
		// The linger ran out in the middle of a packet: that is a slow
		// client, not an idle one, and it has the keep alive to finish.
		c.keepAliveDeadline(time.Now())
		n, err = c.nc.Read(p)
	}
	return n, err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// awaitData gives the read buffer back while no input is buffered and
// blocks on a one-byte read; when data arrives it borrows a buffer again.
// This keeps idle connections small at the cost of one extra read per
// burst of packets. Once connected it waits only readerLinger, and
// reports idle when that passes without input (the keep alive is then
// the idle goroutine's to enforce).
func (c *conn) awaitData() (idle bool, err error) {
	c.releaseReader()
	if c.connected {
		// The reader has just run out of input: this is the time of the
		// last input, which the keep alive counts from.
		now := time.Now()
		c.lastInput = now
		// Re-arming costs a timer update; skip it while the linger set
		// last is at least half a linger away.
		switch {
		case !c.srv.lingerOK(c.listener):
			// Over a transport where a timed-out read is fatal, the
			// reader keeps its goroutine and waits for the keep alive.
			if now.Sub(c.lingerSet) >= readerLinger/2 {
				c.lingerSet = now
				c.keepAliveDeadline(now)
			}
		case !c.lingering || now.Sub(c.lingerSet) >= readerLinger/2:
			c.lingering = true
			c.lingerSet = now
			_ = c.nc.SetReadDeadline(now.Add(readerLinger))
		}
	}
	if err := c.readFirst(); err != nil {
		if c.lingering && isTimeout(err) {
			return true, nil
		}
		return false, err
	}
	return false, nil
}

// readFirst blocks until one byte arrives and keeps it in c.first.
func (c *conn) readFirst() error {
	for {
		n, err := c.nc.Read(c.first.b[:])
		if n == 1 {
			c.first.has = true
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (c *conn) borrowReader() {
	c.first.c = c
	c.br = readerPool.Get().(*bufio.Reader)
	c.br.Reset(&c.first)
}

// releaseReader returns the read buffer to the pool once it is drained.
func (c *conn) releaseReader() {
	if c.br != nil && c.br.Buffered() == 0 {
		c.dropReader()
	}
}

// dropReader returns the read buffer to the pool, whatever it holds.
func (c *conn) dropReader() {
	if c.br != nil {
		c.br.Reset(nil)
		readerPool.Put(c.br)
		c.br = nil
	}
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
	c.dropReader()
	c.closeWith(nil, nil)
	if c.sess != nil {
		c.sess.Disconnect(c, core.DisconnectOptions{PublishWill: c.publishWill})
	}
	<-c.writerDone
	c.nc.Close()
	c.srv.forget(c)
}
