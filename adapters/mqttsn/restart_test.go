package mqttsn_test

import (
	"testing"

	"github.com/iotgw/iotgw/adapters/mqttsn/codec"
	"github.com/iotgw/iotgw/adapters/mqttsn/sntest"
	"github.com/iotgw/iotgw/core"
	"github.com/iotgw/iotgw/core/store"
)

// TestRegistryAfterRestart: the topic ids of a persistent session (one
// the client REGISTERed, one it learnt in a SUBACK, one the gateway
// REGISTERed for a wildcard subscription) still work after a gateway
// restart, without registering again.
func TestRegistryAfterRestart(t *testing.T) {
	for _, engine := range []string{store.EngineMemory, store.EnginePebble} {
		t.Run(engine, func(t *testing.T) {
			scfg := store.DefaultConfig()
			scfg.Engine, scfg.Dir = engine, t.TempDir()
			st, err := store.Open(scfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })

			g, stop := launchGateway(t, testConfig(), core.WithStore(st))
			p := connectPaho(t, g)
			p.sub("rs/#", 1)
			id := uniqueID("rs")
			c := sntest.Dial(t, g.snAddr)
			c.Connect(id, false, 60)
			upID := c.Register("rs/up")
			ack := c.Subscribe(codec.TopicNormal, "down/plain", 0, 1)
			c.Subscribe(codec.TopicNormal, "wild/#", 0, 1)
			p.pub("wild/x", 1, false, "w1")
			wildID := c.AcceptRegister("wild/x")
			c.Ack(c.ExpectPublish("w1"))
			c.Publish(codec.TopicNormal, upID, 1, false, "before")
			p.expect("rs/up", "before", 1, false)
			c.Send(&codec.Disconnect{})
			c.Expect(codec.TypeDisconnect)
			p.Disconnect(50)
			stop()
			if engine == store.EnginePebble {
				if err := st.Close(); err != nil {
					t.Fatal(err)
				}
				if st, err = store.Open(scfg, nil); err != nil {
					t.Fatal(err)
				}
			}

			g, stop = launchGateway(t, testConfig(), core.WithStore(st))
			t.Cleanup(stop)
			p = connectPaho(t, g)
			p.sub("rs/#", 1)
			c = sntest.Dial(t, g.snAddr)
			c.Connect(id, false, 60)
			// The id registered before the restart is still valid: the
			// PUBACK is Accepted (the tester checks it) and it arrives.
			c.Publish(codec.TopicNormal, upID, 1, false, "after")
			p.expect("rs/up", "after", 1, false)
			// Deliveries use the known ids, with no REGISTER first.
			p.pub("down/plain", 1, false, "d")
			if pub := c.ExpectPublish("d"); pub.Flags.TopicIDType != codec.TopicNormal || pub.TopicID != ack.TopicID {
				t.Fatalf("down/plain delivered with id type %d id %d, want normal %d", pub.Flags.TopicIDType, pub.TopicID, ack.TopicID)
			} else {
				c.Ack(pub)
			}
			p.pub("wild/x", 1, false, "w2")
			if pub := c.ExpectPublish("w2"); pub.TopicID != wildID {
				t.Fatalf("wild/x delivered with id %d, want %d", pub.TopicID, wildID)
			} else {
				c.Ack(pub)
			}
			// A new topic gets an id distinct from the restored ones.
			if nid := c.Register("rs/new"); nid == upID || nid == ack.TopicID || nid == wildID {
				t.Fatalf("new id %d reuses a restored one", nid)
			}
		})
	}
}
