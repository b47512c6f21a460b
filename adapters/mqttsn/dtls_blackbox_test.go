package mqttsn_test

// MQTT-SN over DTLS (mqttsn.dtls): the MQTT-SN test client driven over a
// pion/dtls client session does CONNECT, REGISTER, PUBLISH and SUBSCRIBE
// with the PSK identity as its user name; with RFC 9146 connection IDs
// the session, and the MQTT-SN connection on it, survive the client's
// address changing (a NAT rebinding, simulated by moving the client to a
// new UDP socket mid-session).

import (
	"net"
	"testing"
	"time"

	"github.com/pion/dtls/v3"

	"github.com/iotgw/iotgw/adapters/mqttsn/codec"
	"github.com/iotgw/iotgw/adapters/mqttsn/sntest"
	"github.com/iotgw/iotgw/internal/testutil"
)

const (
	snIdentity = "node-9"
	snKey      = "node-9-key"
)

// dialDTLS opens a PSK session to addr over pc, sending connection IDs.
// wait bounds the handshake.
func dialDTLS(t *testing.T, pc net.PacketConn, addr, key string, wait time.Duration) (*dtls.Conn, error) {
	t.Helper()
	return testutil.DialDTLS(t, pc, addr, wait, testutil.PSKOptions(snIdentity, key)...)
}

func TestDTLSMQTTSN(t *testing.T) {
	t.Parallel()
	pki := testutil.NewPKI(t, "sn-dtls")
	psk := pki.PSKFile("sn.psk", map[string][]byte{snIdentity: []byte(snKey)})
	g := testutil.Start(t, `
tls:
  psk_file: `+psk+`
  handshake_timeout: 1s
mqttsn:
  require_auth: true
acl:
  default: deny
  rules:
    - {permission: allow, action: all, topic: "nodes/%u/#"}
    - {permission: allow, action: subscribe, topic: "#"}
    - {permission: allow, action: publish, topic: "nodes/+/cmd"}
`)
	sub := connectPaho(t, &gateway{url: g.MQTTURL()})
	sub.sub("nodes/#", 1)

	rc := testutil.NewRebindConn(t)
	dc, err := dialDTLS(t, rc, g.MQTTSNDTLSAddr(), snKey, waitTimeout)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	c := sntest.New(t, dc)
	// require_auth is met by the session's identity: no AUTH is sent.
	c.Connect("sn-dtls", true, 60)
	id := c.Register("nodes/node-9/temp")
	c.Publish(codec.TopicNormal, id, 1, false, "20")
	sub.expect("nodes/node-9/temp", "20", 1, false)
	c.Subscribe(codec.TopicNormal, "nodes/node-9/cmd", 0, 1)
	sub.pub("nodes/node-9/cmd", 1, false, "on")
	c.Ack(c.ExpectPublish("on"))
	sub.expect("nodes/node-9/cmd", "on", 1, false) // its own, through nodes/#

	// The address changes; the connection ID keeps the session, and the
	// MQTT-SN connection on it goes on without a new CONNECT.
	before := rc.LocalAddr().String()
	rc.Rebind(t)
	if rc.LocalAddr().String() == before {
		t.Fatal("the client socket did not move")
	}
	c.Publish(codec.TopicNormal, id, 1, false, "21")
	sub.expect("nodes/node-9/temp", "21", 1, false)
	sub.pub("nodes/node-9/cmd", 1, false, "off")
	c.Ack(c.ExpectPublish("off"))
	sub.expect("nodes/node-9/cmd", "off", 1, false)
	if n := g.MQTTSN.DTLSStats().Handshakes.Load(); n != 1 {
		t.Fatalf("%d handshakes, want the one session", n)
	}

	// A wrong key gets no session: the server drops the Finished it
	// cannot decrypt and answers nothing, so the client gives up.
	if bad, err := dialDTLS(t, testutil.ListenLoopbackUDP(t), g.MQTTSNDTLSAddr(), "wrong", time.Second); err == nil {
		bad.Close()
		t.Fatal("a wrong pre-shared key was accepted")
	}
}
