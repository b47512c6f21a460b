package main

// Helpers shared by the crash and restart tests: one run of the real
// binary on a store directory, with every protocol listening on a port
// the kernel picks, and a persistent paho subscriber that counts what it
// receives.

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// gateway is one run of the real binary on a store directory.
type gateway struct {
	cmd *exec.Cmd
	// addr is the MQTT TCP address; the others are the listeners of the
	// other protocols.
	addr, stomp, mqttsn, coap string
	// startup is the time from exec to the "iotgw started" line: process
	// start, store open and recovery, listeners.
	startup time.Duration
	// recovered is the "took" of the "store recovered" line.
	recovered string
}

var (
	// The console logger writes "<time> <level> <logger> <caller> <msg> <json>";
	// the logger name tells the protocol of a listener.
	listenerRE  = regexp.MustCompile(`\t(mqtt|mqttsn|coap|stomp)\t.*\tlistening\t\{"transport": "(tcp|udp)", "addr": "([^"]+)"`)
	recoveredRE = regexp.MustCompile(`store recovered.*"took": "([^"]+)"`)
	startedRE   = regexp.MustCompile(`\tiotgw started\t`)
)

// startGateway runs the binary on the store in dir with every protocol
// on 127.0.0.1 port 0 (WebSocket listeners off, no $SYS ticker) and waits
// until it has started; env adds or overrides IOTGW_ variables.
func startGateway(t *testing.T, bin, dir string, env ...string) *gateway {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "IOTGW_STORE_DIR="+dir, "IOTGW_MQTT_TCP=127.0.0.1:0", "IOTGW_MQTT_WS=", "IOTGW_HTTP_LISTEN=",
		"IOTGW_STOMP_TCP=127.0.0.1:0", "IOTGW_STOMP_WS=", "IOTGW_MQTTSN_UDP=127.0.0.1:0",
		"IOTGW_COAP_UDP=127.0.0.1:0", "IOTGW_SYS_INTERVAL=0")
	cmd.Env = append(cmd.Env, env...)
	stderr, _ := cmd.StderrPipe()
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	g := &gateway{cmd: cmd}
	ready, exited := make(chan struct{}), make(chan struct{})
	var tail []string // the last lines before start-up, for a failure
	go func() {
		defer close(exited)
		// Keeps reading after start-up so the gateway never blocks on a
		// full pipe.
		sc := bufio.NewScanner(stderr)
		started := false
		for sc.Scan() {
			line := sc.Text()
			if started {
				continue
			}
			if tail = append(tail, line); len(tail) > 10 {
				tail = tail[1:]
			}
			if m := listenerRE.FindStringSubmatch(line); m != nil {
				switch m[1] {
				case "mqtt":
					g.addr = m[3]
				case "stomp":
					g.stomp = m[3]
				case "mqttsn":
					g.mqttsn = m[3]
				case "coap":
					g.coap = m[3]
				}
			} else if m := recoveredRE.FindStringSubmatch(line); m != nil {
				g.recovered = m[1]
			} else if startedRE.MatchString(line) {
				g.startup = time.Since(begin)
				started = true
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
		return g
	case <-exited:
		cmd.Wait()
		t.Fatalf("gateway exited at start-up (%v):\n%s", cmd.ProcessState, strings.Join(tail, "\n"))
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-exited
		t.Fatalf("gateway did not start:\n%s", strings.Join(tail, "\n"))
	}
	return nil
}

// kill ends the gateway with SIGKILL: no shutdown, no store close.
func (g *gateway) kill(t *testing.T) {
	g.cmd.Process.Signal(syscall.SIGKILL)
	g.cmd.Wait()
}

// term stops the gateway with SIGTERM and returns how long it took to
// exit.
func (g *gateway) term(t *testing.T) time.Duration {
	t.Helper()
	begin := time.Now()
	g.cmd.Process.Signal(syscall.SIGTERM)
	if err := g.cmd.Wait(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	return time.Since(begin)
}

// receiver is a persistent subscriber's tally of messages by key (the
// topic for MQTT, the body for the others).
type receiver struct {
	mu  sync.Mutex
	got map[string]int
}

func newReceiver() *receiver { return &receiver{got: map[string]int{}} }

func (r *receiver) add(key string) {
	r.mu.Lock()
	r.got[key]++
	r.mu.Unlock()
}

func (r *receiver) count(key string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got[key]
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

// missing returns how many of keys r has not received.
func (r *receiver) missing(keys []string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, k := range keys {
		if r.got[k] == 0 {
			n++
		}
	}
	return n
}

// ackedSet records the messages whose publish was acknowledged, by key.
type ackedSet struct {
	mu   sync.Mutex
	keys []string
}

func (a *ackedSet) add(k string) {
	a.mu.Lock()
	a.keys = append(a.keys, k)
	a.mu.Unlock()
}

func (a *ackedSet) snapshot() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.keys...)
}

func (a *ackedSet) len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.keys)
}

// waitAcked waits until n publishes were acknowledged (or 20 s passed).
func (a *ackedSet) waitAcked(n int) {
	for deadline := time.Now().Add(20 * time.Second); a.len() < n && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
}

func dialPaho(t *testing.T, addr, id string, clean bool, r *receiver) paho.Client {
	t.Helper()
	o := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetCleanSession(clean).
		SetAutoReconnect(false).SetConnectRetry(false).SetOrderMatters(false)
	if r != nil {
		o.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { r.add(m.Topic()) })
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

// waitAll waits until r has every key (or 30 s passed, or nothing new
// arrived for 5 s), then returns how many are missing.
func waitAll(r *receiver, keys []string) int {
	last, since := -1, time.Now()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if r.missing(keys) == 0 {
			return 0
		}
		n := r.total()
		if n != last {
			last, since = n, time.Now()
		}
		if time.Since(since) > 5*time.Second {
			break
		}
	}
	return r.missing(keys)
}

// crashRoundsFrom returns the number of kill -9 rounds a crash test runs:
// crashRounds, or more from the environment variable env when hunting a
// flake (not IOTGW_: the gateway refuses IOTGW_ variables that name no
// key).
func crashRoundsFrom(t *testing.T, env string) int {
	t.Helper()
	s := os.Getenv(env)
	if s == "" {
		return crashRounds
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q", env, s)
	}
	return n
}

// startCrashGateway skips under -short, else builds the binary and starts
// it on a fresh store directory; a crash test restarts bin on dir.
func startCrashGateway(t *testing.T) (bin, dir string, g *gateway) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin = buildBinary(t)
	dir = filepath.Join(t.TempDir(), "data")
	return bin, dir, startGateway(t, bin, dir)
}
