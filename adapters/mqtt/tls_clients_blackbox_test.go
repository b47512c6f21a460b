package mqtt_test

// Real MQTT clients over the secured listeners (issue 15): Debian's
// mosquitto_pub and mosquitto_sub over mqtt.tls (3.1.1 and 5, server
// certificate only and mutual TLS), paho.golang's autopaho over TLS and
// WSS, and python3-paho-mqtt over WSS (with and without a client
// certificate). Plaintext clients share the topic space with them.

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	paho5 "github.com/eclipse/paho.golang/paho"
	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/iotgw/iotgw/internal/testutil"
)

func TestTLSMosquittoClients(t *testing.T) {
	t.Parallel()
	needMosquitto(t)
	for _, v := range []string{"mqttv311", "mqttv5"} {
		t.Run("server_certificate/"+v, func(t *testing.T) {
			t.Parallel()
			pki := testutil.NewPKI(t, "mosq-"+v)
			g := testutil.Start(t, pki.TLSYAML(pki.Server("server")))
			tlsArgs := []string{"-V", v, "--cafile", pki.CAFile}
			sub := startMosquittoSubAt(t, g.MQTTTLSAddr(), append(tlsArgs, "-t", "mosq/tls/#", "-q", "2", "-C", "3", "-W", "25")...)
			sub.waitSubscribed(t, g, 1)
			// Over plaintext, then over TLS, then over TLS at QoS 2.
			mosquittoPub(t, g, "-V", v, "-t", "mosq/tls/plain", "-q", "1", "-m", "from plaintext")
			for q, topic := range []string{"mosq/tls/secure1", "mosq/tls/secure2"} {
				if out, err := tryMosquittoPub(t, g.MQTTTLSAddr(), append(tlsArgs, "-t", topic, "-q", fmt.Sprint(q+1), "-m", "over tls")...); err != nil {
					t.Fatalf("mosquitto_pub over TLS: %v\n%s", err, out)
				}
			}
			got := sub.wait(t)
			want := []mosquittoMsg{{"mosq/tls/plain", "1", "0", "from plaintext"},
				{"mosq/tls/secure1", "1", "0", "over tls"}, {"mosq/tls/secure2", "2", "0", "over tls"}}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("mosquitto_sub over TLS received %+v, want %+v:\n%s", got, want, sub.output())
			}
			// Without --cafile mosquitto does not trust the gateway.
			if out, err := tryMosquittoPub(t, g.MQTTTLSAddr(), "-V", v, "--capath", t.TempDir(), "-t", "x", "-m", "x"); err == nil {
				t.Errorf("mosquitto_pub trusted a certificate of an unknown CA:\n%s", out)
			}
		})
		t.Run("mutual_tls/"+v, func(t *testing.T) {
			t.Parallel()
			pki := testutil.NewPKI(t, "mosq-mtls-"+v)
			g := testutil.Start(t, pki.TLSYAML(pki.Server("server"), "client_auth: require", "identity: cn")+testutil.IdentityACL)
			dev := pki.Client("dev", "dev-1")
			tlsArgs := []string{"-V", v, "--cafile", pki.CAFile, "--cert", dev.CertFile, "--key", dev.KeyFile}
			sub := startMosquittoSubAt(t, g.MQTTTLSAddr(), append(tlsArgs, "-t", "devices/dev-1/#", "-q", "1", "-C", "1", "-W", "25")...)
			sub.waitSubscribed(t, g, 1)
			if out, err := tryMosquittoPub(t, g.MQTTTLSAddr(), append(tlsArgs, "-u", "someone-else", "-P", "x", "-t", "devices/dev-1/temp", "-q", "1", "-m", "21.5")...); err != nil {
				t.Fatalf("mosquitto_pub with a client certificate: %v\n%s", err, out)
			}
			if got := sub.wait(t); len(got) != 1 || got[0] != (mosquittoMsg{"devices/dev-1/temp", "1", "0", "21.5"}) {
				t.Errorf("mosquitto_sub with a client certificate received %+v:\n%s", got, sub.output())
			}
			// No certificate: the handshake fails and mosquitto_pub with it.
			if out, err := tryMosquittoPub(t, g.MQTTTLSAddr(), "-V", v, "--cafile", pki.CAFile, "-t", "devices/dev-1/temp", "-m", "x"); err == nil {
				t.Errorf("mosquitto_pub without a client certificate succeeded under client_auth require:\n%s", out)
			}
		})
	}
}

// autopahoClient connects paho.golang's connection manager to url (tls://
// or wss://) with cfg and returns it with the channel of what it
// receives.
func autopahoClient(t *testing.T, u string, cfg autopaho.ClientConfig) (*autopaho.ConnectionManager, chan *paho5.Publish) {
	t.Helper()
	su, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	msgs := make(chan *paho5.Publish, 64)
	cfg.ServerUrls = []*url.URL{su}
	cfg.KeepAlive = 30
	cfg.CleanStartOnInitialConnection = true
	cfg.ConnectTimeout = waitTimeout
	cfg.ClientID = uniqueID("autopaho")
	cfg.OnPublishReceived = []func(paho5.PublishReceived) (bool, error){func(pr paho5.PublishReceived) (bool, error) {
		msgs <- pr.Packet
		return true, nil
	}}
	errs := make(chan error, 16)
	cfg.OnConnectError = func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cm, err := autopaho.NewConnection(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		dctx, dcancel := context.WithTimeout(context.Background(), waitTimeout)
		defer dcancel()
		_ = cm.Disconnect(dctx)
		cancel()
	})
	actx, acancel := context.WithTimeout(ctx, waitTimeout)
	defer acancel()
	if err := cm.AwaitConnection(actx); err != nil {
		select {
		case e := <-errs:
			err = e
		default:
		}
		t.Fatalf("autopaho %s: %v", u, err)
	}
	return cm, msgs
}

func TestTLSPahoGolang(t *testing.T) {
	t.Parallel()
	pki := testutil.NewPKI(t, "paho-golang")
	g := testutil.Start(t, pki.TLSYAML(pki.Server("server")))
	for _, tc := range []struct{ name, url string }{
		{"tls", "tls://" + g.MQTTTLSAddr()},
		{"wss", g.WSSURL()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cm, msgs := autopahoClient(t, tc.url, autopaho.ClientConfig{TlsCfg: pki.ClientConfig(nil)})
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			topic := "v5tls/" + tc.name
			if sa, err := cm.Subscribe(ctx, &paho5.Subscribe{Subscriptions: []paho5.SubscribeOptions{{Topic: topic + "/#", QoS: 2}}}); err != nil || sa.Reasons[0] != 2 {
				t.Fatalf("subscribe: %v %+v", err, sa)
			}
			// From a plaintext MQTT 5 client, with a user property, at QoS 2.
			plain := v5Connect(t, g, nil, nil)
			plain.pub(&paho5.Publish{Topic: topic + "/in", QoS: 2, Payload: []byte("to " + tc.name),
				Properties: &paho5.PublishProperties{User: paho5.UserProperties{{Key: "k", Value: "v"}}}})
			select {
			case m := <-msgs:
				if string(m.Payload) != "to "+tc.name || m.QoS != 2 || m.Properties.User.Get("k") != "v" {
					t.Errorf("received %s %q qos %d props %+v", m.Topic, m.Payload, m.QoS, m.Properties)
				}
			case <-time.After(waitTimeout):
				t.Fatal("nothing received over " + tc.name)
			}
			// And back to the plaintext client.
			plain.sub(topic+"/out", 1)
			if pr, err := cm.Publish(ctx, &paho5.Publish{Topic: topic + "/out", QoS: 1, Payload: []byte("from " + tc.name)}); err != nil || pr.ReasonCode != 0 {
				t.Fatalf("publish over %s: %v %+v", tc.name, err, pr)
			}
			if m := plain.next(); string(m.Payload) != "from "+tc.name {
				t.Errorf("plaintext client got %q", m.Payload)
			}
		})
	}
}

func needPythonPaho(t *testing.T) string {
	t.Helper()
	const python = "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		t.Skip("python3-paho-mqtt test skipped: /usr/bin/python3 missing (apt-get install -y python3-paho-mqtt)")
	}
	if err := exec.Command(python, "-c", "import paho.mqtt.client").Run(); err != nil {
		t.Skip("python3-paho-mqtt test skipped: module paho.mqtt missing (apt-get install -y python3-paho-mqtt)")
	}
	return python
}

// pythonWSSResult is what testdata/python/wss_client.py prints.
type pythonWSSResult struct {
	Connack int
	Granted []int
	Topic   string
	Payload string
}

// runPythonWSS runs the python client against g's mqtt.wss listener and
// returns what it printed; out is its topic of "ready" and answers, which
// a plaintext subscriber (tweaked by watcher) reads, and the test
// publishes to in.
func runPythonWSS(t *testing.T, python string, g *testutil.Gateway, pki *testutil.PKI, client *testutil.Cert, in, out string, watcher func(*paho.ClientOptions)) pythonWSSResult {
	t.Helper()
	u, err := url.Parse(g.WSSURL())
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(u.Host)
	args := []string{"testdata/python/wss_client.py", host, port, u.Path, pki.CAFile, in, out}
	if client != nil {
		args = append(args, client.CertFile, client.KeyFile)
	}
	w, _ := connectPaho(t, g.MQTTURL(), uniqueID("py-watch"), watcher)
	w.subscribe(out, 1)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	outc := make(chan []byte, 1)
	errc := make(chan error, 1)
	go func() {
		o, err := cmd.Output()
		outc <- o
		errc <- err
	}()
	if m := w.next(); m.Payload != "ready" {
		t.Fatalf("first message from python %+v, want ready", m)
	}
	w.publish(in, 1, false, "hello wss")
	if m := w.next(); m.Payload != "got:hello wss" {
		t.Errorf("python answered %+v, want got:hello wss", m)
	}
	o := <-outc
	if err := <-errc; err != nil {
		t.Fatalf("python client: %v\nstdout %s\nstderr %s", err, o, stderr.String())
	}
	var res pythonWSSResult
	if err := json.Unmarshal(o, &res); err != nil {
		t.Fatalf("python output %q: %v (stderr %s)", o, err, stderr.String())
	}
	return res
}

func TestTLSPythonPahoOverWSS(t *testing.T) {
	t.Parallel()
	python := needPythonPaho(t)
	t.Run("server_certificate", func(t *testing.T) {
		t.Parallel()
		pki := testutil.NewPKI(t, "py-wss")
		g := testutil.Start(t, pki.TLSYAML(pki.Server("server")))
		res := runPythonWSS(t, python, g, pki, nil, "pywss/in", "pywss/out", nil)
		if res.Connack != 0 || fmt.Sprint(res.Granted) != "[1]" || res.Topic != "pywss/in" || res.Payload != "hello wss" {
			t.Errorf("python saw %+v", res)
		}
	})
	// A client certificate over WebSocket is checked like over TLS
	// (mosquitto #3164), and its CN is the user name: the python client
	// sends none, and anonymous clients are refused.
	t.Run("client_certificate", func(t *testing.T) {
		t.Parallel()
		pki := testutil.NewPKI(t, "py-wss-mtls")
		g := testutil.Start(t, pki.TLSYAML(pki.Server("server"), "client_auth: require", "identity: cn")+testutil.IdentityACL)
		res := runPythonWSS(t, python, g, pki, pki.Client("py", "py-dev"), "devices/py-dev/in", "devices/py-dev/out",
			func(o *paho.ClientOptions) { o.SetUsername("watcher").SetPassword("secret") })
		if res.Connack != 0 || fmt.Sprint(res.Granted) != "[1]" || res.Payload != "hello wss" {
			t.Errorf("python with a client certificate saw %+v", res)
		}
	})
}
