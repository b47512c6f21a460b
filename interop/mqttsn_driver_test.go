package interop

// MQTT-SN 1.2 over UDP, driven by the repository's sntest client (there
// is no third-party MQTT-SN client in Go); the driver adds what a real
// client library does on top of it: topic registration, the gateway's
// REGISTER for wildcard matches, acknowledgements at every QoS, and
// discarding a retransmitted QoS 2 PUBLISH it has already taken.

import (
	"net"
	"strings"
	"testing"

	"github.com/iotgw/iotgw/adapters/mqttsn/codec"
	"github.com/iotgw/iotgw/adapters/mqttsn/sntest"
)

// snMaxPayload is the largest MQTT-SN PUBLISH payload that fits one IPv4
// UDP datagram.
const snMaxPayload = udpMaxPayload - snPublishHdr

func protoMQTTSN() *proto {
	return &proto{name: "mqttsn", caps: caps{
		pubQoS:     []int{qosMinus1, 0, 1, 2},
		seesQoS:    true,
		seesRetain: true,
		will:       true,
		maxIn:      func(string, string) int { return snMaxPayload },
		maxOut:     func(string) int { return snMaxPayload },
	}, dial: func(t testing.TB, e *env, id string, w *will) client {
		keepAlive := uint16(300)
		if w != nil && w.KeepAlive > 0 {
			keepAlive = w.KeepAlive
		}
		return dialSN(t, e.gw.MQTTSNAddr(), id, w, keepAlive)
	}}
}

type snClient struct {
	c       *sntest.Client
	pubIDs  map[string]uint16 // topic ids this client registered
	names   map[uint16]string // topic ids the gateway told us (SUBACK, REGISTER)
	pending map[uint16]bool   // inbound QoS 2 ids taken, awaiting PUBREL
}

func dialSN(t testing.TB, addr, id string, w *will, keepAlive uint16) *snClient {
	t.Helper()
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return connectSN(t, sntest.Dial(t, ua), id, w, keepAlive)
}

// connectSN connects c, over whatever datagram transport it runs on
// (UDP, a DTLS session), as id with will w.
func connectSN(t testing.TB, c *sntest.Client, id string, w *will, keepAlive uint16) *snClient {
	t.Helper()
	sc := &snClient{c: c, pubIDs: map[string]uint16{}, names: map[uint16]string{}, pending: map[uint16]bool{}}
	if w == nil {
		sc.c.Connect(id, true, keepAlive)
		return sc
	}
	// The will exchange of §6.3, with the retain flag sntest's
	// ConnectWill leaves out.
	sc.c.ClientID = id
	sc.c.Send(&codec.Connect{Flags: codec.Flags{CleanSession: true, Will: true}, ProtocolID: codec.ProtocolID12,
		Duration: keepAlive, ClientID: id})
	sc.c.Expect(codec.TypeWillTopicReq)
	sc.c.Send(&codec.WillTopic{Kind: codec.TypeWillTopic, Flags: codec.Flags{QoS: w.QoS, Retain: w.Retain}, Topic: w.Topic})
	sc.c.Expect(codec.TypeWillMsgReq)
	sc.c.Send(&codec.WillMsg{Kind: codec.TypeWillMsg, Msg: w.Payload})
	sc.c.ExpectCode(codec.TypeConnack, codec.Accepted)
	return sc
}

func (sc *snClient) Subscribe(t testing.TB, filter string, qos byte) {
	t.Helper()
	ack := sc.c.Subscribe(codec.TopicNormal, filter, 0, qos)
	if ack.Flags.QoS != qos {
		t.Fatalf("mqttsn subscribe %s: granted QoS %d, want %d", filter, ack.Flags.QoS, qos)
	}
	if !strings.ContainsAny(filter, "+#") {
		if ack.TopicID == 0 {
			t.Fatalf("mqttsn subscribe %s: SUBACK without a topic id", filter)
		}
		sc.names[ack.TopicID] = filter
	}
}

// topicID returns the id to publish on topic, registering it first.
func (sc *snClient) topicID(t testing.TB, topic string) uint16 {
	t.Helper()
	id, ok := sc.pubIDs[topic]
	if !ok {
		id = sc.c.Register(topic)
		sc.pubIDs[topic] = id
	}
	return id
}

func (sc *snClient) Publish(t testing.TB, m msg) {
	t.Helper()
	topicID := sc.topicID(t, m.Topic)
	qos := byte(m.QoS)
	if m.QoS == qosMinus1 {
		qos = codec.QoSMinus1
	}
	var id uint16
	if m.QoS == 1 || m.QoS == 2 {
		id = sc.c.NextID()
	}
	p := &codec.Publish{Flags: codec.Flags{QoS: qos, Retain: m.Retain, TopicIDType: codec.TopicNormal},
		TopicID: topicID, MsgID: id, Data: m.Payload}
	sc.c.Send(p)
	switch m.QoS {
	case 1:
		ack := sc.c.ExpectCode(codec.TypePuback, codec.Accepted).(*codec.Puback)
		if ack.MsgID != id {
			t.Fatalf("mqttsn PUBACK for msg id %d, want %d", ack.MsgID, id)
		}
	case 2:
		if rec := sc.c.Expect(codec.TypePubrec).(*codec.MsgIDOnly); rec.MsgID != id {
			t.Fatalf("mqttsn PUBREC for msg id %d, want %d", rec.MsgID, id)
		}
		if m.Retransmit {
			// As if the PUBREC was lost: the same PUBLISH again, DUP set
			// (§6.13); the gateway must not route it twice.
			p.Flags.DUP = true
			sc.c.Send(p)
			if rec := sc.c.Expect(codec.TypePubrec).(*codec.MsgIDOnly); rec.MsgID != id {
				t.Fatalf("mqttsn PUBREC for retransmitted msg id %d, want %d", rec.MsgID, id)
			}
		}
		sc.c.Send(&codec.MsgIDOnly{Kind: codec.TypePubrel, MsgID: id})
		if comp := sc.c.Expect(codec.TypePubcomp).(*codec.MsgIDOnly); comp.MsgID != id {
			t.Fatalf("mqttsn PUBCOMP for msg id %d, want %d", comp.MsgID, id)
		}
	}
}

func (sc *snClient) Next(t testing.TB) delivery {
	t.Helper()
	for {
		switch m := sc.c.Recv().(type) {
		case *codec.Register:
			sc.names[m.TopicID] = m.TopicName
			sc.c.Send(&codec.Regack{TopicID: m.TopicID, MsgID: m.MsgID, Code: codec.Accepted})
		case *codec.Publish:
			name, ok := sc.topicName(m)
			if !ok {
				t.Errorf("mqttsn: PUBLISH on unknown topic id %d (type %d)", m.TopicID, m.Flags.TopicIDType)
				sc.c.Send(&codec.Puback{TopicID: m.TopicID, MsgID: m.MsgID, Code: codec.InvalidTopicID})
				continue
			}
			d := delivery{Topic: name, Payload: m.Data, QoS: int(m.Flags.QoS), Dup: m.Flags.DUP}
			if m.Flags.Retain {
				d.Retain = 1
			}
			switch m.Flags.QoS {
			case 1:
				sc.c.Send(&codec.Puback{TopicID: m.TopicID, MsgID: m.MsgID, Code: codec.Accepted})
			case 2:
				sc.c.Send(&codec.MsgIDOnly{Kind: codec.TypePubrec, MsgID: m.MsgID})
				if sc.pending[m.MsgID] {
					continue // a retransmission of one already taken
				}
				sc.pending[m.MsgID] = true
			}
			return d
		case *codec.MsgIDOnly:
			if m.Kind == codec.TypePubrel {
				delete(sc.pending, m.MsgID)
				sc.c.Send(&codec.MsgIDOnly{Kind: codec.TypePubcomp, MsgID: m.MsgID})
			}
		case *codec.Disconnect:
			t.Fatalf("mqttsn %s: gateway sent DISCONNECT", sc.c.ClientID)
		}
	}
}

func (sc *snClient) topicName(p *codec.Publish) (string, bool) {
	switch p.Flags.TopicIDType {
	case codec.TopicShort:
		return codec.ShortTopicName(p.TopicID), true
	default:
		n, ok := sc.names[p.TopicID]
		return n, ok
	}
}

func (sc *snClient) Close() { sc.c.Send(&codec.Disconnect{}) }

// Kill falls silent: the gateway loses the client after 1.5 × its keep
// alive and publishes the will (§6.3).
func (sc *snClient) Kill(testing.TB) {}
