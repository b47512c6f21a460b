package mqtt_test

// MQTT over TLS and WebSocket over TLS with paho.mqtt.golang: the secured
// listeners behave like their plaintext twins, and with client_auth
// require + identity cn the certificate's CN is the user name that
// acl.rules %u sees.

import (
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/iotgw/iotgw/internal/testutil"
)

func TestTLSListenersCarryPubSub(t *testing.T) {
	t.Parallel()
	pki := testutil.NewPKI(t, "tls-pubsub")
	g := testutil.Start(t, pki.TLSYAML(pki.Server("server")))
	if g.Addr("mqtt.tls") == nil || g.Addr("mqtt.wss") == nil {
		t.Fatal("secured listeners are off with a certificate configured")
	}
	withTLS := func(o *paho.ClientOptions) { o.SetTLSConfig(pki.ClientConfig(nil)) }
	for _, tc := range []struct{ name, url string }{
		{"tls", "ssl://" + g.MQTTTLSAddr()},
		{"wss", g.WSSURL()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sub, _ := connectPaho(t, tc.url, "sub-"+tc.name, withTLS)
			wait(t, "subscribe", sub.Subscribe("tls/"+tc.name, 1, nil))
			// The publisher is on plaintext TCP: one topic space.
			pub, _ := connectPaho(t, g.MQTTURL(), "pub-"+tc.name, nil)
			wait(t, "publish", pub.Publish("tls/"+tc.name, 1, false, "over "+tc.name))
			if m := sub.next(); m.Payload != "over "+tc.name {
				t.Fatalf("got %+v", m)
			}
			// And back: a TLS publisher to a plaintext subscriber.
			wait(t, "subscribe", pub.Subscribe("back/"+tc.name, 2, nil))
			wait(t, "publish", sub.Publish("back/"+tc.name, 2, false, "back"))
			if m := pub.next(); m.Payload != "back" {
				t.Fatalf("got %+v", m)
			}
		})
	}
}

func TestTLSIdentityIsTheUserName(t *testing.T) {
	t.Parallel()
	pki := testutil.NewPKI(t, "tls-identity")
	g := testutil.Start(t, pki.TLSYAML(pki.Server("server"), "client_auth: require", "identity: cn")+testutil.IdentityACL)
	alice := pki.Client("alice", "alice")
	cfg := pki.ClientConfig(alice)
	// The user name and password the client sends do not matter: the
	// certificate is the credential.
	c, _ := connectPaho(t, "ssl://"+g.MQTTTLSAddr(), "alice-1", func(o *paho.ClientOptions) {
		o.SetTLSConfig(cfg).SetUsername("mallory").SetPassword("wrong")
	})
	wait(t, "subscribe", c.Subscribe("devices/alice/#", 1, nil))
	wait(t, "publish", c.Publish("devices/alice/t", 1, false, "mine"))
	if m := c.next(); m.Topic != "devices/alice/t" {
		t.Fatalf("got %+v", m)
	}
	// Another user's topic is refused by %u: a 3.1.1 SUBACK 0x80.
	tok := c.Subscribe("devices/mallory/#", 1, nil)
	wait(t, "subscribe", tok)
	if codes := tok.(*paho.SubscribeToken).Result(); codes["devices/mallory/#"] != 0x80 {
		t.Fatalf("subscribe to another user's topic: %v, want 0x80", codes)
	}

	// Without a certificate the handshake fails.
	_, _, err := tryConnectPaho(t, "ssl://"+g.MQTTTLSAddr(), "nocert", func(o *paho.ClientOptions) {
		o.SetTLSConfig(pki.ClientConfig(nil))
	})
	if err == nil {
		t.Fatal("connected without a client certificate under client_auth require")
	}
	// A certificate from another CA as well (sent although the server
	// does not name its CA)).
	other := testutil.NewPKI(t, "other")
	stranger := other.Client("stranger", "alice")
	_, _, err = tryConnectPaho(t, "ssl://"+g.MQTTTLSAddr(), "stranger", func(o *paho.ClientOptions) {
		o.SetTLSConfig(pki.ClientConfigSending(stranger))
	})
	if err == nil {
		t.Fatal("connected with a certificate from an untrusted CA")
	}
	// The plaintext listener still wants a password.
	_, _, err = tryConnectPaho(t, g.MQTTURL(), "plain", func(o *paho.ClientOptions) { o.SetUsername("alice") })
	if err == nil || !strings.Contains(err.Error(), "not Authorized") && !strings.Contains(err.Error(), "bad user name") {
		t.Fatalf("plaintext connect as alice without password: %v, want refused", err)
	}
}

// TestTLSListenerInSys: each secured listener shows its certificate and
// its failed handshakes in $SYS.
func TestTLSListenerInSys(t *testing.T) {
	t.Parallel()
	pki := testutil.NewPKI(t, "tls-sys")
	server := pki.Server("server")
	g := testutil.Start(t, pki.TLSYAML(server))
	// A client that does not trust the server's CA aborts the handshake.
	if c, err := tls.Dial("tcp", g.MQTTTLSAddr(), &tls.Config{ServerName: "localhost"}); err == nil {
		c.Close()
		t.Fatal("handshake succeeded without trusting the CA")
	}
	for _, key := range []string{"mqtt.tls", "mqtt.wss", "stomp.tls", "stomp.wss"} {
		p := "$SYS/broker/listeners/" + key + "/"
		testutil.Eventually(t, 5*time.Second, func() bool {
			m := g.Broker.SysSnapshot()
			if m[p+"cert/not_after"] != server.Leaf.NotAfter.UTC().Format(time.RFC3339) ||
				m[p+"cert/serial"] != fmt.Sprintf("%X", server.Leaf.SerialNumber) {
				return false
			}
			return key != "mqtt.tls" || m[p+"handshake_failures"] == "1"
		}, key+" in $SYS: "+fmt.Sprint(g.Broker.SysSnapshot()[p+"handshake_failures"]))
	}
}

// TestTLSSilentSocketsDoNotBlockHandshakes: sockets that connect and send
// nothing hold at most max_handshakes_per_addr handshake slots of their
// address; the ones beyond are closed at once, and a client from another
// address completes its handshake meanwhile.
func TestTLSSilentSocketsDoNotBlockHandshakes(t *testing.T) {
	t.Parallel()
	pki := testutil.NewPKI(t, "tls-silent")
	g := testutil.Start(t, pki.TLSYAML(pki.Server("server"), "max_handshakes_per_addr: 4", "handshake_timeout: 30s"))
	var silent []net.Conn
	defer func() {
		for _, c := range silent {
			c.Close()
		}
	}()
	// More silent sockets from 127.0.0.1 than the listener has slots.
	for i := 0; i < 600; i++ {
		c, err := net.Dial("tcp", g.MQTTTLSAddr())
		if err != nil {
			t.Fatal(err)
		}
		silent = append(silent, c)
	}
	d := &tls.Dialer{NetDialer: &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 10 * time.Second},
		Config: pki.ClientConfig(nil)}
	c, err := d.Dial("tcp", g.MQTTTLSAddr())
	if err != nil {
		t.Fatalf("a client from another address could not handshake: %v", err)
	}
	c.Close()
	testutil.Eventually(t, 10*time.Second, func() bool {
		return g.Broker.SysSnapshot()["$SYS/broker/listeners/mqtt.tls/handshakes_refused"] == "596"
	}, "silent sockets beyond the bound refused: "+g.Broker.SysSnapshot()["$SYS/broker/listeners/mqtt.tls/handshakes_refused"])
}
