package app

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/iotgw/iotgw/core"
)

// TestACLFileReload: acl.file's rules apply after acl.rules; a changed
// file takes effect on Reload (SIGHUP) without a restart, and a broken one
// keeps the rules in use.
func TestACLFileReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "acl.yaml")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("rules:\n  - {permission: allow, action: publish, topic: \"a/#\"}\n")
	cfg, err := Load([]byte("http:\n  listen: \"\"\nmqtt:\n  tcp: 127.0.0.1:0\n  ws: \"\"\nstomp:\n  tcp: \"\"\n  ws: \"\"\nmqttsn:\n  udp: \"\"\ncoap:\n  udp: \"\"\nstore:\n  engine: memory\nsys:\n  interval: 0\nacl:\n  default: deny\n  file: "+path+"\n  rules: [{permission: deny, action: publish, topic: a/secret}]\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	g, err := Start(context.Background(), cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Stop(context.Background())
	c := &core.ClientInfo{ClientID: "c", Protocol: core.ProtoMQTT}
	may := func(topic string) bool {
		return g.Broker.Authorize(c, core.Access{Action: core.ActionPublish, Topic: topic})
	}
	if !may("a/x") || may("a/secret") || may("b/x") {
		t.Fatalf("a/x %v a/secret %v b/x %v", may("a/x"), may("a/secret"), may("b/x"))
	}
	write("rules:\n  - {permission: allow, action: publish, topic: \"b/#\"}\n")
	if err := g.Reload(); err != nil {
		t.Fatal(err)
	}
	if may("a/x") || !may("b/x") {
		t.Fatal("the new file did not replace the old rules")
	}
	write("rules:\n  - {permission: maybe, topic: \"c/#\"}\n")
	if err := g.Reload(); err == nil || !strings.Contains(err.Error(), "permission") {
		t.Fatalf("broken file: %v", err)
	}
	if !may("b/x") {
		t.Fatal("a broken file replaced the rules in use")
	}
	// The poll catches a change without Reload too.
	write("rules:\n  - {permission: allow, action: publish, topic: \"d/#\"}\n")
	deadline := time.Now().Add(10 * time.Second)
	for !may("d/x") {
		if time.Now().After(deadline) {
			t.Fatal("the changed file was not picked up by the poll")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
