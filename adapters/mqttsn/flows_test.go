package mqttsn_test

import (
	"net"
	"testing"
	"time"

	"github.com/iotgw/iotgw/adapters/mqttsn/codec"
	"github.com/iotgw/iotgw/adapters/mqttsn/sntest"
)

func TestSearchGWAndAdvertise(t *testing.T) {
	t.Parallel()
	listener, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close()
	cfg := testConfig()
	cfg.GatewayID = 42
	cfg.AdvertiseInterval = 1
	cfg.AdvertiseAddress = listener.LocalAddr().String()
	g := startGateway(t, cfg)

	c := sntest.Dial(t, g.snAddr)
	c.Send(&codec.SearchGW{Radius: 1})
	if gw := c.Expect(codec.TypeGWInfo).(*codec.GWInfo); gw.GatewayID != 42 || gw.GatewayAddr != nil {
		t.Fatalf("GWINFO %+v", gw)
	}

	_ = listener.SetReadDeadline(time.Now().Add(waitTimeout))
	buf := make([]byte, 64)
	n, err := listener.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	m, err := codec.Decode(buf[:n])
	if err != nil {
		t.Fatal(err)
	}
	// Duration is the interval in seconds (§5.4.1), not milliseconds.
	if a, ok := m.(*codec.Advertise); !ok || a.GatewayID != 42 || a.Duration != 1 {
		t.Fatalf("ADVERTISE %#v", m)
	}
}

func TestPublishEachQoSIntoMQTT(t *testing.T) {
	t.Parallel()
	g := startGateway(t, testConfig())
	p := connectPaho(t, g)
	p.sub("sn/#", 2)

	c := sntest.Dial(t, g.snAddr)
	c.Connect(uniqueID("pub"), true, 60)
	id := c.Register("sn/a")
	if again := c.Register("sn/a"); again != id {
		t.Fatalf("REGISTER again gave id %d, want %d", again, id)
	}
	for qos := byte(0); qos <= 2; qos++ {
		c.Publish(codec.TopicNormal, id, qos, false, "q"+string('0'+qos))
		p.expect("sn/a", "q"+string('0'+qos), qos, false)
	}
	// A repeated QoS 2 PUBLISH (lost PUBREC) is not routed twice.
	c.Send(&codec.Publish{Flags: codec.Flags{QoS: 2}, TopicID: id, MsgID: 77, Data: []byte("once")})
	c.Expect(codec.TypePubrec)
	c.Send(&codec.Publish{Flags: codec.Flags{QoS: 2, DUP: true}, TopicID: id, MsgID: 77, Data: []byte("once")})
	c.Expect(codec.TypePubrec)
	c.Send(&codec.MsgIDOnly{Kind: codec.TypePubrel, MsgID: 77})
	c.Expect(codec.TypePubcomp)
	p.expect("sn/a", "once", 2, false)
	c.Publish(codec.TopicNormal, id, 0, false, "after")
	p.expect("sn/a", "after", 0, false)

	// Wildcards are refused in REGISTER.
	c.Send(&codec.Register{MsgID: c.NextID(), TopicName: "sn/+"})
	c.ExpectCode(codec.TypeRegack, codec.NotSupported)
}

func TestMQTTIntoSNViaWildcard(t *testing.T) {
	t.Parallel()
	g := startGateway(t, testConfig())
	p := connectPaho(t, g)
	c := sntest.Dial(t, g.snAddr)
	c.Connect(uniqueID("sub"), true, 60)

	if ack := c.Subscribe(codec.TopicNormal, "dev/+", 0, 2); ack.TopicID != 0 || ack.Flags.QoS != 2 {
		t.Fatalf("wildcard SUBACK %+v: want topic id 0x0000, QoS 2", ack)
	}
	p.pub("dev/x", 1, false, "one")
	id := c.AcceptRegister("dev/x") // REGISTER precedes the first PUBLISH (§6.10)
	pub := c.ExpectPublish("one")
	if pub.TopicID != id || pub.Flags.TopicIDType != codec.TopicNormal || pub.Flags.QoS != 1 || pub.MsgID == 0 {
		t.Fatalf("PUBLISH %+v, want topic id %d QoS 1", pub, id)
	}
	c.Ack(pub)

	// Known now: no second REGISTER. QoS 2 runs its four-way exchange.
	p.pub("dev/x", 2, false, "two")
	pub = c.ExpectPublish("two")
	if pub.TopicID != id || pub.Flags.QoS != 2 {
		t.Fatalf("PUBLISH %+v", pub)
	}
	c.Ack(pub)

	// A plain name gets its topic id in SUBACK and is used directly.
	ack := c.Subscribe(codec.TopicNormal, "plain/t", 0, 0)
	if ack.TopicID == 0 {
		t.Fatal("plain-name SUBACK without a topic id")
	}
	p.pub("plain/t", 0, false, "zero")
	if pub := c.ExpectPublish("zero"); pub.TopicID != ack.TopicID || pub.MsgID != 0 || pub.Flags.QoS != 0 {
		t.Fatalf("PUBLISH %+v, want topic id %d QoS 0", pub, ack.TopicID)
	}

	// Unsubscribed: nothing more arrives.
	c.Send(&codec.Subscribe{Kind: codec.TypeUnsubscribe, MsgID: c.NextID(), TopicName: "plain/t"})
	c.Expect(codec.TypeUnsuback)
	p.pub("plain/t", 0, false, "gone")
	p.pub("dev/x", 0, false, "marker")
	c.ExpectPublish("marker")
}

func TestRetransmissionWithDup(t *testing.T) {
	t.Parallel()
	g := startGateway(t, testConfig())
	p := connectPaho(t, g)
	c := sntest.Dial(t, g.snAddr)
	c.Connect(uniqueID("rt"), true, 60)
	ack := c.Subscribe(codec.TopicNormal, "rt/t", 0, 1)
	p.pub("rt/t", 1, false, "again")
	first := c.ExpectPublish("again")
	if first.Flags.DUP {
		t.Fatal("first transmission has DUP")
	}
	// Not acknowledged: resent after Tretry with DUP set (§6.13).
	second := c.ExpectPublish("again")
	if !second.Flags.DUP || second.MsgID != first.MsgID || second.TopicID != ack.TopicID {
		t.Fatalf("retransmission %+v of %+v", second, first)
	}
	c.Ack(second)
	p.pub("rt/t", 1, false, "next")
	c.Ack(c.ExpectPublish("next"))
}

func TestRetainedBothWays(t *testing.T) {
	t.Parallel()
	g := startGateway(t, testConfig())
	p := connectPaho(t, g)
	c := sntest.Dial(t, g.snAddr)
	c.Connect(uniqueID("ret"), true, 60)

	id := c.Register("ret/sn")
	c.Publish(codec.TopicNormal, id, 1, true, "from-sn")
	p.sub("ret/sn", 1)
	p.expect("ret/sn", "from-sn", 1, true)

	p.pub("ret/mq", 1, true, "from-mqtt")
	ack := c.Subscribe(codec.TopicNormal, "ret/mq", 0, 1)
	pub := c.ExpectPublish("from-mqtt") // after SUBACK, with RETAIN
	if !pub.Flags.Retain || pub.TopicID != ack.TopicID {
		t.Fatalf("retained PUBLISH %+v", pub)
	}
	c.Ack(pub)

	// Through a wildcard: REGISTER first, then the retained message.
	p.pub("ret2/x", 1, true, "wild") // QoS 1: stored once acknowledged
	c.Subscribe(codec.TopicNormal, "ret2/+", 0, 0)
	rid := c.AcceptRegister("ret2/x")
	if pub := c.ExpectPublish("wild"); !pub.Flags.Retain || pub.TopicID != rid {
		t.Fatalf("retained PUBLISH %+v after REGISTER of id %d", pub, rid)
	}
}

func TestShortAndPredefinedTopics(t *testing.T) {
	t.Parallel()
	g := startGateway(t, testConfig())
	p := connectPaho(t, g)
	p.sub("pre/#", 1)
	p.sub("ab", 1)
	c := sntest.Dial(t, g.snAddr)
	c.Connect(uniqueID("pre"), true, 60)

	c.Publish(codec.TopicPredefined, 1, 1, false, "p1")
	p.expect("pre/one", "p1", 1, false)
	c.Publish(codec.TopicShort, codec.ShortTopicID("ab"), 1, false, "short")
	p.expect("ab", "short", 1, false)

	if ack := c.Subscribe(codec.TopicPredefined, "", 2, 1); ack.TopicID != 2 {
		t.Fatalf("predefined SUBACK %+v", ack)
	}
	p.pub("pre/two", 1, false, "to-sn")
	pub := c.ExpectPublish("to-sn")
	if pub.Flags.TopicIDType != codec.TopicPredefined || pub.TopicID != 2 {
		t.Fatalf("PUBLISH %+v: want predefined id 2 without REGISTER", pub)
	}
	c.Ack(pub)

	c.Subscribe(codec.TopicShort, "cd", 0, 0)
	p.pub("cd", 0, false, "short-to-sn")
	pub = c.ExpectPublish("short-to-sn")
	if pub.Flags.TopicIDType != codec.TopicShort || codec.ShortTopicName(pub.TopicID) != "cd" {
		t.Fatalf("PUBLISH %+v: want short name cd", pub)
	}

	// An unknown predefined id is refused in SUBSCRIBE.
	c.Send(&codec.Subscribe{Kind: codec.TypeSubscribe, Flags: codec.Flags{TopicIDType: codec.TopicPredefined}, MsgID: c.NextID(), TopicID: 99})
	c.ExpectCode(codec.TypeSuback, codec.InvalidTopicID)
}

func TestUnknownTopicID(t *testing.T) {
	t.Parallel()
	g := startGateway(t, testConfig())
	c := sntest.Dial(t, g.snAddr)
	c.Connect(uniqueID("unk"), true, 60)
	for _, f := range []codec.Flags{{QoS: 1}, {QoS: 0}, {QoS: 2}, {QoS: 1, TopicIDType: codec.TopicPredefined}} {
		c.Send(&codec.Publish{Flags: f, TopicID: 999, MsgID: 5, Data: []byte("x")})
		ack := c.ExpectCode(codec.TypePuback, codec.InvalidTopicID).(*codec.Puback)
		if ack.TopicID != 999 || ack.MsgID != 5 {
			t.Fatalf("PUBACK %+v", ack)
		}
	}
}

func TestQoSMinus1(t *testing.T) {
	t.Parallel()
	g := startGateway(t, testConfig())
	p := connectPaho(t, g)
	p.sub("pre/one", 1)
	p.sub("qm", 1)
	c := sntest.Dial(t, g.snAddr) // never connects (§6.8)
	c.Send(&codec.Publish{Flags: codec.Flags{QoS: codec.QoSMinus1, TopicIDType: codec.TopicPredefined}, TopicID: 1, Data: []byte("m1")})
	p.expect("pre/one", "m1", 0, false)
	c.Send(&codec.Publish{Flags: codec.Flags{QoS: codec.QoSMinus1, TopicIDType: codec.TopicShort}, TopicID: codec.ShortTopicID("qm"), Data: []byte("m2")})
	p.expect("qm", "m2", 0, false)
	c.Send(&codec.Publish{Flags: codec.Flags{QoS: codec.QoSMinus1, TopicIDType: codec.TopicPredefined}, TopicID: 77, Data: []byte("m3")})
	c.ExpectCode(codec.TypePuback, codec.InvalidTopicID)

	cfg := testConfig()
	cfg.QoSMinus1 = false
	g2 := startGateway(t, cfg)
	c2 := sntest.Dial(t, g2.snAddr)
	c2.Send(&codec.Publish{Flags: codec.Flags{QoS: codec.QoSMinus1, TopicIDType: codec.TopicPredefined}, TopicID: 1, Data: []byte("no")})
	c2.ExpectCode(codec.TypePuback, codec.NotSupported)
}
