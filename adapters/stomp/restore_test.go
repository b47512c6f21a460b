package stomp_test

import (
	"context"
	"testing"
	"time"

	gostomp "github.com/go-stomp/stomp/v3"

	"github.com/iotgw/iotgw/core"
	"github.com/iotgw/iotgw/core/store"
)

// TestPersistentSessionAfterRestart: a persistent STOMP session recovered
// from the store by a new broker (a gateway restart: the adapter's own
// routing state is gone, the core's subscriptions and messages are back)
// gets what it left unacknowledged (redelivered) and what arrived while
// it was offline, once it subscribes to the destination again. Before the
// adapter rebuilt its routes from the core subscriptions, those messages
// carried subscription ids nobody knew and were completed unsent.
func TestPersistentSessionAfterRestart(t *testing.T) {
	t.Parallel()
	st := store.NewMemory()
	e1 := startEnv(t, nil, core.WithStore(st))
	p := connectPaho(t, e1.mqtt)
	c1 := dialStomp(t, e1.stomp, gostomp.ConnOpt.Header("client-id", "restored"))
	sub, err := c1.Subscribe("rs/x", gostomp.AckClientIndividual)
	if err != nil {
		t.Fatal(err)
	}
	syncStomp(t, c1)
	p.pub("rs/x", 1, false, "a")
	if m := nextMsg(t, sub); string(m.Body) != "a" {
		t.Fatalf("got %q", m.Body)
	}
	_ = c1.MustDisconnect() // "a" stays unacknowledged
	e1.waitConnected(t, 1)
	p.pub("rs/x", 1, false, "b") // queued for the offline session

	// A second broker on the same store, as after a restart; the first
	// one is idle from here on.
	e2 := startEnv(t, nil, core.WithStore(st))
	if err := e2.b.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	c2 := dialStomp(t, e2.stomp, gostomp.ConnOpt.Header("client-id", "restored"))
	sub2, err := c2.Subscribe("rs/x", gostomp.AckClientIndividual)
	if err != nil {
		t.Fatal(err)
	}
	ma, mb := nextMsg(t, sub2), nextMsg(t, sub2)
	if string(ma.Body) != "a" || ma.Header.Get("redelivered") != "true" || string(mb.Body) != "b" {
		t.Fatalf("after restart %q %v, %q %v", ma.Body, ma.Header, mb.Body, mb.Header)
	}
	for _, m := range []*gostomp.Message{ma, mb} {
		if err := c2.Ack(m); err != nil {
			t.Fatal(err)
		}
	}
	syncStomp(t, c2)
	_ = c2.MustDisconnect()

	// Acknowledged: a third connection gets nothing back.
	c3 := dialStomp(t, e2.stomp, gostomp.ConnOpt.Header("client-id", "restored"))
	sub3, err := c3.Subscribe("rs/x", gostomp.AckClientIndividual)
	if err != nil {
		t.Fatal(err)
	}
	syncStomp(t, c3)
	noMsg(t, sub3, 200*time.Millisecond)
	_ = c3.MustDisconnect()
}
