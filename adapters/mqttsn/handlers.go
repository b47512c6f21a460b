package mqttsn

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/iotgw/iotgw/adapters/mqttsn/codec"
	"github.com/iotgw/iotgw/core"
)

// onMessage handles one message from the client according to its state.
func (vc *vconn) onMessage(m codec.Message) {
	switch m := m.(type) {
	case *codec.Connect:
		vc.onConnect(m)
		return
	case *codec.Auth:
		if vc.st == stAuthWait {
			vc.proceedConnect()
		}
		return
	}
	if !vc.st.connected() {
		vc.onConnecting(m)
		return
	}
	switch m := m.(type) {
	case *codec.Publish:
		vc.onPublish(m)
	case *codec.Puback:
		vc.onPuback(m)
	case *codec.MsgIDOnly:
		vc.onAck(m)
	case *codec.Register:
		vc.onRegister(m)
	case *codec.Regack:
		vc.onRegack(m)
	case *codec.Subscribe:
		if m.Kind == codec.TypeSubscribe {
			vc.onSubscribe(m)
		} else {
			vc.onUnsubscribe(m)
		}
	case *codec.Pingreq:
		vc.onPingreq(m)
	case *codec.Disconnect:
		vc.onDisconnect(m)
	case *codec.WillTopic:
		if m.Kind == codec.TypeWillTopicUpd {
			vc.onWillTopicUpd(m)
		} else {
			vc.ignored(m)
		}
	case *codec.WillMsg:
		if m.Kind == codec.TypeWillMsgUpd {
			vc.onWillMsgUpd(m)
		} else {
			vc.ignored(m)
		}
	default:
		vc.ignored(m) // gateway-to-client messages sent by a client
	}
}

func (vc *vconn) ignored(m codec.Message) {
	vc.srv.pc.In(idxDropped)
	if ce := vc.log.Check(zap.DebugLevel, "message ignored"); ce != nil {
		ce.Write(zap.Stringer("type", m.Type()), zap.Stringer("state", vc.st))
	}
}

// onConnecting handles the will exchange of CONNECT (§6.3).
func (vc *vconn) onConnecting(m codec.Message) {
	switch m := m.(type) {
	case *codec.WillTopic:
		switch {
		case m.Kind != codec.TypeWillTopic:
			vc.ignored(m)
		case vc.st == stWillMsg:
			vc.send(&codec.Bare{Kind: codec.TypeWillMsgReq}) // our WILLMSGREQ was lost
		case vc.st != stWillTopic:
			vc.ignored(m)
		case m.Topic == "":
			vc.will = willState{} // an empty WILLTOPIC means no will (§5.4.7)
			vc.finishConnect()
		default:
			if err := vc.srv.b.CheckTopicName(m.Topic); err != nil {
				vc.refuse(codec.NotSupported, "invalid will topic", err)
				return
			}
			vc.will = willState{set: true, topic: m.Topic, qos: clampQoS(m.Flags.QoS), retain: m.Flags.Retain}
			vc.st = stWillMsg
			vc.send(&codec.Bare{Kind: codec.TypeWillMsgReq})
		}
	case *codec.WillMsg:
		if m.Kind != codec.TypeWillMsg || vc.st != stWillMsg {
			vc.ignored(m)
			return
		}
		vc.will.msg = m.Msg
		vc.finishConnect()
	case *codec.Disconnect:
		vc.send(&codec.Disconnect{})
		vc.end(false, false)
	default:
		vc.ignored(m)
	}
}

// clampQoS maps QoS -1 onto 0 where a real QoS is needed.
func clampQoS(q byte) byte {
	if q > 2 {
		return 0
	}
	return q
}

func (vc *vconn) onConnect(m *codec.Connect) {
	if m.ProtocolID != codec.ProtocolID12 {
		vc.send(&codec.ReturnOnly{Kind: codec.TypeConnack, Code: codec.NotSupported})
		if !vc.st.connected() {
			vc.end(false, false)
		}
		return
	}
	if (vc.st == stAsleep || vc.st == stAwake) && (m.ClientID == vc.clientID || m.ClientID == "") {
		// Back to active from sleep (§6.14, Figure 4): the session, its
		// subscriptions and will carry on; only the keep alive is new.
		vc.keepAlive = time.Duration(m.Duration) * time.Second
		vc.st = stActive
		vc.send(&codec.ReturnOnly{Kind: codec.TypeConnack, Code: codec.Accepted})
		vc.sess.Start()
		return
	}
	var keep *registry
	if vc.link != nil {
		// A connected client connects again (it lost our CONNACK, or
		// restarted): the old attachment ends without its will, since
		// the client is evidently alive.
		vc.link.closed.Store(true)
		vc.sess.Disconnect(vc.link, core.DisconnectOptions{})
		if !vc.connect.Flags.CleanSession && m.ClientID == vc.clientID {
			keep = vc.reg
		}
		vc.link, vc.sess, vc.reg = nil, nil, nil
		clear(vc.out)
		vc.regf = nil
		for _, d := range vc.fifo {
			vc.releaseQoS0(d)
		}
		vc.fifo = nil
	}
	vc.reg = keep
	vc.connect = m
	vc.will = willState{}
	vc.connectBy = time.Now().Add(vc.srv.cfg.ConnectTimeout)
	vc.clientID = m.ClientID
	if vc.clientID == "" {
		if !m.Flags.CleanSession {
			vc.refuse(codec.NotSupported, "empty client id with a persistent session", nil)
			return
		}
		var b [8]byte
		_, _ = rand.Read(b[:])
		vc.clientID = "mqttsn-" + hex.EncodeToString(b[:])
		vc.srv.claim(vc, vc.clientID)
	}
	vc.log = vc.srv.log.With(zap.String("client_id", vc.clientID), zap.String("remote", vc.remote()))
	vc.st = stNew
	vc.proceedConnect()
}

// proceedConnect moves CONNECT on: AUTH if required and missing, then the
// will exchange if asked for, then the session.
func (vc *vconn) proceedConnect() {
	// A DTLS session's verified identity is the credential (see
	// finishConnect): no AUTH is waited for.
	if vc.srv.cfg.RequireAuth && vc.credentials() == nil && vc.peer().identity() == "" {
		vc.st = stAuthWait
		return
	}
	if vc.connect.Flags.Will {
		vc.st = stWillTopic
		vc.send(&codec.Bare{Kind: codec.TypeWillTopicReq})
		return
	}
	vc.finishConnect()
}

func (vc *vconn) credentials() *credentials {
	vc.mu.Lock()
	defer vc.mu.Unlock()
	return vc.creds
}

// refuse answers CONNECT with a rejection and ends the virtual connection.
func (vc *vconn) refuse(rc codec.ReturnCode, why string, err error) {
	vc.log.Info("connect refused", zap.String("reason", why), zap.Error(err))
	vc.send(&codec.ReturnOnly{Kind: codec.TypeConnack, Code: rc})
	vc.end(false, false)
}

// finishConnect binds the client to its core session and sends CONNACK.
func (vc *vconn) finishConnect() {
	creds := vc.credentials()
	if creds != nil && creds.bad {
		vc.refuse(codec.NotSupported, "unsupported AUTH method or data", nil)
		return
	}
	cfg := &vc.srv.cfg
	l := &link{vc: vc}
	p := vc.peer()
	req := core.ConnectRequest{ClientID: vc.clientID, Protocol: core.ProtoMQTTSN, Listener: p.listener(),
		Identity: p.identity(), Remote: vc.remote(), CleanStart: vc.connect.Flags.CleanSession, Will: vc.buildWill(),
		ReceiveMax: cfg.MaxInflight, Sink: l, KeepAlive: time.Duration(vc.connect.Duration) * time.Second}
	if creds != nil {
		req.Username, req.Password = creds.user, creds.pass
	}
	if !req.CleanStart {
		if cfg.SessionExpiry > 0 {
			req.Expiry = cfg.SessionExpiry
		} else {
			req.UseDefaultExpiry = true
		}
	}
	sess, present, err := vc.srv.b.Connect(noWait, req)
	if err != nil {
		vc.refuse(returnCodeFor(err), "session refused", err)
		return
	}
	switch {
	case !present:
		vc.reg = newRegistry(cfg.MaxTopics, vc.srv.pre)
	case vc.reg != nil:
	default:
		// The session outlived an earlier connection (or, with a
		// store, the gateway's restart): its ids are its adapter state.
		// Without them the client learns new ones through PUBACK
		// "invalid topic ID".
		vc.reg = vc.srv.restoreRegistry(vc.clientID, sess)
	}
	vc.link, vc.sess = l, sess
	vc.limit = vc.srv.b.NewClientLimit()
	// A constrained client's backlog (asleep, or behind its one-message
	// window) is bounded by max_sleep_buffer, below session.max_queued.
	sess.SetQueueLimit(cfg.MaxSleepBuffer)
	vc.keepAlive = time.Duration(vc.connect.Duration) * time.Second
	vc.sleep = 0
	vc.st = stActive
	vc.send(&codec.ReturnOnly{Kind: codec.TypeConnack, Code: codec.Accepted})
	sess.Start()
	vc.log.Debug("connected", zap.Bool("clean_session", req.CleanStart), zap.Bool("session_present", present),
		zap.Duration("keep_alive", vc.keepAlive), zap.Bool("will", vc.will.set))
}

// buildWill turns the will the client defined into a core will.
func (vc *vconn) buildWill() *core.Will {
	if !vc.will.set {
		return nil
	}
	user := ""
	if c := vc.credentials(); c != nil {
		user = c.user
	}
	p := vc.peer()
	if id := p.identity(); id != "" {
		user = id // as the core names the session's user
	}
	return &core.Will{Msg: &core.Message{Topic: vc.will.topic, Payload: vc.will.msg, QoS: vc.will.qos,
		Retain: vc.will.retain, Origin: core.Origin{Protocol: core.ProtoMQTTSN, ClientID: vc.clientID,
			Username: user, Listener: p.listener()}}}
}

// inTopic resolves the topic of a client's PUBLISH (§6.5, §6.6, §6.8).
func (vc *vconn) inTopic(idType byte, id uint16) (string, bool) {
	switch idType {
	case codec.TopicNormal:
		return vc.reg.name(id)
	case codec.TopicPredefined:
		n, ok := vc.srv.pre.byID[id]
		return n, ok
	case codec.TopicShort:
		return codec.ShortTopicName(id), true
	}
	return "", false
}

func (vc *vconn) onPublish(m *codec.Publish) {
	qos := m.Flags.QoS
	if qos == codec.QoSMinus1 {
		if !vc.srv.cfg.QoSMinus1 {
			vc.send(&codec.Puback{TopicID: m.TopicID, MsgID: m.MsgID, Code: codec.NotSupported})
			return
		}
		qos = 0
	}
	name, ok := vc.inTopic(m.Flags.TopicIDType, m.TopicID)
	if !ok {
		// An unknown topic id is refused whatever the QoS (§5.4.13).
		vc.send(&codec.Puback{TopicID: m.TopicID, MsgID: m.MsgID, Code: codec.InvalidTopicID})
		return
	}
	if vc.limit != nil {
		// Over limits.client_msg_rate or client_bytes_rate: a datagram
		// sender cannot be paused, so QoS 1/2 is refused as congestion
		// (the client retries after T_WAIT, §6.13) and QoS 0, which
		// nothing acknowledges, is dropped; both are counted.
		if ok, _ := vc.limit.Admit(len(m.Data), qos == 0); !ok {
			if qos > 0 {
				vc.send(&codec.Puback{TopicID: m.TopicID, MsgID: m.MsgID, Code: codec.Congestion})
			}
			return
		}
	}
	msg := &core.Message{Topic: name, Payload: m.Data, QoS: qos, Retain: m.Flags.Retain, Arrived: vc.at}
	var err error
	if qos == 2 {
		_, err = vc.sess.PublishExactlyOnce(m.MsgID, msg)
	} else {
		err = vc.sess.Publish(msg)
	}
	rc := returnCodeFor(err)
	if err != nil {
		vc.log.Debug("publish refused", zap.String("topic", name), zap.Error(err))
	} else if qos > 0 {
		// A congested subscriber holds this client's acknowledgement (in
		// this client's own worker; other clients go on) rather than
		// the message being dropped later. The client waits for it, so
		// it is slowed to the subscriber's pace.
		vc.sess.WaitForRoom(vc.srv.b.Config().BackpressureTimeout)
	} else {
		// Nothing tells a QoS 0 client over UDP to slow down: waiting
		// would only hold its worker (its deliveries, its other packets)
		// while it sends on. Its messages beyond a subscriber's hard
		// bound are dropped and counted.
		vc.sess.SkipWait()
	}
	switch {
	case rc != codec.Accepted:
		vc.send(&codec.Puback{TopicID: m.TopicID, MsgID: m.MsgID, Code: rc})
	case qos == 1:
		vc.send(&codec.Puback{TopicID: m.TopicID, MsgID: m.MsgID, Code: codec.Accepted})
	case qos == 2:
		vc.send(&codec.MsgIDOnly{Kind: codec.TypePubrec, MsgID: m.MsgID})
	}
}

// onPuback completes a QoS 1 delivery, or re-registers its topic when
// the client did not know the id.
func (vc *vconn) onPuback(m *codec.Puback) {
	f := vc.out[m.MsgID]
	if f == nil || (f.await != codec.TypePuback && f.await != codec.TypePubrec) {
		return
	}
	delete(vc.out, m.MsgID)
	if m.Code == codec.InvalidTopicID && f.d.Msg != nil {
		if idType, _, _ := vc.outTopic(f.d.Msg.Topic); idType == codec.TopicNormal {
			vc.reg.forget(m.TopicID)
			vc.saveRegistry()
			d := f.d
			d.Dup = true
			vc.fifo = append([]core.Delivery{d}, vc.fifo...)
			return
		}
	}
	vc.sess.Acked(m.MsgID)
}

// onAck handles PUBREC, PUBREL, PUBCOMP and the client's UNSUBACK.
func (vc *vconn) onAck(m *codec.MsgIDOnly) {
	switch m.Kind {
	case codec.TypePubrec: // outbound QoS 2, step 2
		vc.sess.Received(m.MsgID)
		f := vc.out[m.MsgID]
		if f == nil {
			f = &flight{d: core.Delivery{ID: m.MsgID, QoS: 2}}
			vc.out[m.MsgID] = f
		}
		f.await, f.tries = codec.TypePubcomp, 0
		f.raw = vc.send(&codec.MsgIDOnly{Kind: codec.TypePubrel, MsgID: m.MsgID})
		f.due = time.Now().Add(vc.srv.cfg.RetryInterval)
	case codec.TypePubcomp: // outbound QoS 2, done
		if f := vc.out[m.MsgID]; f != nil && f.await == codec.TypePubcomp {
			delete(vc.out, m.MsgID)
			vc.sess.Acked(m.MsgID)
		}
	case codec.TypePubrel: // inbound QoS 2, step 3; a repeat gets PUBCOMP too
		vc.sess.Release(m.MsgID)
		vc.send(&codec.MsgIDOnly{Kind: codec.TypePubcomp, MsgID: m.MsgID})
	default:
		vc.ignored(m)
	}
}

// onRegister gives a topic name an id for the client's PUBLISH (§6.5).
func (vc *vconn) onRegister(m *codec.Register) {
	ack := &codec.Regack{MsgID: m.MsgID, Code: codec.Accepted}
	switch {
	case m.TopicName == "" || strings.ContainsAny(m.TopicName, "+#"):
		ack.Code = codec.NotSupported // a topic id names one topic, never a filter
	default:
		if err := vc.srv.b.CheckTopicName(m.TopicName); err != nil {
			ack.Code = returnCodeFor(err)
			break
		}
		id, ok := vc.reg.assign(m.TopicName)
		if !ok {
			ack.Code = codec.NotSupported
			break
		}
		vc.reg.markKnown(id)
		ack.TopicID = id
		vc.saveRegistry()
	}
	vc.send(ack)
}

// onRegack completes the gateway's REGISTER (§6.10).
func (vc *vconn) onRegack(m *codec.Regack) {
	f := vc.regf
	if f == nil || m.MsgID != f.d.ID {
		return
	}
	switch m.Code {
	case codec.Accepted:
		// The id is ours whatever the client echoes in TopicId.
		vc.reg.markKnown(vc.reg.byName[vc.regName])
		vc.regf = nil
		vc.saveRegistry()
	case codec.Congestion:
		f.due = time.Now().Add(vc.srv.cfg.RetryInterval) // try again later (§6.10)
	default:
		vc.regf = nil
		vc.log.Debug("client refused a topic", zap.String("topic", vc.regName), zap.Uint8("code", byte(m.Code)))
		vc.dropTopic(vc.regName)
	}
}

// subTopic resolves the topic of SUBSCRIBE or UNSUBSCRIBE.
func (vc *vconn) subTopic(m *codec.Subscribe) (string, bool) {
	switch m.Flags.TopicIDType {
	case codec.TopicNormal, codec.TopicShort:
		return m.TopicName, m.TopicName != ""
	case codec.TopicPredefined:
		n, ok := vc.srv.pre.byID[m.TopicID]
		return n, ok
	}
	return "", false
}

func (vc *vconn) onSubscribe(m *codec.Subscribe) {
	qos := clampQoS(m.Flags.QoS)
	filter, ok := vc.subTopic(m)
	if !ok {
		vc.send(&codec.Suback{Flags: codec.Flags{QoS: qos}, MsgID: m.MsgID, Code: codec.InvalidTopicID})
		return
	}
	opts := core.SubOptions{QoS: qos}
	if m.Flags.DUP {
		opts.RetainHandling = 1 // a retransmission does not resend retained messages
	}
	// With the SUBSCRIBE's arrival, publications that arrived after it
	// from other clients reach the subscription even if they were routed
	// before it was added (core/order.go).
	res := vc.sess.SubscribeAt(filter, opts, vc.at)
	if res.Err != nil {
		vc.log.Debug("subscribe refused", zap.String("filter", filter), zap.Error(res.Err))
		vc.send(&codec.Suback{Flags: codec.Flags{QoS: qos}, MsgID: m.MsgID, Code: returnCodeFor(res.Err)})
		return
	}
	var id uint16
	switch m.Flags.TopicIDType {
	case codec.TopicPredefined:
		id = m.TopicID
	case codec.TopicNormal:
		// A plain name gets its id now; a wildcard filter gets 0x0000 and
		// each matching topic is REGISTERed before its first PUBLISH
		// (§5.4.16, §6.10).
		if !strings.ContainsAny(filter, "+#") {
			if rid, ok := vc.reg.assign(filter); ok {
				vc.reg.markKnown(rid)
				id = rid
			}
		}
	}
	vc.saveRegistry()
	vc.send(&codec.Suback{Flags: codec.Flags{QoS: res.QoS}, TopicID: id, MsgID: m.MsgID, Code: codec.Accepted})
	vc.sess.SendRetained(res)
}

func (vc *vconn) onUnsubscribe(m *codec.Subscribe) {
	if filter, ok := vc.subTopic(m); ok {
		vc.sess.Unsubscribe(filter)
	}
	vc.send(&codec.MsgIDOnly{Kind: codec.TypeUnsuback, MsgID: m.MsgID})
}

// onPingreq answers a keep-alive, or wakes a sleeping client (§6.14):
// what was buffered is sent first, PINGRESP after it is acknowledged.
func (vc *vconn) onPingreq(m *codec.Pingreq) {
	switch vc.st {
	case stAsleep:
		if m.ClientID == "" {
			vc.send(&codec.Bare{Kind: codec.TypePingresp})
			return
		}
		vc.st = stAwake
		vc.sess.Start()
	case stAwake:
		// A repeated PINGREQ: the PINGRESP follows the buffered messages.
	default:
		vc.send(&codec.Bare{Kind: codec.TypePingresp})
	}
}

func (vc *vconn) onDisconnect(m *codec.Disconnect) {
	if m.HasDuration && m.Duration > 0 {
		vc.sleep = time.Duration(m.Duration) * time.Second
		if vc.st != stAsleep {
			// Paused before the acknowledgement, so everything published
			// after the client saw it is buffered by the session.
			vc.goToSleep()
		}
		vc.lastSeen = time.Now()
		vc.send(&codec.Disconnect{}) // acknowledged by DISCONNECT (§6.14)
		return
	}
	vc.send(&codec.Disconnect{})
	vc.end(false, false)
}

func (vc *vconn) onWillTopicUpd(m *codec.WillTopic) {
	if m.Topic == "" {
		vc.will = willState{} // an empty WILLTOPICUPD deletes the will (§5.4.22)
	} else {
		if err := vc.srv.b.CheckTopicName(m.Topic); err != nil {
			vc.send(&codec.ReturnOnly{Kind: codec.TypeWillTopicResp, Code: codec.NotSupported})
			return
		}
		vc.will = willState{set: true, topic: m.Topic, qos: clampQoS(m.Flags.QoS),
			retain: m.Flags.Retain, msg: vc.will.msg}
	}
	vc.sess.SetWill(vc.buildWill())
	vc.send(&codec.ReturnOnly{Kind: codec.TypeWillTopicResp, Code: codec.Accepted})
}

func (vc *vconn) onWillMsgUpd(m *codec.WillMsg) {
	if !vc.will.set {
		vc.send(&codec.ReturnOnly{Kind: codec.TypeWillMsgResp, Code: codec.NotSupported})
		return
	}
	vc.will.msg = m.Msg
	vc.sess.SetWill(vc.buildWill())
	vc.send(&codec.ReturnOnly{Kind: codec.TypeWillMsgResp, Code: codec.Accepted})
}

// parsePlain reads SASL PLAIN data (RFC 4616 §2): [authzid] NUL authcid
// NUL passwd. The authorization identity is not used.
func parsePlain(data []byte) (user string, pass []byte, ok bool) {
	parts := bytes.SplitN(data, []byte{0}, 3)
	if len(parts) != 3 || len(parts[1]) == 0 {
		return "", nil, false
	}
	return string(parts[1]), append([]byte(nil), parts[2]...), true
}
