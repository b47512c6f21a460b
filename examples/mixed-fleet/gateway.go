package main

import (
	"context"
	"fmt"
	"time"

	"github.com/iotgw/iotgw/cmd/iotgw/app"
)

// addrs are where the running demo can be reached.
type addrs struct {
	mqtt    string // tcp://host:port
	mqttsn  string // host:port (UDP)
	coap    string // host:port (UDP)
	stompWS string // ws://host:port/stomp
	http    string // the web page
}

type gateway struct {
	g   *app.Gateway
	cfg app.Config
}

// startGateway runs iotgw in-process, configured the way cmd/iotgw
// configures it (app.Load), with every listener on a free port of
// o.listen and the in-memory store (a demo leaves no database behind).
func startGateway(ctx context.Context, o options) (*gateway, error) {
	yaml := fmt.Sprintf(`
log:
  level: warn
mqtt:
  tcp: %[1]s:0
  ws: ""
stomp:
  tcp: ""
  ws: %[1]s:0
mqttsn:
  udp: %[1]s:0
coap:
  udp: %[1]s:0
sys:
  interval: 0
store:
  engine: memory
`, o.listen)
	cfg, err := app.Load([]byte(yaml), nil)
	if err != nil {
		return nil, err
	}
	if o.verbose {
		cfg.LogLevel = "info"
	}
	log, err := app.NewLogger(cfg)
	if err != nil {
		return nil, err
	}
	g, err := app.Start(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	return &gateway{g: g, cfg: cfg}, nil
}

func (gw *gateway) addrs() addrs {
	return addrs{
		mqtt:    "tcp://" + gw.g.Addr("mqtt.tcp").String(),
		mqttsn:  gw.g.Addr("mqttsn.udp").String(),
		coap:    gw.g.Addr("coap.udp").String(),
		stompWS: "ws://" + gw.g.Addr("stomp.ws").String() + gw.cfg.STOMP.WSPath,
	}
}

func (gw *gateway) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = gw.g.Stop(ctx)
}
