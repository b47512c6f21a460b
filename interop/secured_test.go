package interop

// The stream protocols over their secured listeners (issue 15): the same
// drivers, dialling mqtt.tls, mqtt.wss, stomp.tls and stomp.wss with a
// client configuration that trusts the test CA. TestMatrix runs them as
// one ring of extra pairs, so each is a publisher and a subscriber once,
// with every check.

import (
	"strings"
	"testing"

	"github.com/iotgw/iotgw/cmd/iotgw/app"
)

// securedProtos are the secured rows of the matrix. Each name is its
// plaintext twin's with "s" for secured, and so are the capabilities:
// the adapters are the same above the transport.
//
// TODO(issue 15, DTLS): coap.dtls and mqttsn.dtls join here once they
// exist: a driver each (pion/dtls under go-coap's client, and under
// sntest), caps coapCaps-like and protoMQTTSN's, so that the ring below
// covers them; TestMatrix logs every *.dtls listener key that has none.
func securedProtos() []*proto {
	return []*proto{
		{name: "mqtt311s", caps: mqtt311Caps(), dial: func(t testing.TB, e *env, id string, w *will) client {
			return dialPaho3TLS(t, "tls://"+e.gw.MQTTTLSAddr(), id, w, e.tls)
		}},
		{name: "mqtt5s", caps: mqtt5Caps(), dial: func(t testing.TB, e *env, id string, w *will) client {
			return dialPaho5TLS(t, e.gw.MQTTTLSAddr(), id, w, e.tls)
		}},
		{name: "mqttwss", caps: mqtt311Caps(), dial: func(t testing.TB, e *env, id string, w *will) client {
			return dialPaho3TLS(t, e.gw.WSSURL(), id, w, e.tls)
		}},
		{name: "stomps", caps: stompCaps(), dial: func(t testing.TB, e *env, id string, _ *will) client {
			return dialSTOMPTLS(t, e.gw.STOMPTLSAddr(), "", id, e.tls)
		}},
		{name: "stompwss", caps: stompCaps(), dial: func(t testing.TB, e *env, id string, _ *will) client {
			return dialSTOMPTLS(t, "", e.gw.STOMPWSSURL(), id, e.tls)
		}},
	}
}

// securedRing pairs each secured protocol with the next one (publisher
// to subscriber), and the last with the first: every secured driver
// publishes once and subscribes once, across protocols and transports.
func securedRing(ps []*proto) [][2]*proto {
	var ring [][2]*proto
	for i, p := range ps {
		ring = append(ring, [2]*proto{p, ps[(i+1)%len(ps)]})
	}
	return ring
}

// undrivenSecured lists the gateway's DTLS listener keys, which no
// secured driver covers yet (see the TODO above).
func undrivenSecured() []string {
	var keys []string
	for _, k := range app.Keys() {
		if strings.HasSuffix(k, ".dtls") {
			keys = append(keys, k)
		}
	}
	return keys
}
