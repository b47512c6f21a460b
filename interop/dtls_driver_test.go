package interop

// The datagram protocols over their secured listeners: CoAP over DTLS
// (coap.dtls) driven by go-coap's DTLS client, and MQTT-SN over DTLS
// (mqttsn.dtls) driven by the MQTT-SN driver on a pion/dtls client
// session. Both verify the gateway's certificate against the test CA,
// as the TLS drivers do, and send RFC 9146 connection IDs.

import (
	"crypto/tls"
	"net"
	"testing"

	"github.com/pion/dtls/v3"
	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/options"

	"github.com/iotgw/iotgw/adapters/mqttsn/sntest"
	"github.com/iotgw/iotgw/internal/dtlsnet"
	"github.com/iotgw/iotgw/internal/testutil"
)

// snDTLSMaxPayload is the largest MQTT-SN PUBLISH payload that fits one
// DTLS session datagram (dtlsnet.MaxDatagram), both ways.
const snDTLSMaxPayload = dtlsnet.MaxDatagram - snPublishHdr

func protoCoAPDTLS() *proto {
	return &proto{name: "coaps", caps: coapCaps(), dial: func(t testing.TB, e *env, _ string, _ *will) client {
		return dialCoAPDTLS(t, e.gw.CoAPDTLSAddr(), testutil.ListenLoopbackUDP(t), e.tls)
	}}
}

func protoMQTTSNDTLS() *proto {
	c := protoMQTTSN().caps
	c.maxIn = func(string, string) int { return snDTLSMaxPayload }
	c.maxOut = func(string) int { return snDTLSMaxPayload }
	return &proto{name: "mqttsns", caps: c, dial: func(t testing.TB, e *env, id string, w *will) client {
		dc := dialDTLSSession(t, e.gw.MQTTSNDTLSAddr(), testutil.ListenLoopbackUDP(t), e.tls)
		keepAlive := uint16(300)
		if w != nil && w.KeepAlive > 0 {
			keepAlive = w.KeepAlive
		}
		return connectSN(t, sntest.New(t, dc), id, w, keepAlive)
	}}
}

// dialDTLSSession handshakes a DTLS client session to addr over pc,
// trusting tlsc's roots for tlsc's server name and sending connection
// IDs (the gateway offers them: tls.connection_id, on by default).
func dialDTLSSession(t testing.TB, addr string, pc net.PacketConn, tlsc *tls.Config) *dtls.Conn {
	t.Helper()
	dc, err := testutil.DialDTLS(t, pc, addr, waitTimeout, dtls.WithRootCAs(tlsc.RootCAs), dtls.WithServerName(tlsc.ServerName))
	if err != nil {
		t.Fatalf("dtls handshake %s: %v", addr, err)
	}
	return dc
}

// dialCoAPDTLS runs go-coap's DTLS client over a session on pc (which a
// test may rebind under it).
func dialCoAPDTLS(t testing.TB, addr string, pc net.PacketConn, tlsc *tls.Config) *coapClient {
	t.Helper()
	dc := dialDTLSSession(t, addr, pc, tlsc)
	// WithCloseSocket: closing the CoAP connection closes the session.
	return newCoAPClient(t, coapdtls.Client(dc, append(coapClientOptions(), options.WithCloseSocket())...))
}
