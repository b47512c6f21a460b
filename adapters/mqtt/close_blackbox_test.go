package mqtt_test

// A DISCONNECT that arrives (issue 14 item 3). The gateway's last packet
// to a client, an MQTT 5 DISCONNECT naming the reason or a refusing
// CONNACK, must reach a client that keeps writing while the gateway
// closes: closing a socket with unread input makes the kernel reset the
// connection, and the reset can destroy that packet in the client's
// receive buffer, or fail the client's next write before it has read it.
// So the gateway closes gracefully (internal/streamconn): the last packet,
// the end of its sending side, then it discards input until the client
// closes.
//
// Each case provokes one reason while a writer goroutine keeps sending
// valid packets (PINGREQ; for the keep alive, the bytes of a packet that
// never completes), reads up to the last packet and checks its reason,
// lets the writer send a few more (the gateway must still be reading
// them), and expects the graceful end: the end of the TCP stream, or a
// WebSocket close frame with normal closure; never a reset.

import (
	"bufio"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/iotgw/iotgw/adapters/mqtt/codec"
	"github.com/iotgw/iotgw/core"
	"github.com/iotgw/iotgw/internal/testutil"
)

// closeTransports are the two ways to reach the gateway, both as a raw
// MQTT 5 client over a byte stream.
var closeTransports = []struct {
	name string
	dial func(t testing.TB, g *testutil.Gateway) *v5Raw
}{
	{"tcp", v5DialRaw},
	{"ws", func(t testing.TB, g *testutil.Gateway) *v5Raw {
		nc := testutil.DialWS(t, g.WSURL(), "mqtt", false)
		return &v5Raw{&rawClient{t: t, nc: nc, br: bufio.NewReader(nc)}}
	}},
}

// closeTrial is one connection of a close case.
type closeTrial struct {
	t     testing.TB
	g     *testutil.Gateway
	r     *v5Raw
	id    string // the client id the case connected with
	scram *v5SCRAM
	w     *testutil.Writer
	// answerErr is the first failed write of an answer: like the writer's,
	// reported once the last packet is read (or not).
	answerErr error
}

// answerWith sends p in answer to the gateway, remembering a failure
// rather than stopping: what matters first is whether the last packet
// still arrives.
func (tr *closeTrial) answerWith(p codec.Packet) {
	tr.t.Helper()
	if _, err := tr.r.nc.Write(v5Bytes(tr.t, p)); err != nil && tr.answerErr == nil {
		tr.answerErr = err
	}
}

// closeCase provokes one last packet from the gateway.
type closeCase struct {
	name string
	yaml string // the gateway's configuration
	reps int    // repetitions; 5 when zero
	// fresh starts a gateway for each repetition (the case stops it).
	fresh bool
	// together opens every repetition's connection before reading any:
	// for a trigger that takes a while (the keep alive), which then
	// runs once for all of them.
	together bool
	// open connects (or, for a refused CONNECT, sends the CONNECT) and
	// returns the unit the writer repeats from then on.
	open func(tr *closeTrial) []byte
	// provoke makes the gateway close, while the writer writes; nil when
	// open has.
	provoke func(tr *closeTrial)
	// answer answers a packet that arrives before the last one.
	answer func(tr *closeTrial, p codec.Packet)
	v311   bool             // the last packet is an MQTT 3.1.1 CONNACK
	want   codec.ReasonCode // the DISCONNECT's reason code, or the CONNACK's
	rule   string
}

// Gateway configurations of the cases.
const (
	// closeLimitsYAML has a limit or a disabled feature for each reason a
	// connected client can be disconnected with; auth.users offers
	// SCRAM-SHA-256 (anonymous clients are still allowed).
	closeLimitsYAML = "mqtt:\n  receive_maximum: 2\n  max_packet_size: 256\n  topic_alias_maximum: 2\n" +
		"  retain_available: false\n  subscription_identifiers: false\n" + v5AuthYAML
	// closeAuthYAML refuses CONNECTs: anonymous ones, wrong passwords,
	// empty client ids.
	closeAuthYAML = "auth:\n  allow_anonymous: false\n  users: [{username: alice, password: secret}]\n" +
		"mqtt:\n  allow_empty_client_id: false\n"
)

// v5Bytes encodes p as MQTT 5.
func v5Bytes(t testing.TB, p codec.Packet) []byte {
	t.Helper()
	b, err := codec.Append(nil, p, codec.V5)
	if err != nil {
		t.Fatalf("encode %s: %v", p.Type(), err)
	}
	return b
}

// connected connects the trial's client (a unique id, keep alive 0 unless
// given) and returns PINGREQ for the writer.
func (tr *closeTrial) connected(c codec.Connect) []byte {
	tr.t.Helper()
	tr.id = uniqueID("close")
	c.ClientID, c.CleanStart = tr.id, true
	tr.r.connectOK(&c)
	return v5Bytes(tr.t, &codec.Pingreq{})
}

func openConnected(tr *closeTrial) []byte { return tr.connected(codec.Connect{}) }

// sends returns a provoke that sends p.
func sends(p codec.Packet) func(tr *closeTrial) {
	return func(tr *closeTrial) { tr.r.send(p) }
}

// refuse returns an open that sends a CONNECT to be refused (c, encoded
// as its level says, or raw bytes) and has the client keep writing
// PINGREQs after it.
func refuse(c *codec.Connect, raw []byte) func(tr *closeTrial) []byte {
	return func(tr *closeTrial) []byte {
		b := raw
		if b == nil {
			cp := *c
			var err error
			if b, err = codec.Append(nil, &cp, cp.ProtocolLevel); err != nil {
				tr.t.Fatalf("encode CONNECT: %v", err)
			}
		}
		tr.r.write(b)
		return v5Bytes(tr.t, &codec.Pingreq{})
	}
}

// qos2 is a QoS 2 PUBLISH with packet id id.
func qos2(id uint16) *codec.Publish {
	return &codec.Publish{Topic: "close/t", QoS: 2, PacketID: id, Payload: []byte("x")}
}

// v5AuthPacket is a client AUTH of SCRAM-SHA-256 with reason rc carrying
// data.
func v5AuthPacket(rc codec.ReasonCode, data []byte) *codec.Auth {
	return &codec.Auth{ReasonCode: rc, Props: codec.Properties{Present: codec.PropMask(codec.PropAuthMethod, codec.PropAuthData),
		AuthMethod: v5SCRAMMethod, AuthData: data}}
}

// scramConnected connects as alice with SCRAM-SHA-256.
func scramConnected(tr *closeTrial) []byte {
	tr.t.Helper()
	s := newV5SCRAM("alice", "secret")
	tr.r.send(v5SCRAMConnect(s))
	ch := v5Expect[*codec.Auth](tr.r, "AUTH challenge")
	final, err := s.final(ch.Props.AuthData)
	if err != nil {
		tr.t.Fatalf("server-first-message: %v", err)
	}
	tr.r.send(v5AuthPacket(codec.ContinueAuthentication, final))
	if ack := v5Expect[*codec.Connack](tr.r, "CONNACK"); ack.ReasonCode != codec.Success {
		tr.t.Fatalf("SCRAM CONNACK %#x", byte(ack.ReasonCode))
	}
	return v5Bytes(tr.t, &codec.Pingreq{})
}

// closeDisconnectCases are the DISCONNECT reasons the gateway sends: the
// adapter's c.fail calls (protocol violations, limits, disabled features,
// re-authentication) and the closes of the core (takeover, shutdown) and
// of the engine (keep alive).
var closeDisconnectCases = []closeCase{
	{name: "receive_maximum_exceeded_0x93", yaml: closeLimitsYAML, reps: 20, open: openConnected,
		// Receive Maximum + 1 QoS 2 PUBLISHes without reading, then the
		// client reads, answering each PUBREC with its PUBREL.
		provoke: func(tr *closeTrial) {
			var b []byte
			for id := uint16(1); id <= 3; id++ {
				b = append(b, v5Bytes(tr.t, qos2(id))...)
			}
			tr.r.write(b)
		},
		answer: func(tr *closeTrial, p codec.Packet) {
			if a, ok := p.(*codec.Ack); ok && a.Kind == codec.TypePubrec {
				tr.answerWith(&codec.Ack{Kind: codec.TypePubrel, PacketID: a.PacketID})
			}
		},
		want: codec.ReceiveMaximumExceeded, rule: "[MQTT-3.3.4-7]"},
	{name: "malformed_0x81", yaml: closeLimitsYAML, open: openConnected,
		// A Session Expiry Interval in PUBLISH (2.2.2.2).
		provoke: func(tr *closeTrial) {
			props := []byte{0x11, 0, 0, 0, 10}
			body := append(append(mqttString("close/t"), byte(len(props))), props...)
			tr.r.write(fixedHeader(0x30, vbi(len(body)), body))
		},
		want: codec.MalformedPacket, rule: "(2.2.2.2)"},
	{name: "protocol_error_0x82", yaml: closeLimitsYAML, open: openConnected,
		provoke: sends(&codec.Connect{ProtocolLevel: codec.V5, ClientID: "again", CleanStart: true}),
		want:    codec.ProtocolError, rule: "[MQTT-3.1.0-2]"},
	{name: "reauthentication_failed_0x87", yaml: closeLimitsYAML, open: scramConnected,
		// Re-authentication (4.12.1) with a wrong password.
		provoke: func(tr *closeTrial) {
			tr.scram = newV5SCRAM("alice", "wrong")
			tr.r.send(v5AuthPacket(codec.ReAuthenticate, tr.scram.first()))
		},
		answer: func(tr *closeTrial, p codec.Packet) {
			a, ok := p.(*codec.Auth)
			if !ok || a.ReasonCode != codec.ContinueAuthentication {
				return
			}
			final, err := tr.scram.final(a.Props.AuthData)
			if err != nil {
				tr.t.Fatalf("re-authentication server-first-message: %v", err)
			}
			tr.answerWith(v5AuthPacket(codec.ContinueAuthentication, final))
		},
		want: codec.NotAuthorized, rule: "(4.12.1)"},
	{name: "server_shutting_down_0x8b", yaml: "", fresh: true, open: openConnected,
		provoke: func(tr *closeTrial) {
			stopped := make(chan error, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
				defer cancel()
				stopped <- tr.g.MQTT.Stop(ctx)
			}()
			t := tr.t
			t.Cleanup(func() {
				if err := <-stopped; err != nil {
					t.Errorf("MQTT adapter stop: %v", err)
				}
			})
		},
		want: codec.ServerShuttingDown, rule: "(4.13)"},
	{name: "keep_alive_timeout_0x8d", yaml: "", together: true,
		// A client that writes all along but never completes a packet
		// within 1.5 x its keep alive [MQTT-3.1.2-22]: the header of a
		// long PUBLISH, then its payload a byte at a time.
		open: func(tr *closeTrial) []byte {
			tr.connected(codec.Connect{KeepAlive: 1})
			tr.r.write(fixedHeader(0x30, vbi(1<<20-64), mqttString("close/t")))
			return []byte{'x'}
		},
		want: codec.KeepAliveTimeout, rule: "[MQTT-3.1.2-22]"},
	{name: "session_taken_over_0x8e", yaml: closeLimitsYAML, open: openConnected,
		provoke: func(tr *closeTrial) {
			v5DialRaw(tr.t, tr.g).connectOK(&codec.Connect{ClientID: tr.id, CleanStart: true})
		},
		want: codec.SessionTakenOver, rule: "[MQTT-3.1.4-3]"},
	{name: "topic_name_invalid_0x90", yaml: closeLimitsYAML, open: openConnected,
		provoke: sends(&codec.Publish{Topic: "close/+", Payload: []byte("x")}),
		want:    codec.TopicNameInvalid, rule: "[MQTT-3.3.2-2]"},
	{name: "topic_alias_invalid_0x94", yaml: closeLimitsYAML, open: openConnected,
		provoke: sends(&codec.Publish{Topic: "close/t", Payload: []byte("x"),
			Props: codec.Properties{Present: codec.PropMask(codec.PropTopicAlias), TopicAlias: 5}}),
		want: codec.TopicAliasInvalid, rule: "[MQTT-3.3.2-9]"},
	{name: "packet_too_large_0x95", yaml: closeLimitsYAML, open: openConnected,
		provoke: sends(&codec.Publish{Topic: "close/t", Payload: []byte(strings.Repeat("x", 300))}),
		want:    codec.PacketTooLarge, rule: "(3.2.2.3.6)"},
	{name: "retain_not_supported_0x9a", yaml: closeLimitsYAML, open: openConnected,
		provoke: sends(&codec.Publish{Topic: "close/t", Retain: true, Payload: []byte("x")}),
		want:    codec.RetainNotSupported, rule: "(3.2.2.3.5)"},
	{name: "qos_not_supported_0x9b", yaml: "mqtt:\n  max_qos: 1\n", open: openConnected,
		provoke: sends(qos2(1)),
		want:    codec.QoSNotSupported, rule: "[MQTT-3.2.2-11]"},
	{name: "subscription_ids_not_supported_0xa1", yaml: closeLimitsYAML, open: openConnected,
		provoke: sends(&codec.Subscribe{PacketID: 1, Props: codec.Properties{SubscriptionIDs: []uint32{5}},
			Subscriptions: []codec.Subscription{{Filter: "close/t"}}}),
		want: codec.SubIDsNotSupported, rule: "(3.8.2.1.2)"},
}

// backlogCase is a session takeover of a subscriber that let a long
// queue of deliveries build up and reads through it, slowly but steadily
// (and writing all along), once it is taken over: it must still read the
// DISCONNECT behind the queue. The gateway cuts off a closing client that
// stops reading; this one takes longer than the drain window (2 s) to
// read what the gateway queued and wrote to the kernel, and used to be
// reset: a second for the whole flush, then the end of the drain while
// the kernel still held the reason.
var backlogCase = closeCase{name: "session_taken_over_behind_backlog_0x8e", yaml: "", reps: 3,
	open: func(tr *closeTrial) []byte {
		ping := openConnected(tr)
		topic := "close/backlog/" + tr.id
		tr.r.subscribe(1, codec.Properties{}, codec.Subscription{Filter: topic})
		// More than the kernel's socket buffers hold, so that most of it
		// is still queued in the gateway when the takeover closes the
		// connection.
		payload := make([]byte, 64<<10)
		for range backlogMessages {
			if err := tr.g.Broker.Publish(&core.Message{Topic: topic, Payload: payload}); err != nil {
				tr.t.Fatalf("publish: %v", err)
			}
		}
		return ping
	},
	provoke: func(tr *closeTrial) {
		v5DialRaw(tr.t, tr.g).connectOK(&codec.Connect{ClientID: tr.id, CleanStart: true})
	},
	// A client reading about 3 MB/s: the backlog takes it well over the
	// drain window, each write of the gateway (at most a few hundred
	// KiB) far less than the second it may take.
	answer: func(tr *closeTrial, p codec.Packet) {
		if _, ok := p.(*codec.Publish); ok {
			time.Sleep(backlogPause)
		}
	},
	want: codec.SessionTakenOver, rule: "[MQTT-3.1.4-3]"}

// backlogMessages of 64 KiB make an 8 MiB backlog; backlogPause paces the
// client reading them (about 2.6 s for all).
const (
	backlogMessages = 128
	backlogPause    = 20 * time.Millisecond
)

// closeConnackCases are refused CONNECTs, MQTT 3.1.1 and 5, whose client
// keeps writing after its CONNECT.
var closeConnackCases = []closeCase{
	{name: "v311_bad_credentials_0x04", yaml: closeAuthYAML, v311: true,
		open: refuse(&codec.Connect{ProtocolLevel: codec.V311, ClientID: "c", CleanStart: true,
			UsernameFlag: true, Username: "alice", PasswordFlag: true, Password: []byte("wrong")}, nil),
		want: codec.ConnRefusedBadCredentials, rule: "(3.2.2.3)"},
	{name: "v311_anonymous_refused_0x05", yaml: closeAuthYAML, v311: true,
		open: refuse(&codec.Connect{ProtocolLevel: codec.V311, ClientID: "c", CleanStart: true}, nil),
		want: codec.ConnRefusedNotAuthorized, rule: "(3.2.2.3)"},
	{name: "v311_identifier_rejected_0x02", yaml: closeAuthYAML, v311: true,
		open: refuse(&codec.Connect{ProtocolLevel: codec.V311, CleanStart: false,
			UsernameFlag: true, Username: "alice", PasswordFlag: true, Password: []byte("secret")}, nil),
		want: codec.ConnRefusedIdentifier, rule: "[MQTT-3.1.3-8]"},
	{name: "unsupported_protocol_level_0x01", yaml: closeAuthYAML, v311: true,
		open: refuse(nil, func() []byte {
			body := append(mqttString("MQTT"), 9, 0x02, 0x00, 0x3C)
			body = append(body, mqttString("level9")...)
			return fixedHeader(0x10, vbi(len(body)), body)
		}()),
		want: codec.ConnRefusedProtocolVersion, rule: "[MQTT-3.1.2-2]"},
	{name: "v5_bad_credentials_0x86", yaml: closeAuthYAML,
		open: refuse(&codec.Connect{ProtocolLevel: codec.V5, ClientID: "c", CleanStart: true,
			UsernameFlag: true, Username: "alice", PasswordFlag: true, Password: []byte("wrong")}, nil),
		want: codec.BadUsernameOrPassword, rule: "(3.2.2.2)"},
	{name: "v5_client_id_not_valid_0x85", yaml: closeAuthYAML,
		open: refuse(&codec.Connect{ProtocolLevel: codec.V5, CleanStart: true,
			UsernameFlag: true, Username: "alice", PasswordFlag: true, Password: []byte("secret")}, nil),
		want: codec.ClientIDNotValid, rule: "(3.2.2.2)"},
	{name: "v5_bad_authentication_method_0x8c", yaml: closeAuthYAML,
		open: refuse(&codec.Connect{ProtocolLevel: codec.V5, ClientID: "c", CleanStart: true,
			Props: codec.Properties{Present: codec.PropMask(codec.PropAuthMethod), AuthMethod: "GS2-KRB5"}}, nil),
		want: codec.BadAuthMethod, rule: "[MQTT-4.12.0-1]"},
}

// TestCloseReasonArrivesWhileClientWrites: for every DISCONNECT reason and
// refused CONNACK, over TCP and WebSocket, a client that keeps writing
// reads the reason, then the graceful end of the connection.
func TestCloseReasonArrivesWhileClientWrites(t *testing.T) {
	t.Parallel()
	for _, cases := range [][]closeCase{closeDisconnectCases, closeConnackCases, {backlogCase}} {
		for _, cc := range cases {
			for _, tp := range closeTransports {
				t.Run(cc.name+"/"+tp.name, func(t *testing.T) {
					t.Parallel()
					cc.run(t, tp.dial)
				})
			}
		}
	}
}

func (cc *closeCase) run(t *testing.T, dial func(testing.TB, *testutil.Gateway) *v5Raw) {
	reps := cc.reps
	if reps == 0 {
		reps = 5
	}
	var g *testutil.Gateway
	if !cc.fresh {
		g = testutil.Start(t, cc.yaml)
	}
	group := 1
	if cc.together {
		group = reps
	}
	for rep := 0; rep < reps; rep += group {
		trials := make([]*closeTrial, group)
		for i := range trials {
			tr := &closeTrial{t: t, g: g}
			if cc.fresh {
				tr.g = testutil.Start(t, cc.yaml)
			}
			tr.r = dial(t, tr.g)
			tr.w = testutil.KeepWriting(tr.r.nc, cc.open(tr))
			if cc.provoke != nil {
				cc.provoke(tr)
			}
			trials[i] = tr
		}
		for i, tr := range trials {
			cc.finish(tr, fmt.Sprintf("%s #%d", cc.name, rep+i+1))
		}
	}
}

// finish reads the trial's last packet and the end of its connection.
func (cc *closeCase) finish(tr *closeTrial, what string) {
	t, r := tr.t, tr.r
	t.Helper()
	read := r.read
	if cc.v311 {
		read = r.rawClient.read
	}
	var before []codec.Packet
	var last codec.Packet
	for last == nil {
		p, err := read()
		if err != nil {
			tr.w.Stop(t, what)
			t.Fatalf("%s: waiting for the reason %#x %s: %v (before it: %s)", what, byte(cc.want), cc.rule, err, v5Types(before))
		}
		switch p := p.(type) {
		case *codec.Disconnect:
			last = p
			if p.ReasonCode != cc.want {
				t.Errorf("%s: DISCONNECT %#x (%v), want %#x (%v) %s", what, byte(p.ReasonCode), p.ReasonCode, byte(cc.want), cc.want, cc.rule)
			}
		case *codec.Connack:
			last = p
			if p.ReasonCode != cc.want {
				t.Errorf("%s: CONNACK %#x, want %#x %s", what, byte(p.ReasonCode), byte(cc.want), cc.rule)
			}
		default:
			if cc.answer != nil {
				cc.answer(tr, p)
			}
			before = append(before, p)
		}
	}
	// The gateway reads on after its last packet ...
	tr.w.More(t, 3, what)
	tr.w.Stop(t, what)
	if tr.answerErr != nil {
		t.Errorf("%s: the client's answer failed: %v (the gateway reset the connection instead of draining it)", what, tr.answerErr)
	}
	// ... and ends the connection gracefully.
	if p, err := read(); !testutil.GracefulEnd(err) {
		t.Errorf("%s: after the %s: %v %v, want the end of the stream (TCP FIN, WebSocket close 1000)", what, last.Type(), p, err)
	}
	r.nc.Close()
}
