package testutil

import (
	"testing"

	"github.com/iotgw/iotgw/cmd/iotgw/app"
)

func TestMergeYAML(t *testing.T) {
	extra := `
mqtt:
  tcp: 127.0.0.1:0
  max_keepalive: 60
acl:
  default: deny
  rules:
    - permission: deny
      action: subscribe
      topic: a
    - permission: allow
      topic: b
`
	cfg, err := app.Load([]byte(mergeYAML(baseYAML, extra)), nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, mergeYAML(baseYAML, extra))
	}
	if cfg.MQTT.MaxKeepAlive != 60 || cfg.MQTT.WS != "127.0.0.1:0" || len(cfg.ACL.Rules) != 2 || cfg.ACL.Rules[1].Topic != "b" {
		t.Fatalf("merged config %+v", cfg)
	}
}
