package main

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"
)

// v5Dial connects a paho.golang MQTT 5 client with the given Clean Start
// and Session Expiry Interval; every PUBLISH it receives goes to msgs.
func v5Dial(t *testing.T, addr, id string, cleanStart bool, expiry uint32, msgs chan *paho5.Publish) (*paho5.Client, *paho5.Connack) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	cfg := paho5.ClientConfig{Conn: nc, PacketTimeout: 5 * time.Second}
	if msgs != nil {
		cfg.OnPublishReceived = []func(paho5.PublishReceived) (bool, error){
			func(pr paho5.PublishReceived) (bool, error) {
				msgs <- pr.Packet
				return true, nil
			},
		}
	}
	c := paho5.NewClient(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ack, err := c.Connect(ctx, &paho5.Connect{ClientID: id, CleanStart: cleanStart, KeepAlive: 30,
		Properties: &paho5.ConnectProperties{SessionExpiryInterval: paho5.Uint32(expiry)}})
	if err != nil {
		t.Fatalf("connect %s: %v", id, err)
	}
	return c, ack
}

// TestCrashDropsExpiredKeepsCounting: MQTT 5 messages with a Message
// Expiry Interval, queued for an offline persistent subscriber and
// retained, survive a kill -9 only while their expiry lasts: after the
// restart nothing expired is delivered, the others are, and their
// remaining expiry has kept counting through the downtime (MQTT 5
// [MQTT-3.3.2-6]: the interval sent on is the received one minus the time
// the message waited in the server).
func TestCrashDropsExpiredKeepsCounting(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	dir := filepath.Join(t.TempDir(), "data")
	g := startGateway(t, bin, dir)

	sub, _ := v5Dial(t, g.addr, "exp-sub", true, 3600, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := sub.Subscribe(ctx, &paho5.Subscribe{Subscriptions: []paho5.SubscribeOptions{{Topic: "exp/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	sub.Disconnect(&paho5.Disconnect{})

	pub, _ := v5Dial(t, g.addr, "exp-pub", true, 0, nil)
	const n = 20
	publish := func(topic string, expiry uint32, retain bool) {
		t.Helper()
		p := &paho5.Publish{Topic: topic, QoS: 1, Retain: retain, Payload: []byte(topic)}
		if expiry > 0 {
			p.Properties = &paho5.PublishProperties{MessageExpiry: paho5.Uint32(expiry)}
		}
		if _, err := pub.Publish(ctx, p); err != nil { // returns on PUBACK: durable
			t.Fatalf("publish %s: %v", topic, err)
		}
	}
	for i := 0; i < n; i++ {
		publish(fmt.Sprintf("exp/short/%d", i), 1, false)
		publish(fmt.Sprintf("exp/long/%d", i), 3600, false)
		publish(fmt.Sprintf("exp/none/%d", i), 0, false)
	}
	publish("ret/short", 1, true)
	publish("ret/long", 3600, true)
	g.kill(t)

	// The short ones expire while the gateway is down.
	const down = 2500 * time.Millisecond
	time.Sleep(down)
	g = startGateway(t, bin, dir)
	defer func() { g.term(t) }()

	msgs := make(chan *paho5.Publish, 4*n)
	sub, ack := v5Dial(t, g.addr, "exp-sub", false, 3600, msgs)
	defer sub.Disconnect(&paho5.Disconnect{})
	if !ack.SessionPresent {
		t.Fatal("persistent session not present after the restart")
	}
	retained := make(chan *paho5.Publish, 4)
	rsub, _ := v5Dial(t, g.addr, "exp-ret", true, 0, retained)
	defer rsub.Disconnect(&paho5.Disconnect{})
	if _, err := rsub.Subscribe(ctx, &paho5.Subscribe{Subscriptions: []paho5.SubscribeOptions{{Topic: "ret/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}

	got := map[string]int{}
	var gotRetained []string
	for quiet := time.After(2 * time.Second); ; {
		select {
		case p := <-msgs:
			got[p.Topic]++
			checkRemaining(t, p, down)
			quiet = time.After(time.Second)
			continue
		case p := <-retained:
			gotRetained = append(gotRetained, p.Topic)
			checkRemaining(t, p, down)
			quiet = time.After(time.Second)
			continue
		case <-quiet:
		}
		break
	}
	for i := 0; i < n; i++ {
		for _, kind := range []string{"long", "none"} {
			if topic := fmt.Sprintf("exp/%s/%d", kind, i); got[topic] == 0 {
				t.Errorf("%s lost across the crash", topic)
			}
		}
		if topic := fmt.Sprintf("exp/short/%d", i); got[topic] > 0 {
			t.Errorf("%s delivered after it expired", topic)
		}
	}
	if strings.Join(gotRetained, ",") != "ret/long" {
		t.Errorf("retained after the restart: %v, want only ret/long", gotRetained)
	}
}

// checkRemaining fails the test if a message that had 3600 s to live
// arrives with more than 3600 s minus the downtime left: its clock must
// keep running while the gateway is down. Messages without an expiry
// must arrive without one.
func checkRemaining(t *testing.T, p *paho5.Publish, down time.Duration) {
	t.Helper()
	var exp *uint32
	if p.Properties != nil {
		exp = p.Properties.MessageExpiry
	}
	switch {
	case strings.Contains(p.Topic, "/long"):
		if exp == nil || time.Duration(*exp)*time.Second > 3600*time.Second-down+time.Second {
			t.Errorf("%s: message expiry %v after %v down, want at most %v", p.Topic, exp, down, 3600*time.Second-down)
		}
	case strings.Contains(p.Topic, "/none"):
		if exp != nil {
			t.Errorf("%s: message expiry %d on a message published without one", p.Topic, *exp)
		}
	}
}
