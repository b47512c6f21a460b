package stomp_test

// Black-box test with Debian's python3-stomp (stomp.py), run with
// /usr/bin/python3; skipped where it is not installed
// (apt-get install -y python3-stomp).

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"testing"
)

// needPythonStomp returns Debian's python3 with stomp.py, or skips the
// test.
func needPythonStomp(t *testing.T) string {
	t.Helper()
	const python = "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		t.Skip("python3-stomp test skipped: /usr/bin/python3 missing (apt-get install -y python3-stomp)")
	}
	if err := exec.Command(python, "-c", "import stomp").Run(); err != nil {
		t.Skip("python3-stomp test skipped: module stomp missing (apt-get install -y python3-stomp)")
	}
	return python
}

func TestPythonStomp(t *testing.T) {
	t.Parallel()
	python := needPythonStomp(t)
	e := startEnv(t, nil)
	p := connectPaho(t, e.mqtt)
	p.sub("py/#", 1)
	host, port, _ := net.SplitHostPort(e.stomp)
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "testdata/python/client.py", host, port)
	cmd.Stderr = os.Stderr
	outc := make(chan []byte, 1)
	errc := make(chan error, 1)
	go func() {
		out, err := cmd.Output()
		outc <- out
		errc <- err
	}()
	// "ready" on py/out shows the python subscription exists.
	if m := p.next(); m.Topic != "py/out" || string(m.Payload) != "ready" {
		t.Fatalf("first MQTT message %s %q", m.Topic, m.Payload)
	}
	p.pub("py/in", 1, false, "hello python")
	var tx []string
	for len(tx) < 2 {
		m := p.next()
		if m.Topic == "py/tx" {
			tx = append(tx, string(m.Payload))
		}
	}
	out := <-outc
	if err := <-errc; err != nil {
		t.Fatalf("python client: %v (output %s)", err, out)
	}
	var res struct {
		First struct {
			Body, Destination, Subscription string
			Redelivered                     *string
		}
		Second struct {
			Body        string
			Redelivered *string
			SameID      bool `json:"same_id"`
		}
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("python output %q: %v", out, err)
	}
	if res.First.Body != "hello python" || res.First.Destination != "py/in" || res.First.Subscription != "sub-1" || res.First.Redelivered != nil {
		t.Errorf("first delivery %+v", res.First)
	}
	if res.Second.Body != "hello python" || res.Second.Redelivered == nil || *res.Second.Redelivered != "true" || res.Second.SameID {
		t.Errorf("redelivery %+v", res.Second)
	}
	if tx[0] != "t1" || tx[1] != "t2" {
		t.Errorf("transaction published %v", tx)
	}
}
