package mqtt

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/iotgw/iotgw/adapters/mqtt/codec"
	"github.com/iotgw/iotgw/core"
	"github.com/iotgw/iotgw/internal/listen"
)

func newClientID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "iotgw-" + hex.EncodeToString(b[:])
}

// refuseConnect answers a CONNECT with a failure CONNACK and closes
// [MQTT-3.2.2-5].
func (c *conn) refuseConnect(p *codec.Connect, rc codec.ReasonCode) {
	if p != nil && p.ProtocolLevel == codec.V5 {
		c.version = codec.V5
		c.closeWith(&codec.Connack{ReasonCode: rc}, errConnRefuse)
		return
	}
	// An MQTT 3.x client (or one whose version we do not speak) gets a
	// 3.1.1 return code [MQTT-3.1.2-2].
	if c.version == 0 {
		c.version = codec.V311
	}
	c.closeWith(&codec.Connack{ReasonCode: v3ConnackCode(rc)}, errConnRefuse)
}

func (c *conn) onConnect(p *codec.Connect) error {
	cfg := &c.srv.cfg
	c.eng.Lock()
	c.version = p.ProtocolLevel
	c.eng.Unlock()
	v5 := c.version == codec.V5
	// On a listener that names clients by their certificates (tls.identity),
	// that name is the user name, whatever CONNECT says; a client without
	// one is refused rather than trusted with the name it claims.
	identity, required, ok := c.srv.lc.Secure(c.listener).ClientName(c.eng.NetConn())
	if required {
		if !ok {
			c.refuseConnect(p, codec.NotAuthorized)
			return fmt.Errorf("%w: the client certificate has no name for tls.identity", errConnRefuse)
		}
		p.Username, p.Password = identity, nil
	}
	clientID := p.ClientID
	assigned := false
	if clientID == "" {
		// 3.1.1 allows a zero-length id only with clean session
		// [MQTT-3.1.3-7], [MQTT-3.1.3-8]; MQTT 3.1 requires an id; MQTT 5
		// assigns one [MQTT-3.1.3-6].
		if !cfg.AllowEmptyClientID || c.version == codec.V31 || (!v5 && !p.CleanStart) {
			c.refuseConnect(p, codec.ClientIDNotValid)
			return fmt.Errorf("%w: empty client id", errConnRefuse)
		}
		clientID = newClientID()
		assigned = true
	}
	c.clientID = clientID

	will, err := c.willFrom(p)
	if err != nil {
		c.refuseConnect(p, codec.TopicNameInvalid)
		return err
	}
	if will != nil && v5 {
		// A will beyond the server's capabilities is refused
		// [MQTT-3.2.2-12], [MQTT-3.2.2-13].
		if int(p.WillQoS) > cfg.MaxQoS {
			c.refuseConnect(p, codec.QoSNotSupported)
			return fmt.Errorf("%w: will QoS %d above maximum %d", errConnRefuse, p.WillQoS, cfg.MaxQoS)
		}
		if p.WillRetain && !cfg.RetainAvailable {
			c.refuseConnect(p, codec.RetainNotSupported)
			return fmt.Errorf("%w: will retain, retain not available", errConnRefuse)
		}
	}

	req := core.ConnectRequest{
		ClientID: clientID, Username: p.Username, Password: p.Password, Identity: identity, CertCN: listen.CertCN(c.eng.NetConn()),
		Protocol: core.ProtoMQTT, Listener: c.listener, Remote: c.remote,
		CleanStart: p.CleanStart, Will: will, Sink: c,
	}
	keepAlive := int(p.KeepAlive)
	serverKeepAlive := false
	if v5 {
		if p.Props.Has(codec.PropSessionExpiry) {
			req.Expiry = expiryDuration(p.Props.SessionExpiry)
		}
		c.expiry0 = req.Expiry == 0
		if p.Props.Has(codec.PropReceiveMaximum) {
			req.ReceiveMax = int(p.Props.ReceiveMaximum)
		}
		if p.Props.Has(codec.PropMaximumPacketSize) {
			c.maxOutPacket = int(p.Props.MaximumPacketSize)
		}
		if p.Props.Has(codec.PropTopicAliasMaximum) {
			c.aliasOutMax = int(p.Props.TopicAliasMaximum)
		}
		if cfg.MaxKeepAlive > 0 && (keepAlive == 0 || keepAlive > cfg.MaxKeepAlive) {
			keepAlive = cfg.MaxKeepAlive
			serverKeepAlive = true
		}
	} else if !p.CleanStart {
		req.UseDefaultExpiry = true
	}
	req.KeepAlive = time.Duration(keepAlive) * time.Second

	st := &pendingConnect{p: p, req: req, assigned: assigned, keepAlive: keepAlive, serverKeepAlive: serverKeepAlive}
	if v5 && p.Props.Has(codec.PropAuthMethod) {
		return c.startAuth(st)
	}
	return c.finishConnect(st, nil)
}

// pendingConnect is a CONNECT waiting for its enhanced authentication to
// finish.
type pendingConnect struct {
	p               *codec.Connect
	req             core.ConnectRequest
	assigned        bool
	keepAlive       int
	serverKeepAlive bool
}

// finishConnect binds the session and sends CONNACK (with the final
// authentication data of an enhanced authentication, if any).
func (c *conn) finishConnect(st *pendingConnect, authData []byte) error {
	p, req, keepAlive := st.p, st.req, st.keepAlive
	v5 := c.version == codec.V5
	c.pending = nil
	sess, present, err := c.srv.b.Connect(context.Background(), req)
	if err != nil {
		c.logAt(zap.InfoLevel, "connect refused", zap.Error(err))
		c.refuseConnect(p, reasonFor(err))
		return err
	}
	c.sess = sess
	c.authMethod = req.AuthMethod
	c.keepAlive = time.Duration(keepAlive) * time.Second
	ack := &codec.Connack{SessionPresent: present && !p.CleanStart}
	if v5 {
		c.connackProps(ack, st.assigned, req.ClientID, st.serverKeepAlive, keepAlive, req, sess)
		if req.AuthMethod != "" {
			ack.Props.AuthMethod = req.AuthMethod
			ack.Props.Set(codec.PropAuthMethod)
			if authData != nil {
				ack.Props.AuthData = authData
				ack.Props.Set(codec.PropAuthData)
			}
		}
		c.aliasesIn = make(map[uint16]string)
	}
	c.eng.Lock()
	c.connected = true
	c.eng.Unlock()
	c.eng.Established()
	c.reply(ack)
	sess.Start()
	// The reader's next wait sets the read deadline: the connect timeout
	// is over once it does.
	c.logAt(zap.DebugLevel, "connected", zap.Uint8("version", c.version), zap.Bool("clean_start", p.CleanStart),
		zap.Bool("session_present", ack.SessionPresent), zap.Int("keep_alive", keepAlive))
	return nil
}

func expiryDuration(secs uint32) time.Duration {
	if secs == 0xFFFFFFFF {
		return core.NeverExpire
	}
	return time.Duration(secs) * time.Second
}

func (c *conn) connackProps(ack *codec.Connack, assigned bool, clientID string, serverKeepAlive bool, keepAlive int, req core.ConnectRequest, sess *core.Session) {
	cfg := &c.srv.cfg
	p := &ack.Props
	if assigned {
		p.AssignedClientID = clientID
		p.Set(codec.PropAssignedClientID)
	}
	if serverKeepAlive {
		p.ServerKeepAlive = uint16(keepAlive)
		p.Set(codec.PropServerKeepAlive)
	}
	if granted := sess.Expiry(); granted != req.Expiry {
		p.SessionExpiry = uint32(granted / time.Second)
		p.Set(codec.PropSessionExpiry)
	}
	if cfg.ReceiveMaximum < 65535 {
		p.ReceiveMaximum = uint16(cfg.ReceiveMaximum)
		p.Set(codec.PropReceiveMaximum)
	}
	if cfg.MaxQoS < 2 {
		p.MaximumQoS = byte(cfg.MaxQoS)
		p.Set(codec.PropMaximumQoS)
	}
	if !cfg.RetainAvailable {
		p.RetainAvailable = 0
		p.Set(codec.PropRetainAvailable)
	}
	p.MaximumPacketSize = uint32(cfg.MaxPacketSize)
	p.Set(codec.PropMaximumPacketSize)
	if !cfg.SharedSubscriptions {
		p.SharedSubAvailable = 0
		p.Set(codec.PropSharedSubAvailable)
	}
	if !cfg.WildcardSubscriptions {
		p.WildcardSubAvailable = 0
		p.Set(codec.PropWildcardSubAvailable)
	}
	if !cfg.SubscriptionIdentifiers {
		p.SubIDAvailable = 0
		p.Set(codec.PropSubIDAvailable)
	}
	if cfg.TopicAliasMaximum > 0 {
		p.TopicAliasMaximum = uint16(cfg.TopicAliasMaximum)
		p.Set(codec.PropTopicAliasMaximum)
	}
}

// willFrom builds the core will from CONNECT's will fields.
func (c *conn) willFrom(p *codec.Connect) (*core.Will, error) {
	if !p.WillFlag {
		return nil, nil
	}
	if err := c.srv.b.CheckTopicName(p.WillTopic); err != nil {
		return nil, fmt.Errorf("%w: will topic: %v", errBadTopic, err)
	}
	msg := &core.Message{Topic: p.WillTopic, Payload: p.WillPayload, QoS: p.WillQoS, Retain: p.WillRetain}
	w := &core.Will{Msg: msg}
	if c.version == codec.V5 {
		c.messageProps(msg, &p.WillProps)
		if p.WillProps.Has(codec.PropWillDelay) {
			w.Delay = time.Duration(p.WillProps.WillDelay) * time.Second
		}
		// The will's expiry runs from its publication (3.1.3.2.4).
		msg.ExpiresAt = time.Time{}
		if p.WillProps.Has(codec.PropMessageExpiry) {
			w.Expiry = time.Duration(p.WillProps.MessageExpiry) * time.Second
		}
	}
	msg.Origin = core.Origin{Protocol: core.ProtoMQTT, ClientID: c.clientID, Username: p.Username, Listener: c.listener}
	return w, nil
}

// messageProps copies MQTT 5 message properties into a core message.
func (c *conn) messageProps(m *core.Message, p *codec.Properties) {
	if p.Has(codec.PropPayloadFormat) {
		m.PayloadFormat = p.PayloadFormat
	}
	if p.Has(codec.PropMessageExpiry) {
		m.ExpiresAt = time.Now().Add(time.Duration(p.MessageExpiry) * time.Second)
	}
	m.ContentType = p.ContentType
	m.ResponseTopic = p.ResponseTopic
	m.CorrelationData = p.CorrelationData
	if len(p.User) > 0 {
		m.UserProps = make([]core.UserProperty, len(p.User))
		for i, u := range p.User {
			m.UserProps[i] = core.UserProperty{Key: u.Key, Value: u.Value}
		}
	}
}

// startAuth begins MQTT 5 enhanced authentication [MQTT-4.12.0-1]: an
// unknown method is refused with 0x8C, otherwise the method's challenge
// goes out in AUTH 0x18 and the CONNECT waits.
func (c *conn) startAuth(st *pendingConnect) error {
	name := st.p.Props.AuthMethod
	m, ok := c.srv.b.AuthMethod(name)
	if !ok {
		c.refuseConnect(st.p, codec.BadAuthMethod)
		return fmt.Errorf("%w: unsupported authentication method %q", errConnRefuse, name)
	}
	if core.IsPasswordMethod(m) {
		// The data is the credential (a JWT): the chain checks it as the
		// password, and CONNACK names the method so that the client may
		// re-authenticate with it.
		st.req.AuthMethod = name
		st.req.Password = st.p.Props.AuthData
		return c.finishConnect(st, nil)
	}
	conv, challenge, err := m.Start(st.p.Props.AuthData)
	if err != nil {
		c.refuseConnect(st.p, codec.BadUsernameOrPassword)
		return fmt.Errorf("%w: %s: %v", errConnRefuse, name, err)
	}
	c.pending = st
	c.authConv = conv
	c.send(authPacket(codec.ContinueAuthentication, name, challenge))
	return nil
}

func authPacket(rc codec.ReasonCode, method string, data []byte) *codec.Auth {
	a := &codec.Auth{ReasonCode: rc}
	a.Props.AuthMethod = method
	a.Props.Set(codec.PropAuthMethod)
	if data != nil {
		a.Props.AuthData = data
		a.Props.Set(codec.PropAuthData)
	}
	return a
}

// authStep feeds one client AUTH to the conversation in progress; the
// method must stay the same [MQTT-4.12.0-5].
func (c *conn) authStep(a *codec.Auth, method string) (resp []byte, done bool, err error) {
	if a.ReasonCode != codec.ContinueAuthentication || a.Props.AuthMethod != method || c.authConv == nil {
		return nil, true, fmt.Errorf("%w: unexpected AUTH (reason %#x, method %q)", errProtocol, byte(a.ReasonCode), a.Props.AuthMethod)
	}
	return c.authConv.Step(a.Props.AuthData)
}

func (c *conn) onAuthBeforeConnack(a *codec.Auth) error {
	st := c.pending
	method := st.p.Props.AuthMethod
	resp, done, err := c.authStep(a, method)
	if err != nil {
		c.authConv = nil
		c.refuseConnect(st.p, codec.BadUsernameOrPassword)
		return fmt.Errorf("%w: %v", errConnRefuse, err)
	}
	if !done {
		c.send(authPacket(codec.ContinueAuthentication, method, resp))
		return nil
	}
	st.req.AuthMethod = method
	st.req.Username = c.authConv.Username()
	c.authConv = nil
	return c.finishConnect(st, resp)
}

// onReauth handles AUTH after CONNACK: re-authentication (0x19) with the
// method used at connect, then its continuation [MQTT-4.12.1-1].
func (c *conn) onReauth(a *codec.Auth) error {
	method := c.authMethod
	if method == "" || a.Props.AuthMethod != method {
		c.fail(codec.ProtocolError, errProtocol)
		return fmt.Errorf("%w: AUTH with method %q, connected with %q [MQTT-4.12.0-5]", errProtocol, a.Props.AuthMethod, method)
	}
	if a.ReasonCode == codec.ReAuthenticate {
		m, _ := c.srv.b.AuthMethod(method)
		if core.IsPasswordMethod(m) {
			return c.reauthWithPassword(method, a.Props.AuthData)
		}
		conv, challenge, err := m.Start(a.Props.AuthData)
		if err != nil {
			c.fail(codec.NotAuthorized, err)
			return fmt.Errorf("re-authentication: %w", err)
		}
		c.authConv = conv
		c.send(authPacket(codec.ContinueAuthentication, method, challenge))
		return nil
	}
	resp, done, err := c.authStep(a, method)
	if err != nil {
		c.authConv = nil
		c.fail(codec.NotAuthorized, err)
		return fmt.Errorf("re-authentication: %w", err)
	}
	if !done {
		c.send(authPacket(codec.ContinueAuthentication, method, resp))
		return nil
	}
	c.authConv = nil
	c.send(authPacket(codec.Success, method, resp))
	return nil
}

// reauthWithPassword re-authenticates with a method whose data is the
// credential (a fresh JWT): the chain checks it through
// Broker.Reauthenticate, which on success moves the connection's expiry
// and replaces its grant; the answer is AUTH 0x00, or DISCONNECT 0x87 and
// the end of the connection [MQTT-4.12.1-2]: a refused token must not
// leave the connection running on the one it was meant to replace.
func (c *conn) reauthWithPassword(method string, data []byte) error {
	if err := c.srv.b.Reauthenticate(context.Background(), c.sess, data); err != nil {
		c.fail(codec.NotAuthorized, err)
		return fmt.Errorf("re-authentication: %w", err)
	}
	c.reply(authPacket(codec.Success, method, nil))
	c.logAt(zap.DebugLevel, "re-authenticated", zap.String("method", method))
	return nil
}
