package mqttsn_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/iotgw/iotgw/adapters/mqttsn"
	"github.com/iotgw/iotgw/adapters/mqttsn/codec"
	"github.com/iotgw/iotgw/adapters/mqttsn/sntest"
	"github.com/iotgw/iotgw/core"
	"github.com/iotgw/iotgw/internal/testutil"
)

func TestWillOnSilenceAndUpdates(t *testing.T) {
	t.Parallel()
	g := startGateway(t, testConfig())
	p := connectPaho(t, g)
	p.sub("will/#", 1)

	// A clean DISCONNECT publishes no will.
	c1 := sntest.Dial(t, g.snAddr)
	c1.ConnectWill(uniqueID("w"), 60, "will/clean", 1, "never")
	c1.Send(&codec.Disconnect{})
	c1.Expect(codec.TypeDisconnect)

	// Silence for 1.5 × Duration publishes the (updated) will.
	c := sntest.Dial(t, g.snAddr)
	c.ConnectWill(uniqueID("w"), 1, "will/old", 0, "old")
	c.Send(&codec.WillTopic{Kind: codec.TypeWillTopicUpd, Flags: codec.Flags{QoS: 1, Retain: true}, Topic: "will/new"})
	c.ExpectCode(codec.TypeWillTopicResp, codec.Accepted)
	c.Send(&codec.WillMsg{Kind: codec.TypeWillMsgUpd, Msg: []byte("gone")})
	c.ExpectCode(codec.TypeWillMsgResp, codec.Accepted)
	start := time.Now()
	p.expect("will/new", "gone", 1, false) // retained, but live to an existing subscription
	if time.Since(start) < time.Second {
		t.Fatalf("will after %v of silence, before 1.5 × Duration", time.Since(start))
	}
	// The lost client is told, in case it is still listening.
	c.Expect(codec.TypeDisconnect)

	// WILLMSGUPD without a will is refused; an empty WILLTOPICUPD
	// deletes the will.
	c3 := sntest.Dial(t, g.snAddr)
	c3.Connect(uniqueID("w"), true, 60)
	c3.Send(&codec.WillMsg{Kind: codec.TypeWillMsgUpd, Msg: []byte("x")})
	c3.ExpectCode(codec.TypeWillMsgResp, codec.NotSupported)
	c3.Send(&codec.WillTopic{Kind: codec.TypeWillTopicUpd})
	c3.ExpectCode(codec.TypeWillTopicResp, codec.Accepted)
}

func TestSleepingClient(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.RetryInterval = 5 * time.Second // no retransmission while the test holds an ack back
	g := startGateway(t, cfg)
	p := connectPaho(t, g)
	id := uniqueID("sleepy")
	c := sntest.Dial(t, g.snAddr)
	c.Connect(id, false, 60)
	plain := c.Subscribe(codec.TopicNormal, "sl/t", 0, 1)
	c.Subscribe(codec.TopicNormal, "sw/+", 0, 0)

	c.Send(&codec.Disconnect{HasDuration: true, Duration: 60})
	c.Expect(codec.TypeDisconnect)
	p.pub("sl/t", 1, false, "buffered-1")
	p.pub("sw/x", 0, false, "buffered-0")
	c.Quiet(200 * time.Millisecond) // asleep: nothing is sent

	// It wakes from another port (NAT rebinding) with PINGREQ.
	w := sntest.Dial(t, g.snAddr)
	w.ClientID = id
	w.Send(&codec.Pingreq{ClientID: id})
	pub := w.ExpectPublish("buffered-1")
	if pub.TopicID != plain.TopicID || pub.Flags.QoS != 1 {
		t.Fatalf("PUBLISH %+v", pub)
	}
	w.AcceptRegister("sw/x") // the wildcard topic is registered first
	w.ExpectPublish("buffered-0")
	// PINGRESP waits for the acknowledgement of the QoS 1 message.
	w.Quiet(400 * time.Millisecond)
	w.Ack(pub)
	w.Expect(codec.TypePingresp)

	// Asleep again: buffered once more, and not resent on the next wake.
	p.pub("sl/t", 1, false, "buffered-2")
	w.Quiet(200 * time.Millisecond)
	w.Send(&codec.Pingreq{ClientID: id})
	pub = w.ExpectPublish("buffered-2")
	w.Ack(pub)
	w.Expect(codec.TypePingresp)
	w.Send(&codec.Pingreq{ClientID: id})
	w.Expect(codec.TypePingresp)

	// CONNECT brings it back to active with its session.
	w.Send(&codec.Connect{ProtocolID: 1, Duration: 60, ClientID: id})
	w.ExpectCode(codec.TypeConnack, codec.Accepted)
	p.pub("sl/t", 0, false, "active")
	w.ExpectPublish("active")
}

func TestSleepTooLongIsLost(t *testing.T) {
	t.Parallel()
	g := startGateway(t, testConfig())
	p := connectPaho(t, g)
	p.sub("lost/#", 0)
	c := sntest.Dial(t, g.snAddr)
	c.ConnectWill(uniqueID("nap"), 60, "lost/will", 0, "overslept")
	c.Send(&codec.Disconnect{HasDuration: true, Duration: 1})
	c.Expect(codec.TypeDisconnect)
	p.expect("lost/will", "overslept", 0, false)
}

func TestReconnectFromNewAddressKeepsSession(t *testing.T) {
	t.Parallel()
	g := startGateway(t, testConfig())
	p := connectPaho(t, g)
	id := uniqueID("nat")
	a := sntest.Dial(t, g.snAddr)
	a.Connect(id, false, 60)
	ack := a.Subscribe(codec.TopicNormal, "nat/t", 0, 1)
	pubID := a.Register("nat/up")

	b := sntest.Dial(t, g.snAddr) // the NAT gave the client a new port
	b.Connect(id, false, 60)
	p.pub("nat/t", 1, false, "moved")
	pub := b.ExpectPublish("moved")
	if pub.TopicID != ack.TopicID {
		t.Fatalf("topic id %d after rebinding, want %d from the session's registry", pub.TopicID, ack.TopicID)
	}
	b.Ack(pub)
	p.sub("nat/up", 0)
	b.Publish(codec.TopicNormal, pubID, 0, false, "still-registered")
	p.expect("nat/up", "still-registered", 0, false)

	// After a clean DISCONNECT the persistent session and its registry stay.
	b.Send(&codec.Disconnect{})
	b.Expect(codec.TypeDisconnect)
	p.pub("nat/t", 1, false, "queued")
	c := sntest.Dial(t, g.snAddr)
	c.Connect(id, false, 60)
	queued := c.ExpectPublish("queued")
	if queued.TopicID != ack.TopicID {
		// The registry is the session's adapter state, kept by the core
		// while the client is away (with or without a store).
		t.Fatalf("topic id %d after a reconnect, want %d from the session's registry", queued.TopicID, ack.TopicID)
	}
	c.Ack(queued)

	// A client the gateway does not know is told to connect again.
	u := sntest.Dial(t, g.snAddr)
	u.Send(&codec.Pingreq{ClientID: "nobody"})
	u.Expect(codec.TypeDisconnect)
	u.Send(&codec.Publish{Flags: codec.Flags{QoS: 1}, TopicID: 1, MsgID: 1})
	u.Expect(codec.TypeDisconnect)
}

// passwords accepts user "u" with password "p" and clients without a
// username whose id starts with "anon".
type passwords struct{}

func (passwords) Authenticate(_ context.Context, c *core.ClientInfo) error {
	if c.Username == "u" && string(c.Password) == "p" {
		return nil
	}
	if c.Username == "" && strings.HasPrefix(c.ClientID, "anon") {
		return nil
	}
	return errors.New("bad credentials: " + core.ErrBadCredentials.Error())
}

func TestAuthExtension(t *testing.T) {
	t.Parallel()
	g := startGateway(t, testConfig(), core.WithAuthenticator(passwords{}))
	auth := func(c *sntest.Client, user, pass string) {
		c.Send(&codec.Auth{Method: "PLAIN", Data: []byte("\x00" + user + "\x00" + pass)})
	}
	ok := sntest.Dial(t, g.snAddr)
	auth(ok, "u", "p")
	ok.Connect(uniqueID("user"), true, 60)

	bad := sntest.Dial(t, g.snAddr)
	auth(bad, "u", "wrong")
	bad.Send(&codec.Connect{Flags: codec.Flags{CleanSession: true}, ProtocolID: 1, Duration: 60, ClientID: uniqueID("user")})
	bad.ExpectCode(codec.TypeConnack, codec.NotSupported)

	anon := sntest.Dial(t, g.snAddr)
	anon.Connect(uniqueID("anon"), true, 60) // client-id based authentication

	none := sntest.Dial(t, g.snAddr)
	none.Send(&codec.Connect{Flags: codec.Flags{CleanSession: true}, ProtocolID: 1, Duration: 60, ClientID: uniqueID("x")})
	none.ExpectCode(codec.TypeConnack, codec.NotSupported)

	// With require_auth, AUTH may follow CONNECT (as the Bisquitt
	// gateway expects), before the will exchange.
	cfg := testConfig()
	cfg.RequireAuth = true
	g2 := startGateway(t, cfg, core.WithAuthenticator(passwords{}))
	after := sntest.Dial(t, g2.snAddr)
	after.Send(&codec.Connect{Flags: codec.Flags{CleanSession: true, Will: true}, ProtocolID: 1, Duration: 60, ClientID: uniqueID("req")})
	after.Quiet(100 * time.Millisecond)
	auth(after, "u", "p")
	after.Expect(codec.TypeWillTopicReq)
	after.Send(&codec.WillTopic{Kind: codec.TypeWillTopic})
	after.ExpectCode(codec.TypeConnack, codec.Accepted)

	method := sntest.Dial(t, g2.snAddr)
	method.Send(&codec.Auth{Method: "SCRAM-SHA-1", Data: []byte("x")})
	method.Send(&codec.Connect{ProtocolID: 1, Duration: 60, ClientID: uniqueID("req")})
	method.ExpectCode(codec.TypeConnack, codec.NotSupported)
}

func TestForwarderEncapsulation(t *testing.T) {
	t.Parallel()
	g := startGateway(t, testConfig())
	p := connectPaho(t, g)
	p.sub("fwd/#", 0)
	// Two nodes behind one forwarder are two clients.
	n1 := sntest.Dial(t, g.snAddr)
	n1.Forwarder = []byte{0x01, 0x02}
	n1.Connect(uniqueID("node"), true, 60)
	id := n1.Register("fwd/a")
	n1.Publish(codec.TopicNormal, id, 1, false, "via-forwarder")
	p.expect("fwd/a", "via-forwarder", 0, false)

	n1.Subscribe(codec.TopicNormal, "fwd/down", 0, 0)
	p.pub("fwd/down", 0, false, "to-node")
	n1.ExpectPublish("to-node")
}

func TestGarbageAndOtherClientsUndisturbed(t *testing.T) {
	t.Parallel()
	g := startGateway(t, testConfig())
	good := sntest.Dial(t, g.snAddr)
	good.Connect(uniqueID("good"), true, 60)
	pc := g.b.Stats().Packets(core.ProtoMQTTSN, nil)
	invalidBefore := pc.Received(256)

	bad := sntest.Dial(t, g.snAddr)
	garbage := [][]byte{
		{}, {0}, {1}, {0xFF, 0xFF, 0xFF}, {2, 0x11}, {3, 0xFE, 0}, {5, 0x0C, 0, 0, 0},
		{1, 0, 2, 0x04}, {9, 0x0C, 0x60, 0, 1, 0, 1, 'x'}, []byte("GET / HTTP/1.1\r\n\r\n"),
		{4, 0xFE, 0, 1, 4, 0xFE, 0, 2, 2, 0x16}, // nested encapsulation
	}
	for _, raw := range garbage {
		bad.SendRaw(raw)
	}
	// A message that needs a connection, before CONNECT.
	bad.Send(&codec.Subscribe{Kind: codec.TypeSubscribe, MsgID: 1, TopicName: "x"})
	bad.Expect(codec.TypeDisconnect)
	// A CONNECT of another protocol version.
	bad.Send(&codec.Connect{ProtocolID: 2, ClientID: "v2"})
	bad.ExpectCode(codec.TypeConnack, codec.NotSupported)

	good.Send(&codec.Pingreq{})
	good.Expect(codec.TypePingresp)
	testutil.Eventually(t, waitTimeout, func() bool { return pc.Received(256)-invalidBefore >= uint64(len(garbage)-1) }, "invalid datagrams counted")
}

func TestNewSessionRateLimit(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.NewSessionRate = 0.001
	cfg.NewSessionBurst = 1
	g := startGateway(t, cfg)
	a := sntest.Dial(t, g.snAddr)
	a.Connect(uniqueID("rl"), true, 60)
	b := sntest.Dial(t, g.snAddr) // same IP, new port, new client
	b.Send(&codec.Connect{Flags: codec.Flags{CleanSession: true}, ProtocolID: 1, Duration: 60, ClientID: uniqueID("rl")})
	b.ExpectCode(codec.TypeConnack, codec.Congestion)
	// The existing client is not affected.
	a.Send(&codec.Pingreq{})
	a.Expect(codec.TypePingresp)
}

func TestConfigValidate(t *testing.T) {
	if err := mqttsn.DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	cfg := mqttsn.DefaultConfig()
	cfg.UDP = "nope"
	cfg.GatewayID = 300
	cfg.AdvertiseInterval = 10
	cfg.AdvertiseAddress = ""
	cfg.Predefined = []mqttsn.PredefinedTopic{{ID: 0, Topic: "a"}, {ID: 5, Topic: "b/#"}, {ID: 5, Topic: "a"}}
	cfg.RetryInterval = 0
	cfg.MaxInflight = 0
	err := cfg.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, key := range []string{"mqttsn.udp", "mqttsn.gateway_id", "mqttsn.advertise_address", "mqttsn.predefined",
		"mqttsn.retry_interval", "mqttsn.max_inflight"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error does not name %s: %v", key, err)
		}
	}
}
