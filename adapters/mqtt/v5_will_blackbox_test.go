package mqtt_test

// MQTT 5.0 wills (Will Delay Interval, will properties, DISCONNECT 0x04
// and 0x00) and the reason codes of the DISCONNECT packets the broker
// sends: 0x8E, 0x8D, 0x95, 0x82, 0x81.

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/iotgw/iotgw/adapters/mqtt/codec"
	"github.com/iotgw/iotgw/internal/testutil"
)

// v5WillConnect is a CONNECT with a QoS 1 will on topic, the given
// Session Expiry and Will Delay Intervals (0: absent) and will properties.
func v5WillConnect(id, topic, payload string, expiry, delay uint32, willProps codec.Properties) *codec.Connect {
	c := &codec.Connect{ClientID: id, CleanStart: true, WillFlag: true, WillTopic: topic,
		WillPayload: []byte(payload), WillQoS: 1, WillProps: willProps}
	if expiry > 0 {
		c.Props.SessionExpiry = expiry
		c.Props.Set(codec.PropSessionExpiry)
	}
	if delay > 0 {
		c.WillProps.WillDelay = delay
		c.WillProps.Set(codec.PropWillDelay)
	}
	return c
}

func TestV5Will(t *testing.T) {
	t.Parallel()

	t.Run("delay_cancelled_by_reconnect", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, "")
		sub := v5Connect(t, g, nil, nil)
		sub.sub("wd/#", 1)
		id := uniqueID("wdc")
		w := v5DialRaw(t, g)
		w.connectOK(v5WillConnect(id, "wd/cancel", "should not appear", 60, 2, codec.Properties{}))
		w.nc.Close() // no DISCONNECT: the will is due in 2 s
		v5WaitConnected(t, g, 1)
		w2 := v5DialRaw(t, g)
		ack := w2.connectOK(&codec.Connect{ClientID: id, CleanStart: false,
			Props: codec.Properties{Present: codec.PropMask(codec.PropSessionExpiry), SessionExpiry: 60}})
		if !ack.SessionPresent {
			t.Fatalf("Session Present 0 within the Session Expiry Interval [MQTT-3.2.2-3]")
		}
		// Wait past the Will Delay Interval: [MQTT-3.1.3-9] a new
		// connection to the session before it elapsed means no will.
		time.Sleep(2500 * time.Millisecond)
		if got := sub.flush(); len(got) != 0 {
			t.Errorf("will published although the client reconnected within the Will Delay Interval: %s [MQTT-3.1.3-9]", v5Payloads(got))
		}
	})

	t.Run("delay_elapsed", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, "")
		sub := v5Connect(t, g, nil, nil)
		sub.sub("wd/#", 1)
		w := v5DialRaw(t, g)
		w.connectOK(v5WillConnect(uniqueID("wde"), "wd/elapsed", "late will", 60, 1, codec.Properties{}))
		start := time.Now() // before the broker can see the connection end
		w.nc.Close()
		pub := v5Connect(t, g, nil, nil)
		pub.publish("wd/marker", 1, false, "marker")
		// Not at once: a message published after the connection dropped
		// arrives first ...
		if m := sub.next(); string(m.Payload) != "marker" {
			t.Fatalf("got %s=%q before the marker: the will did not wait for its delay", m.Topic, m.Payload)
		}
		// ... and the will comes once the 1 s Will Delay Interval is over
		// [MQTT-3.1.2-8].
		m := sub.next()
		if m.Topic != "wd/elapsed" || string(m.Payload) != "late will" {
			t.Fatalf("got %s=%q, want the will", m.Topic, m.Payload)
		}
		if d := time.Since(start); d < time.Second {
			t.Errorf("will published %v after the connection closed, before its 1 s delay [MQTT-3.1.2-8]", d)
		}
	})

	t.Run("session_end_before_delay", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, "")
		sub := v5Connect(t, g, nil, nil)
		sub.sub("wd/#", 1)
		w := v5DialRaw(t, g)
		// Session Expiry 1 s, Will Delay 300 s: [MQTT-3.1.2-8] the will is
		// published when the delay elapses or the session ends, whichever
		// is first.
		w.connectOK(v5WillConnect(uniqueID("wds"), "wd/ended", "session ended", 1, 300, codec.Properties{}))
		w.nc.Close()
		if m := sub.next(); m.Topic != "wd/ended" {
			t.Fatalf("got %s=%q, want the will at session end [MQTT-3.1.2-8]", m.Topic, m.Payload)
		}
	})

	t.Run("properties_carried", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, "")
		sub := v5Connect(t, g, nil, nil)
		sub.sub("wp/#", 2)
		props := codec.Properties{
			Present:         codec.PropMask(codec.PropPayloadFormat, codec.PropMessageExpiry, codec.PropContentType, codec.PropResponseTopic, codec.PropCorrelationData),
			PayloadFormat:   1,
			MessageExpiry:   120,
			ContentType:     "text/plain",
			ResponseTopic:   "wp/reply",
			CorrelationData: []byte{9, 8, 7},
			User:            []codec.UserProperty{{Key: "a", Value: "1"}, {Key: "b", Value: "2"}, {Key: "a", Value: "0"}},
		}
		w := v5DialRaw(t, g)
		w.connectOK(v5WillConnect(uniqueID("wprops"), "wp/t", "gone", 0, 0, props))
		w.nc.Close()
		m := sub.next()
		if m.Topic != "wp/t" || string(m.Payload) != "gone" || m.QoS != 1 {
			t.Fatalf("got %s=%q QoS %d, want the will at QoS 1", m.Topic, m.Payload, m.QoS)
		}
		p := m.Properties
		if p.PayloadFormat == nil || *p.PayloadFormat != 1 {
			t.Errorf("will Payload Format Indicator %v, want 1 [MQTT-3.3.2-4]", p.PayloadFormat)
		}
		if p.ContentType != "text/plain" || p.ResponseTopic != "wp/reply" || !bytes.Equal(p.CorrelationData, []byte{9, 8, 7}) {
			t.Errorf("will Content Type %q, Response Topic %q, Correlation Data % x; want them as sent (3.1.3.2)", p.ContentType, p.ResponseTopic, p.CorrelationData)
		}
		if p.MessageExpiry == nil || *p.MessageExpiry == 0 || *p.MessageExpiry > 120 {
			t.Errorf("will Message Expiry Interval %v, want 1..120 (3.1.3.2.4)", p.MessageExpiry)
		}
		// [MQTT-3.1.3-10] User Properties in order, duplicates kept.
		if got := fmt.Sprint(p.User); got != "[{a 1} {b 2} {a 0}]" {
			t.Errorf("will User Properties %s, want [{a 1} {b 2} {a 0}] [MQTT-3.1.3-10]", got)
		}
	})

	t.Run("message_expiry_counts_from_publication", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, "")
		sub := v5Connect(t, g, nil, nil)
		sub.sub("wx/#", 1)
		w := v5DialRaw(t, g)
		w.connectOK(v5WillConnect(uniqueID("wexp"), "wx/t", "gone", 0, 0,
			codec.Properties{Present: codec.PropMask(codec.PropMessageExpiry), MessageExpiry: 60}))
		// The connection lives three seconds before it drops.
		time.Sleep(3 * time.Second)
		w.nc.Close()
		m := sub.next()
		// 3.1.3.2.4: the will's Message Expiry Interval "is sent as the
		// Publication Expiry Interval when the Server publishes the Will
		// Message", so it runs from the publication, not from CONNECT;
		// [MQTT-3.3.2-6] the subscriber sees what is left of it.
		e := m.Properties.MessageExpiry
		if e == nil {
			t.Fatalf("will published without its Message Expiry Interval [MQTT-3.3.2-6]")
		}
		// Counted from CONNECT it would be 57 at most; from the
		// publication it is 60 less the delivery time.
		if *e < 58 || *e > 60 {
			t.Errorf("will Message Expiry Interval %d right after publication, want 58..60: the interval ran while the client was still connected (3.1.3.2.4)", *e)
		}
	})

	t.Run("disconnect_with_will", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, "")
		sub := v5Connect(t, g, nil, nil)
		sub.sub("ww/#", 1)
		w := v5DialRaw(t, g)
		w.connectOK(v5WillConnect(uniqueID("w04"), "ww/t", "asked for", 0, 0, codec.Properties{}))
		w.send(&codec.Disconnect{ReasonCode: codec.DisconnectWithWill})
		w.expectClosed("after DISCONNECT 0x04")
		// 3.14.2.1: 0x04 Disconnect with Will Message: the will is
		// published [MQTT-3.1.2-8].
		if m := sub.next(); m.Topic != "ww/t" || string(m.Payload) != "asked for" {
			t.Errorf("got %s=%q, want the will after DISCONNECT 0x04", m.Topic, m.Payload)
		}
	})

	t.Run("normal_disconnect_no_will", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, "")
		sub := v5Connect(t, g, nil, nil)
		sub.sub("wn/#", 1)
		w := v5DialRaw(t, g)
		w.connectOK(v5WillConnect(uniqueID("w00"), "wn/t", "must not appear", 0, 0, codec.Properties{}))
		w.send(&codec.Disconnect{ReasonCode: codec.NormalDisconnection})
		w.expectClosed("after DISCONNECT 0x00")
		v5WaitConnected(t, g, 1)
		// [MQTT-3.14.4-3], [MQTT-3.1.2-10] DISCONNECT 0x00 discards the
		// will without publishing it.
		if got := sub.flush(); len(got) != 0 {
			t.Errorf("will published after a normal DISCONNECT: %s [MQTT-3.14.4-3]", v5Payloads(got))
		}
	})
}

func TestV5ServerDisconnect(t *testing.T) {
	t.Parallel()

	t.Run("session_taken_over_0x8e", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, "")
		id := uniqueID("takeover")
		// The first client is raw: paho.golang v0.22.0 cannot decode a
		// DISCONNECT whose Remaining Length is 1 (reason code, properties
		// omitted as 3.14.2.2.1 allows) and reports EOF instead.
		first := v5DialRaw(t, g)
		first.connectOK(&codec.Connect{ClientID: id, CleanStart: true,
			Props: codec.Properties{Present: codec.PropMask(codec.PropSessionExpiry), SessionExpiry: 60}})
		second := v5Connect(t, g, v5Persistent(id, false, 60), nil)
		// [MQTT-3.1.4-3] the existing connection gets DISCONNECT 0x8E and
		// is closed ...
		first.expectDisconnect(codec.SessionTakenOver, "[MQTT-3.1.4-3]")
		// ... and the new one resumes the session [MQTT-3.1.2-5].
		if !second.ack.SessionPresent {
			t.Errorf("takeover with Clean Start 0: Session Present 0 [MQTT-3.2.2-3]")
		}
	})

	t.Run("keep_alive_timeout_0x8d", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, "")
		r := v5DialRaw(t, g)
		r.connectOK(&codec.Connect{ClientID: uniqueID("silent"), CleanStart: true, KeepAlive: 1})
		// [MQTT-3.1.2-22] nothing within 1.5 × keep alive: the broker
		// closes the connection, telling an MQTT 5 client why (0x8D).
		r.expectDisconnect(codec.KeepAliveTimeout, "[MQTT-3.1.2-22]")
	})

	t.Run("packet_too_large_0x95", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, "mqtt:\n  max_packet_size: 128\n")
		r, ack := v5RawConnect(t, g, "big", codec.Properties{})
		if ack.Props.MaximumPacketSize != 128 {
			t.Fatalf("CONNACK Maximum Packet Size %d, want 128 (3.2.2.3.6)", ack.Props.MaximumPacketSize)
		}
		r.send(&codec.Publish{Topic: "big/t", Payload: []byte(strings.Repeat("x", 300))})
		// 3.2.2.3.6: a packet above the server's Maximum Packet Size is
		// answered with DISCONNECT 0x95.
		r.expectDisconnect(codec.PacketTooLarge, "(3.2.2.3.6)")
	})

	t.Run("second_connect_0x82", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, "")
		r, _ := v5RawConnect(t, g, "twice", codec.Properties{})
		r.send(&codec.Connect{ProtocolLevel: codec.V5, ClientID: uniqueID("twice"), CleanStart: true})
		// [MQTT-3.1.0-2] a second CONNECT is a Protocol Error.
		r.expectDisconnect(codec.ProtocolError, "[MQTT-3.1.0-2]")
	})

	t.Run("duplicate_property_0x82", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, "")
		r, _ := v5RawConnect(t, g, "dupprop", codec.Properties{})
		// PUBLISH QoS 0 "d/t" with the Payload Format Indicator twice.
		props := []byte{0x01, 0x01, 0x01, 0x01}
		body := append(append(mqttString("d/t"), byte(len(props))), props...)
		body = append(body, "x"...)
		r.write(fixedHeader(0x30, vbi(len(body)), body))
		// 3.3.2.3.2: "It is a Protocol Error to include the Payload Format
		// Indicator more than once" - DISCONNECT 0x82 (4.13).
		r.expectDisconnect(codec.ProtocolError, "(3.3.2.3.2)")
	})

	t.Run("malformed_0x81", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, "")
		r, _ := v5RawConnect(t, g, "malformed", codec.Properties{})
		// PUBLISH carrying a Session Expiry Interval (0x11), a property
		// not valid in PUBLISH: 2.2.2.2 makes that a Malformed Packet.
		props := []byte{0x11, 0, 0, 0, 10}
		body := append(append(mqttString("m/t"), byte(len(props))), props...)
		r.write(fixedHeader(0x30, vbi(len(body)), body))
		r.expectDisconnect(codec.MalformedPacket, "(2.2.2.2)")
	})

	t.Run("session_expiry_raised_on_disconnect_0x82", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, "")
		r, _ := v5RawConnect(t, g, "raise", codec.Properties{}) // Session Expiry absent: 0
		r.send(&codec.Disconnect{Props: codec.Properties{Present: codec.PropMask(codec.PropSessionExpiry), SessionExpiry: 60}})
		// 3.14.2.2.2: a non-zero Session Expiry Interval on DISCONNECT
		// after 0 in CONNECT is a Protocol Error.
		r.expectDisconnect(codec.ProtocolError, "(3.14.2.2.2)")
	})
}
