// Package interop holds iotgw's cross-protocol contract tests: every
// publisher protocol against every subscriber protocol, each end driven by
// a real client nobody here wrote where one exists (paho.mqtt.golang for
// MQTT 3.1.1 over TCP and WebSocket, paho.golang for MQTT 5, go-stomp for
// STOMP over TCP and over a WebSocket stream, go-coap for CoAP, and the
// repository's sntest client for MQTT-SN, for want of a third-party Go
// MQTT-SN client).
//
// The package has no code outside its tests; docs/interop.md is the
// contract the tests prove, row by row:
//
//	go test -race ./interop/                          # matrix, wills, properties, 5 s load
//	IOTGW_LOAD_SECONDS=60 go test -race -run Load ./interop/   # the full 60 s load case
//
// Each protocol is one row and one column of the matrix (see protocols in
// drivers_test.go); CoAP joins automatically when cmd/iotgw/app wires its
// adapter (the configuration key coap.udp exists).
package interop
