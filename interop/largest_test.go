package interop

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/go-stomp/stomp/v3"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/iotgw/iotgw/internal/testutil"
)

// TestLargest proves the "largest payload" the matrix sends is the
// largest: for each publisher protocol, a payload one byte larger is
// refused (and never delivered), one of exactly the computed size is
// delivered. MQTT-SN's limit is the IPv4 UDP datagram itself: a client
// cannot send one byte more in one datagram.
func TestLargest(t *testing.T) {
	e := startEnv(t, "")
	watch := dialPaho3(t, e.gw.MQTTURL(), uniqueID("watch"), nil)
	watch.Subscribe(t, "big/#", 1)
	marker := dialPaho3(t, e.gw.MQTTURL(), uniqueID("marker"), nil)

	// acceptOneRefuseNext publishes max (delivered) then max+1 through
	// send, which reports how the publisher saw the refusal.
	check := func(t *testing.T, topic string, max int, send func(p []byte) error, refusedOK func(err error) bool) {
		p := binaryPayload(max)
		if err := send(p); err != nil {
			t.Fatalf("%d bytes: %v", max, err)
		}
		expectAll(t, watch, want{topic: topic, payload: p, qos: 1, retain: 0})
		err := send(binaryPayload(max + 1))
		if !refusedOK(err) {
			t.Errorf("%d bytes: not refused (%v)", max+1, err)
		}
		// Nothing more on big/#: the larger one was not routed.
		fence(t, marker, watch, "big/fence", 1)
	}

	t.Run("mqtt311", func(t *testing.T) {
		topic := "big/mqtt311"
		max := mqttMaxPayload(mqttMaxPacket, topic, false, 0)
		c := dialPaho3(t, e.gw.MQTTURL(), uniqueID("big"), nil)
		check(t, topic, max, func(p []byte) error {
			tok := c.c.Publish(topic, 1, false, p)
			tok.WaitTimeout(waitTimeout)
			return tok.Error()
		}, func(error) bool {
			// MQTT 3.1.1 has no refusal but closing the connection.
			testutil.Eventually(t, waitTimeout, func() bool { return !c.c.IsConnectionOpen() }, "connection closed")
			return true
		})
	})

	t.Run("mqtt5", func(t *testing.T) {
		topic := "big/mqtt5"
		max := mqttMaxPayload(mqttMaxPacket, topic, true, 0)
		c := dialPaho5(t, e.gw.MQTTAddr(), uniqueID("big"), nil)
		check(t, topic, max, func(p []byte) error {
			// paho.golang's Publish waits for its context even when the
			// connection is gone: end it when the client is done.
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			go func() {
				select {
				case <-c.c.Done():
					cancel()
				case <-ctx.Done():
				}
			}()
			r, err := c.c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: p})
			if err == nil && r != nil && r.ReasonCode >= 0x80 {
				t.Logf("reason 0x%02X", r.ReasonCode)
			}
			return err
		}, func(err error) bool {
			select {
			case <-c.c.Done(): // DISCONNECT 0x95 Packet too large, connection closed
				return err != nil
			case <-time.After(waitTimeout):
				return false
			}
		})
	})

	t.Run("mqttws", func(t *testing.T) {
		topic := "big/mqttws"
		max := mqttMaxPayload(mqttMaxPacket, topic, false, 0)
		c := dialPaho3(t, e.gw.WSURL(), uniqueID("big"), nil)
		check(t, topic, max, func(p []byte) error {
			tok := c.c.Publish(topic, 1, false, p)
			tok.WaitTimeout(waitTimeout)
			return tok.Error()
		}, func(error) bool {
			testutil.Eventually(t, waitTimeout, func() bool { return !c.c.IsConnectionOpen() }, "connection closed")
			return true
		})
	})

	for _, name := range []string{"stomp", "stompws"} {
		t.Run(name, func(t *testing.T) {
			topic := "big/" + name
			max := stompCaps().maxIn(topic, "")
			// A short receipt wait: the probe below retries until the
			// connection is seen closed.
			probe := stomp.ConnOpt.RcvReceiptTimeout(time.Second)
			var c *stompClient
			if name == "stomp" {
				c = dialSTOMP(t, e.gw.STOMPAddr(), "", uniqueID("big"), probe)
			} else {
				c = dialSTOMP(t, "", e.gw.STOMPWSURL(), uniqueID("big"), probe)
			}
			check(t, topic, max, func(p []byte) error {
				// The headers maxIn counted: destination, qos (and
				// content-length); a receipt would not fit.
				return c.c.Send(topic, "", p, stomp.SendOpt.Header(hdrQoS, "1"))
			}, func(error) bool {
				// The ERROR frame closes the connection: a later SEND with
				// a receipt fails at once. (go-stomp leaves a SEND queued
				// while its connection dies to its receipt timeout, so the
				// probe is repeated; a RECEIPT would mean the connection
				// survived.)
				deadline := time.Now().Add(waitTimeout)
				for time.Now().Before(deadline) {
					err := c.c.Send("big/after", "", []byte("x"), stomp.SendOpt.Receipt)
					switch {
					case err == nil:
						return false
					case errors.Is(err, stomp.ErrMsgReceiptTimeout):
						continue
					default:
						return true
					}
				}
				return false
			})
		})
	}

	if e.coap == "" {
		return
	}
	t.Run("coap", func(t *testing.T) {
		topic := "big/coap"
		c := dialCoAP(t, e.coap)
		var last codes.Code
		check(t, topic, coapMaxBody, func(p []byte) error {
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			resp, err := c.cc.Post(ctx, psPath(topic), message.AppOctets, bytesReader(p))
			if err != nil {
				return err
			}
			last = resp.Code()
			c.cc.ReleaseMessage(resp)
			if last != codes.Changed {
				return errCode(last)
			}
			return nil
		}, func(err error) bool {
			return err != nil && last == codes.RequestEntityTooLarge
		})
	})
}

// TestMQTTSNOversizeDelivery: a delivery whose MQTT-SN encoding fits the
// 16-bit length (payload up to 65526 bytes) but not one IPv4 UDP datagram
// (65498) is dropped as undeliverable, like one above 65526 bytes, and
// the client is kept (it used to be retransmitted until the subscriber
// was declared lost).
func TestMQTTSNOversizeDelivery(t *testing.T) {
	e := startEnv(t, "mqttsn:\n  retry_interval: 1s\n")
	sub := dialSN(t, e.gw.MQTTSNAddr(), uniqueID("sn"), nil, 300)
	sub.Subscribe(t, "big/sn", 1)
	pub := dialPaho5(t, e.gw.MQTTAddr(), uniqueID("m5"), nil)
	pub.Publish(t, msg{Topic: "big/sn", Payload: binaryPayload(snMaxPayload + 1), QoS: 1})
	pub.Publish(t, msg{Topic: "big/sn", Payload: []byte("after"), QoS: 1})
	expectAll(t, sub, want{topic: "big/sn", payload: []byte("after"), qos: 1, retain: 0})
}

func bytesReader(p []byte) *bytes.Reader { return bytes.NewReader(p) }

type errCode codes.Code

func (e errCode) Error() string { return codes.Code(e).String() }
