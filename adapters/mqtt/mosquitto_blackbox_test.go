package mqtt_test

// Debian's mosquitto_pub and mosquitto_sub against the gateway.

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iotgw/iotgw/internal/testutil"
)

// mosquittoMsg is one message as mosquitto_sub printed it.
type mosquittoMsg struct {
	topic, qos, retain, payload string
}

// mosquittoSub runs mosquitto_sub with a parseable output format (and -d,
// for the failure output) and collects what it prints.
type mosquittoSub struct {
	cmd  *exec.Cmd
	done chan struct{}

	mu   sync.Mutex
	msgs []mosquittoMsg
	log  []string
	err  error
}

func hostPort(t *testing.T, addr string) (string, string) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return host, port
}

func needMosquitto(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"mosquitto_pub", "mosquitto_sub"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not on PATH (Debian package mosquitto-clients)", tool)
		}
	}
}

func startMosquittoSub(t *testing.T, g *testutil.Gateway, args ...string) *mosquittoSub {
	t.Helper()
	return startMosquittoSubAt(t, g.MQTTAddr(), args...)
}

// startMosquittoSubAt runs mosquitto_sub against the listener at addr
// (mqtt.tls, with --cafile among args).
func startMosquittoSubAt(t *testing.T, addr string, args ...string) *mosquittoSub {
	t.Helper()
	host, port := hostPort(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	all := append([]string{"-h", host, "-p", port, "-i", uniqueID("mosq-sub"), "-d",
		"-F", "MSG|%t|%q|%r|%p"}, args...)
	s := &mosquittoSub{cmd: exec.CommandContext(ctx, "mosquitto_sub", all...), done: make(chan struct{})}
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s.cmd.Stderr = s.cmd.Stdout
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("mosquitto_sub: %v", err)
	}
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.log = append(s.log, line)
			if rest, ok := strings.CutPrefix(line, "MSG|"); ok {
				f := strings.SplitN(rest, "|", 4)
				if len(f) == 4 {
					s.msgs = append(s.msgs, mosquittoMsg{f[0], f[1], f[2], f[3]})
				}
			}
			s.mu.Unlock()
		}
		err := s.cmd.Wait()
		s.mu.Lock()
		s.err = err
		s.mu.Unlock()
	}()
	return s
}

// waitSubscribed waits until the broker holds n subscriptions. (The -d
// line announcing the SUBACK cannot serve: mosquitto_sub's stdout is a
// pipe here, so it is block-buffered until exit.)
func (s *mosquittoSub) waitSubscribed(t *testing.T, g *testutil.Gateway, n int) {
	t.Helper()
	want := fmt.Sprint(n)
	deadline := time.Now().Add(waitTimeout)
	for g.Broker.SysSnapshot()["$SYS/broker/subscriptions/count"] != want {
		select {
		case <-s.done:
			t.Fatalf("mosquitto_sub exited before subscribing:\n%s", s.output())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("mosquitto_sub not subscribed within %v", waitTimeout)
		}
	}
}

// wait waits for mosquitto_sub to exit (after -C messages) and returns
// what it received.
func (s *mosquittoSub) wait(t *testing.T) []mosquittoMsg {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("mosquitto_sub still running:\n%s", s.output())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		t.Errorf("mosquitto_sub: %v (exit code 27 is its -W timeout)", s.err)
	}
	return s.msgs
}

func (s *mosquittoSub) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.log, "\n")
}

func mosquittoPub(t *testing.T, g *testutil.Gateway, args ...string) {
	t.Helper()
	if out, err := tryMosquittoPub(t, g.MQTTAddr(), args...); err != nil {
		t.Fatalf("mosquitto_pub %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// tryMosquittoPub runs mosquitto_pub against the listener at addr and
// returns its output and exit status.
func tryMosquittoPub(t *testing.T, addr string, args ...string) ([]byte, error) {
	t.Helper()
	host, port := hostPort(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	all := append([]string{"-h", host, "-p", port, "-i", uniqueID("mosq-pub")}, args...)
	return exec.CommandContext(ctx, "mosquitto_pub", all...).CombinedOutput()
}

func TestMosquittoClients(t *testing.T) {
	t.Parallel()
	needMosquitto(t)

	t.Run("qos_0_1_2", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, "")
		sub := startMosquittoSub(t, g, "-t", "mosq/#", "-q", "2", "-C", "3", "-W", "25")
		sub.waitSubscribed(t, g, 1)
		for q := 0; q <= 2; q++ {
			mosquittoPub(t, g, "-t", fmt.Sprintf("mosq/q%d", q), "-q", fmt.Sprint(q), "-m", fmt.Sprintf("payload-%d", q))
		}
		got := sub.wait(t)
		if len(got) != 3 {
			t.Fatalf("mosquitto_sub received %d messages, want 3:\n%s", len(got), sub.output())
		}
		for q, m := range got {
			want := mosquittoMsg{fmt.Sprintf("mosq/q%d", q), fmt.Sprint(q), "0", fmt.Sprintf("payload-%d", q)}
			// [MQTT-3.8.4-6] QoS min(pub, 2) = pub; [MQTT-3.3.1-9] RETAIN 0;
			// one publisher, delivered in order [MQTT-4.6.0-6].
			if m != want {
				t.Errorf("message %d: got %+v, want %+v [MQTT-3.8.4-6] [MQTT-3.3.1-9]", q, m, want)
			}
		}
	})

	t.Run("retained", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, "")
		mosquittoPub(t, g, "-t", "mosq/retained", "-q", "1", "-r", "-m", "kept")
		sub := startMosquittoSub(t, g, "-t", "mosq/#", "-q", "1", "-C", "1", "-W", "25")
		got := sub.wait(t)
		// [MQTT-3.3.1-6] sent to the new subscription, [MQTT-3.3.1-8] with RETAIN 1.
		want := mosquittoMsg{"mosq/retained", "1", "1", "kept"}
		if len(got) != 1 || got[0] != want {
			t.Errorf("mosquitto_sub received %+v, want [%+v] [MQTT-3.3.1-6] [MQTT-3.3.1-8]:\n%s", got, want, sub.output())
		}
	})
}
