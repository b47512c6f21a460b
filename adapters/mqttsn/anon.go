package mqttsn

import (
	"go.uber.org/zap"

	"github.com/iotgw/iotgw/adapters/mqttsn/codec"
	"github.com/iotgw/iotgw/core"
)

// publishMinus1 handles a QoS -1 PUBLISH, received at at, from a client
// without a connection (§6.8): only predefined ids and short names can be
// resolved; the message is published at QoS 0 as QoSMinus1ClientID. The
// read loop authenticates each one, so a slow Authenticator slows the
// socket: keep QoS -1 off when authentication calls out.
func (s *Server) publishMinus1(p *peer, m *codec.Publish, at int64) {
	if !s.cfg.QoSMinus1 {
		s.dropped(p, m, "QoS -1 publish refused by configuration")
		s.reply(p, &codec.Puback{TopicID: m.TopicID, MsgID: m.MsgID, Code: codec.NotSupported})
		return
	}
	var name string
	ok := false
	switch m.Flags.TopicIDType {
	case codec.TopicPredefined:
		name, ok = s.pre.byID[m.TopicID]
	case codec.TopicShort:
		name, ok = codec.ShortTopicName(m.TopicID), true
	}
	if !ok {
		s.dropped(p, m, "QoS -1 publish to an unknown topic id")
		s.reply(p, &codec.Puback{TopicID: m.TopicID, MsgID: m.MsgID, Code: codec.InvalidTopicID})
		return
	}
	info := &core.ClientInfo{Protocol: core.ProtoMQTTSN, ClientID: s.cfg.QoSMinus1ClientID,
		Listener: p.listener(), Remote: p.key}
	if id := p.identity(); id != "" {
		// The DTLS session verified the sender: its identity is the
		// user name and the credential, as in Broker.Connect.
		info.Username = id
	} else if err := s.b.Authenticate(noWait, info); err != nil {
		s.dropped(p, m, "QoS -1 publisher not authenticated")
		return
	}
	err := s.b.PublishAs(info, &core.Message{Topic: name, Payload: m.Data, Retain: m.Flags.Retain, Arrived: at})
	if err != nil {
		if ce := s.log.Check(zap.DebugLevel, "QoS -1 publish refused"); ce != nil {
			ce.Write(zap.String("remote", p.key), zap.String("topic", name), zap.Error(err))
		}
		s.reply(p, &codec.Puback{TopicID: m.TopicID, MsgID: m.MsgID, Code: returnCodeFor(err)})
	}
}

// claim registers a client id the gateway assigned.
func (s *Server) claim(vc *vconn, clientID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byClient[clientID] == nil {
		s.byClient[clientID] = vc
		vc.cid = clientID
	}
}

// setCreds records the credentials of an AUTH message (the username and
// password extension): method PLAIN with RFC 4616 data. Any other method
// marks the credentials bad, so CONNECT is refused with "not supported".
func (vc *vconn) setCreds(a *codec.Auth) {
	c := &credentials{bad: true}
	if a.Method == "PLAIN" {
		if user, pass, ok := parsePlain(a.Data); ok {
			c = &credentials{user: user, pass: pass}
		}
	}
	vc.mu.Lock()
	vc.creds = c
	vc.mu.Unlock()
}

// adoptCreds takes the credentials another virtual connection collected
// for this address before CONNECT moved the client here.
func (vc *vconn) adoptCreds(from *vconn) {
	from.mu.Lock()
	c := from.creds
	from.mu.Unlock()
	if c == nil {
		return
	}
	vc.mu.Lock()
	vc.creds = c
	vc.mu.Unlock()
}
