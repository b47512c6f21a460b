package coap_test

import (
	"strings"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// TestBlockwise: a 3 KB publish travels block-wise (Block1) into MQTT, a
// 3 KB MQTT message reaches an observer block-wise (the first block with
// the notification, the rest by GET with Block2), and a 3 KB retained
// message is read with Block2.
func TestBlockwise(t *testing.T) {
	g := startGateway(t, nil)
	sub := g.mqttClient(t)
	sub.subscribe("bw/#", 1)
	cc := g.coapClient(t)
	big := strings.Repeat("0123456789abcdef", 192) // 3072 bytes
	if r := post(t, cc, "/ps/bw/up", message.AppOctets, big, "retain=true"); r.Code != codes.Changed {
		t.Fatalf("block-wise publish: %v %q", r.Code, r.Payload)
	}
	if m := sub.next(); m.Topic != "bw/up" || m.Payload != big {
		t.Fatalf("MQTT got %d bytes on %s", len(m.Payload), m.Topic)
	}
	if r := get(t, cc, "/ps/bw/up"); r.Code != codes.Content || r.Payload != big || r.CF != int(message.AppOctets) {
		t.Fatalf("block-wise read: %v, %d bytes, cf %d", r.Code, len(r.Payload), r.CF)
	}

	oc := g.coapClient(t)
	o := newObserver(t)
	if _, err := oc.Observe(ctxTimeout(t), "/ps/bw/+", o.fn, queries("qos=1")...); err != nil {
		t.Fatalf("observe: %v", err)
	}
	o.next()
	// The retained 3 KB message comes first, block-wise too.
	if r := o.next(); r.Payload != big || r.Loc != "ps/bw/up" {
		t.Fatalf("block-wise retained notification: %v, %d bytes, location %q", r.Code, len(r.Payload), r.Loc)
	}
	down := strings.Repeat("fedcba9876543210", 192)
	sub.publish("bw/down", 1, false, down)
	if r := o.next(); r.Code != codes.Content || r.Payload != down || r.Loc != "ps/bw/down" {
		t.Fatalf("block-wise notification: %v, %d bytes, location %q", r.Code, len(r.Payload), r.Loc)
	}
	sub.publish("bw/down", 1, false, "small")
	if r := o.next(); r.Payload != "small" {
		t.Fatalf("after block-wise: %q", r.Payload)
	}
}
