package mqtt_test

// Helpers of the MQTT 5.0 black-box tests (the v5_*_blackbox_test.go
// files): a paho.golang client that collects what it receives, a raw
// MQTT 5 client built on the codec for what paho cannot express, and a
// small SCRAM-SHA-256 client (RFC 5802, RFC 7677) for enhanced
// authentication. Every identifier here starts with v5 so that the other
// black-box files of the package keep their names.

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"

	"github.com/iotgw/iotgw/adapters/mqtt/codec"
	"github.com/iotgw/iotgw/internal/testutil"
)

// ---------------------------------------------------------------------------
// paho.golang client

// v5Client is a connected paho.golang MQTT 5 client. Every PUBLISH it
// receives goes to msgs in arrival order; a server DISCONNECT goes to discs.
type v5Client struct {
	*paho5.Client
	t     testing.TB
	id    string // the client id in use (the assigned one if the broker chose it)
	ack   *paho5.Connack
	msgs  chan *paho5.Publish
	discs chan *paho5.Disconnect
	errs  chan error
	seq   atomic.Uint64
}

// v5ConnectPacket is a clean-start CONNECT with a unique client id and a
// keep alive that never fires during a test.
func v5ConnectPacket(prefix string) *paho5.Connect {
	return &paho5.Connect{ClientID: uniqueID(prefix), CleanStart: true, KeepAlive: 30}
}

// v5Persistent is a CONNECT for client id with the given Clean Start and
// Session Expiry Interval.
func v5Persistent(id string, cleanStart bool, expiry uint32) *paho5.Connect {
	return &paho5.Connect{ClientID: id, CleanStart: cleanStart, KeepAlive: 30,
		Properties: &paho5.ConnectProperties{SessionExpiryInterval: paho5.Uint32(expiry)}}
}

// v5Connect connects a paho.golang client to g and fails the test if the
// broker does not accept it. cp nil means v5ConnectPacket("v5"); tweak may
// adjust the client configuration (AuthHandler, ...).
func v5Connect(t testing.TB, g *testutil.Gateway, cp *paho5.Connect, tweak func(*paho5.ClientConfig)) *v5Client {
	t.Helper()
	if cp == nil {
		cp = v5ConnectPacket("v5")
	}
	c, ack, err := v5TryConnect(t, g, cp, tweak)
	if err != nil {
		if ack != nil {
			t.Fatalf("paho v5 connect %q: CONNACK reason %#x: %v", cp.ClientID, ack.ReasonCode, err)
		}
		t.Fatalf("paho v5 connect %q: %v", cp.ClientID, err)
	}
	return c
}

// v5TryConnect is v5Connect without the failure: a refused connection
// returns the CONNACK (when there was one) and an error.
func v5TryConnect(t testing.TB, g *testutil.Gateway, cp *paho5.Connect, tweak func(*paho5.ClientConfig)) (*v5Client, *paho5.Connack, error) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", g.MQTTAddr(), waitTimeout)
	if err != nil {
		return nil, nil, err
	}
	return v5TryConnectConn(t, nc, cp, tweak)
}

// v5TryConnectConn is v5TryConnect over a connection already made (TLS,
// WebSocket); its writes must be safe for concurrent use, as paho.golang
// wants (packets.NewThreadSafeConn). It is closed if the CONNECT fails.
func v5TryConnectConn(t testing.TB, nc net.Conn, cp *paho5.Connect, tweak func(*paho5.ClientConfig)) (*v5Client, *paho5.Connack, error) {
	t.Helper()
	c := &v5Client{t: t, id: cp.ClientID,
		msgs:  make(chan *paho5.Publish, 4096),
		discs: make(chan *paho5.Disconnect, 4),
		errs:  make(chan error, 16)}
	cfg := paho5.ClientConfig{
		Conn:          nc,
		PacketTimeout: waitTimeout,
		OnPublishReceived: []func(paho5.PublishReceived) (bool, error){
			func(pr paho5.PublishReceived) (bool, error) {
				c.msgs <- pr.Packet
				return true, nil
			},
		},
		OnServerDisconnect: func(d *paho5.Disconnect) {
			select {
			case c.discs <- d:
			default:
			}
		},
		OnClientError: func(err error) {
			select {
			case c.errs <- err:
			default:
			}
		},
	}
	if tweak != nil {
		tweak(&cfg)
	}
	c.Client = paho5.NewClient(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	ack, err := c.Client.Connect(ctx, cp)
	if err != nil {
		nc.Close()
		return nil, ack, err
	}
	c.ack = ack
	if c.id == "" && ack.Properties != nil {
		c.id = ack.Properties.AssignedClientID
	}
	t.Cleanup(func() { _ = c.Client.Disconnect(&paho5.Disconnect{}) })
	return c, ack, nil
}

// sub subscribes to one filter and checks the granted QoS [MQTT-3.8.4-7].
func (c *v5Client) sub(filter string, qos byte) {
	c.t.Helper()
	sa := c.subscribe(&paho5.Subscribe{Subscriptions: []paho5.SubscribeOptions{{Topic: filter, QoS: qos}}})
	if len(sa.Reasons) != 1 || sa.Reasons[0] != qos {
		c.t.Fatalf("%s subscribe %s: reason codes % x, want granted QoS %d [MQTT-3.8.4-7]", c.id, filter, sa.Reasons, qos)
	}
}

// subscribe sends a SUBSCRIBE and returns the SUBACK, whatever its codes.
func (c *v5Client) subscribe(s *paho5.Subscribe) *paho5.Suback {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	sa, err := c.Subscribe(ctx, s)
	if sa == nil {
		c.t.Fatalf("%s subscribe: %v", c.id, err)
	}
	return sa
}

// pub publishes and returns the broker's response (PUBACK, PUBREC or
// PUBCOMP for QoS 1 and 2), failing only on transport errors.
func (c *v5Client) pub(p *paho5.Publish) *paho5.PublishResponse {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	pr, err := c.Publish(ctx, p)
	if pr == nil {
		c.t.Fatalf("%s publish %s: %v", c.id, p.Topic, err)
	}
	return pr
}

// publish publishes a plain message and fails unless the broker accepts
// it.
func (c *v5Client) publish(topic string, qos byte, retain bool, payload string) {
	c.t.Helper()
	pr := c.pub(&paho5.Publish{Topic: topic, QoS: qos, Retain: retain, Payload: []byte(payload)})
	if pr.ReasonCode >= 0x80 {
		c.t.Fatalf("%s publish %s: reason code %#x", c.id, topic, pr.ReasonCode)
	}
}

// next returns the next message received, failing after waitTimeout.
func (c *v5Client) next() *paho5.Publish {
	c.t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-time.After(waitTimeout):
		c.t.Fatalf("%s: no message within %v", c.id, waitTimeout)
		return nil
	}
}

// untilPayload collects messages up to and including the first whose
// payload is marker and returns those before it. Deliveries to one session
// are ordered, so whatever was routed to it before the marker is in.
func (c *v5Client) untilPayload(marker string) []*paho5.Publish {
	c.t.Helper()
	var got []*paho5.Publish
	for {
		m := c.next()
		if string(m.Payload) == marker {
			return got
		}
		got = append(got, m)
	}
}

// flush subscribes to a topic of its own, publishes a marker there from
// this same connection and returns every message that arrived before the
// marker. The broker handles one connection's packets in order and routes
// a publication before acknowledging it, so anything routed to this client
// by its own earlier packets, or by publications already acknowledged to
// other clients, arrives before the marker.
func (c *v5Client) flush() []*paho5.Publish {
	c.t.Helper()
	topic := fmt.Sprintf("v5flush/%s/%d", c.id, c.seq.Add(1))
	c.sub(topic, 1)
	marker := "flush:" + topic
	c.publish(topic, 1, false, marker)
	return c.untilPayload(marker)
}

// v5Payloads renders messages as "topic=payload" for failure output.
func v5Payloads(ms []*paho5.Publish) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = m.Topic + "=" + string(m.Payload)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// v5WaitConnected waits until exactly n clients are connected to g: the
// way to know the broker has finished with a connection that went away
// (a client's close and the broker's cleanup are not ordered otherwise).
func v5WaitConnected(t testing.TB, g *testutil.Gateway, n int64) {
	t.Helper()
	testutil.Eventually(t, waitTimeout, func() bool { return g.Broker.Stats().ClientsConnected.Load() == n },
		fmt.Sprintf("waiting for %d connected clients", n))
}

// ---------------------------------------------------------------------------
// Raw MQTT 5 client

// v5Raw is a TCP connection speaking MQTT 5 through the codec, for cases
// a client library refuses to produce or hides.
type v5Raw struct{ *rawClient }

func v5DialRaw(t testing.TB, g *testutil.Gateway) *v5Raw {
	t.Helper()
	return &v5Raw{dialRaw(t, g.MQTTAddr())}
}

// send encodes p as MQTT 5 and sends it.
func (r *v5Raw) send(p codec.Packet) {
	r.t.Helper()
	b, err := codec.Append(nil, p, codec.V5)
	if err != nil {
		r.t.Fatalf("encode %s: %v", p.Type(), err)
	}
	r.write(b)
}

// read reads one MQTT 5 packet, waiting at most waitTimeout.
func (r *v5Raw) read() (codec.Packet, error) {
	_ = r.nc.SetReadDeadline(time.Now().Add(waitTimeout))
	p, _, err := codec.ReadPacket(r.br, codec.V5, 0)
	return p, err
}

// expect reads one packet and fails the test if there is none.
func (r *v5Raw) expect(what string) codec.Packet {
	r.t.Helper()
	p, err := r.read()
	if err != nil {
		r.t.Fatalf("%s: reading: %v", what, err)
	}
	return p
}

// v5Expect reads one packet and fails unless it is a T.
func v5Expect[T codec.Packet](r *v5Raw, what string) T {
	r.t.Helper()
	p := r.expect(what)
	v, ok := p.(T)
	if !ok {
		r.t.Fatalf("%s: got %s %+v", what, p.Type(), p)
	}
	return v
}

// connect sends an MQTT 5 CONNECT (a unique client id when c has none)
// and returns the CONNACK.
func (r *v5Raw) connect(c *codec.Connect) *codec.Connack {
	r.t.Helper()
	c.ProtocolLevel = codec.V5
	r.send(c)
	return v5Expect[*codec.Connack](r, "CONNACK")
}

// connectOK connects and fails unless the CONNACK accepts [MQTT-3.1.4-5].
func (r *v5Raw) connectOK(c *codec.Connect) *codec.Connack {
	r.t.Helper()
	ack := r.connect(c)
	if ack.ReasonCode != codec.Success {
		r.t.Fatalf("CONNACK reason %#x (%v), want 0x00 [MQTT-3.1.4-5]", byte(ack.ReasonCode), ack.ReasonCode)
	}
	return ack
}

// v5RawConnect dials g and connects a clean-start client with a unique id
// and keep alive 0; props become the CONNECT properties.
func v5RawConnect(t testing.TB, g *testutil.Gateway, prefix string, props codec.Properties) (*v5Raw, *codec.Connack) {
	t.Helper()
	r := v5DialRaw(t, g)
	ack := r.connectOK(&codec.Connect{ClientID: uniqueID(prefix), CleanStart: true, Props: props})
	return r, ack
}

// subscribe sends one SUBSCRIBE and returns its SUBACK, checking the
// packet identifier [MQTT-3.8.4-2].
func (r *v5Raw) subscribe(id uint16, props codec.Properties, subs ...codec.Subscription) *codec.Suback {
	r.t.Helper()
	r.send(&codec.Subscribe{PacketID: id, Props: props, Subscriptions: subs})
	sa := v5Expect[*codec.Suback](r, "SUBACK")
	if sa.PacketID != id {
		r.t.Fatalf("SUBACK packet id %d, want %d [MQTT-3.8.4-2]", sa.PacketID, id)
	}
	if len(sa.ReasonCodes) != len(subs) {
		r.t.Fatalf("SUBACK has %d reason codes for %d filters [MQTT-3.8.4-6]", len(sa.ReasonCodes), len(subs))
	}
	return sa
}

// nextPublish reads one packet and fails unless it is a PUBLISH.
func (r *v5Raw) nextPublish(what string) *codec.Publish {
	r.t.Helper()
	return v5Expect[*codec.Publish](r, what)
}

// ping sends PINGREQ and returns every PUBLISH that arrives before the
// PINGRESP. The broker queues its packets to a connection in order, so the
// PUBLISH packets returned are all it had decided to send before it
// handled the PINGREQ.
func (r *v5Raw) ping() []*codec.Publish {
	r.t.Helper()
	r.send(&codec.Pingreq{})
	var pubs []*codec.Publish
	for {
		switch p := r.expect("PINGRESP").(type) {
		case *codec.Pingresp:
			return pubs
		case *codec.Publish:
			pubs = append(pubs, p)
		default:
			r.t.Fatalf("waiting for PINGRESP: got %s %+v", p.Type(), p)
		}
	}
}

// readDisconnect reads up to the broker's DISCONNECT, returning it and
// the packets before it, then checks the broker closes the connection
// [MQTT-3.14.4-2] and sent no Session Expiry Interval [MQTT-3.14.2-2].
func (r *v5Raw) readDisconnect(what string) (*codec.Disconnect, []codec.Packet) {
	r.t.Helper()
	var before []codec.Packet
	for {
		p, err := r.read()
		if err != nil {
			r.t.Fatalf("%s: waiting for DISCONNECT: %v (before it: %s)", what, err, v5Types(before))
		}
		d, ok := p.(*codec.Disconnect)
		if !ok {
			before = append(before, p)
			continue
		}
		if d.Props.Has(codec.PropSessionExpiry) {
			r.t.Errorf("%s: server DISCONNECT carries a Session Expiry Interval [MQTT-3.14.2-2]", what)
		}
		r.expectClosed(what + ": after the broker's DISCONNECT [MQTT-3.14.4-2]")
		return d, before
	}
}

// expectDisconnect waits for the broker's DISCONNECT and checks its reason
// code against want, citing rule. Packets before it are returned.
func (r *v5Raw) expectDisconnect(want codec.ReasonCode, rule string) []codec.Packet {
	r.t.Helper()
	d, before := r.readDisconnect(fmt.Sprintf("DISCONNECT %#x %s", byte(want), rule))
	if d.ReasonCode != want {
		r.t.Errorf("DISCONNECT reason %#x (%v), want %#x (%v) %s", byte(d.ReasonCode), d.ReasonCode, byte(want), want, rule)
	}
	return before
}

// expectDisconnectAny waits for the broker's DISCONNECT and returns its
// reason code, for cases where the specification allows several.
func (r *v5Raw) expectDisconnectAny(what string) codec.ReasonCode {
	r.t.Helper()
	d, _ := r.readDisconnect(what)
	return d.ReasonCode
}

// v5Types renders packet types for failure output.
func v5Types(ps []codec.Packet) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = p.Type().String()
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// ---------------------------------------------------------------------------
// SCRAM-SHA-256 client (RFC 5802 without channel binding, RFC 7677)

// v5SCRAM is the client side of one SCRAM-SHA-256 exchange.
type v5SCRAM struct {
	user, password string
	nonce          string
	clientFirst    string // client-first-message-bare
	serverSig      []byte // expected ServerSignature, after final()
}

const v5SCRAMMethod = "SCRAM-SHA-256"

func newV5SCRAM(user, password string) *v5SCRAM {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	return &v5SCRAM{user: user, password: password, nonce: base64.RawStdEncoding.EncodeToString(b)}
}

// first returns client-first-message: GS2 header "n,," (no channel
// binding, no authzid) then "n=user,r=nonce" (RFC 5802 §5.1, §7).
func (s *v5SCRAM) first() []byte {
	name := strings.NewReplacer("=", "=3D", ",", "=2C").Replace(s.user)
	s.clientFirst = "n=" + name + ",r=" + s.nonce
	return []byte("n,," + s.clientFirst)
}

// final answers server-first-message "r=...,s=...,i=..." with
// client-final-message "c=biws,r=...,p=proof" (RFC 5802 §3).
func (s *v5SCRAM) final(serverFirst []byte) ([]byte, error) {
	var nonce, salt64, iters string
	for _, attr := range strings.Split(string(serverFirst), ",") {
		k, v, ok := strings.Cut(attr, "=")
		if !ok {
			return nil, fmt.Errorf("scram: bad server-first attribute %q", attr)
		}
		switch k {
		case "r":
			nonce = v
		case "s":
			salt64 = v
		case "i":
			iters = v
		}
	}
	// RFC 5802 §5.1: the server's nonce starts with the client's.
	if !strings.HasPrefix(nonce, s.nonce) || len(nonce) == len(s.nonce) {
		return nil, fmt.Errorf("scram: server nonce %q does not extend ours %q", nonce, s.nonce)
	}
	salt, err := base64.StdEncoding.DecodeString(salt64)
	if err != nil {
		return nil, fmt.Errorf("scram: salt: %v", err)
	}
	n, err := strconv.Atoi(iters)
	if err != nil || n < 4096 { // RFC 7677 §4: at least 4096 iterations
		return nil, fmt.Errorf("scram: iteration count %q", iters)
	}
	salted, err := pbkdf2.Key(sha256.New, s.password, salt, n, sha256.Size)
	if err != nil {
		return nil, err
	}
	clientKey := v5HMAC(salted, "Client Key")
	storedKey := sha256.Sum256(clientKey)
	withoutProof := "c=" + base64.StdEncoding.EncodeToString([]byte("n,,")) + ",r=" + nonce
	authMessage := s.clientFirst + "," + string(serverFirst) + "," + withoutProof
	clientSig := v5HMAC(storedKey[:], authMessage)
	proof := make([]byte, len(clientKey))
	for i := range proof {
		proof[i] = clientKey[i] ^ clientSig[i]
	}
	s.serverSig = v5HMAC(v5HMAC(salted, "Server Key"), authMessage)
	return []byte(withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof)), nil
}

// verify checks server-final-message "v=ServerSignature" (RFC 5802 §3):
// the server proves it knows the password too.
func (s *v5SCRAM) verify(serverFinal []byte) error {
	v, ok := strings.CutPrefix(string(serverFinal), "v=")
	if !ok {
		return fmt.Errorf("scram: server-final %q has no verifier", serverFinal)
	}
	got, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return fmt.Errorf("scram: verifier: %v", err)
	}
	if s.serverSig == nil || !hmac.Equal(got, s.serverSig) {
		return errors.New("scram: server signature does not match")
	}
	return nil
}

func v5HMAC(key []byte, msg string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msg))
	return h.Sum(nil)
}
