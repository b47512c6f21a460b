package core

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"
)

func sysClients(t *testing.T, b *Broker) (connected, disconnected, total int) {
	t.Helper()
	m := b.SysSnapshot()
	n := func(k string) int {
		v, err := strconv.Atoi(m["$SYS/broker/clients/"+k])
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		return v
	}
	if n("active") != n("connected") || n("inactive") != n("disconnected") {
		t.Fatalf("active/inactive differ from connected/disconnected: %v", m)
	}
	return n("connected"), n("disconnected"), n("total")
}

// TestSysClientsTotal: clients/total is Mosquitto's, the connected clients
// and the disconnected ones whose sessions are kept; a client without a
// kept session is gone once it disconnects, and a takeover counts once.
func TestSysClientsTotal(t *testing.T) {
	b := newTestBroker(t, nil)
	connect(t, b, "clean", true, 0, nil)
	connect(t, b, "kept", false, time.Hour, nil)
	for _, id := range []string{"off1", "off2"} {
		s, sink, _ := connect(t, b, id, false, time.Hour, nil)
		s.Disconnect(sink, DisconnectOptions{})
	}
	s, sink, _ := connect(t, b, "gone", true, 0, nil)
	s.Disconnect(sink, DisconnectOptions{})
	connect(t, b, "taken", false, time.Hour, nil)
	connect(t, b, "taken", false, time.Hour, nil) // takes the session over
	if c, d, tot := sysClients(t, b); c != 3 || d != 2 || tot != 5 {
		t.Fatalf("connected %d disconnected %d total %d, want 3 2 5", c, d, tot)
	}
}

// TestSysClientsConsistent takes snapshots while clients come and go: the
// three figures always agree (total = connected + disconnected).
func TestSysClientsConsistent(t *testing.T) {
	b := newTestBroker(t, nil)
	const workers, rounds = 4, 200
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				sink := &fakeSink{}
				id := fmt.Sprintf("w%d-%d", w, i%8)
				s, _, err := b.Connect(context.Background(), ConnectRequest{ClientID: id, Expiry: time.Duration(i%2) * time.Hour, Sink: sink})
				if err != nil {
					t.Error(err)
					return
				}
				s.Disconnect(sink, DisconnectOptions{})
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	bad := ""
	for snapshots := 0; bad == ""; snapshots++ {
		c, d, tot := sysClients(t, b)
		if tot != c+d || c < 0 || d < 0 {
			bad = fmt.Sprintf("snapshot %d: connected %d disconnected %d total %d", snapshots, c, d, tot)
		}
		select {
		case <-done:
			snapshots = -1
		default:
		}
		if snapshots < 0 {
			break
		}
	}
	<-done
	if bad != "" {
		t.Fatal(bad)
	}
}
