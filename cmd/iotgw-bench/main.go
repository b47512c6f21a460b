// Command iotgw-bench is a load generator for every protocol iotgw speaks,
// and for any MQTT broker. It speaks the protocols itself (standard library
// only, plus gorilla/websocket for the WebSocket transports) so that the same
// client measures iotgw and other brokers alike, and it is cheap enough per
// message that the broker, not the client, is the bottleneck.
//
// Protocols (-proto for both sides; -pub-proto and -sub-proto to mix, e.g.
// MQTT-SN publishers with MQTT subscribers):
//
//	mqtt      MQTT 3.1.1 over TCP
//	mqtt5     MQTT 5 over TCP (no properties)
//	mqtt-ws   MQTT 3.1.1 over WebSocket, subprotocol "mqtt", path -ws-path
//	mqtt5-ws  MQTT 5 over WebSocket
//	mqttsn    MQTT-SN 1.2 over UDP: REGISTER, topic ids, QoS 0/1/2
//	coap      CoAP over UDP: POST /ps/{topic}?qos=N (CON at QoS >= 1, NON at
//	          QoS 0), GET with Observe to subscribe
//	stomp     STOMP 1.2 over TCP: SEND with a qos header (+ receipt at
//	          QoS >= 1), SUBSCRIBE ack:auto / client-individual
//	stomp-ws  STOMP 1.2 over WebSocket, subprotocol "v12.stomp"
//
// Each side connects to -pub-addr / -sub-addr (default -addr); for the
// WebSocket protocols an address is host:port (path from -ws-path, else
// /mqtt or /stomp) or a ws:// URL.
//
// -tls (or -tls-ca FILE, trusting that CA) puts every TCP and WebSocket
// connection under TLS: MQTT and STOMP over TLS, WebSocket over wss://
// (see tls.go for what the handshakes are: full ones, X25519). Results
// then name the protocol "mqtt+tls" and so on. The UDP protocols have no
// DTLS here yet.
//
// Scenarios:
//
//	pairs    N publisher/subscriber pairs, one topic per pair
//	fanin    N publishers -> 1 subscriber on bench/fanin/#
//	fanout   1 publisher -> N subscribers on one topic
//	latency  pairs at a fixed offered rate (-rate msg/s over all publishers):
//	         the p50/p90/p99/max latency of a steady load, not of a flood
//	idle     N idle connections with one subscription each (for MQTT-SN and
//	         CoAP: N registered clients, each with a subscription or
//	         observation); with -broker-pid reports the broker's RSS growth
//	         per connection
//	quiet    request/reply round trips on quiet MQTT 3.1.1 connections:
//	         PINGREQ, SUBSCRIBE (a new filter each time) and QoS 1 PUBLISH
//	         (no subscriber), each after its connection was silent for each
//	         -quiet-gaps gap; p50/p90/p99 per (broker, kind, gap)
//	order    the cross-client ordering probe: fresh subscriber B and MQTT
//	         3.1.1 publisher A idle for -idle, then B writes SUBSCRIBE t and
//	         A at once PUBLISH t (QoS 0); misses out of -trials per (broker,
//	         subscriber protocol of -order-protos)
//	connect  connection setup rate: -parallel workers connect (TCP, TLS
//	         handshake under -tls, CONNECT/CONNACK), disconnect and start
//	         over until -n connections were made; connects/s, setup time
//	         p50/p99 and, with -broker-pid, the broker's CPU per connection
//	probe    connect until the broker answers (for scripts), bounded by -duration
//
// quiet and order take several brokers at once (-addrs label=host:port,...)
// and interleave them, each round visiting every broker once in a random
// order, so that a shared machine's noise hits all of them alike; they print
// one result (one -json line) per broker and row. Their -duration defaults to
// what their schedule needs.
//
// Every payload carries its send time and a per-publisher sequence number, so
// subscribers compute end-to-end latency, loss and duplicates themselves.
//
// Flow control: each publisher keeps at most -window messages in flight. At
// QoS 1/2 a message is in flight until the broker's acknowledgement (PUBACK,
// PUBCOMP, STOMP RECEIPT, the CoAP ACK carrying 2.04). QoS 0 has
// no acknowledgement, so there a message is in flight until every subscriber
// has seen it or a later message from the same publisher (end-to-end credit);
// -window 0 removes the bound (firehose) and -e2e applies end-to-end credit at
// QoS 1/2 too. Over UDP the window bounds the span from the oldest
// unacknowledged message, and unacknowledged QoS 1/2 messages are sent again
// after -retry (counted as retransmits). UDP publishers default to -window 10:
// iotgw's UDP sockets keep the kernel's default receive buffer.
//
// Example, 10 CoAP publishers at QoS 1 to STOMP subscribers of one iotgw:
//
//	iotgw-bench -pub-proto coap -pub-addr 127.0.0.1:5683 \
//	    -sub-proto stomp -sub-addr 127.0.0.1:61613 -qos 1 -n 10 -msgs 2000
//
// Other modes: -report FILE prints the comparison tables from -json result
// lines (see bench/compare.sh), -free-port prints a free loopback TCP port,
// -free-udp-port one free for both TCP and UDP.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("iotgw-bench", flag.ContinueOnError)
	var cfg config
	fs.StringVar(&cfg.addr, "addr", "127.0.0.1:1883", "broker `host:port` (or ws:// URL for WebSocket protocols)")
	fs.StringVar(&cfg.pubAddr, "pub-addr", "", "publishers' broker `address` (default -addr)")
	fs.StringVar(&cfg.subAddr, "sub-addr", "", "subscribers' and idle connections' broker `address` (default -addr)")
	proto := fs.String("proto", protoMQTT, "protocol of every connection: "+strings.Join(protocols, " | "))
	fs.StringVar(&cfg.pubProto, "pub-proto", "", "publishers' protocol (default -proto)")
	fs.StringVar(&cfg.subProto, "sub-proto", "", "subscribers' protocol (default -proto)")
	fs.StringVar(&cfg.wsPath, "ws-path", "", "WebSocket path for a host:port address (default /mqtt or /stomp)")
	fs.StringVar(&cfg.scenario, "scenario", "pairs", "pairs | fanin | fanout | latency | idle | connect | quiet | order | probe")
	var tf tlsFlags
	fs.BoolVar(&tf.on, "tls", false, "dial TCP and WebSocket connections over TLS (trusting the system roots unless -tls-ca)")
	fs.StringVar(&tf.caFile, "tls-ca", "", "PEM `file` of the CA that signed the brokers' certificates (implies -tls)")
	fs.StringVar(&tf.serverName, "tls-server-name", "", "TLS server name to verify (default: each address's host)")
	fs.Float64Var(&cfg.rate, "rate", 0, "offered `msg/s` over all publishers (latency: required; others: 0 = as fast as the window allows)")
	fs.DurationVar(&cfg.retry, "retry", time.Second, "UDP protocols: resend a QoS 1/2 message not acknowledged for this long")
	fs.IntVar(&cfg.qos, "qos", 0, "QoS for publishes and subscriptions: 0, 1 or 2")
	fs.IntVar(&cfg.n, "n", 4, "pairs, fan-in publishers, fan-out subscribers, or idle connections")
	fs.IntVar(&cfg.msgs, "msgs", 5000, "messages per publisher")
	fs.IntVar(&cfg.size, "size", 64, "payload bytes (minimum 16: timestamp, publisher, sequence)")
	fs.IntVar(&cfg.window, "window", 100, fmt.Sprintf("in-flight messages per publisher; 0 = unbounded (UDP publishers: default %d)", udpWindow))
	fs.DurationVar(&cfg.duration, "duration", 5*time.Second, "hard bound on the whole run, connecting included")
	fs.DurationVar(&cfg.drain, "drain", time.Second, "after publishing, stop waiting once nothing arrived for this long")
	fs.DurationVar(&cfg.stall, "stall", 500*time.Millisecond, "QoS 0 end-to-end credit: presume outstanding messages lost after this long without progress")
	fs.DurationVar(&cfg.keepAlive, "keepalive", 60*time.Second, "MQTT keep-alive; quiet connections send PINGREQ at half of it")
	fs.DurationVar(&cfg.settle, "settle", time.Second, "idle: wait before each RSS reading so the broker is quiescent")
	fs.BoolVar(&cfg.e2e, "e2e", false, "QoS 1/2: also bound messages not yet received by subscribers")
	fs.BoolVar(&persistentSessions, "persistent", false, "connect with clean session 0, so the broker keeps (and with a durable store, persists) QoS 1/2 messages")
	fs.IntVar(&cfg.warmup, "warmup", 0, "leave each publisher's first `N` messages out of the latency figures (still counted for loss): at a low -rate they meet the connection's start-up, e.g. a broker without TCP_NODELAY holding the first PUBLISH after SUBACK until the delayed ACK")
	fs.IntVar(&cfg.refill, "refill", 1, "free window slots a blocked publisher waits for before sending again")
	fs.IntVar(&cfg.brokerPID, "broker-pid", 0, "broker process id: idle samples its VmRSS (/proc/<pid>/status); messaging runs report its CPU time per message (/proc/<pid>/stat)")
	fs.IntVar(&cfg.parallel, "parallel", 64, "concurrent connection attempts while setting up")
	fs.StringVar(&cfg.label, "label", "", "broker name recorded in -json output (used by -report)")
	fs.StringVar(&cfg.tag, "tag", "", "group recorded in -json output; -report shows tag \"proto\" rows in the protocol table")
	fs.StringVar(&cfg.addrs, "addrs", "", "quiet, order: brokers to interleave, `label=host:port,...` (MQTT over TCP; default -label at -addr)")
	fs.StringVar(&cfg.subAddrs, "sub-addrs", "", "order: subscriber addresses other than the -addrs one, `label/protocol=address,...` (iotgw/stomp=127.0.0.1:61613)")
	fs.StringVar(&cfg.quietGaps, "quiet-gaps", "20ms,200ms", "quiet: how long each connection is silent before each request, `list`")
	fs.StringVar(&cfg.quietKinds, "quiet-kinds", strings.Join(quietKinds, ","), "quiet: request kinds, `list`")
	fs.IntVar(&cfg.quietSamples, "quiet-samples", 100, "quiet: samples per broker and kind at the longest gap (shorter gaps: as many as fit in the same time, at most 10x)")
	fs.DurationVar(&cfg.idle, "idle", 200*time.Millisecond, "order: how long both fresh connections stay quiet before the probe")
	fs.IntVar(&cfg.trials, "trials", 200, "order: probes per broker and subscriber protocol")
	fs.StringVar(&cfg.orderProtos, "order-protos", protoMQTT, "order: subscriber protocols, `list` (mqtt, mqtt5, stomp, mqttsn, ...-ws; the publisher is MQTT 3.1.1)")
	fs.DurationVar(&cfg.orderWait, "order-wait", 300*time.Millisecond, "order: how long the subscriber waits for the message before counting a miss")
	fs.BoolVar(&cfg.orderSuback, "order-suback", false, "order: publish only after the subscription's answer (SUBACK, RECEIPT): a control that should miss nothing")
	jsonOut := fs.Bool("json", false, "print one machine-readable JSON line instead of text")
	freeUDP := fs.Bool("free-udp-port", false, "print a loopback port free for both TCP and UDP and exit")
	report := fs.String("report", "", "print a comparison table from a `file` of -json lines, then exit")
	compare := fs.String("compare", "iotgw,mosquitto", "-report: the two labels to compare, `a,b`; ratios are a/b")
	freePort := fs.Bool("free-port", false, "print a free loopback TCP port and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var err error
	if benchTLS, benchVerifier, err = tf.clientTLS(); err != nil {
		fmt.Fprintln(os.Stderr, "iotgw-bench:", err)
		return 2
	}
	if cfg.pubProto == "" {
		cfg.pubProto = *proto
	}
	if cfg.subProto == "" {
		cfg.subProto = *proto
	}
	windowSet, durationSet := false, false
	fs.Visit(func(f *flag.Flag) {
		windowSet = windowSet || f.Name == "window"
		durationSet = durationSet || f.Name == "duration"
	})
	if !windowSet && isUDP(cfg.pubProto) {
		// iotgw's UDP sockets keep the kernel's default receive buffer;
		// 100 datagrams per publisher overflow it (see bench/compare.sh).
		cfg.window = udpWindow
	}

	switch {
	case *freeUDP:
		port, err := freeBothPort()
		if err != nil {
			fmt.Fprintln(os.Stderr, "iotgw-bench:", err)
			return 1
		}
		fmt.Println(port)
		return 0
	case *freePort:
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintln(os.Stderr, "iotgw-bench:", err)
			return 1
		}
		fmt.Println(l.Addr().(*net.TCPAddr).Port)
		l.Close()
		return 0
	case *report != "":
		labels := strings.Split(*compare, ",")
		if len(labels) != 2 {
			fmt.Fprintln(os.Stderr, "iotgw-bench: -compare wants exactly two labels")
			return 2
		}
		if err := printReport(os.Stdout, *report, labels[0], labels[1]); err != nil {
			fmt.Fprintln(os.Stderr, "iotgw-bench:", err)
			return 1
		}
		return 0
	}
	if err := validate(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "iotgw-bench:", err)
		return 2
	}
	if !durationSet {
		// These two run for as long as their schedule takes; the 5 s
		// default fits the message scenarios only.
		if d, ok := scheduleBudget(cfg); ok {
			cfg.duration = d
		}
	}

	// Belt and braces: every wait in the run honours ctx, but should anything
	// still hang (a kernel-level stall, a bug), the process ends regardless.
	watchdog := time.AfterFunc(cfg.duration+10*time.Second, func() {
		fmt.Fprintln(os.Stderr, "iotgw-bench: watchdog expired, exiting")
		os.Exit(3)
	})
	defer watchdog.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), cfg.duration)
	defer cancel()

	var (
		res  result
		many []result // quiet, order: one result per broker and row
	)
	switch cfg.scenario {
	case "probe":
		if err := probe(ctx, cfg); err != nil {
			fmt.Fprintln(os.Stderr, "iotgw-bench:", err)
			return 1
		}
		return 0
	case "idle":
		res, err = runIdle(ctx, cfg)
	case "connect":
		res, err = runConnect(ctx, cfg)
	case "quiet":
		many, err = runQuiet(ctx, cfg)
	case "order":
		many, err = runOrder(ctx, cfg)
	default:
		res, err = runMessaging(ctx, cfg)
	}
	if err != nil {
		res.Error = err.Error()
		res.Errors++
	}
	if many == nil {
		if res.Scenario == "" {
			res.Label, res.Scenario = cfg.label, cfg.scenario
		}
		many = []result{res}
	}
	for _, r := range many {
		if *jsonOut {
			b, _ := json.Marshal(r)
			fmt.Println(string(b))
		} else {
			printText(r)
		}
	}
	for _, r := range many {
		if err == nil && r.Error != "" {
			err = errors.New(r.Label + ": " + r.Error)
		}
	}
	if err != nil {
		if !*jsonOut {
			fmt.Fprintln(os.Stderr, "iotgw-bench:", err)
		}
		return 1
	}
	return 0
}

// udpWindow is the default -window of MQTT-SN and CoAP publishers.
const udpWindow = 10

// scheduleBudget is the default -duration of the scenarios that run for as
// long as their schedule: quiet and order.
func scheduleBudget(cfg config) (time.Duration, bool) {
	switch cfg.scenario {
	case "quiet":
		gaps, _ := parseGaps(cfg.quietGaps)
		return quietBudget(gaps, cfg.quietSamples), true
	case "order":
		targets, _, err := orderTargets(cfg)
		if err != nil {
			return 0, false
		}
		return orderBudget(cfg, len(targets)), true
	}
	return 0, false
}

func validate(cfg config) error {
	switch cfg.scenario {
	case "pairs", "fanin", "fanout", "latency", "idle", "connect", "probe":
	case "quiet":
		return validateQuiet(cfg)
	case "order":
		return validateOrder(cfg)
	default:
		return fmt.Errorf("unknown -scenario %q", cfg.scenario)
	}
	for _, p := range []string{cfg.pubProto, cfg.subProto} {
		if !knownProto(p) {
			return fmt.Errorf("unknown protocol %q (want %s)", p, strings.Join(protocols, ", "))
		}
	}
	udp := isUDP(cfg.pubProto) || isUDP(cfg.subProto)
	switch {
	case udp && benchTLS != nil:
		return fmt.Errorf("-tls: no DTLS for the UDP protocols yet")
	case cfg.scenario == "latency" && cfg.rate <= 0:
		return fmt.Errorf("-scenario latency needs -rate")
	case cfg.rate < 0:
		return fmt.Errorf("-rate must not be negative")
	case isUDP(cfg.pubProto) && cfg.qos > 0 && cfg.window == 0:
		// Retransmission needs a bounded set of unacknowledged messages.
		return fmt.Errorf("-pub-proto %s at QoS %d needs a -window", cfg.pubProto, cfg.qos)
	case cfg.pubProto == protoCoAP && cfg.msgs > coapMaxMsgs:
		return fmt.Errorf("-pub-proto coap: -msgs at most %d (CoAP message ids must not repeat)", coapMaxMsgs)
	case udp && cfg.size > 1024:
		// iotgw sends CoAP notifications above coap.block_size (1024) block-wise,
		// and a UDP datagram must hold one whole MQTT-SN message.
		return fmt.Errorf("-size at most 1024 with UDP protocols")
	case udp && cfg.retry < 10*time.Millisecond:
		return fmt.Errorf("-retry must be at least 10ms")
	}
	switch {
	case cfg.qos < 0 || cfg.qos > 2:
		return fmt.Errorf("-qos must be 0, 1 or 2")
	case cfg.n < 1:
		return fmt.Errorf("-n must be at least 1")
	case cfg.msgs < 1 || cfg.msgs > 1<<31:
		return fmt.Errorf("-msgs must be between 1 and 2^31")
	case cfg.warmup < 0 || cfg.warmup >= cfg.msgs:
		return fmt.Errorf("-warmup must be at least 0 and below -msgs")
	case cfg.size < payloadHeader || cfg.size > maxPacket-1024:
		return fmt.Errorf("-size must be between %d and %d", payloadHeader, maxPacket-1024)
	case cfg.window < 0 || cfg.window >= 65535:
		// Packet identifiers are 16 bits; a larger window would reuse an id
		// that is still in flight.
		return fmt.Errorf("-window must be between 0 and 65534")
	case cfg.duration <= 0 || cfg.stall <= 0 || cfg.drain < 0:
		return fmt.Errorf("-duration and -stall must be positive, -drain non-negative")
	case cfg.keepAlive < 2*time.Second || cfg.keepAlive > 65535*time.Second:
		return fmt.Errorf("-keepalive must be between 2s and 65535s")
	}
	return nil
}

// validateQuiet checks the quiet scenario's flags.
func validateQuiet(cfg config) error {
	if _, err := parseAddrs(cfg.addrs, cfg.label, cfg.addr); err != nil {
		return err
	}
	gaps, err := parseGaps(cfg.quietGaps)
	if err != nil {
		return err
	}
	// A gap near the keep-alive would have the broker drop the connection.
	if slices.Max(gaps) > cfg.keepAlive/2 {
		return fmt.Errorf("-quiet-gaps must stay below half the -keepalive (%v)", cfg.keepAlive)
	}
	kinds := parseList(cfg.quietKinds)
	if len(kinds) == 0 {
		return errors.New("-quiet-kinds is empty")
	}
	for _, k := range kinds {
		if !slices.Contains(quietKinds, k) {
			return fmt.Errorf("-quiet-kinds: unknown kind %q (want %s)", k, strings.Join(quietKinds, ", "))
		}
	}
	switch {
	case cfg.quietSamples < 1:
		return errors.New("-quiet-samples must be at least 1")
	case cfg.size < 1 || cfg.size > 64<<10:
		return errors.New("quiet: -size must be between 1 and 65536")
	case cfg.duration <= 0 || cfg.keepAlive < 2*time.Second:
		return errors.New("-duration must be positive, -keepalive at least 2s")
	}
	return nil
}

// validateOrder checks the order scenario's flags.
func validateOrder(cfg config) error {
	if _, _, err := orderTargets(cfg); err != nil {
		return err
	}
	switch {
	case cfg.trials < 1:
		return errors.New("-trials must be at least 1")
	case cfg.idle < 0 || cfg.orderWait <= 0:
		return errors.New("-idle must not be negative, -order-wait must be positive")
	case cfg.idle > cfg.keepAlive/2:
		return fmt.Errorf("-idle must stay below half the -keepalive (%v)", cfg.keepAlive)
	case cfg.size < 1 || cfg.size > 1024:
		// One MQTT-SN datagram must hold the message.
		return errors.New("order: -size must be between 1 and 1024")
	case cfg.duration <= 0 || cfg.keepAlive < 2*time.Second:
		return errors.New("-duration must be positive, -keepalive at least 2s")
	}
	return nil
}

// printText renders a result for people.
func printText(r result) {
	label := ""
	if r.Label != "" {
		label = " [" + r.Label + "]"
	}
	switch r.Scenario {
	case "connect":
		fmt.Println(connectLine(r, label))
	case "quiet":
		fmt.Printf("quiet%s %s after %.0fms silent: %d samples  p50 %s  p90 %s  p99 %s  max %s\n",
			label, r.Kind, r.GapMs, r.Samples, fmtUs(r.P50us), fmtUs(r.P90us), fmtUs(r.P99us), fmtUs(r.MaxUs))
	case "order":
		misses := 0
		if r.Misses != nil {
			misses = *r.Misses
		}
		fmt.Printf("order%s %s %s, idle %.0fms: %d misses of %d trials  (hits: p50 %s  p99 %s)\n",
			label, protoLabel(r), r.Kind, r.GapMs, misses, r.Trials, fmtUs(r.P50us), fmtUs(r.P99us))
	case "idle":
		fmt.Printf("idle%s %s qos=%d conns=%d/%d connect=%.0f conn/s\n", label, protoLabel(r), r.QoS, r.Conns, r.N, r.ConnectRate)
		if r.RSSAfterKiB > 0 {
			fmt.Printf("  broker RSS  %d KiB -> %d KiB  = %.2f KiB per connection\n",
				r.RSSBeforeKiB, r.RSSAfterKiB, r.RSSPerConnKiB)
		} else {
			fmt.Println("  broker RSS  not measured (pass -broker-pid)")
		}
	default:
		fmt.Printf("%s%s %s qos=%d n=%d msgs=%d size=%d window=%d\n",
			r.Scenario, label, protoLabel(r), r.QoS, r.N, r.Msgs, r.Size, r.Window)
		if r.OfferedRate > 0 {
			fmt.Printf("  offered %.0f msg/s\n", r.OfferedRate)
		}
		fmt.Printf("  sent %d  received %d  expected %d  loss %.2f%%  duplicates %d\n",
			r.Sent, r.Received, r.Expected, r.LossPct, r.Dups)
		fmt.Printf("  rate %.0f msg/s over %.3fs (publish %.0f msg/s)\n", r.Rate, r.WindowSec, r.PublishRate)
		fmt.Printf("  latency p50 %s  p90 %s  p99 %s  max %s\n",
			fmtUs(r.P50us), fmtUs(r.P90us), fmtUs(r.P99us), fmtUs(r.MaxUs))
		if r.Foreign > 0 || r.BadAcks > 0 || r.Stalls > 0 || r.Retransmits > 0 {
			fmt.Printf("  foreign payloads %d  unexpected acks %d  QoS 0 stalls %d  retransmits %d\n",
				r.Foreign, r.BadAcks, r.Stalls, r.Retransmits)
		}
		if r.PeakRSSKiB > 0 {
			fmt.Printf("  broker RSS  %d KiB at the start, peak %d KiB\n", r.RSSBeforeKiB, r.PeakRSSKiB)
		}
	}
	if r.TimedOut {
		fmt.Println("  TIMED OUT: -duration expired before the run completed")
	}
	if r.Errors > 0 {
		fmt.Printf("  errors %d, first: %s\n", r.Errors, r.Error)
	}
}

// fmtUs prints microseconds with a unit that keeps three significant figures.
func fmtUs(us float64) string {
	switch {
	case us >= 1e6:
		return fmt.Sprintf("%.2fs", us/1e6)
	case us >= 1e3:
		return fmt.Sprintf("%.2fms", us/1e3)
	default:
		return fmt.Sprintf("%.0fµs", us)
	}
}

// freeBothPort finds a loopback port that is free for TCP and UDP alike, for
// a broker whose TCP and UDP listeners a script places by port.
func freeBothPort() (int, error) {
	for i := 0; i < 50; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err == nil {
			u.Close()
			return port, nil
		}
	}
	return 0, fmt.Errorf("no port free for both TCP and UDP")
}

// protoLabel names a result's protocols: "mqtt", or "mqttsn→mqtt" for
// publishers and subscribers on different ones; "+tls" when over TLS.
func protoLabel(r result) string {
	p := r.Proto
	if p == "" {
		p = protoMQTT // results from before protocols were recorded
	}
	if r.SubProto != "" && r.SubProto != p {
		p += "→" + r.SubProto
	}
	if r.TLS {
		p += "+tls"
	}
	return p
}
