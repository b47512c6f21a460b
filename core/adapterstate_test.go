package core

import (
	"sync"
	"testing"
	"time"

	"github.com/iotgw/iotgw/internal/testutil/poll"
)

func TestAdapterStateWithoutStoreLivesWithSession(t *testing.T) {
	b := newTestBroker(t, nil)
	s, sink, _ := connect(t, b, "keeper", false, time.Hour, nil)
	if err := s.SetAdapterState("x", []byte("v1")); err != nil {
		t.Fatal(err)
	}
	s.Disconnect(sink, DisconnectOptions{})
	s2, _, present := connect(t, b, "keeper", false, time.Hour, nil)
	if !present || s2 != s {
		t.Fatal("session not resumed")
	}
	if got := string(s2.AdapterState("x")); got != "v1" {
		t.Fatalf("adapter state %q after resume, want v1", got)
	}
	// A clean start replaces the session, and its state goes with it.
	s3, _, _ := connect(t, b, "keeper", true, time.Hour, nil)
	if got := s3.AdapterState("x"); got != nil {
		t.Fatalf("adapter state %q after a clean start, want none", got)
	}
	// A session that ends with its connection keeps nothing.
	s4, _, _ := connect(t, b, "brief", true, 0, nil)
	s4.SetAdapterState("x", []byte("v"))
	if got := s4.AdapterState("x"); got != nil {
		t.Fatalf("adapter state %q of a session without expiry", got)
	}
}

// endLog records the sessions the end hook was told of.
type endLog struct {
	mu    sync.Mutex
	ended []*Session
}

func (l *endLog) hook(s *Session) {
	l.mu.Lock()
	l.ended = append(l.ended, s)
	l.mu.Unlock()
}

func (l *endLog) has(s *Session) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.ended {
		if e == s {
			return true
		}
	}
	return false
}

func TestSessionEndHookOnEveryEnd(t *testing.T) {
	b := newTestBroker(t, nil)
	var log endLog
	b.OnSessionEnd(log.hook)

	brief, sink, _ := connect(t, b, "brief", true, 0, nil)
	brief.Disconnect(sink, DisconnectOptions{})
	if !log.has(brief) {
		t.Error("no hook for a session that ended with its connection")
	}

	kept, sink, _ := connect(t, b, "kept", false, time.Hour, nil)
	kept.Disconnect(sink, DisconnectOptions{})
	if log.has(kept) {
		t.Error("hook for a session that is still there")
	}
	connect(t, b, "kept", true, 0, nil) // a clean start replaces it
	if !log.has(kept) {
		t.Error("no hook for a session replaced by a clean start")
	}

	short, sink, _ := connect(t, b, "short", false, 20*time.Millisecond, nil)
	short.Disconnect(sink, DisconnectOptions{})
	poll.Eventually(t, 10*time.Second, func() bool { return log.has(short) }, "hook for an expired session")
}

func TestGiveBackKeepsOrderAheadOfQueued(t *testing.T) {
	b := newTestBroker(t, nil)
	sub, sink, _ := connect(t, b, "sleeper", false, time.Hour, nil)
	if r := sub.Subscribe("t", SubOptions{QoS: 1}); r.Err != nil {
		t.Fatal(r.Err)
	}
	b.Publish(&Message{Topic: "t", Payload: []byte("a")})
	b.Publish(&Message{Topic: "t", Payload: []byte("b")})
	accepted := sink.take() // the sink took them, then its client fell asleep
	sub.Pause()
	b.Publish(&Message{Topic: "t", Payload: []byte("c")})
	b.Publish(&Message{Topic: "t", Payload: []byte("d"), QoS: 1})
	sub.GiveBack(accepted)
	if n := sub.QueuedCount(); n != 4 {
		t.Fatalf("%d queued while asleep, want 4 (every QoS in one place)", n)
	}
	sub.Start()
	var got string
	for _, d := range sink.take() {
		got += string(d.Msg.Payload)
	}
	if got != "abcd" {
		t.Fatalf("delivered %q after waking, want abcd", got)
	}
}
