// Package codec is a pure encoder and decoder for every MQTT-SN 1.2
// message (MQTT-SN Protocol Specification Version 1.2, §5), including the
// three-byte long length form (§5.2.1) and the forwarder encapsulation
// (§5.5), plus the AUTH message of the MQTT-SN 2.0 drafts that iotgw
// accepts as a username/password extension. It knows nothing of sockets
// or sessions: bytes in, structs out, and back.
//
// Decode aliases its input: byte slices and strings inside the returned
// message may share memory with the datagram, so callers hand it a buffer
// they do not reuse.
package codec
