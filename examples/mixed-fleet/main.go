// Command mixed-fleet is a runnable demo of iotgw's one topic space: an
// in-process gateway, simulated MQTT-SN and CoAP sensors publishing
// readings, an MQTT 5 dashboard printing them, and a web page that
// subscribes over STOMP on WebSocket (a few lines of hand-written
// JavaScript, nothing from a CDN).
//
//	go run ./examples/mixed-fleet                  # until Ctrl-C
//	go run ./examples/mixed-fleet -duration 30s    # or for a while
//
// Then open the printed http:// address in a browser.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// options are the demo's flags.
type options struct {
	duration   time.Duration
	interval   time.Duration
	snSensors  int
	coapSensor int
	httpAddr   string
	listen     string // host for every gateway listener
	verbose    bool
}

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 0, "stop after this long (0: run until Ctrl-C)")
	flag.DurationVar(&o.interval, "interval", 2*time.Second, "how often each sensor sends a reading")
	flag.IntVar(&o.snSensors, "mqttsn-sensors", 3, "simulated MQTT-SN temperature sensors")
	flag.IntVar(&o.coapSensor, "coap-sensors", 3, "simulated CoAP humidity sensors")
	flag.StringVar(&o.httpAddr, "http", "127.0.0.1:8080", "address of the web page (STOMP over WebSocket in the browser)")
	flag.StringVar(&o.listen, "listen", "127.0.0.1", "host the gateway's listeners bind (ports are picked free)")
	flag.BoolVar(&o.verbose, "v", false, "gateway logs at info level (default: warnings)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if o.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	if err := run(ctx, o, os.Stdout, nil); err != nil {
		fmt.Fprintln(os.Stderr, "mixed-fleet:", err)
		os.Exit(1)
	}
}

// run starts the gateway, the web page, the dashboard and the sensors,
// and stops them all when ctx ends. ready, when not nil, receives the
// running demo's addresses once everything is up.
func run(ctx context.Context, o options, out io.Writer, ready chan<- addrs) error {
	gw, err := startGateway(ctx, o)
	if err != nil {
		return err
	}
	defer gw.stop()
	a := gw.addrs()

	web, err := serveWeb(o.httpAddr, a.stompWS)
	if err != nil {
		return err
	}
	defer web.Close()
	a.http = "http://" + web.Addr().String() + "/"

	dash, err := startDashboard(a.mqtt, out)
	if err != nil {
		return err
	}
	defer dash.stop()

	fmt.Fprintf(out, "iotgw mixed fleet\n  MQTT        %s\n  MQTT-SN     udp://%s\n  CoAP        coap://%s\n  STOMP/WS    %s\n  web page    %s\n\n",
		a.mqtt, a.mqttsn, a.coap, a.stompWS, a.http)

	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, o.snSensors+o.coapSensor)
	for i := range o.snSensors {
		go func() { done <- runSNSensor(sctx, a.mqttsn, i+1, o.interval) }()
	}
	for i := range o.coapSensor {
		go func() { done <- runCoAPSensor(sctx, a.coap, i+1, o.interval) }()
	}
	if ready != nil {
		ready <- a
	}
	<-ctx.Done()
	cancel()
	var errs []error
	for range o.snSensors + o.coapSensor {
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			errs = append(errs, err)
		}
	}
	fmt.Fprintln(out, "\nstopped")
	return errors.Join(errs...)
}
