package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
)

// TestCrashCoAP: a CoAP client POSTs CON publishes at QoS 1 to a topic
// that an offline persistent MQTT subscriber subscribed to at QoS 1; the
// gateway is killed at a random point and restarted on the same store,
// and every publish answered 2.04 Changed must reach the subscriber when
// it reconnects. Several rounds.
func TestCrashCoAP(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	dir := filepath.Join(t.TempDir(), "data")
	g := startGateway(t, bin, dir)
	defer func() { g.term(t) }()

	c := dialPaho(t, g.addr, "crash-coap-sub", false, nil)
	if tok := c.Subscribe("coap/#", 1, nil); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	c.Disconnect(100)

	r := newReceiver()
	var acked ackedSet
	for round := 0; round < crashRounds; round++ {
		cc, err := udp.Dial(g.coap, options.WithErrors(func(error) {}))
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := 0; ; i++ {
				// One topic per message: the MQTT receiver counts by topic.
				topic := fmt.Sprintf("coap/r%d/%d", round, i)
				// 2.04 comes once the message is durable; a CON that
				// times out means the gateway is gone.
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				resp, err := cc.Post(ctx, "/ps/"+topic, message.TextPlain, bytes.NewReader([]byte(topic)),
					message.Option{ID: message.URIQuery, Value: []byte("qos=1")})
				cancel()
				if err != nil {
					return
				}
				if resp.Code() == codes.Changed {
					acked.add(topic)
				}
			}
		}()
		acked.waitAcked(acked.len() + 20 + rand.IntN(150))
		g.kill(t)
		<-done
		cc.Close()

		g = startGateway(t, bin, dir)
		keys := acked.snapshot()
		c := dialPaho(t, g.addr, "crash-coap-sub", false, r)
		missing := waitAll(r, keys)
		c.Disconnect(100)
		t.Logf("round %d: %d acknowledged in all, subscriber got %d (%d missing); restart took %v (recovery %s)",
			round, len(keys), r.total(), missing, g.startup, g.recovered)
		if missing > 0 {
			t.Fatalf("round %d: %d publishes answered 2.04 never reached the persistent subscriber", round, missing)
		}
	}
}
