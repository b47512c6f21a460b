package interop

import (
	"fmt"
	"testing"
)

// TestSharedAcrossProtocols: one shared subscription group
// ($share/{group}/{filter}) with a member of every protocol. Each
// publication reaches exactly one member; with shared.strategy
// round_robin (the default) every member gets the same share.
func TestSharedAcrossProtocols(t *testing.T) {
	e := startEnv(t, "")
	var members []client
	for _, s := range e.protos {
		c := s.dial(t, e, uniqueID("shared-"+s.name), nil)
		c.Subscribe(t, "$share/fleet/shared/readings", 1)
		members = append(members, c)
	}
	const each = 3
	pub := e.proto(t, "mqtt5").dial(t, e, uniqueID("shared-pub"), nil)
	total := each * len(members)
	for i := range total {
		pub.Publish(t, msg{Topic: "shared/readings", Payload: []byte(fmt.Sprint(i)), QoS: 1})
	}
	seen := map[string]string{}
	for i, c := range members {
		for range each {
			d := c.Next(t)
			if d.Topic != "shared/readings" {
				t.Errorf("%s: topic %q", e.protos[i].name, d.Topic)
			}
			if other, dup := seen[string(d.Payload)]; dup {
				t.Errorf("%q delivered to %s and %s", d.Payload, other, e.protos[i].name)
			}
			seen[string(d.Payload)] = e.protos[i].name
		}
	}
	if len(seen) != total {
		t.Errorf("%d distinct publications delivered, want %d", len(seen), total)
	}
}
