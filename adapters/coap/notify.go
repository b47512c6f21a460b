package coap

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"go.uber.org/zap"

	"github.com/iotgw/iotgw/core"
)

// run is the endpoint's writer goroutine.
func (ep *endpoint) run() {
	defer ep.srv.wg.Done()
	defer close(ep.done)
	for {
		it, ok := ep.next()
		if !ok {
			ep.teardown()
			return
		}
		if it.remove != nil {
			ep.removeObservation(it.remove, "notification reset by client")
		} else {
			ep.deliver(it.d)
		}
		ep.mu.Lock()
		ep.busy = false
		ep.mu.Unlock()
	}
}

// next takes the head of the queue, waiting while it is empty, while an
// inline delivery is being sent (deliverInline), or while it is for an
// observation whose registration response has not been sent. The endpoint
// is busy until run has handled the item.
func (ep *endpoint) next() (outItem, bool) {
	for {
		ep.mu.Lock()
		if ep.closed {
			ep.mu.Unlock()
			return outItem{}, false
		}
		if len(ep.queue) > 0 && !ep.busy && ep.headReadyLocked() {
			ep.busy = true
			it := ep.queue[0]
			ep.queue[0] = outItem{}
			ep.queue = ep.queue[1:]
			if len(ep.queue) == 0 {
				ep.queue = nil // give back a burst's memory
			}
			if it.remove == nil && it.d.QoS == 0 && !it.d.Release {
				// Taken to be sent: at half the bound, paced publishers
				// go on (their next messages queue behind the rest).
				ep.qos0.Done(1)
			}
			ep.mu.Unlock()
			return it, true
		}
		ep.mu.Unlock()
		<-ep.wake
	}
}

func (ep *endpoint) headReadyLocked() bool {
	for _, id := range ep.queue[0].d.SubIDs {
		if o := ep.obs[id]; o != nil && !o.ready {
			return false
		}
	}
	return true
}

// deliver sends one delivery as a notification on every observation it
// matched, then acknowledges it to the core: the CoAP ACK of a CON
// notification is the delivery acknowledgement; a delivery whose
// observations are gone (reset, timed out, cancelled) is discarded.
func (ep *endpoint) deliver(d core.Delivery) {
	if d.Msg != nil && !d.Release {
		for _, id := range d.SubIDs {
			ep.mu.Lock()
			o := ep.obs[id]
			live := o != nil && !o.removed
			ep.mu.Unlock()
			if live {
				ep.notify(o, d.Msg)
			}
		}
	}
	if d.ID != 0 {
		ep.sess.Acked(d.ID)
	}
}

type sendResult int

const (
	sentOK sendResult = iota
	sentReset
	sentTimeout
	sentConnClosed
	sentFailed
)

// notify sends msg on observation o: CON when its QoS (the lower of the
// message's and the observation's) is 1 or 2 (coap.notify_type qos), NON
// otherwise. An RST or retry exhaustion removes the observation
// [RFC 7641 §4.5].
func (ep *endpoint) notify(o *observation, msg *core.Message) {
	qos := msg.QoS
	if o.qos < qos {
		qos = o.qos
	}
	con := false
	switch ep.srv.cfg.NotifyType {
	case NotifyCON:
		con = true
	case NotifyQoS:
		con = qos > 0
	}
	if !con {
		ep.mu.Lock()
		if o.lastCON.IsZero() {
			o.lastCON = time.Now()
		}
		con = time.Since(o.lastCON) > livenessInterval
		ep.mu.Unlock()
	}
	// A go-coap connection closed under us (a malformed datagram from the
	// same peer closes it) is replaced once; the observation outlives it.
	for attempt := 0; attempt < 2; attempt++ {
		switch ep.sendOnce(o, msg, con) {
		case sentOK:
			if con {
				ep.mu.Lock()
				o.lastCON = time.Now()
				ep.mu.Unlock()
			}
			return
		case sentReset:
			ep.removeObservation(o, "notification reset by client")
			return
		case sentTimeout:
			ep.removeObservation(o, "notification not acknowledged")
			return
		case sentConnClosed:
			if ep.ctx.Err() != nil {
				return
			}
			continue
		default:
			return
		}
	}
}

func (ep *endpoint) sendOnce(o *observation, msg *core.Message, con bool) sendResult {
	s := ep.srv
	addr, laddr := ep.currentAddr()
	cc, err := s.connTo(addr, laddr)
	if err != nil {
		return sentFailed
	}
	ctx := ep.ctx
	if con {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.conDeadline())
		defer cancel()
	}
	m := cc.AcquireMessage(ctx)
	defer cc.ReleaseMessage(m)
	m.SetCode(codes.Content)
	m.SetToken(o.token)
	if con {
		m.SetType(message.Confirmable)
	} else {
		m.SetType(message.NonConfirmable)
	}
	ep.mu.Lock()
	seq := ep.nextSeqLocked()
	ep.mu.Unlock()
	m.SetObserve(seq)
	var etag []byte
	if len(msg.Payload) > s.cfg.BlockSize {
		etag = binary.BigEndian.AppendUint32(nil, seq)
	}
	setRepresentation(m, msg, etag, o.wildcard)
	if etag != nil {
		ep.mu.Lock()
		o.last = &lastLarge{msg: msg, etag: etag}
		ep.mu.Unlock()
	}

	// go-coap assigns the message id inside WriteMessage from the
	// connection's counter: the next value is predicted so that an RST
	// can be matched to this notification.
	mid := uint16(cc.GetMessageID()) + 1
	var w *conWait
	ep.mu.Lock()
	if con {
		w = &conWait{mid: mid}
		ep.wait = w
	} else {
		ep.recordNONLocked(mid, o)
	}
	ep.mu.Unlock()
	s.b.Stats().WireBytesSent.Add(wireSize(m, int64(s.cfg.BlockSize)))
	err = cc.WriteMessage(m)
	if con {
		ep.mu.Lock()
		ep.wait = nil
		ep.mu.Unlock()
		s.pc.Out(pktCON)
	} else {
		s.pc.Out(pktNON)
	}
	s.pc.Out(pktNotification)
	switch {
	case err == nil && con && (w.rst || (!w.ack && w.otherRST && !w.otherACK)):
		return sentReset
	case err == nil && con && !w.ack && !w.otherACK:
		// go-coap completes a CON exchange on any message carrying its
		// id, a request of the client's included (the two directions
		// have separate id spaces, RFC 7252 §4.4): unacknowledged, so
		// sent again.
		return sentConnClosed
	case err == nil:
		return sentOK
	case errors.Is(err, context.DeadlineExceeded):
		return sentTimeout
	case ep.ctx.Err() != nil || cc.Context().Err() != nil:
		return sentConnClosed
	}
	if ce := ep.log.Check(zap.DebugLevel, "notification not sent"); ce != nil {
		ce.Write(zap.String("filter", o.filter), zap.Error(err))
	}
	return sentFailed
}

// setRepresentation fills a 2.05 response or notification with a message:
// payload, Content-Format, Max-Age from the message expiry
// [RFC 7252 §5.10.5], an ETag for block-wise bodies, and, for a wildcard
// observation, the concrete topic as Location-Path "ps"/level/... .
func setRepresentation(m *pool.Message, msg *core.Message, etag []byte, withTopic bool) {
	if cf, ok := contentFormatOf(msg); ok {
		m.SetContentFormat(message.MediaType(cf))
	}
	if secs, ok := msg.RemainingExpiry(time.Now()); ok {
		m.SetOptionUint32(message.MaxAge, secs)
	}
	if etag != nil {
		_ = m.SetETag(etag) // 4 bytes: always valid
	}
	if withTopic {
		addTopicOption(m, msg.Topic)
	}
	if len(msg.Payload) > 0 {
		m.SetBody(bytes.NewReader(msg.Payload))
	}
}

// addTopicOption adds the concrete topic as Location-Path options: "ps"
// and then one option per topic level. Levels longer than an option may
// be (255 bytes) leave the topic out rather than send a wrong one.
func addTopicOption(m *pool.Message, topic string) {
	if !topicFitsOptions(topic) {
		return
	}
	m.AddOptionString(message.LocationPath, "ps")
	start := 0
	for i := 0; i <= len(topic); i++ {
		if i == len(topic) || topic[i] == '/' {
			m.AddOptionString(message.LocationPath, topic[start:i])
			start = i + 1
		}
	}
}

// teardown runs when the endpoint closes: it leaves the server's tables,
// detaches the session, and tells remaining observers that their
// observation ended with a final 5.03 notification [RFC 7641 §3.2].
func (ep *endpoint) teardown() {
	ep.mu.Lock()
	why := ep.closeWhy
	remaining := make([]*observation, 0, len(ep.filters))
	for _, o := range ep.filters {
		remaining = append(remaining, o)
		o.removed = true
	}
	ep.filters = map[string]*observation{}
	ep.obs = map[uint32]*observation{}
	ep.queue = nil
	ep.qos0.Reset()
	if ep.hbTimer != nil {
		ep.hbTimer.Stop()
	}
	addr, laddr := ep.addr, ep.laddr
	ep.mu.Unlock()
	ep.srv.forget(ep)
	ep.sess.Disconnect(ep, core.DisconnectOptions{})
	if ce := ep.log.Check(zap.DebugLevel, "client ended"); ce != nil {
		ce.Write(zap.Bool("connection_mode", ep.connMode), zap.NamedError("reason", why))
	}
	if why == nil || ep.srv.ctx.Err() != nil || len(remaining) == 0 {
		return
	}
	cc, err := ep.srv.connTo(addr, laddr)
	if err != nil {
		return
	}
	for _, o := range remaining {
		m := cc.AcquireMessage(ep.srv.ctx)
		m.SetCode(codes.ServiceUnavailable)
		m.SetToken(o.token)
		m.SetType(message.NonConfirmable)
		m.SetBody(bytes.NewReader([]byte("observation ended: " + why.Error())))
		_ = cc.WriteMessage(m)
		cc.ReleaseMessage(m)
	}
}
