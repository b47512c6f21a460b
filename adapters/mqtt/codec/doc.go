// Package codec encodes and decodes MQTT control packets for protocol
// levels 3 (MQTT 3.1, protocol name "MQIsdp"), 4 (MQTT 3.1.1) and 5
// (MQTT 5.0), including MQTT 5 properties and the AUTH packet.
//
// The package is pure: it turns bytes into packet structs and back. It
// opens no sockets, starts no goroutines and logs nothing, so the server,
// bridges, tests and fuzzers can all share it.
//
// # Reading
//
// ReadPacket reads one packet from a *bufio.Reader. It allocates one fresh
// body buffer per packet; []byte fields of the decoded packet (Publish
// payload, correlation and authentication data, Connect password and will
// payload, Suback/Unsuback reason codes) alias that buffer and therefore
// stay valid after the next ReadPacket call. Strings are always copies, so a
// topic kept in a long-lived index never pins a large payload in memory.
// Decode performs the same work on a body the caller already holds; in that
// case the []byte fields alias the caller's slice.
//
// # Writing
//
// Append encodes a packet onto a caller-supplied buffer after computing the
// exact size first, so encoding into a reused buffer does not allocate. Size
// reports the same total without encoding, which lets the server honour a
// client's Maximum Packet Size before it spends time encoding.
//
// # Errors
//
// Every protocol failure is an *Error carrying the MQTT 5 reason code the
// server should send (MalformedPacket, ProtocolError,
// UnsupportedProtocolVersion, PacketTooLarge, TopicAliasInvalid). I/O
// failures are wrapped with %w, so errors.Is(err, io.EOF) and
// errors.Is(err, io.ErrUnexpectedEOF) tell a clean close from a truncated
// packet.
//
// Checks that need connection state or configuration (second CONNECT,
// topic alias maximum, receive maximum, wildcard characters in topic
// names, shared-subscription syntax) belong to the server, not here.
package codec
