package stomp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-stomp/stomp/v3/frame"
	"go.uber.org/zap"

	"github.com/iotgw/iotgw/core"
	"github.com/iotgw/iotgw/core/topic"
	"github.com/iotgw/iotgw/internal/listen"
)

// Errors that end a connection with an ERROR frame.
var (
	errNotConnected       = errors.New("not connected")
	errProtocol           = errors.New("protocol violation")
	errMissingHeader      = errors.New("missing header")
	errVersion            = errors.New("unsupported protocol version")
	errTooManySubs        = errors.New("too many subscriptions")
	errTransaction        = errors.New("bad transaction")
	errUnknownAck         = errors.New("unknown message-id")
	errUnknownSub         = errors.New("unknown subscription")
	errClientDisconnected = errors.New("client disconnected")
)

// supportedVersions is our side of version negotiation, best first.
var supportedVersions = []string{"1.2", "1.1", "1.0"}

// transaction is an open transaction: the frames it will apply at COMMIT.
type transaction struct {
	ops []txOp
}

type txOp struct {
	msg  *core.Message // a SEND
	ack  string        // an ACK or NACK of this message-id
	nack bool
}

// handle processes one frame. A non-nil error ends the connection (handle
// has already queued whatever goes out last).
func (c *conn) handle(f *frame.Frame) error {
	if !c.connected {
		if f.Command != frame.CONNECT && f.Command != frame.STOMP {
			// [STOMP 1.2 "Connecting"]: a connection starts with CONNECT.
			return c.fail(f, fmt.Errorf("%w: %s before CONNECT", errNotConnected, f.Command))
		}
		return c.onConnect(f)
	}
	var err error
	switch f.Command {
	case frame.SEND:
		err = c.onSend(f)
	case frame.SUBSCRIBE:
		err = c.onSubscribe(f)
	case frame.UNSUBSCRIBE:
		err = c.onUnsubscribe(f)
	case frame.ACK, frame.NACK:
		err = c.onAck(f)
	case frame.BEGIN, frame.COMMIT, frame.ABORT:
		err = c.onTransaction(f)
	case frame.DISCONNECT:
		// [STOMP 1.2 "DISCONNECT"]: the RECEIPT comes after everything
		// before it, then the connection closes.
		c.receipt(f)
		c.awaitReceipts()
		c.closeWith(nil, errClientDisconnected)
		return errClientDisconnected
	case frame.CONNECT, frame.STOMP:
		err = fmt.Errorf("%w: already connected", errProtocol)
	default:
		err = fmt.Errorf("%w: %s is a server frame", errProtocol, f.Command)
	}
	if err != nil {
		return c.fail(f, err)
	}
	c.receipt(f)
	return nil
}

// fail queues an ERROR frame for err, naming the offending frame's receipt
// [STOMP 1.2 "ERROR"], and closes the connection.
func (c *conn) fail(f *frame.Frame, err error) error {
	receipt := ""
	if f != nil && f.Command != frame.CONNECT && f.Command != frame.STOMP {
		receipt = f.Header.Get(frame.Receipt)
	}
	e := errorFrame(errorMessage(err), err.Error(), receipt)
	if errors.Is(err, errVersion) {
		e.Header.Add(frame.Version, "1.0,1.1,1.2")
	}
	c.closeWith(e, err)
	return err
}

// negotiate picks the highest version both sides speak; no accept-version
// header means 1.0 [STOMP 1.2 "Protocol Negotiation"].
func negotiate(accept string, present bool) string {
	if !present {
		return "1.0"
	}
	offered := strings.Split(accept, ",")
	for _, v := range supportedVersions {
		for _, o := range offered {
			if strings.TrimSpace(o) == v {
				return v
			}
		}
	}
	return ""
}

func newClientID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "stomp-" + hex.EncodeToString(b[:])
}

func (c *conn) onConnect(f *frame.Frame) error {
	cfg := &c.srv.cfg
	accept, present := f.Header.Contains(frame.AcceptVersion)
	ver := negotiate(accept, present)
	if ver == "" {
		return c.fail(f, fmt.Errorf("%w: client accepts %q, server speaks 1.0,1.1,1.2", errVersion, accept))
	}
	if host, ok := f.Header.Contains(frame.Host); ok && cfg.Host != "" && host != cfg.Host {
		return c.fail(f, fmt.Errorf("%w: unknown virtual host %q", core.ErrNotAuthorized, host))
	}
	var cx, cy time.Duration
	if hb, ok := f.Header.Contains(frame.HeartBeat); ok && ver != "1.0" {
		var err error
		if cx, cy, err = frame.ParseHeartBeat(hb); err != nil {
			return c.fail(f, fmt.Errorf("%w: heart-beat %q", errBadHeader, hb))
		}
	}
	// A client-id names a persistent session (unless session_expiry is
	// zero): it resumes on the next connection with the same client-id,
	// with its subscriptions and unacknowledged messages. ActiveMQ uses
	// the same header to name its durable subscribers.
	clientID := newClientID()
	persistent := false
	if id, ok := f.Header.Contains(hdrClientID); ok && id != "" {
		clientID = id
		persistent = cfg.SessionExpiry > 0
	}
	c.clientID = clientID
	c.logID.Store(&c.clientID)
	passcode, hasPass := f.Header.Contains(frame.Passcode)
	req := core.ConnectRequest{
		ClientID: clientID, Username: f.Header.Get(frame.Login),
		Protocol: core.ProtoSTOMP, Listener: c.listener, Remote: c.remote,
		CleanStart: !persistent, ReceiveMax: cfg.MaxPendingAcks, Sink: c,
		CertCN: listen.CertCN(c.eng.NetConn()), KeepAlive: cx,
	}
	if persistent {
		req.Expiry = cfg.SessionExpiry
	}
	if hasPass {
		req.Password = []byte(passcode)
	}
	// On a listener that names clients by their certificates (tls.identity)
	// that name is the login, whatever the frame says; a client without
	// one is refused rather than trusted with the login it claims.
	if name, required, ok := c.srv.lc.Secure(c.listener).ClientName(c.eng.NetConn()); required {
		if !ok {
			return c.fail(f, fmt.Errorf("%w: the client certificate has no name for tls.identity", core.ErrNotAuthorized))
		}
		req.Username, req.Password, req.Identity = name, nil, name
	}
	sess, present, err := c.srv.b.Connect(context.Background(), req)
	if err != nil {
		c.logAt(zap.InfoLevel, "connect refused", zap.Error(err))
		return c.fail(f, err)
	}
	c.sess = sess
	st := c.srv.stateFor(clientID, sess, persistent)
	st.subMu.Lock()
	if present && persistent {
		st.restoreIfNew()
	}
	bound := st.bind(c, ver == "1.2")
	st.subMu.Unlock()
	if !bound {
		// A newer connection with the client-id took the session over
		// while this one was connecting.
		return fmt.Errorf("%w: while connecting", core.ErrSessionTakenOver)
	}
	// Heart-beats [STOMP 1.2 "Heart-beating"]: the server offers to send
	// as often as the client wants and to hear from it as often as it can
	// send, no more often than heartbeat_min; each direction then runs at
	// the larger of the two sides' values, or not at all if either is 0.
	sx, sy := offer(cy, cfg.HeartBeatMin), offer(cx, cfg.HeartBeatMin)
	out, in := agreed(sx, cy), agreed(cx, sy)
	c.eng.Lock()
	c.version = map[string]int{"1.0": 10, "1.1": 11, "1.2": 12}[ver]
	c.eng.Unlock()
	c.connected = true
	c.eng.Established() // the connect timeout is over
	c.reply(frame.New(frame.CONNECTED,
		frame.Version, ver,
		frame.Server, c.srv.serverName(),
		frame.Session, clientID,
		frame.HeartBeat, fmt.Sprintf("%d,%d", sx.Milliseconds(), sy.Milliseconds())))
	sess.Start()
	if in > 0 {
		c.hbIn = time.Duration(float64(in) * cfg.HeartBeatGrace)
	}
	if out > 0 {
		c.startHeartBeats(out)
	}
	c.logAt(zap.DebugLevel, "connected", zap.String("version", ver), zap.Bool("persistent", persistent),
		zap.Bool("session_present", present), zap.Duration("heartbeat_in", in), zap.Duration("heartbeat_out", out))
	return nil
}

// offer is the server's heart-beat value for a client value v: none when
// the client wants none, otherwise v raised to the configured minimum.
func offer(v, min time.Duration) time.Duration {
	if v <= 0 {
		return 0
	}
	// Whole milliseconds, as the header says.
	return max(v, min).Truncate(time.Millisecond)
}

// agreed is one direction's heart-beat interval from the sender's and the
// receiver's values.
func agreed(send, recv time.Duration) time.Duration {
	if send <= 0 || recv <= 0 {
		return 0
	}
	return max(send, recv)
}

func (c *conn) onSend(f *frame.Frame) error {
	if c.limit != nil {
		// Over limits.client_msg_rate or client_bytes_rate the reader
		// waits before handling the frame: TCP flow control slows the
		// client, and nothing it sent is dropped.
		if d := c.limit.Pause(len(f.Body)); d > 0 {
			c.eng.Pause(d)
		}
	}
	msg, err := messageFromSend(f, byte(c.srv.cfg.DefaultQoS), c.srv.b.CheckTopicName)
	if err != nil {
		return err
	}
	if tx, ok := f.Header.Contains(frame.Transaction); ok {
		t, err := c.tx(tx)
		if err != nil {
			return err
		}
		return c.addOp(t, txOp{msg: msg})
	}
	msg.Arrived = c.eng.Arrived()
	// The RECEIPT follows the core's acceptance (Publish has routed the
	// message by then) and, with a store, the message being durable: it
	// waits in the receipt pipe while this goroutine reads on, and leaves
	// in order with the others (receipts.go).
	if err := c.publish(f, msg); err != nil {
		return err
	}
	if c.sess.MustWait() {
		// A congested subscriber holds this sender (its RECEIPT and the
		// reading of its next frames; at QoS 0 too) instead of losing
		// messages. The RECEIPTs of earlier frames go out meanwhile.
		c.eng.Kick()
		c.sess.WaitForRoom(c.srv.b.Config().BackpressureTimeout)
	}
	return nil
}

func (c *conn) onSubscribe(f *frame.Frame) error {
	dest, ok := f.Header.Contains(frame.Destination)
	if !ok || dest == "" {
		return fmt.Errorf("%w: SUBSCRIBE without destination", errMissingHeader)
	}
	id, ok := f.Header.Contains(frame.Id)
	if !ok || id == "" {
		if c.version >= 11 {
			// [STOMP 1.2 "SUBSCRIBE"]: the id header is required.
			return fmt.Errorf("%w: SUBSCRIBE without id", errMissingHeader)
		}
		id = dest // STOMP 1.0: the destination names the subscription
	}
	s := &subscription{id: id, dest: dest}
	switch mode := f.Header.Get(frame.Ack); mode {
	case "", frame.AckAuto:
	case frame.AckClient:
		s.ack, s.qos = ackClient, 1
	case frame.AckClientIndividual:
		s.ack, s.qos = ackClientIndividual, 1
	default:
		return fmt.Errorf("%w: ack %q is not auto, client or client-individual", errBadHeader, mode)
	}
	if v, ok := f.Header.Contains(hdrQoS); ok {
		if len(v) != 1 || v[0] < '0' || v[0] > '2' {
			return fmt.Errorf("%w: qos %q is not 0, 1 or 2", errBadHeader, v)
		}
		s.qos = v[0] - '0'
	}
	st := c.st
	st.subMu.Lock()
	defer st.subMu.Unlock()
	st.mu.Lock()
	if st.owner != c {
		st.mu.Unlock()
		return core.ErrSessionTakenOver
	}
	if _, dup := st.rt.subs[id]; dup {
		st.mu.Unlock()
		return fmt.Errorf("%w: subscription id %q already in use", errProtocol, id)
	}
	if len(st.rt.subs) >= c.srv.cfg.MaxSubscriptions {
		st.mu.Unlock()
		return fmt.Errorf("%w: limit %d", errTooManySubs, c.srv.cfg.MaxSubscriptions)
	}
	_, existed := st.rt.groups[dest]
	g, rebound := st.rt.add(s)
	num, qos := g.num, g.maxQoS()
	st.mu.Unlock()
	// The arrival lets the core give this subscription what other
	// clients published after it reached us, even if that was routed
	// first (docs/design.md, "Ordering across clients").
	res := c.sess.SubscribeAt(dest, core.SubOptions{QoS: qos, ID: num}, c.eng.Arrived())
	if res.Err != nil {
		st.mu.Lock()
		acks, empty := st.rt.remove(s)
		st.mu.Unlock()
		if empty && existed {
			c.sess.Unsubscribe(dest)
		}
		c.ackAll(acks)
		return res.Err
	}
	// The RECEIPT goes out before the messages the group held and the
	// retained messages.
	c.receipt(f)
	f.Header.Del(frame.Receipt)
	if rebound {
		c.eng.Lock()
		st.mu.Lock()
		if st.owner == c {
			c.queueLocked(st.rt.release(g))
		}
		st.mu.Unlock()
		c.eng.Unlock()
	}
	c.sess.SendRetained(res)
	return nil
}

func (c *conn) onUnsubscribe(f *frame.Frame) error {
	id, ok := f.Header.Contains(frame.Id)
	if !ok || id == "" {
		if c.version >= 11 {
			return fmt.Errorf("%w: UNSUBSCRIBE without id", errMissingHeader)
		}
		// STOMP 1.0 may unsubscribe by destination.
		if id, ok = f.Header.Contains(frame.Destination); !ok {
			return fmt.Errorf("%w: UNSUBSCRIBE without id or destination", errMissingHeader)
		}
	}
	st := c.st
	st.subMu.Lock()
	defer st.subMu.Unlock()
	st.mu.Lock()
	if st.owner != c {
		st.mu.Unlock()
		return core.ErrSessionTakenOver
	}
	s := st.rt.subs[id]
	if s == nil && c.version < 11 {
		// STOMP 1.0 may name the destination of a subscription that
		// has an id of its own.
		if dest, ok := f.Header.Contains(frame.Destination); ok {
			for _, x := range st.rt.subs {
				if x.dest == dest {
					s = x
					break
				}
			}
		}
	}
	if s == nil {
		st.mu.Unlock()
		if c.srv.cfg.UnknownID == UnknownIDIgnore {
			return nil
		}
		return fmt.Errorf("%w: no subscription %q", errUnknownSub, id)
	}
	acks, empty := st.rt.remove(s)
	g := s.g
	qos := g.maxQoS()
	st.mu.Unlock()
	c.ackAll(acks)
	if empty {
		c.sess.Unsubscribe(g.filter)
		return nil
	}
	// Other subscriptions to the destination remain: the core
	// subscription stays, at their QoS, without resending retained ones.
	c.sess.Subscribe(g.filter, core.SubOptions{QoS: qos, ID: g.num, RetainHandling: 2})
	return nil
}

// ackID is the id an ACK or NACK names: id in 1.2, message-id before
// [STOMP 1.2 "ACK"], [STOMP 1.1 "ACK"]; either is accepted in any version.
func ackID(f *frame.Frame) (string, bool) {
	if v, ok := f.Header.Contains(frame.Id); ok && v != "" {
		return v, true
	}
	if v, ok := f.Header.Contains(frame.MessageId); ok && v != "" {
		return v, true
	}
	return "", false
}

func (c *conn) onAck(f *frame.Frame) error {
	id, ok := ackID(f)
	if !ok {
		return fmt.Errorf("%w: %s without id", errMissingHeader, f.Command)
	}
	nack := f.Command == frame.NACK
	if tx, ok := f.Header.Contains(frame.Transaction); ok {
		t, err := c.tx(tx)
		if err != nil {
			return err
		}
		// Refused now rather than at COMMIT, where it would void the
		// whole transaction.
		if err := c.checkAckIDs([]string{id}); err != nil {
			return err
		}
		return c.addOp(t, txOp{ack: id, nack: nack})
	}
	return c.settle(id, nack, true)
}

// checkAckIDs fails, unless unknown_id is ignore, when an id is neither
// awaiting acknowledgement nor stale.
func (c *conn) checkAckIDs(ids []string) error {
	if c.srv.cfg.UnknownID == UnknownIDIgnore || len(ids) == 0 {
		return nil
	}
	st := c.st
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, id := range ids {
		if sf, stale := st.rt.lookup(id); sf == nil && !stale {
			return fmt.Errorf("%w: %q is not awaiting acknowledgement", errUnknownAck, id)
		}
	}
	return nil
}

// settle applies an ACK or NACK and tells the core. With strict, an id
// that awaits no acknowledgement is an error (ActiveMQ and RabbitMQ refuse
// it too; the STOMP specification leaves it open) unless unknown_id is
// ignore, or the id is stale: sent on an earlier connection of the
// session (the message is resent with a new id) or forgotten.
func (c *conn) settle(id string, nack, strict bool) error {
	st := c.st
	st.mu.Lock()
	if st.owner != c {
		st.mu.Unlock()
		return core.ErrSessionTakenOver
	}
	res := st.rt.settle(id, nack)
	st.mu.Unlock()
	if !res.found {
		if !strict || res.stale || c.srv.cfg.UnknownID == UnknownIDIgnore {
			c.logAt(zap.DebugLevel, "ack of a message-id not awaiting acknowledgement ignored",
				zap.String("id", id), zap.Bool("nack", nack), zap.Bool("stale", res.stale))
			return nil
		}
		return fmt.Errorf("%w: %q is not awaiting acknowledgement", errUnknownAck, id)
	}
	c.ackAll(res.acks)
	for _, did := range res.redeliver {
		c.sess.RedeliverBy(c, did)
	}
	if res.dropped > 0 {
		c.srv.dropped.Add(uint64(res.dropped))
		c.logAt(zap.InfoLevel, "message dropped after too many redeliveries",
			zap.Int("max_redeliveries", c.srv.cfg.MaxRedeliveries), zap.Int("count", res.dropped))
	}
	return nil
}

func (c *conn) ackAll(ids []uint16) {
	for _, id := range ids {
		c.sess.AckedBy(c, id)
	}
}

// tx returns the open transaction named id.
func (c *conn) tx(id string) (*transaction, error) {
	t := c.txs[id]
	if t == nil {
		return nil, fmt.Errorf("%w: no open transaction %q", errTransaction, id)
	}
	return t, nil
}

func (c *conn) addOp(t *transaction, op txOp) error {
	if len(t.ops) >= c.srv.cfg.MaxTransactionFrames {
		return fmt.Errorf("%w: more than %d frames in one transaction", errTransaction, c.srv.cfg.MaxTransactionFrames)
	}
	t.ops = append(t.ops, op)
	return nil
}

// onTransaction handles BEGIN, COMMIT and ABORT [STOMP 1.2 "BEGIN"].
func (c *conn) onTransaction(f *frame.Frame) error {
	id, ok := f.Header.Contains(frame.Transaction)
	if !ok || id == "" {
		return fmt.Errorf("%w: %s without transaction", errMissingHeader, f.Command)
	}
	switch f.Command {
	case frame.BEGIN:
		if _, open := c.txs[id]; open {
			return fmt.Errorf("%w: transaction %q already open", errTransaction, id)
		}
		if len(c.txs) >= c.srv.cfg.MaxTransactions {
			return fmt.Errorf("%w: more than %d open transactions", errTransaction, c.srv.cfg.MaxTransactions)
		}
		if c.txs == nil {
			c.txs = make(map[string]*transaction)
		}
		c.txs[id] = &transaction{}
		return nil
	case frame.ABORT:
		if _, err := c.tx(id); err != nil {
			return err
		}
		delete(c.txs, id)
		return nil
	}
	t, err := c.tx(id)
	if err != nil {
		return err
	}
	delete(c.txs, id)
	return c.commit(t)
}

// commit applies a transaction all or nothing: every SEND is checked
// (topic, authorization) before any is published, so a refusal leaves
// nothing applied; then the SENDs and ACK/NACKs are applied in order.
func (c *conn) commit(t *transaction) error {
	info := c.sess.Info()
	var ackIDs []string
	for _, op := range t.ops {
		if op.msg == nil {
			ackIDs = append(ackIDs, op.ack)
			continue
		}
		if err := c.srv.b.CheckTopicName(op.msg.Topic); err != nil {
			return fmt.Errorf("%w: transaction not committed", err)
		}
		if topic.IsSys(op.msg.Topic) || !c.srv.b.Authorize(info, core.Access{Action: core.ActionPublish, Topic: op.msg.Topic, QoS: op.msg.QoS, Retain: op.msg.Retain}) {
			return fmt.Errorf("%w: publish to %q: transaction not committed", core.ErrNotAuthorized, op.msg.Topic)
		}
	}
	// An ACK whose message was settled since (by a later cumulative ACK,
	// or an UNSUBSCRIBE) voids the transaction too.
	if err := c.checkAckIDs(ackIDs); err != nil {
		return fmt.Errorf("%w: transaction not committed", err)
	}
	if c.srv.b.Durable() {
		c.eng.Kick() // Publish may wait for the disk: earlier RECEIPTs go out first
	}
	for _, op := range t.ops {
		if op.msg == nil {
			// Checked above; an id settled by an earlier ACK of this
			// transaction (cumulative) is no error.
			if err := c.settle(op.ack, op.nack, false); err != nil {
				return fmt.Errorf("%w: transaction partly committed", err)
			}
			continue
		}
		op.msg.Arrived = c.eng.Arrived() // published by the COMMIT
		if err := c.sess.Publish(op.msg); err != nil {
			// Checked above; only a concurrent change (an ACL reload)
			// gets here.
			return fmt.Errorf("%w: transaction partly committed", err)
		}
	}
	return nil
}
