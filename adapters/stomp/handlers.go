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
)

// Errors that end a connection with an ERROR frame.
var (
	errNotConnected       = errors.New("not connected")
	errProtocol           = errors.New("protocol violation")
	errMissingHeader      = errors.New("missing header")
	errVersion            = errors.New("unsupported protocol version")
	errTooManySubs        = errors.New("too many subscriptions")
	errTransaction        = errors.New("bad transaction")
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

// receipt answers a frame's receipt header [STOMP 1.2 "Header receipt"].
func (c *conn) receipt(f *frame.Frame) {
	if r, ok := f.Header.Contains(frame.Receipt); ok {
		c.send(frame.New(frame.RECEIPT, frame.ReceiptId, r))
	}
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
	clientID := newClientID()
	if id, ok := f.Header.Contains(hdrClientID); ok && id != "" {
		clientID = id
	}
	c.clientID = clientID
	c.log = c.log.With(zap.String("client_id", clientID))
	passcode, hasPass := f.Header.Contains(frame.Passcode)
	req := core.ConnectRequest{
		ClientID: clientID, Username: f.Header.Get(frame.Login),
		Protocol: core.ProtoSTOMP, Listener: c.listener, Remote: c.remote,
		CleanStart: true, ReceiveMax: cfg.MaxPendingAcks, Sink: c,
	}
	if hasPass {
		req.Password = []byte(passcode)
	}
	sess, _, err := c.srv.b.Connect(context.Background(), req)
	if err != nil {
		c.log.Info("connect refused", zap.Error(err))
		return c.fail(f, err)
	}
	c.sess = sess
	// Heart-beats [STOMP 1.2 "Heart-beating"]: the server offers to send
	// as often as the client wants and to hear from it as often as it can
	// send, no more often than heartbeat_min; each direction then runs at
	// the larger of the two sides' values, or not at all if either is 0.
	sx, sy := offer(cy, cfg.HeartBeatMin), offer(cx, cfg.HeartBeatMin)
	out, in := agreed(sx, cy), agreed(cx, sy)
	c.mu.Lock()
	c.version = map[string]int{"1.0": 10, "1.1": 11, "1.2": 12}[ver]
	c.mu.Unlock()
	c.rmu.Lock()
	c.rt.v12 = ver == "1.2"
	c.rt.maxQoS0 = cfg.MaxPendingQoS0
	c.rt.maxRedel = cfg.MaxRedeliveries
	c.rmu.Unlock()
	c.connected = true
	c.send(frame.New(frame.CONNECTED,
		frame.Version, ver,
		frame.Server, c.srv.serverName(),
		frame.Session, clientID,
		frame.HeartBeat, fmt.Sprintf("%d,%d", sx.Milliseconds(), sy.Milliseconds())))
	sess.Start()
	if in > 0 {
		c.mr.timeout = time.Duration(float64(in) * cfg.HeartBeatGrace)
	}
	_ = c.nc.SetReadDeadline(time.Time{})
	if out > 0 {
		c.hbOut.Store(int64(out))
		c.signal()
	}
	c.log.Debug("connected", zap.String("version", ver), zap.Duration("heartbeat_in", in), zap.Duration("heartbeat_out", out))
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
	// The RECEIPT (queued by handle after this returns) follows the
	// core's acceptance: Publish has routed the message by then.
	return c.sess.Publish(msg)
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
	c.rmu.Lock()
	if _, dup := c.rt.subs[id]; dup {
		c.rmu.Unlock()
		return fmt.Errorf("%w: subscription id %q already in use", errProtocol, id)
	}
	if len(c.rt.subs) >= c.srv.cfg.MaxSubscriptions {
		c.rmu.Unlock()
		return fmt.Errorf("%w: limit %d", errTooManySubs, c.srv.cfg.MaxSubscriptions)
	}
	g := c.rt.add(s)
	num, qos := g.num, g.maxQoS()
	c.rmu.Unlock()
	res := c.sess.Subscribe(dest, core.SubOptions{QoS: qos, ID: num})
	if res.Err != nil {
		c.rmu.Lock()
		acks, _ := c.rt.remove(s)
		c.rmu.Unlock()
		c.ackAll(acks)
		return res.Err
	}
	// The RECEIPT goes out before the retained messages.
	c.receipt(f)
	f.Header.Del(frame.Receipt)
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
	c.rmu.Lock()
	s := c.rt.subs[id]
	if s == nil {
		c.rmu.Unlock()
		return nil // nothing to do: unsubscribing twice is harmless
	}
	acks, empty := c.rt.remove(s)
	g := s.g
	qos := g.maxQoS()
	c.rmu.Unlock()
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
		return c.addOp(t, txOp{ack: id, nack: nack})
	}
	c.settle(id, nack)
	return nil
}

// settle applies an ACK or NACK and tells the core.
func (c *conn) settle(id string, nack bool) {
	c.rmu.Lock()
	res := c.rt.settle(id, nack)
	c.rmu.Unlock()
	if !res.found {
		// Already settled, a QoS 0 message long forgotten, or never sent:
		// nothing to do, and no reason to end the connection.
		if ce := c.log.Check(zap.DebugLevel, "ack of unknown message-id"); ce != nil {
			ce.Write(zap.String("id", id), zap.Bool("nack", nack))
		}
		return
	}
	c.ackAll(res.acks)
	for _, did := range res.redeliver {
		c.sess.Redeliver(did)
	}
	if res.dropped > 0 {
		c.srv.dropped.Add(uint64(res.dropped))
		c.log.Info("message dropped after too many redeliveries",
			zap.Int("max_redeliveries", c.srv.cfg.MaxRedeliveries), zap.Int("count", res.dropped))
	}
}

func (c *conn) ackAll(ids []uint16) {
	for _, id := range ids {
		c.sess.Acked(id)
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
	for _, op := range t.ops {
		if op.msg == nil {
			continue
		}
		if err := c.srv.b.CheckTopicName(op.msg.Topic); err != nil {
			return fmt.Errorf("%w: transaction not committed", err)
		}
		if isSysTopic(op.msg.Topic) || !c.srv.b.Authorize(info, core.ActionPublish, op.msg.Topic) {
			return fmt.Errorf("%w: publish to %q: transaction not committed", core.ErrNotAuthorized, op.msg.Topic)
		}
	}
	for _, op := range t.ops {
		if op.msg == nil {
			c.settle(op.ack, op.nack)
			continue
		}
		if err := c.sess.Publish(op.msg); err != nil {
			// Checked above; only a concurrent change (an ACL reload)
			// gets here.
			return fmt.Errorf("%w: transaction partly committed", err)
		}
	}
	return nil
}

// isSysTopic mirrors the core's refusal of client publications to $SYS.
func isSysTopic(t string) bool { return t == "$SYS" || strings.HasPrefix(t, "$SYS/") }
