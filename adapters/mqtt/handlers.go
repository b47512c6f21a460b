package mqtt

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/iotgw/iotgw/adapters/mqtt/codec"
	"github.com/iotgw/iotgw/core"
	"github.com/iotgw/iotgw/core/topic"
	"github.com/iotgw/iotgw/internal/streamconn"
)

var (
	errProtocol   = errors.New("protocol violation")
	errBadTopic   = errors.New("invalid topic")
	errBadAlias   = errors.New("invalid topic alias")
	errConnRefuse = errors.New("connection refused")
)

// handle processes one decoded packet. A non-nil error ends the
// connection (handle has already queued whatever goes out last).
func (c *conn) handle(pkt codec.Packet) error {
	if !c.connected {
		if a, ok := pkt.(*codec.Auth); ok && c.pending != nil {
			return c.onAuthBeforeConnack(a)
		}
		cp, ok := pkt.(*codec.Connect)
		if !ok || c.pending != nil {
			c.closeWith(nil, errProtocol)
			return fmt.Errorf("%w: first packet is %s, not CONNECT [MQTT-3.1.0-1]", errProtocol, pkt.Type())
		}
		return c.onConnect(cp)
	}
	switch p := pkt.(type) {
	case *codec.Publish:
		return c.onPublish(p)
	case *codec.Ack:
		return c.onAck(p)
	case *codec.Subscribe:
		return c.onSubscribe(p)
	case *codec.Unsubscribe:
		c.onUnsubscribe(p)
	case *codec.Pingreq:
		c.reply(&codec.Pingresp{})
	case *codec.Disconnect:
		return c.onDisconnect(p)
	case *codec.Connect:
		// A second CONNECT is a protocol violation [MQTT-3.1.0-2].
		c.fail(codec.ProtocolError, errProtocol)
		return fmt.Errorf("%w: second CONNECT [MQTT-3.1.0-2]", errProtocol)
	case *codec.Auth:
		return c.onReauth(p)
	default:
		// Server-to-client packets (CONNACK, SUBACK, ...) from a client.
		c.fail(codec.ProtocolError, errProtocol)
		return fmt.Errorf("%w: unexpected %s from client", errProtocol, pkt.Type())
	}
	return nil
}

func (c *conn) onPublish(p *codec.Publish) error {
	if c.limit != nil {
		// Over limits.client_msg_rate or client_bytes_rate this reader
		// waits before handling the message: the client is slowed by TCP
		// flow control, and nothing it sent is dropped.
		if d := c.limit.Pause(len(p.Payload)); d > 0 {
			c.eng.Pause(d)
		}
	}
	cfg := &c.srv.cfg
	v5 := c.version == codec.V5
	topicName := p.Topic
	if v5 && p.Props.Has(codec.PropTopicAlias) {
		alias := p.Props.TopicAlias
		if alias == 0 || int(alias) > cfg.TopicAliasMaximum {
			c.fail(codec.TopicAliasInvalid, errBadAlias)
			return fmt.Errorf("%w: %d [MQTT-3.3.2-8], [MQTT-3.3.2-9]", errBadAlias, alias)
		}
		if topicName == "" {
			t, ok := c.aliasesIn[alias]
			if !ok {
				c.fail(codec.ProtocolError, errBadAlias)
				return fmt.Errorf("%w: unknown alias %d", errBadAlias, alias)
			}
			topicName = t
		} else {
			c.aliasesIn[alias] = topicName
		}
	}
	if int(p.QoS) > cfg.MaxQoS {
		c.fail(codec.QoSNotSupported, errProtocol)
		return fmt.Errorf("%w: QoS %d above maximum %d [MQTT-3.2.2-11]", errProtocol, p.QoS, cfg.MaxQoS)
	}
	if p.Retain && !cfg.RetainAvailable {
		c.fail(codec.RetainNotSupported, errProtocol)
		return fmt.Errorf("%w: retain not available [MQTT-3.2.2-14]", errProtocol)
	}
	msg := &core.Message{Topic: topicName, Payload: p.Payload, QoS: p.QoS, Retain: p.Retain, Arrived: c.eng.Arrived()}
	rc := codec.Success
	if v5 {
		if p.Props.Has(codec.PropSubscriptionID) {
			c.fail(codec.ProtocolError, errProtocol)
			return fmt.Errorf("%w: subscription identifier in PUBLISH [MQTT-3.3.4-6]", errProtocol)
		}
		if p.Props.ResponseTopic != "" {
			if err := c.srv.b.CheckTopicName(p.Props.ResponseTopic); err != nil {
				c.fail(codec.ProtocolError, err)
				return fmt.Errorf("%w: response topic: %v [MQTT-3.3.2-14]", errProtocol, err)
			}
		}
		c.messageProps(msg, &p.Props)
		if msg.PayloadFormat == 1 && !utf8.Valid(msg.Payload) {
			rc = codec.PayloadFormatInvalid // [MQTT-3.3.2-4] allows refusing it
		}
	}
	// A QoS 1/2 publication's acknowledgement waits in the ack pipe for
	// its write to be durable while this goroutine goes on reading.
	var slot *streamconn.Slot[outItem]
	done := ignoreOutcome
	switch p.QoS {
	case 1:
		slot = c.reserve(codec.TypePuback, p.PacketID)
		done = slot.Done
	case 2:
		slot = c.reserve(codec.TypePubrec, p.PacketID)
		done = slot.Done
	}
	var err error
	if rc == codec.Success {
		if p.QoS == 2 {
			if v5 && c.qos2Held >= cfg.ReceiveMaximum {
				c.fail(codec.ReceiveMaximumExceeded, errProtocol)
				slot.Done(nil)
				release(slot, codec.Success) // never sent: the connection is closing
				return fmt.Errorf("%w: receive maximum %d exceeded [MQTT-3.3.4-9]", errProtocol, cfg.ReceiveMaximum)
			}
			var dup bool
			dup, err = c.sess.PublishExactlyOnceAsync(p.PacketID, msg, done)
			if err == nil && !dup {
				c.qos2Held++
			}
		} else {
			err = c.sess.PublishAsync(msg, done)
		}
	}
	if err != nil || rc != codec.Success {
		// Refused before anything was routed: the core will not call done.
		done(nil)
	}
	if err != nil {
		if errors.Is(err, core.ErrInvalidTopic) {
			// A wildcard or malformed topic name is a protocol violation
			// [MQTT-3.3.2-2].
			c.fail(codec.TopicNameInvalid, err)
			if slot != nil {
				release(slot, codec.Success) // never sent: the connection is closing
			}
			return fmt.Errorf("%w: %q: %v", errBadTopic, topicName, err)
		}
		// Refusals by policy (access rules, configured topic limits, quotas)
		// keep the connection: MQTT 5 learns why from the ack's reason
		// code; 3.1.1 has no way to say it, so the message is dropped.
		c.logAt(zap.DebugLevel, "publish refused", zap.String("topic", topicName), zap.Error(err))
		rc = reasonFor(err)
	}
	if err == nil && c.sess.MustWait() {
		// A congested subscriber holds this publisher's acknowledgement
		// and, since this goroutine reads its socket, its next packets
		// (at QoS 0 too: TCP flow control then slows the client) rather
		// than having messages dropped later.
		c.eng.Kick() // earlier acks must not wait with this one
		c.sess.WaitForRoom(c.srv.b.Config().BackpressureTimeout)
	}
	if slot == nil {
		return nil
	}
	if !v5 {
		rc = codec.Success
	}
	release(slot, rc)
	return nil
}

func (c *conn) onAck(a *codec.Ack) error {
	v5 := c.version == codec.V5
	switch a.Kind {
	case codec.TypePuback, codec.TypePubcomp:
		c.sess.AckedBy(c, a.PacketID)
	case codec.TypePubrec:
		if v5 && a.ReasonCode >= 0x80 {
			// A PUBREC with a failure code ends the exchange (4.3.3): no PUBREL.
			c.sess.AckedBy(c, a.PacketID)
			return nil
		}
		// PUBREL goes once the received state is durable.
		slot := c.reserve(codec.TypePubrel, a.PacketID)
		rc := codec.Success
		if !c.sess.ReceivedAsync(a.PacketID, slot.Done) && v5 {
			rc = codec.PacketIDNotFound
		}
		release(slot, rc)
	case codec.TypePubrel:
		// PUBCOMP goes once the release is durable.
		slot := c.reserve(codec.TypePubcomp, a.PacketID)
		rc := codec.Success
		if c.sess.ReleaseAsync(a.PacketID, slot.Done) {
			c.qos2Held--
		} else if v5 {
			rc = codec.PacketIDNotFound
		}
		release(slot, rc)
	}
	return nil
}

func (c *conn) onSubscribe(p *codec.Subscribe) error {
	cfg := &c.srv.cfg
	v5 := c.version == codec.V5
	var subID uint32
	if v5 && p.Props.Has(codec.PropSubscriptionID) && len(p.Props.SubscriptionIDs) > 0 {
		if !cfg.SubscriptionIdentifiers {
			c.fail(codec.SubIDsNotSupported, errProtocol)
			return fmt.Errorf("%w: subscription identifiers are disabled (3.8.2.1.2)", errProtocol)
		}
		subID = p.Props.SubscriptionIDs[0]
	}
	ack := &codec.Suback{PacketID: p.PacketID, ReasonCodes: make([]byte, len(p.Subscriptions))}
	results := make([]core.SubResult, len(p.Subscriptions))
	for i, s := range p.Subscriptions {
		// A malformed shared filter is still shared here; the core's
		// Subscribe refuses it with its own error.
		_, _, shared, _ := topic.ParseShared(s.Filter)
		if v5 && shared && s.NoLocal {
			// No Local on a shared subscription is a protocol error [MQTT-3.8.3-4].
			c.fail(codec.ProtocolError, errProtocol)
			return fmt.Errorf("%w: no local on shared subscription %q [MQTT-3.8.3-4]", errProtocol, s.Filter)
		}
		var refuse codec.ReasonCode
		switch {
		case shared && !cfg.SharedSubscriptions:
			refuse = codec.SharedSubNotSupported
		case !cfg.WildcardSubscriptions && strings.ContainsAny(s.Filter, "+#"):
			refuse = codec.WildcardSubNotSupported
		}
		if refuse != 0 {
			results[i] = core.SubResult{Err: errProtocol}
			ack.ReasonCodes[i] = byte(refuse) // written as 0x80 for 3.1.1 by the codec
			continue
		}
		qos := s.QoS
		if int(qos) > cfg.MaxQoS {
			qos = byte(cfg.MaxQoS)
		}
		opts := core.SubOptions{QoS: qos, ID: subID}
		if v5 {
			opts.NoLocal = s.NoLocal
			opts.RetainAsPublished = s.RetainAsPublished
			opts.RetainHandling = s.RetainHandling
		}
		// The arrival lets the core give this subscription what other
		// clients published after it reached us, even if that was
		// routed first (docs/design.md, "Ordering across clients").
		r := c.sess.SubscribeAt(s.Filter, opts, c.eng.Arrived())
		results[i] = r
		if r.Err != nil {
			c.logAt(zap.DebugLevel, "subscribe refused", zap.String("filter", s.Filter), zap.Error(r.Err))
			switch {
			case !v5:
				ack.ReasonCodes[i] = 0x80 // [MQTT-3.9.3-2]
			case errors.Is(r.Err, core.ErrNotAuthorized):
				// The access rules' refusal is 0x80 in both versions, as
				// Mosquitto and the conformance suites expect.
				ack.ReasonCodes[i] = byte(codec.UnspecifiedError)
			default:
				ack.ReasonCodes[i] = byte(reasonFor(r.Err))
			}
			continue
		}
		ack.ReasonCodes[i] = r.QoS
	}
	// SUBACK first, then the retained messages [MQTT-3.8.4-1].
	c.reply(ack)
	for _, r := range results {
		c.sess.SendRetained(r)
	}
	return nil
}

func (c *conn) onUnsubscribe(p *codec.Unsubscribe) {
	ack := &codec.Unsuback{PacketID: p.PacketID}
	if c.version == codec.V5 {
		ack.ReasonCodes = make([]byte, len(p.Filters))
	}
	for i, f := range p.Filters {
		existed := c.sess.Unsubscribe(f)
		if ack.ReasonCodes != nil && !existed {
			ack.ReasonCodes[i] = byte(codec.NoSubscriptionExisted)
		}
	}
	c.reply(ack)
}

func (c *conn) onDisconnect(p *codec.Disconnect) error {
	if c.version == codec.V5 {
		if p.Props.Has(codec.PropSessionExpiry) {
			if c.expiry0 && p.Props.SessionExpiry != 0 {
				// Not from zero to non-zero (3.14.2.2.2).
				c.fail(codec.ProtocolError, errProtocol)
				return fmt.Errorf("%w: session expiry raised from 0 on DISCONNECT (3.14.2.2.2)", errProtocol)
			}
			c.sess.SetExpiry(expiryDuration(p.Props.SessionExpiry))
		}
		// 0x04 asks for the will anyway.
		c.publishWill = p.ReasonCode == codec.DisconnectWithWill
	} else {
		c.publishWill = false // [MQTT-3.1.2-10]
	}
	c.closeWith(nil, errClientDisconnected)
	return errClientDisconnected
}
