package interop

// Every protocol over its secured listeners (issue 15): the same
// drivers, dialling mqtt.tls, mqtt.wss, stomp.tls and stomp.wss with a
// client configuration that trusts the test CA, and coap.dtls and
// mqttsn.dtls with a pion/dtls session trusting it (dtls_driver_test.go).
// TestMatrix runs them as one ring of extra pairs, so each is a
// publisher and a subscriber once, with every check.

import (
	"strings"
	"testing"

	"github.com/iotgw/iotgw/cmd/iotgw/app"
)

// securedProtos are the secured rows of the matrix. Each name is its
// plaintext twin's with "s" for secured, and so are the capabilities
// (the adapters are the same above the transport), except that MQTT-SN
// over DTLS carries one DTLS session datagram, not one UDP datagram.
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
		protoCoAPDTLS(),
		protoMQTTSNDTLS(),
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

// undrivenSecured lists the gateway's secured listener keys that no
// secured driver covers (none: a new one shows up here until it has one).
func undrivenSecured() []string {
	driven := map[string]bool{"mqtt.tls": true, "mqtt.wss": true, "stomp.tls": true, "stomp.wss": true,
		"coap.dtls": true, "mqttsn.dtls": true,
		// The management API carries no messages between protocols:
		// internal/mgmt's tests drive it.
		"http.tls": true}
	var keys []string
	for _, k := range app.Keys() {
		if (strings.HasSuffix(k, ".tls") || strings.HasSuffix(k, ".wss") || strings.HasSuffix(k, ".dtls")) && !driven[k] {
			keys = append(keys, k)
		}
	}
	return keys
}
