package core

import (
	"testing"
	"time"
)

func TestSharedStrategies(t *testing.T) {
	for _, strat := range []string{SharedRoundRobin, SharedRandom, SharedSticky, SharedHashClientID, SharedHashTopic} {
		t.Run(strat, func(t *testing.T) {
			b := newTestBroker(t, func(c *Config) { c.SharedStrategy = strat })
			var sinks []*fakeSink
			for _, id := range []string{"m1", "m2", "m3"} {
				s, k, _ := connect(t, b, id, true, 0, nil)
				s.Subscribe("$queue/jobs/#", SubOptions{QoS: 1})
				sinks = append(sinks, k)
			}
			pub, _, _ := connect(t, b, "pub", true, 0, nil)
			for i := 0; i < 30; i++ {
				pub.Publish(&Message{Topic: "jobs/x", QoS: 1})
			}
			total, used := 0, 0
			for _, k := range sinks {
				n := len(k.take())
				total += n
				if n > 0 {
					used++
				}
			}
			if total != 30 {
				t.Fatalf("%d deliveries, want exactly one per message", total)
			}
			one := strat == SharedSticky || strat == SharedHashClientID || strat == SharedHashTopic
			if one && used != 1 {
				t.Fatalf("%s spread over %d members, want 1", strat, used)
			}
			if strat == SharedRoundRobin && used != 3 {
				t.Fatalf("round robin used %d members", used)
			}
		})
	}
}

func TestSharedRedistributedWhenMemberSessionEnds(t *testing.T) {
	b := newTestBroker(t, func(c *Config) { c.MaxInflight = 1 })
	s1, k1, _ := connect(t, b, "m1", true, 0, nil)
	s1.Subscribe("$share/g/t", SubOptions{QoS: 1})
	for i := 0; i < 3; i++ { // one inflight, two queued, all to m1
		b.Publish(&Message{Topic: "t", QoS: 1, Payload: []byte{byte(i)}})
	}
	if len(k1.take()) != 1 || s1.QueuedCount() != 2 {
		t.Fatal("setup")
	}
	s2, k2, _ := connect(t, b, "m2", true, 0, nil)
	s2.Subscribe("$share/g/t", SubOptions{QoS: 1})
	s1.Disconnect(k1, DisconnectOptions{}) // clean session: ends, nothing acked
	got := 0
	for i := 0; i < 3; i++ {
		ds := k2.take()
		for _, d := range ds {
			s2.Acked(d.ID)
		}
		got += len(ds)
	}
	if got != 3 {
		t.Fatalf("m2 got %d of 3 messages of the departed member", got)
	}
}

func TestSharedQueuedMovedOnDisconnect(t *testing.T) {
	b := newTestBroker(t, func(c *Config) { c.MaxInflight = 1 })
	s1, k1, _ := connect(t, b, "m1", false, time.Hour, nil)
	s1.Subscribe("$share/g/t", SubOptions{QoS: 1})
	for i := 0; i < 3; i++ {
		b.Publish(&Message{Topic: "t", QoS: 1})
	}
	k1.take()
	s2, k2, _ := connect(t, b, "m2", true, 0, nil)
	s2.Subscribe("$share/g/t", SubOptions{QoS: 1})
	s1.Disconnect(k1, DisconnectOptions{})
	if n := len(k2.take()); n != 1 { // window 1: one sent, one queued at m2
		t.Fatalf("m2 got %d", n)
	}
	if s1.InflightCount() != 1 || s1.QueuedCount() != 0 || s2.QueuedCount() != 1 {
		t.Fatalf("inflight stays with m1 [MQTT-4.8.2-4]: m1 %d/%d m2 queued %d", s1.InflightCount(), s1.QueuedCount(), s2.QueuedCount())
	}
}
