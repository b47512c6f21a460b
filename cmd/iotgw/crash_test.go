package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// gateway is one run of the real binary on a store directory.
type gateway struct {
	cmd  *exec.Cmd
	addr string
}

func startGateway(t *testing.T, bin, dir string) *gateway {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "IOTGW_STORE_DIR="+dir, "IOTGW_MQTT_TCP=127.0.0.1:0", "IOTGW_MQTT_WS=",
		"IOTGW_STOMP_TCP=", "IOTGW_STOMP_WS=", "IOTGW_MQTTSN_UDP=", "IOTGW_COAP_UDP=", "IOTGW_SYS_INTERVAL=0")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addrCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := listenRE.FindStringSubmatch(sc.Text()); m != nil {
				addrCh <- m[1]
			}
		}
	}()
	select {
	case addr := <-addrCh:
		return &gateway{cmd: cmd, addr: addr}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatal("gateway did not start")
	}
	return nil
}

func (g *gateway) kill(t *testing.T) {
	g.cmd.Process.Signal(syscall.SIGKILL)
	g.cmd.Wait()
}

func (g *gateway) term(t *testing.T) {
	t.Helper()
	g.cmd.Process.Signal(syscall.SIGTERM)
	if err := g.cmd.Wait(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
}

// receiver is a persistent paho subscriber counting what it receives.
type receiver struct {
	mu  sync.Mutex
	got map[string]int
	cl  paho.Client
}

func (r *receiver) count(topic string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got[topic]
}

func (r *receiver) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.got {
		n += c
	}
	return n
}

func dialPaho(t *testing.T, addr, id string, clean bool, r *receiver) paho.Client {
	t.Helper()
	o := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetCleanSession(clean).
		SetAutoReconnect(false).SetConnectRetry(false).SetOrderMatters(false)
	if r != nil {
		o.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
			r.mu.Lock()
			r.got[m.Topic()]++
			r.mu.Unlock()
		})
	}
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", id, tok.Error())
	}
	return c
}

// waitQuiet waits until r has seen at least want messages and nothing new
// arrived for a while.
func waitQuiet(r *receiver, want int) {
	last, since := -1, time.Now()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		n := r.total()
		if n != last {
			last, since = n, time.Now()
		}
		if n >= want && time.Since(since) > 500*time.Millisecond {
			return
		}
	}
}

// TestCrashKeepsAcknowledgedMessages runs the real binary on a pebble
// store, kills it with SIGKILL while a publisher is sending QoS 1 and 2
// messages to two offline persistent subscribers, restarts it on the same
// directory and checks: every acknowledged message arrives, QoS 2 exactly
// once and QoS 1 at least once; subscriptions and retained messages
// survive. Then a graceful SIGTERM restart must lose nothing either.
func TestCrashKeepsAcknowledgedMessages(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	dir := filepath.Join(t.TempDir(), "data")
	g := startGateway(t, bin, dir)

	r1 := &receiver{got: map[string]int{}}
	r2 := &receiver{got: map[string]int{}}
	for _, s := range []struct {
		id  string
		qos byte
		r   *receiver
	}{{"crash-sub1", 1, r1}, {"crash-sub2", 2, r2}} {
		c := dialPaho(t, g.addr, s.id, false, s.r)
		if tok := c.Subscribe("load/#", s.qos, nil); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
		c.Disconnect(100)
	}
	pub := dialPaho(t, g.addr, "crash-pub", true, nil)
	if tok := pub.Publish("ret/x", 1, true, "kept"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}

	// Publish until killed; record every acknowledged message.
	var mu sync.Mutex
	acked := map[string]byte{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			qos := byte(1 + i%2)
			topic := fmt.Sprintf("load/%d/%d", qos, i)
			tok := pub.Publish(topic, qos, false, topic)
			if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
				return
			}
			mu.Lock()
			acked[topic] = qos
			mu.Unlock()
		}
	}()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 400 {
			break
		}
	}
	g.kill(t)
	<-done
	pub.Disconnect(0)
	mu.Lock()
	if len(acked) < 50 {
		t.Fatalf("only %d messages acknowledged before the kill", len(acked))
	}
	want := len(acked)
	mu.Unlock()

	g = startGateway(t, bin, dir)
	defer func() { g.term(t) }()
	check := func(stage string) {
		t.Helper()
		// The subscribers do not subscribe again: their subscriptions
		// must have survived.
		c1 := dialPaho(t, g.addr, "crash-sub1", false, r1)
		c2 := dialPaho(t, g.addr, "crash-sub2", false, r2)
		waitQuiet(r1, want)
		waitQuiet(r2, want)
		c1.Disconnect(100)
		c2.Disconnect(100)
		mu.Lock()
		defer mu.Unlock()
		var missing, dups int
		for topic, qos := range acked {
			if r1.count(topic) == 0 || r2.count(topic) == 0 {
				missing++
			}
			if qos == 2 && r2.count(topic) > 1 {
				dups++
			}
		}
		t.Logf("%s: %d acknowledged, subscriber 1 got %d, subscriber 2 got %d", stage, len(acked), r1.total(), r2.total())
		if missing > 0 || dups > 0 {
			t.Fatalf("%s: %d acknowledged messages missing, %d QoS 2 duplicates", stage, missing, dups)
		}
	}
	check("after kill -9")

	rc := &receiver{got: map[string]int{}}
	c := dialPaho(t, g.addr, "crash-ret", true, rc)
	c.Subscribe("ret/#", 1, nil).WaitTimeout(5 * time.Second)
	waitQuiet(rc, 1)
	c.Disconnect(100)
	if rc.count("ret/x") != 1 {
		t.Fatal("retained message lost in the crash")
	}

	// A graceful restart with messages queued for the offline subscribers.
	pub = dialPaho(t, g.addr, "crash-pub", true, nil)
	for i := 0; i < 200; i++ {
		qos := byte(1 + i%2)
		topic := fmt.Sprintf("load/term/%d/%d", qos, i)
		if tok := pub.Publish(topic, qos, false, topic); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
		mu.Lock()
		acked[topic] = qos
		mu.Unlock()
	}
	pub.Disconnect(100)
	g.term(t)
	g = startGateway(t, bin, dir)
	mu.Lock()
	want = len(acked)
	mu.Unlock()
	check("after SIGTERM")
	if !strings.HasPrefix(g.addr, "127.0.0.1:") {
		t.Fatal(g.addr)
	}
}
