package main

import (
	"fmt"
	"math/rand/v2"
	"net"
	"path/filepath"
	"testing"
	"time"

	gostomp "github.com/go-stomp/stomp/v3"
)

// crashRounds is how many kill -9 / restart rounds the protocol crash
// tests run, each at a random point of the load.
const crashRounds = 3

func dialStomp(t *testing.T, addr string, opts ...func(*gostomp.Conn) error) *gostomp.Conn {
	t.Helper()
	opts = append([]func(*gostomp.Conn) error{gostomp.ConnOpt.HeartBeat(0, 0)}, opts...)
	c, err := gostomp.Dial("tcp", addr, opts...)
	if err != nil {
		t.Fatalf("stomp dial: %v", err)
	}
	return c
}

// stompSubscriber connects the persistent STOMP session "crash-stomp-sub"
// and (re)subscribes to its destination with client-individual acks: a
// persistent STOMP session resumes its core subscription only when the
// client subscribes to the same destination again. Every MESSAGE is
// counted by body and acknowledged.
//
// The ACKs go out from a goroutine of their own: go-stomp's Ack waits for
// its writer, and its reader blocks handing the next MESSAGE to sub.C, so
// acknowledging from the loop that drains sub.C deadlocks the client as
// soon as the gateway sends a burst (a restored backlog bigger than the
// window). That client-side stall was once taken for lost messages.
func stompSubscriber(t *testing.T, addr string, r *receiver) *gostomp.Conn {
	t.Helper()
	c := dialStomp(t, addr, gostomp.ConnOpt.Header("client-id", "crash-stomp-sub"))
	sub, err := c.Subscribe("stomp/load", gostomp.AckClientIndividual)
	if err != nil {
		t.Fatal(err)
	}
	acks := make(chan *gostomp.Message, 4096)
	go func() {
		defer close(acks)
		for m := range sub.C {
			if m.Err != nil {
				return
			}
			r.add(string(m.Body))
			acks <- m
		}
	}()
	go func() {
		for m := range acks {
			if c.Ack(m) != nil {
				for range acks {
				}
				return
			}
		}
	}()
	return c
}

// TestCrashSTOMPReceipts: a STOMP publisher sends QoS 1 SENDs with a
// receipt header to a destination that an offline persistent STOMP
// session subscribes to; the gateway is killed with SIGKILL at a random
// point, restarted on the same store, and every message whose RECEIPT
// arrived must reach the subscriber (at least once) once it reconnects
// and subscribes again. Several rounds, each killing at another point.
func TestCrashSTOMPReceipts(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	dir := filepath.Join(t.TempDir(), "data")
	g := startGateway(t, bin, dir)
	defer func() { g.term(t) }()

	r := newReceiver()
	c := stompSubscriber(t, g.stomp, r)
	if err := c.Disconnect(); err != nil {
		t.Fatal(err)
	}

	var acked ackedSet
	// IOTGWTEST_CRASH_STOMP_ROUNDS runs more rounds when hunting a flake.
	rounds := crashRoundsFrom(t, "IOTGWTEST_CRASH_STOMP_ROUNDS")
	for round := 0; round < rounds; round++ {
		// The publisher runs on a connection of our own so that it can be
		// cut after the kill: go-stomp's Send may otherwise wait for a
		// RECEIPT that can never come.
		nc, err := net.Dial("tcp", g.stomp)
		if err != nil {
			t.Fatal(err)
		}
		pub, err := gostomp.Connect(nc, gostomp.ConnOpt.HeartBeat(0, 0))
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := 0; ; i++ {
				body := fmt.Sprintf("r%d-%d", round, i)
				// With a receipt header go-stomp's Send waits for the
				// RECEIPT, which the gateway sends once the message is
				// durable; an error means the gateway is gone.
				if err := pub.Send("stomp/load", "text/plain", []byte(body),
					gostomp.SendOpt.Header("qos", "1"), gostomp.SendOpt.Receipt); err != nil {
					return
				}
				acked.add(body)
			}
		}()
		acked.waitAcked(acked.len() + 20 + rand.IntN(150))
		g.kill(t)
		nc.Close()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			// Only messages whose RECEIPT arrived are checked, so a
			// publisher stuck in go-stomp changes nothing below.
			t.Logf("round %d: publisher still blocked in go-stomp after the kill", round)
		}

		g = startGateway(t, bin, dir)
		keys := acked.snapshot()
		c := stompSubscriber(t, g.stomp, r)
		missing := waitAll(r, keys)
		c.Disconnect()
		t.Logf("round %d: %d acknowledged in all, subscriber got %d (%d missing); restart took %v (recovery %s)",
			round, len(keys), r.total(), missing, g.startup, g.recovered)
		if missing > 0 {
			t.Fatalf("round %d: %d messages with a RECEIPT never reached the persistent subscriber", round, missing)
		}
	}
}
