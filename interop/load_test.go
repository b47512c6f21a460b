package interop

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iotgw/iotgw/internal/testutil"
)

// Load case parameters. IOTGW_LOAD_SECONDS sets how long the senders
// send (default 5 in the suite; the full case is 60):
//
//	IOTGW_LOAD_SECONDS=60 go test -race -run TestLoad -v ./interop/
const (
	loadSNSenders   = 200
	loadCoAPSenders = 200
	// loadInterval is each sender's period (a reading a second): 400
	// senders give 400 publications a second, each delivered to 4
	// subscribers, which -race on two shared cores sustains.
	loadInterval = time.Second
	// Every loadQoS0Every-th publication of a sender is QoS 0 (MQTT-SN
	// QoS −1, CoAP NON): routed, but not accounted for.
	loadQoS0Every = 5
	// loadGoroutineSlack is how far above its baseline the goroutine
	// count may stay once every client has left.
	loadGoroutineSlack = 10
)

func loadDuration(t *testing.T) time.Duration {
	v := os.Getenv("IOTGW_LOAD_SECONDS")
	if v == "" {
		if testing.Short() {
			return 2 * time.Second
		}
		return 5 * time.Second
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("IOTGW_LOAD_SECONDS=%q is not a positive number of seconds", v)
	}
	return time.Duration(n) * time.Second
}

// streamer is a client whose deliveries a load subscriber consumes from
// its own goroutine.
type streamer interface {
	stream() <-chan delivery
}

func (pc *paho3Client) stream() <-chan delivery { return pc.in }
func (pc *paho5Client) stream() <-chan delivery { return pc.in }
func (sc *stompClient) stream() <-chan delivery { return sc.in }

// loadSub counts what one subscriber received: distinct QoS ≥ 1
// publications and duplicates among them.
type loadSub struct {
	name     string
	mu       sync.Mutex
	seen     map[string]bool
	dups     int
	received atomic.Int64 // distinct QoS ≥ 1 publications
}

// TestLoad: 200 MQTT-SN and 200 CoAP sensors publish, each once a second
// (four in five at QoS 1), for IOTGW_LOAD_SECONDS, to STOMP (TCP and
// WebSocket) and MQTT (3.1.1 and 5) subscribers of load/#. Every QoS 1
// publication a sender had acknowledged reaches every subscriber, once;
// when everybody has left, the process is back to its goroutine count
// from before the clients came.
func TestLoad(t *testing.T) {
	d := loadDuration(t)
	// Clients all come from 127.0.0.1: no per-IP session rate limit, and
	// session queues deep enough that a subscriber lagging under -race
	// loses nothing (a publisher never waits for subscribers).
	//
	// CoAP keeps a peer's exchange state (and go-coap its goroutine) for
	// coap.exchange_lifetime after its last message, for deduplication
	// (RFC 7252 §4.5); 3 s instead of 247 s lets the goroutine count
	// settle within the test.
	extra := "mqttsn:\n  new_session_rate: 0\nsession:\n  max_queued: 1000000\n"
	if coapWired() {
		extra += "coap:\n  exchange_lifetime: 3s\n"
	}
	e := startEnv(t, extra)
	if e.coap == "" {
		t.Log("CoAP is not wired: MQTT-SN senders only")
	}
	baseline := runtime.NumGoroutine()

	subClients := map[string]client{
		"stomp":   dialSTOMP(t, e.gw.STOMPAddr(), "", uniqueID("load-stomp")),
		"stompws": dialSTOMP(t, "", e.gw.STOMPWSURL(), uniqueID("load-stompws")),
		"mqtt311": dialPaho3(t, e.gw.MQTTURL(), uniqueID("load-mqtt311"), nil),
		"mqtt5":   dialPaho5(t, e.gw.MQTTAddr(), uniqueID("load-mqtt5"), nil),
	}
	var subs []*loadSub
	stop := make(chan struct{})
	var consumers sync.WaitGroup
	for name, c := range subClients {
		c.Subscribe(t, "load/#", 1)
		ls := &loadSub{name: name, seen: map[string]bool{}}
		subs = append(subs, ls)
		consumers.Add(1)
		go func() {
			defer consumers.Done()
			for {
				select {
				case <-stop:
					return
				case dv := <-c.(streamer).stream():
					p := string(dv.Payload)
					if !strings.HasSuffix(p, "/q1") {
						continue
					}
					ls.mu.Lock()
					if ls.seen[p] {
						ls.dups++
					} else {
						ls.seen[p] = true
						ls.received.Add(1)
					}
					ls.mu.Unlock()
				}
			}
		}()
	}

	var sentQoS1, sentQoS0 atomic.Int64
	deadline := time.Now().Add(d)
	start := time.Now()
	// sender publishes every loadInterval until the deadline; each runs
	// as its own subtest so that its client may fail it.
	sender := func(t *testing.T, c client, kind string, i int) {
		tick := time.NewTicker(loadInterval)
		defer tick.Stop()
		for seq := 0; time.Now().Before(deadline); seq++ {
			m := msg{Topic: fmt.Sprintf("load/%s/%d", kind, i), QoS: 1}
			if seq%loadQoS0Every == loadQoS0Every-1 {
				m.QoS = 0
				if kind == "mqttsn" {
					m.QoS = qosMinus1
				}
				m.Payload = []byte(fmt.Sprintf("%s/%d/%d/q0", kind, i, seq))
				c.Publish(t, m)
				sentQoS0.Add(1)
			} else {
				m.Payload = []byte(fmt.Sprintf("%s/%d/%d/q1", kind, i, seq))
				c.Publish(t, m) // returns once acknowledged (PUBACK, 2.04)
				sentQoS1.Add(1)
			}
			<-tick.C
		}
		c.Close()
	}
	var senders sync.WaitGroup
	run := func(name string, f func(t *testing.T)) {
		senders.Add(1)
		go func() {
			defer senders.Done()
			t.Run(name, f)
		}()
	}
	// Sensors are not synchronised: each comes up at its own offset within
	// the first interval, so the gateway sees a steady stream rather than
	// 400 datagrams at once every interval (a burst the sockets' receive
	// buffers may not hold under -race; sntest, unlike a real MQTT-SN
	// client, does not retransmit).
	offset := func(i, n int) { time.Sleep(loadInterval * time.Duration(i) / time.Duration(n)) }
	for i := range loadSNSenders {
		run(fmt.Sprintf("mqttsn-%03d", i), func(t *testing.T) {
			offset(i, loadSNSenders)
			c := dialSN(t, e.gw.MQTTSNAddr(), uniqueID("load-sn"), nil, 300)
			sender(t, c, "mqttsn", i)
		})
	}
	if e.coap != "" {
		for i := range loadCoAPSenders {
			run(fmt.Sprintf("coap-%03d", i), func(t *testing.T) {
				offset(i, loadCoAPSenders)
				sender(t, dialCoAP(t, e.coap), "coap", i)
			})
		}
	}
	senders.Wait()
	sendTime := time.Since(start)
	want := sentQoS1.Load()
	for _, ls := range subs {
		testutil.Eventually(t, 2*waitTimeout, func() bool { return ls.received.Load() >= want },
			fmt.Sprintf("%s: QoS 1 publications received (want %d, got %d)", ls.name, want, ls.received.Load()))
	}
	close(stop)
	consumers.Wait()
	for _, ls := range subs {
		ls.mu.Lock()
		got, dups := ls.received.Load(), ls.dups
		ls.mu.Unlock()
		if got != want || dups != 0 {
			t.Errorf("%s: %d distinct QoS 1 publications, %d duplicates; sent %d", ls.name, got, dups, want)
		}
	}
	t.Logf("%d MQTT-SN + %d CoAP senders for %v: %d QoS 1 (all received by each of %d subscribers) + %d QoS 0 publications, %.0f/s",
		loadSNSenders, map[bool]int{true: loadCoAPSenders}[e.coap != ""], sendTime.Round(time.Millisecond),
		want, len(subs), sentQoS0.Load(), float64(want+sentQoS0.Load())/sendTime.Seconds())

	for _, c := range subClients {
		c.Close()
	}
	var last int
	testutil.Eventually(t, waitTimeout, func() bool {
		last = runtime.NumGoroutine()
		return last <= baseline+loadGoroutineSlack
	}, fmt.Sprintf("goroutines back near the baseline of %d", baseline))
	t.Logf("goroutines: %d before the clients, %d after they left", baseline, last)
}
