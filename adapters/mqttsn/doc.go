// Package mqttsn is iotgw's MQTT-SN 1.2 gateway over UDP (MQTT For Sensor
// Networks Protocol Specification Version 1.2): gateway discovery, the
// CONNECT and will exchanges, topic registration (normal, predefined and
// two-character short names), QoS -1 to 2 in both directions with
// retransmission (§6.13), sleeping clients (§6.14) and forwarder
// encapsulation (§5.5). The wire format lives in the codec subpackage;
// this package maps messages onto core calls.
//
// # Identity
//
// One read loop serves the socket. Each client has a virtual connection,
// found by its address (plus wireless node id behind a forwarder) and by
// its client id: a CONNECT, or a PINGREQ naming the client id, from a new
// address moves the client there (NAT rebinding, a new port after
// sleep), keeping its session. A message that needs a connection from an
// address the gateway does not know is answered with DISCONNECT, so the
// client knows to connect again.
//
// # Sessions
//
// CleanSession=false maps onto a persistent core session with expiry
// mqttsn.session_expiry; the client's topic registry is kept with it, so
// ids stay valid across reconnections. A sleeping client's session is
// paused: messages wait in the session (QoS 0 included) and flow when a
// PINGREQ with its client id wakes it; topics it has no id for are
// REGISTERed first, and PINGRESP is sent only once everything is
// acknowledged. Silence for 1.5 × the keep-alive Duration (or 1.5 × the
// sleep Duration) makes the client lost and publishes its will.
//
// # Username and password (extension)
//
// MQTT-SN 1.2 CONNECT carries only a client id, which is what the core's
// Authenticator sees by default. Clients may add credentials with the
// AUTH message of the MQTT-SN 2.0 drafts, in message type 0x03 that 1.2
// leaves reserved (the same form as the Bisquitt gateway):
//
//	Length | 0x03 | Reason (ignored) | Method length K | Method (K bytes) | Data
//
// with Method "PLAIN" and Data in SASL PLAIN form (RFC 4616):
// [authzid] NUL username NUL password. A client sends AUTH just before
// its CONNECT (or, with mqttsn.require_auth, just after it, before the
// will exchange); the username and password then reach the Authenticator
// through core.ConnectRequest. Another method, or malformed data, gets
// CONNACK "rejected: not supported"; so does a refused authentication,
// since 1.2 has no "not authorized" code.
package mqttsn
