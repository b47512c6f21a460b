package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestCrashKeepsAcknowledgedMessages runs the real binary on a pebble
// store, kills it with SIGKILL while a publisher is sending QoS 1 and 2
// messages to two offline persistent subscribers, restarts it on the same
// directory and checks: every acknowledged message arrives, QoS 2 exactly
// once and QoS 1 at least once; subscriptions and retained messages
// survive. Then a graceful SIGTERM restart must lose nothing either.
func TestCrashKeepsAcknowledgedMessages(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	dir := filepath.Join(t.TempDir(), "data")
	g := startGateway(t, bin, dir)

	r1 := &receiver{got: map[string]int{}}
	r2 := &receiver{got: map[string]int{}}
	for _, s := range []struct {
		id  string
		qos byte
		r   *receiver
	}{{"crash-sub1", 1, r1}, {"crash-sub2", 2, r2}} {
		c := dialPaho(t, g.addr, s.id, false, s.r)
		if tok := c.Subscribe("load/#", s.qos, nil); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
		c.Disconnect(100)
	}
	pub := dialPaho(t, g.addr, "crash-pub", true, nil)
	if tok := pub.Publish("ret/x", 1, true, "kept"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}

	// Publish until killed; record every acknowledged message.
	var mu sync.Mutex
	acked := map[string]byte{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			qos := byte(1 + i%2)
			topic := fmt.Sprintf("load/%d/%d", qos, i)
			tok := pub.Publish(topic, qos, false, topic)
			if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
				return
			}
			mu.Lock()
			acked[topic] = qos
			mu.Unlock()
		}
	}()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 400 {
			break
		}
	}
	g.kill(t)
	<-done
	pub.Disconnect(0)
	mu.Lock()
	if len(acked) < 50 {
		t.Fatalf("only %d messages acknowledged before the kill", len(acked))
	}
	want := len(acked)
	mu.Unlock()

	g = startGateway(t, bin, dir)
	defer func() { g.term(t) }()
	check := func(stage string) {
		t.Helper()
		// The subscribers do not subscribe again: their subscriptions
		// must have survived.
		c1 := dialPaho(t, g.addr, "crash-sub1", false, r1)
		c2 := dialPaho(t, g.addr, "crash-sub2", false, r2)
		waitQuiet(r1, want)
		waitQuiet(r2, want)
		c1.Disconnect(100)
		c2.Disconnect(100)
		mu.Lock()
		defer mu.Unlock()
		var missing, dups int
		for topic, qos := range acked {
			if r1.count(topic) == 0 || r2.count(topic) == 0 {
				missing++
			}
			if qos == 2 && r2.count(topic) > 1 {
				dups++
			}
		}
		t.Logf("%s: %d acknowledged, subscriber 1 got %d, subscriber 2 got %d", stage, len(acked), r1.total(), r2.total())
		if missing > 0 || dups > 0 {
			t.Fatalf("%s: %d acknowledged messages missing, %d QoS 2 duplicates", stage, missing, dups)
		}
	}
	check("after kill -9")

	rc := &receiver{got: map[string]int{}}
	c := dialPaho(t, g.addr, "crash-ret", true, rc)
	c.Subscribe("ret/#", 1, nil).WaitTimeout(5 * time.Second)
	waitQuiet(rc, 1)
	c.Disconnect(100)
	if rc.count("ret/x") != 1 {
		t.Fatal("retained message lost in the crash")
	}

	// A graceful restart with messages queued for the offline subscribers.
	pub = dialPaho(t, g.addr, "crash-pub", true, nil)
	for i := 0; i < 200; i++ {
		qos := byte(1 + i%2)
		topic := fmt.Sprintf("load/term/%d/%d", qos, i)
		if tok := pub.Publish(topic, qos, false, topic); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
		mu.Lock()
		acked[topic] = qos
		mu.Unlock()
	}
	pub.Disconnect(100)
	g.term(t)
	g = startGateway(t, bin, dir)
	mu.Lock()
	want = len(acked)
	mu.Unlock()
	check("after SIGTERM")
	if !strings.HasPrefix(g.addr, "127.0.0.1:") {
		t.Fatal(g.addr)
	}
}
