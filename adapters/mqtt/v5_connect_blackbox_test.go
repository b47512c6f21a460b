package mqtt_test

// MQTT 5.0 CONNECT and CONNACK: Clean Start and Session Expiry, assigned
// client identifiers, Server Keep Alive, the client's Receive Maximum,
// Maximum Packet Size and Topic Alias Maximum, the capabilities announced
// in CONNACK, and the limits configured under limits.* and session.*.

import (
	"fmt"
	"strings"
	"testing"

	paho5 "github.com/eclipse/paho.golang/paho"

	"github.com/iotgw/iotgw/adapters/mqtt/codec"
	"github.com/iotgw/iotgw/internal/testutil"
)

func TestV5Connect(t *testing.T) {
	t.Parallel()

	t.Run("session_expiry_zero_ends_with_connection", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, "")
		id := uniqueID("se0")
		c := v5Connect(t, g, v5Persistent(id, true, 0), nil)
		c.sub("se0/t", 1)
		_ = c.Disconnect(&paho5.Disconnect{})
		v5WaitConnected(t, g, 0)

		pub := v5Connect(t, g, nil, nil)
		c2 := v5Connect(t, g, v5Persistent(id, false, 0), nil)
		// [MQTT-3.1.2-23] only an expiry above 0 keeps the session, so
		// nothing was left to resume: [MQTT-3.1.2-6], [MQTT-3.2.2-3].
		if c2.ack.SessionPresent {
			t.Errorf("Session Present 1 after a session with expiry 0 ended [MQTT-3.2.2-3]")
		}
		pub.publish("se0/t", 1, false, "stale subscription")
		if got := c2.flush(); len(got) != 0 {
			t.Errorf("a subscription of the ended session still delivers: %s [MQTT-3.1.2-6]", v5Payloads(got))
		}
	})

	t.Run("session_expiry_n_keeps_then_expires", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, "")
		pub := v5Connect(t, g, nil, nil)
		id := uniqueID("seN")
		c := v5Connect(t, g, v5Persistent(id, true, 300), nil)
		c.sub("seN/t", 1)
		_ = c.Disconnect(&paho5.Disconnect{})
		v5WaitConnected(t, g, 1)
		pub.publish("seN/t", 1, false, "while offline")

		c2 := v5Connect(t, g, v5Persistent(id, false, 300), nil)
		// [MQTT-3.1.2-23] the session outlived its connection, and
		// [MQTT-3.1.2-5] is resumed: Session Present 1 [MQTT-3.2.2-3] ...
		if !c2.ack.SessionPresent {
			t.Fatalf("Session Present 0 within the Session Expiry Interval [MQTT-3.2.2-3]")
		}
		// ... with its subscription and the message queued meanwhile.
		if m := c2.next(); string(m.Payload) != "while offline" {
			t.Fatalf("resumed session got %s=%q, want the message queued while offline [MQTT-3.1.2-5]", m.Topic, m.Payload)
		}
		// DISCONNECT may change a non-zero expiry (3.14.2.2.2): 1 s, then
		// the session must end.
		_ = c2.Disconnect(&paho5.Disconnect{Properties: &paho5.DisconnectProperties{SessionExpiryInterval: paho5.Uint32(1)}})
		testutil.Eventually(t, waitTimeout, func() bool { return g.Broker.SessionCount() == 1 },
			"the session to expire after the 1 s Session Expiry Interval set on DISCONNECT")
		c3 := v5Connect(t, g, v5Persistent(id, false, 300), nil)
		if c3.ack.SessionPresent {
			t.Errorf("Session Present 1 after the Session Expiry Interval elapsed [MQTT-3.2.2-3]")
		}
		pub.publish("seN/t", 1, false, "after expiry")
		if got := c3.flush(); len(got) != 0 {
			t.Errorf("the expired session's subscription still delivers: %s", v5Payloads(got))
		}
	})

	t.Run("session_expiry_never", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, "")
		id := uniqueID("seMax")
		c := v5Connect(t, g, v5Persistent(id, true, 0xFFFFFFFF), nil)
		// 3.2.2.3.2: a Session Expiry Interval in CONNACK, if any, is the
		// one the server uses; nothing caps it here.
		if p := c.ack.Properties; p != nil && p.SessionExpiryInterval != nil && *p.SessionExpiryInterval != 0xFFFFFFFF {
			t.Errorf("CONNACK Session Expiry Interval %d, want none or 0xFFFFFFFF", *p.SessionExpiryInterval)
		}
		c.sub("seMax/t", 1)
		_ = c.Disconnect(&paho5.Disconnect{})
		v5WaitConnected(t, g, 0)
		c2 := v5Connect(t, g, v5Persistent(id, false, 0xFFFFFFFF), nil)
		// 0xFFFFFFFF: the session does not expire [MQTT-3.1.2-23].
		if !c2.ack.SessionPresent {
			t.Errorf("Session Present 0 for a session that never expires [MQTT-3.2.2-3]")
		}
	})

	t.Run("clean_start_discards_session", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, "")
		pub := v5Connect(t, g, nil, nil)
		id := uniqueID("cs")
		c := v5Connect(t, g, v5Persistent(id, true, 300), nil)
		c.sub("cs/t", 1)
		_ = c.Disconnect(&paho5.Disconnect{})
		v5WaitConnected(t, g, 1)
		pub.publish("cs/t", 1, false, "queued for the old session")

		c2 := v5Connect(t, g, v5Persistent(id, true, 300), nil)
		// [MQTT-3.2.2-2] Clean Start 1: Session Present 0 ...
		if c2.ack.SessionPresent {
			t.Errorf("Session Present 1 with Clean Start 1 [MQTT-3.2.2-2]")
		}
		// ... and the old session, its subscription and its queue are
		// gone [MQTT-3.1.2-4].
		pub.publish("cs/t", 1, false, "after clean start")
		if got := c2.flush(); len(got) != 0 {
			t.Errorf("clean start kept the old session's messages or subscription: %s [MQTT-3.1.2-4]", v5Payloads(got))
		}
	})

	t.Run("assigned_client_id", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, "")
		a := v5Connect(t, g, &paho5.Connect{CleanStart: true, KeepAlive: 30}, nil)
		b := v5Connect(t, g, &paho5.Connect{CleanStart: true, KeepAlive: 30}, nil)
		// [MQTT-3.1.3-6], [MQTT-3.1.3-7], [MQTT-3.2.2-16]: a zero-length
		// id gets a unique Assigned Client Identifier in CONNACK.
		if a.id == "" || b.id == "" {
			t.Fatalf("CONNACK without an Assigned Client Identifier for an empty client id [MQTT-3.2.2-16]")
		}
		if a.id == b.id {
			t.Fatalf("two clients were assigned the same id %q [MQTT-3.1.3-6]", a.id)
		}
		// [MQTT-3.1.3-7] the CONNECT is processed as if the client had
		// sent that id: the session is found under it.
		a2 := v5Connect(t, g, v5Persistent(a.id, false, 0), nil)
		if !a2.ack.SessionPresent {
			t.Errorf("no session under the assigned id %q [MQTT-3.1.3-7]", a.id)
		}
		if a2.ack.Properties != nil && a2.ack.Properties.AssignedClientID != "" {
			t.Errorf("Assigned Client Identifier %q sent to a client that chose its id", a2.ack.Properties.AssignedClientID)
		}
	})

	t.Run("server_keep_alive", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, "mqtt:\n  max_keepalive: 60\n")
		for _, tc := range []struct {
			ask  uint16
			want int // -1: no Server Keep Alive
		}{{0, 60}, {120, 60}, {30, -1}} {
			r := v5DialRaw(t, g)
			ack := r.connectOK(&codec.Connect{ClientID: uniqueID("ka"), CleanStart: true, KeepAlive: tc.ask})
			got := -1
			if ack.Props.Has(codec.PropServerKeepAlive) {
				got = int(ack.Props.ServerKeepAlive)
			}
			// [MQTT-3.2.2-21]: the client must use a Server Keep Alive,
			// so the broker's cap shows there; [MQTT-3.2.2-22] without
			// one the client's value stands.
			if got != tc.want {
				t.Errorf("keep alive %d: CONNACK Server Keep Alive %d, want %d (-1: absent) [MQTT-3.2.2-21]", tc.ask, got, tc.want)
			}
		}
	})

	t.Run("client_receive_maximum", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, "")
		sub, _ := v5RawConnect(t, g, "rm", codec.Properties{Present: codec.PropMask(codec.PropReceiveMaximum), ReceiveMaximum: 2})
		sub.subscribe(1, codec.Properties{}, codec.Subscription{Filter: "rm/t", QoS: 1})
		pub := v5Connect(t, g, nil, nil)
		for i := range 5 {
			pub.publish("rm/t", 1, false, fmt.Sprint("m", i))
		}
		// All five were routed before the publisher's PUBACKs. The
		// broker may have two unacknowledged QoS 1 PUBLISH packets out,
		// no more [MQTT-3.3.4-9]: the PINGRESP shows nothing follows.
		var got []*codec.Publish
		got = append(got, sub.nextPublish("first"), sub.nextPublish("second"))
		if more := sub.ping(); len(more) > 0 {
			t.Fatalf("%d PUBLISH packets beyond Receive Maximum 2 before any PUBACK [MQTT-3.3.4-9]", len(more))
		}
		// Each PUBACK frees exactly one slot.
		for len(got) < 5 {
			sub.send(&codec.Ack{Kind: codec.TypePuback, PacketID: got[len(got)-2].PacketID})
			got = append(got, sub.nextPublish("after a PUBACK"))
			if more := sub.ping(); len(more) > 0 {
				t.Fatalf("%d extra PUBLISH packets after one PUBACK with Receive Maximum 2 [MQTT-3.3.4-9]", len(more))
			}
		}
		for i, p := range got {
			if want := fmt.Sprint("m", i); string(p.Payload) != want || p.QoS != 1 {
				t.Errorf("message %d: %q QoS %d, want %q QoS 1 in order", i, p.Payload, p.QoS, want)
			}
		}
	})

	t.Run("client_receive_maximum_on_resume", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, "")
		id := uniqueID("rmres")
		sub := v5DialRaw(t, g)
		sub.connectOK(&codec.Connect{ClientID: id, CleanStart: true,
			Props: codec.Properties{Present: codec.PropMask(codec.PropReceiveMaximum, codec.PropSessionExpiry), ReceiveMaximum: 5, SessionExpiry: 300}})
		sub.subscribe(1, codec.Properties{}, codec.Subscription{Filter: "rmres/t", QoS: 1})
		pub := v5Connect(t, g, nil, nil)
		for i := range 5 {
			pub.publish("rmres/t", 1, false, fmt.Sprint("m", i))
		}
		for range 5 {
			sub.nextPublish("unacknowledged")
		}
		sub.nc.Close() // five unacknowledged, session kept
		v5WaitConnected(t, g, 1)

		again := v5DialRaw(t, g)
		ack := again.connectOK(&codec.Connect{ClientID: id, CleanStart: false,
			Props: codec.Properties{Present: codec.PropMask(codec.PropReceiveMaximum, codec.PropSessionExpiry), ReceiveMaximum: 2, SessionExpiry: 300}})
		if !ack.SessionPresent {
			t.Fatalf("Session Present 0 [MQTT-3.2.2-3]")
		}
		// The resent messages count against the new connection's Receive
		// Maximum like any other: the send quota starts at Receive Maximum
		// and every QoS 1 PUBLISH uses it up [MQTT-4.9.0-1], [MQTT-4.9.0-2],
		// [MQTT-3.3.4-9].
		first := again.nextPublish("resent")
		second := again.nextPublish("resent")
		more := again.ping()
		if len(more) > 0 {
			t.Errorf("%d PUBLISH packets resent beyond the new Receive Maximum 2 before any PUBACK [MQTT-3.3.4-9]", len(more))
		}
		for _, p := range []*codec.Publish{first, second} {
			if !p.Dup {
				t.Errorf("resent %q without DUP [MQTT-3.3.1-1]", p.Payload)
			}
		}
	})

	t.Run("client_maximum_packet_size", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, "")
		// Receive Maximum 1 as well: a too-big QoS 1 message left
		// inflight would block every later one.
		sub, _ := v5RawConnect(t, g, "mps", codec.Properties{
			Present:        codec.PropMask(codec.PropMaximumPacketSize, codec.PropReceiveMaximum),
			ReceiveMaximum: 1, MaximumPacketSize: 200})
		sub.subscribe(1, codec.Properties{}, codec.Subscription{Filter: "mps/#", QoS: 1})
		pub := v5Connect(t, g, nil, nil)
		big := strings.Repeat("x", 300)
		pub.publish("mps/big", 1, false, big)
		pub.publish("mps/big0", 0, false, big)
		pub.publish("mps/small", 1, false, "small")
		// [MQTT-3.1.2-24] nothing above 200 bytes is sent; [MQTT-3.1.2-25]
		// the big ones are dropped as if sent, so the small one flows.
		p := sub.nextPublish("the small message")
		if p.Topic != "mps/small" {
			t.Fatalf("got %s (%d bytes payload), want only mps/small [MQTT-3.1.2-24]", p.Topic, len(p.Payload))
		}
		sub.send(&codec.Ack{Kind: codec.TypePuback, PacketID: p.PacketID})
		if more := sub.ping(); len(more) > 0 {
			t.Errorf("unexpected PUBLISH after the small one: %s", more[0].Topic)
		}
		pub.publish("mps/small", 1, false, "small again")
		if p := sub.nextPublish("a later small message"); string(p.Payload) != "small again" {
			t.Errorf("got %q, want %q [MQTT-3.1.2-25]", p.Payload, "small again")
		}
	})

	t.Run("topic_alias_maximum_announced", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, "mqtt:\n  topic_alias_maximum: 7\n")
		_, ack := v5RawConnect(t, g, "tam", codec.Properties{})
		// 3.2.2.3.8: the server's Topic Alias Maximum, which bounds the
		// client's aliases [MQTT-3.2.2-17].
		if !ack.Props.Has(codec.PropTopicAliasMaximum) || ack.Props.TopicAliasMaximum != 7 {
			t.Errorf("CONNACK Topic Alias Maximum %d (present %v), want 7", ack.Props.TopicAliasMaximum, ack.Props.Has(codec.PropTopicAliasMaximum))
		}
		g0 := testutil.Start(t, "mqtt:\n  topic_alias_maximum: 0\n")
		_, ack0 := v5RawConnect(t, g0, "tam0", codec.Properties{})
		// Absent or 0: the client may send no aliases [MQTT-3.2.2-18].
		if ack0.Props.Has(codec.PropTopicAliasMaximum) && ack0.Props.TopicAliasMaximum != 0 {
			t.Errorf("CONNACK Topic Alias Maximum %d with topic_alias_maximum 0", ack0.Props.TopicAliasMaximum)
		}
	})

	t.Run("connack_defaults", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, "")
		_, ack := v5RawConnect(t, g, "caps", codec.Properties{})
		p := &ack.Props
		// Absent means available / QoS 2 (3.2.2.3.4 .. 3.2.2.3.13).
		for _, c := range []struct {
			name string
			id   codec.PropID
			val  byte
			want byte
		}{
			{"Maximum QoS", codec.PropMaximumQoS, p.MaximumQoS, 2},
			{"Retain Available", codec.PropRetainAvailable, p.RetainAvailable, 1},
			{"Wildcard Subscription Available", codec.PropWildcardSubAvailable, p.WildcardSubAvailable, 1},
			{"Subscription Identifiers Available", codec.PropSubIDAvailable, p.SubIDAvailable, 1},
			{"Shared Subscription Available", codec.PropSharedSubAvailable, p.SharedSubAvailable, 1},
		} {
			if p.Has(c.id) && c.val != c.want {
				t.Errorf("default CONNACK %s %d, want absent or %d", c.name, c.val, c.want)
			}
		}
		if !p.Has(codec.PropMaximumPacketSize) || p.MaximumPacketSize != uint32(g.Config.MQTT.MaxPacketSize) {
			t.Errorf("CONNACK Maximum Packet Size %d, want the configured %d", p.MaximumPacketSize, g.Config.MQTT.MaxPacketSize)
		}
	})

	t.Run("connack_capabilities", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, `
mqtt:
  max_qos: 1
  retain_available: false
  wildcard_subscriptions: false
  subscription_identifiers: false
  shared_subscriptions: false
  receive_maximum: 10
  max_packet_size: 4096
`)
		r, ack := v5RawConnect(t, g, "caps", codec.Properties{})
		p := &ack.Props
		for _, c := range []struct {
			name string
			id   codec.PropID
			val  uint32
			want uint32
			rule string
		}{
			{"Maximum QoS", codec.PropMaximumQoS, uint32(p.MaximumQoS), 1, "[MQTT-3.2.2-9]"},
			{"Retain Available", codec.PropRetainAvailable, uint32(p.RetainAvailable), 0, "3.2.2.3.5"},
			{"Wildcard Subscription Available", codec.PropWildcardSubAvailable, uint32(p.WildcardSubAvailable), 0, "3.2.2.3.11"},
			{"Subscription Identifiers Available", codec.PropSubIDAvailable, uint32(p.SubIDAvailable), 0, "3.2.2.3.12"},
			{"Shared Subscription Available", codec.PropSharedSubAvailable, uint32(p.SharedSubAvailable), 0, "3.2.2.3.13"},
			{"Receive Maximum", codec.PropReceiveMaximum, uint32(p.ReceiveMaximum), 10, "3.2.2.3.3"},
			{"Maximum Packet Size", codec.PropMaximumPacketSize, p.MaximumPacketSize, 4096, "3.2.2.3.6"},
		} {
			if !p.Has(c.id) || c.val != c.want {
				t.Errorf("CONNACK %s: present %v value %d, want %d %s", c.name, p.Has(c.id), c.val, c.want, c.rule)
			}
		}

		// [MQTT-3.2.2-10] SUBSCRIBE at QoS 2 is still accepted, granted
		// at most the maximum QoS [MQTT-3.8.4-8].
		sa := r.subscribe(1, codec.Properties{}, codec.Subscription{Filter: "caps/t", QoS: 2})
		if sa.ReasonCodes[0] != 1 {
			t.Errorf("SUBSCRIBE QoS 2 with max_qos 1: reason %#x, want granted QoS 1 [MQTT-3.2.2-10]", sa.ReasonCodes[0])
		}
		// Wildcards refused with 0xA2, shared subscriptions with 0x9E
		// (3.9.3), each filter on its own [MQTT-3.9.3-1].
		sa = r.subscribe(2, codec.Properties{},
			codec.Subscription{Filter: "caps/+", QoS: 1},
			codec.Subscription{Filter: "$share/g/caps/t", QoS: 1},
			codec.Subscription{Filter: "caps/#", QoS: 0},
			codec.Subscription{Filter: "caps/u", QoS: 0})
		if want := []byte{0xA2, 0x9E, 0xA2, 0x00}; string(sa.ReasonCodes) != string(want) {
			t.Errorf("SUBACK reason codes % x, want % x [MQTT-3.9.3-1]", sa.ReasonCodes, want)
		}

		// A Subscription Identifier the server said it does not support:
		// DISCONNECT 0xA1 (3.8.2.1.2).
		r.send(&codec.Subscribe{PacketID: 3, Props: codec.Properties{SubscriptionIDs: []uint32{5}},
			Subscriptions: []codec.Subscription{{Filter: "caps/t", QoS: 0}}})
		r.expectDisconnect(codec.SubIDsNotSupported, "(3.8.2.1.2)")

		// QoS 2 PUBLISH above Maximum QoS 1: DISCONNECT 0x9B (3.2.2.3.4);
		// a retained PUBLISH without Retain Available: 0x9A (3.2.2.3.5).
		q, _ := v5RawConnect(t, g, "caps-q2", codec.Properties{})
		q.send(&codec.Publish{Topic: "caps/t", QoS: 2, PacketID: 1, Payload: []byte("x")})
		q.expectDisconnect(codec.QoSNotSupported, "[MQTT-3.2.2-11] (3.2.2.3.4)")
		rt, _ := v5RawConnect(t, g, "caps-ret", codec.Properties{})
		rt.send(&codec.Publish{Topic: "caps/t", Retain: true, Payload: []byte("x")})
		rt.expectDisconnect(codec.RetainNotSupported, "(3.2.2.3.5)")
	})

	t.Run("will_beyond_capabilities_refused", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, "mqtt:\n  max_qos: 1\n  retain_available: false\n")
		// [MQTT-3.2.2-12] a Will QoS above the server's capability: the
		// connection is rejected, CONNACK 0x9B ...
		r := v5DialRaw(t, g)
		ack := r.connect(&codec.Connect{ClientID: uniqueID("willq2"), CleanStart: true,
			WillFlag: true, WillTopic: "caps/will", WillPayload: []byte("w"), WillQoS: 2})
		if ack.ReasonCode != codec.QoSNotSupported {
			t.Errorf("Will QoS 2 with max_qos 1: CONNACK %#x, want 0x9B [MQTT-3.2.2-12]", byte(ack.ReasonCode))
		} else {
			r.expectClosed("after CONNACK 0x9B [MQTT-3.2.2-7]")
		}
		// [MQTT-3.2.2-13] ... and a Will Retain without Retain Available:
		// CONNACK 0x9A.
		r = v5DialRaw(t, g)
		ack = r.connect(&codec.Connect{ClientID: uniqueID("willret"), CleanStart: true,
			WillFlag: true, WillTopic: "caps/will", WillPayload: []byte("w"), WillRetain: true})
		if ack.ReasonCode != codec.RetainNotSupported {
			t.Errorf("Will Retain with retain_available false: CONNACK %#x, want 0x9A [MQTT-3.2.2-13]", byte(ack.ReasonCode))
		} else {
			r.expectClosed("after CONNACK 0x9A [MQTT-3.2.2-7]")
		}
	})
}

func TestV5Limits(t *testing.T) {
	t.Parallel()

	t.Run("max_connections", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, "limits:\n  max_connections: 2\n")
		first, _ := v5RawConnect(t, g, "conn", codec.Properties{})
		v5RawConnect(t, g, "conn", codec.Properties{})
		r := v5DialRaw(t, g)
		ack := r.connect(&codec.Connect{ClientID: uniqueID("conn"), CleanStart: true})
		// Server busy or quota exceeded (3.2.2.2), Session Present 0
		// [MQTT-3.2.2-6], then the connection closes [MQTT-3.2.2-7].
		if ack.ReasonCode != codec.ServerBusy && ack.ReasonCode != codec.QuotaExceeded {
			t.Fatalf("third connection with max_connections 2: CONNACK %#x, want 0x89 or 0x97", byte(ack.ReasonCode))
		}
		if ack.SessionPresent {
			t.Errorf("refusing CONNACK with Session Present 1 [MQTT-3.2.2-6]")
		}
		r.expectClosed("after the refusing CONNACK [MQTT-3.2.2-7]")

		// A freed slot is usable again.
		first.send(&codec.Disconnect{})
		first.expectClosed("after DISCONNECT")
		v5WaitConnected(t, g, 1)
		v5RawConnect(t, g, "conn", codec.Properties{})
	})

	t.Run("max_subscriptions", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, "limits:\n  max_subscriptions: 2\n")
		r, _ := v5RawConnect(t, g, "subs", codec.Properties{})
		sa := r.subscribe(1, codec.Properties{},
			codec.Subscription{Filter: "lim/a", QoS: 1},
			codec.Subscription{Filter: "lim/b", QoS: 1},
			codec.Subscription{Filter: "lim/c", QoS: 1})
		// [MQTT-3.8.4-5] each filter is handled on its own; the third
		// exceeds the quota: 0x97 (3.9.3).
		if want := []byte{1, 1, byte(codec.QuotaExceeded)}; string(sa.ReasonCodes) != string(want) {
			t.Fatalf("SUBACK % x, want % x with max_subscriptions 2 [MQTT-3.8.4-5]", sa.ReasonCodes, want)
		}
		// Replacing an existing subscription takes no new slot
		// [MQTT-3.8.4-3].
		if sa := r.subscribe(2, codec.Properties{}, codec.Subscription{Filter: "lim/a", QoS: 0}); sa.ReasonCodes[0] != 0 {
			t.Errorf("re-subscribing an existing filter: %#x, want granted QoS 0 [MQTT-3.8.4-3]", sa.ReasonCodes[0])
		}
		r.send(&codec.Unsubscribe{PacketID: 3, Filters: []string{"lim/a"}})
		v5Expect[*codec.Unsuback](r, "UNSUBACK")
		if sa := r.subscribe(4, codec.Properties{}, codec.Subscription{Filter: "lim/c", QoS: 1}); sa.ReasonCodes[0] != 1 {
			t.Errorf("subscribing after an UNSUBSCRIBE freed a slot: %#x, want granted QoS 1", sa.ReasonCodes[0])
		}
	})

	t.Run("max_topic_levels", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, "limits:\n  max_topic_levels: 3\n")
		sub := v5Connect(t, g, nil, nil)
		sub.sub("lvl/#", 1)
		r, _ := v5RawConnect(t, g, "lvl", codec.Properties{})
		// A filter deeper than the limit is refused (0x8F, 3.9.3).
		if sa := r.subscribe(1, codec.Properties{}, codec.Subscription{Filter: "lvl/a/b/c", QoS: 1}); sa.ReasonCodes[0] != byte(codec.TopicFilterInvalid) {
			t.Errorf("SUBSCRIBE to 4 levels with max_topic_levels 3: %#x, want 0x8F", sa.ReasonCodes[0])
		}
		r.send(&codec.Publish{Topic: "lvl/a/b", QoS: 1, PacketID: 1, Payload: []byte("three levels")})
		if a := v5Expect[*codec.Ack](r, "PUBACK"); a.ReasonCode != codec.Success {
			t.Fatalf("PUBLISH to 3 levels: PUBACK %#x, want 0x00", byte(a.ReasonCode))
		}
		// A topic name deeper than the limit is refused with 0x90 Topic
		// Name invalid, in PUBACK or DISCONNECT (3.4.2.1, 3.14.2.1).
		r.send(&codec.Publish{Topic: "lvl/a/b/c", QoS: 1, PacketID: 2, Payload: []byte("four levels")})
		switch p := r.expect("PUBACK or DISCONNECT").(type) {
		case *codec.Ack:
			if p.ReasonCode != codec.TopicNameInvalid {
				t.Errorf("PUBLISH to 4 levels: PUBACK %#x, want 0x90", byte(p.ReasonCode))
			}
		case *codec.Disconnect:
			if p.ReasonCode != codec.TopicNameInvalid {
				t.Errorf("PUBLISH to 4 levels: DISCONNECT %#x, want 0x90", byte(p.ReasonCode))
			}
		default:
			t.Fatalf("PUBLISH to 4 levels: got %s", p.Type())
		}
		got := sub.flush()
		if len(got) != 1 || string(got[0].Payload) != "three levels" {
			t.Errorf("subscriber got %s, want only the 3-level message", v5Payloads(got))
		}
	})

	t.Run("session_max_expiry", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, "session:\n  max_expiry: 60\n")
		for _, tc := range []struct {
			ask  uint32
			want int64 // -1: no Session Expiry Interval in CONNACK
		}{{0xFFFFFFFF, 60}, {3600, 60}, {30, -1}} {
			c := v5Connect(t, g, v5Persistent(uniqueID("maxexp"), true, tc.ask), nil)
			got := int64(-1)
			if p := c.ack.Properties; p != nil && p.SessionExpiryInterval != nil {
				got = int64(*p.SessionExpiryInterval)
			}
			// 3.2.2.3.2: CONNACK carries the Session Expiry Interval the
			// server uses when it differs from the client's.
			if got != tc.want && !(tc.want == -1 && got == int64(tc.ask)) {
				t.Errorf("Session Expiry %d with max_expiry 60: CONNACK says %d, want %d (-1: absent)", tc.ask, got, tc.want)
			}
		}
	})

	t.Run("max_message_expiry", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, "limits:\n  max_message_expiry: 60\n")
		sub := v5Connect(t, g, nil, nil)
		sub.sub("mme/#", 1)
		pub := v5Connect(t, g, nil, nil)
		for _, tc := range []struct {
			topic  string
			expiry *uint32
			max    uint32
		}{{"mme/none", nil, 60}, {"mme/long", paho5.Uint32(3600), 60}, {"mme/short", paho5.Uint32(10), 10}} {
			pub.pub(&paho5.Publish{Topic: tc.topic, QoS: 1, Payload: []byte("x"),
				Properties: &paho5.PublishProperties{MessageExpiry: tc.expiry}})
			m := sub.next()
			if m.Topic != tc.topic {
				t.Fatalf("got %s, want %s", m.Topic, tc.topic)
			}
			// The configured cap applies to messages with a longer
			// expiry or none; the subscriber sees what is left
			// [MQTT-3.3.2-6].
			if e := m.Properties.MessageExpiry; e == nil || *e == 0 || *e > tc.max {
				t.Errorf("%s: Message Expiry Interval %v, want 1..%d", tc.topic, e, tc.max)
			}
		}
	})
}
