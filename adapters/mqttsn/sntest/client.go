// Package sntest is a small MQTT-SN 1.2 client for tests: it speaks the
// codec over a real UDP socket and fails the test on anything unexpected.
package sntest

import (
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/iotgw/iotgw/adapters/mqttsn/codec"
)

// Timeout bounds every wait for a message that must arrive. It is
// generous; a passing test never waits for it.
const Timeout = 10 * time.Second

// Client is one MQTT-SN client socket. Forwarder, when set, wraps every
// message in a forwarder encapsulation with that wireless node id and
// unwraps replies (§5.5).
type Client struct {
	t         testing.TB
	conn      net.Conn
	udp       bool // a UDP socket: read errors such as ICMP unreachable pass
	in        chan []byte
	msgID     uint16
	Forwarder []byte
	ClientID  string
}

// Dial opens a client socket towards the gateway at addr; it is closed
// when the test ends.
func Dial(t testing.TB, addr net.Addr) *Client {
	t.Helper()
	ua, err := net.ResolveUDPAddr("udp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialUDP("udp", nil, ua)
	if err != nil {
		t.Fatal(err)
	}
	c := &Client{t: t, conn: conn, udp: true, in: make(chan []byte, 256)}
	go c.readLoop()
	t.Cleanup(func() { conn.Close() })
	return c
}

// New runs the client over conn, a datagram connection such as a DTLS
// session (each Read one message); conn is closed when the test ends.
func New(t testing.TB, conn net.Conn) *Client {
	c := &Client{t: t, conn: conn, in: make(chan []byte, 256)}
	go c.readLoop()
	t.Cleanup(func() { conn.Close() })
	return c
}

// LocalAddr is the client's own address.
func (c *Client) LocalAddr() net.Addr { return c.conn.LocalAddr() }

func (c *Client) readLoop() {
	buf := make([]byte, 65536)
	for {
		n, err := c.conn.Read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || !c.udp {
				close(c.in)
				return
			}
			continue // ICMP port unreachable and the like
		}
		c.in <- append([]byte(nil), buf[:n]...)
	}
}

// NextID returns a fresh message id.
func (c *Client) NextID() uint16 {
	c.msgID++
	if c.msgID == 0 {
		c.msgID = 1
	}
	return c.msgID
}

// Send encodes and sends a message.
func (c *Client) Send(m codec.Message) {
	c.t.Helper()
	raw, err := codec.Encode(m)
	if err != nil {
		c.t.Fatalf("encode %s: %v", m.Type(), err)
	}
	c.SendRaw(raw)
}

// SendRaw sends bytes as they are (wrapped when Forwarder is set).
func (c *Client) SendRaw(raw []byte) {
	c.t.Helper()
	if c.Forwarder != nil {
		var err error
		raw, err = codec.Encode(&codec.Encapsulated{NodeID: c.Forwarder, Inner: raw})
		if err != nil {
			c.t.Fatal(err)
		}
	}
	if _, err := c.conn.Write(raw); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// Recv returns the next message, failing the test after Timeout.
func (c *Client) Recv() codec.Message {
	c.t.Helper()
	m, err := c.recv(Timeout)
	if err != nil {
		c.t.Fatalf("%s: %v", c.ClientID, err)
	}
	return m
}

func (c *Client) recv(d time.Duration) (codec.Message, error) {
	select {
	case raw, ok := <-c.in:
		if !ok {
			return nil, errors.New("socket closed")
		}
		m, err := codec.Decode(raw)
		if err != nil {
			return nil, fmt.Errorf("gateway sent undecodable % X: %w", raw, err)
		}
		if e, ok := m.(*codec.Encapsulated); ok {
			if c.Forwarder == nil || string(e.NodeID) != string(c.Forwarder) {
				return nil, fmt.Errorf("unexpected encapsulation for node % X", e.NodeID)
			}
			return codec.Decode(e.Inner)
		}
		if c.Forwarder != nil {
			return nil, fmt.Errorf("reply %s not encapsulated", m.Type())
		}
		return m, nil
	case <-time.After(d):
		return nil, fmt.Errorf("nothing received within %v", d)
	}
}

// Quiet fails the test if a message arrives within d.
func (c *Client) Quiet(d time.Duration) {
	c.t.Helper()
	if m, err := c.recv(d); err == nil {
		c.t.Fatalf("%s: unexpected %s %+v", c.ClientID, m.Type(), m)
	}
}

// Expect returns the next message, which must be of type t.
func (c *Client) Expect(t codec.Type) codec.Message {
	c.t.Helper()
	m := c.Recv()
	if m.Type() != t {
		c.t.Fatalf("%s: got %s %+v, want %s", c.ClientID, m.Type(), m, t)
	}
	return m
}

// ExpectCode receives a message of type t and checks its return code.
func (c *Client) ExpectCode(t codec.Type, want codec.ReturnCode) codec.Message {
	c.t.Helper()
	m := c.Expect(t)
	var got codec.ReturnCode
	switch m := m.(type) {
	case *codec.ReturnOnly:
		got = m.Code
	case *codec.Regack:
		got = m.Code
	case *codec.Puback:
		got = m.Code
	case *codec.Suback:
		got = m.Code
	}
	if got != want {
		c.t.Fatalf("%s: %s return code 0x%02X (%v), want 0x%02X", c.ClientID, t, byte(got), got, byte(want))
	}
	return m
}

// Connect sends CONNECT without a will and expects an accepting CONNACK.
func (c *Client) Connect(clientID string, clean bool, keepAlive uint16) {
	c.t.Helper()
	c.ClientID = clientID
	c.Send(&codec.Connect{Flags: codec.Flags{CleanSession: clean}, ProtocolID: codec.ProtocolID12,
		Duration: keepAlive, ClientID: clientID})
	c.ExpectCode(codec.TypeConnack, codec.Accepted)
}

// ConnectWill connects with a will through the WILLTOPICREQ/WILLMSGREQ
// exchange (§6.3).
func (c *Client) ConnectWill(clientID string, keepAlive uint16, willTopic string, willQoS byte, willMsg string) {
	c.t.Helper()
	c.ClientID = clientID
	c.Send(&codec.Connect{Flags: codec.Flags{CleanSession: true, Will: true}, ProtocolID: codec.ProtocolID12,
		Duration: keepAlive, ClientID: clientID})
	c.Expect(codec.TypeWillTopicReq)
	c.Send(&codec.WillTopic{Kind: codec.TypeWillTopic, Flags: codec.Flags{QoS: willQoS}, Topic: willTopic})
	c.Expect(codec.TypeWillMsgReq)
	c.Send(&codec.WillMsg{Kind: codec.TypeWillMsg, Msg: []byte(willMsg)})
	c.ExpectCode(codec.TypeConnack, codec.Accepted)
}

// Register registers a topic name and returns its id.
func (c *Client) Register(name string) uint16 {
	c.t.Helper()
	id := c.NextID()
	c.Send(&codec.Register{MsgID: id, TopicName: name})
	ack := c.ExpectCode(codec.TypeRegack, codec.Accepted).(*codec.Regack)
	if ack.MsgID != id || ack.TopicID == 0 {
		c.t.Fatalf("REGACK %+v for msg id %d", ack, id)
	}
	return ack.TopicID
}

// Subscribe subscribes and returns the SUBACK, which must accept.
func (c *Client) Subscribe(idType byte, name string, topicID uint16, qos byte) *codec.Suback {
	c.t.Helper()
	id := c.NextID()
	c.Send(&codec.Subscribe{Kind: codec.TypeSubscribe, Flags: codec.Flags{QoS: qos, TopicIDType: idType},
		MsgID: id, TopicName: name, TopicID: topicID})
	ack := c.ExpectCode(codec.TypeSuback, codec.Accepted).(*codec.Suback)
	if ack.MsgID != id {
		c.t.Fatalf("SUBACK msg id %d, want %d", ack.MsgID, id)
	}
	return ack
}

// Publish publishes and completes the QoS 1 or 2 exchange.
func (c *Client) Publish(idType byte, topicID uint16, qos byte, retain bool, data string) {
	c.t.Helper()
	var id uint16
	if qos == 1 || qos == 2 {
		id = c.NextID()
	}
	c.Send(&codec.Publish{Flags: codec.Flags{QoS: qos, Retain: retain, TopicIDType: idType},
		TopicID: topicID, MsgID: id, Data: []byte(data)})
	switch qos {
	case 1:
		ack := c.ExpectCode(codec.TypePuback, codec.Accepted).(*codec.Puback)
		if ack.MsgID != id {
			c.t.Fatalf("PUBACK msg id %d, want %d", ack.MsgID, id)
		}
	case 2:
		if rec := c.Expect(codec.TypePubrec).(*codec.MsgIDOnly); rec.MsgID != id {
			c.t.Fatalf("PUBREC msg id %d, want %d", rec.MsgID, id)
		}
		c.Send(&codec.MsgIDOnly{Kind: codec.TypePubrel, MsgID: id})
		if comp := c.Expect(codec.TypePubcomp).(*codec.MsgIDOnly); comp.MsgID != id {
			c.t.Fatalf("PUBCOMP msg id %d, want %d", comp.MsgID, id)
		}
	}
}

// ExpectPublish receives a PUBLISH and checks its payload.
func (c *Client) ExpectPublish(data string) *codec.Publish {
	c.t.Helper()
	p := c.Expect(codec.TypePublish).(*codec.Publish)
	if string(p.Data) != data {
		c.t.Fatalf("%s: PUBLISH payload %q, want %q", c.ClientID, p.Data, data)
	}
	return p
}

// Ack completes a received PUBLISH at its QoS.
func (c *Client) Ack(p *codec.Publish) {
	c.t.Helper()
	switch p.Flags.QoS {
	case 1:
		c.Send(&codec.Puback{TopicID: p.TopicID, MsgID: p.MsgID})
	case 2:
		c.Send(&codec.MsgIDOnly{Kind: codec.TypePubrec, MsgID: p.MsgID})
		rel := c.Expect(codec.TypePubrel).(*codec.MsgIDOnly)
		if rel.MsgID != p.MsgID {
			c.t.Fatalf("PUBREL msg id %d, want %d", rel.MsgID, p.MsgID)
		}
		c.Send(&codec.MsgIDOnly{Kind: codec.TypePubcomp, MsgID: p.MsgID})
	}
}

// AcceptRegister receives a gateway REGISTER for name, acknowledges it
// and returns the topic id.
func (c *Client) AcceptRegister(name string) uint16 {
	c.t.Helper()
	r := c.Expect(codec.TypeRegister).(*codec.Register)
	if r.TopicName != name || r.TopicID == 0 {
		c.t.Fatalf("%s: REGISTER %+v, want topic %q", c.ClientID, r, name)
	}
	c.Send(&codec.Regack{TopicID: r.TopicID, MsgID: r.MsgID})
	return r.TopicID
}
