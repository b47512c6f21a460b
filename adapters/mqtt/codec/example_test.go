package codec_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/iotgw/iotgw/adapters/mqtt/codec"
)

// Example shows the read loop a server runs per connection: version 0
// until the CONNECT, the CONNECT's level afterwards, and the reason code of
// a failure picked out with CodeOf for the CONNACK or DISCONNECT.
func Example() {
	var wire []byte
	wire, _ = codec.Append(wire, &codec.Connect{ProtocolLevel: codec.V5, CleanStart: true, ClientID: "dev1"}, 0)
	wire, _ = codec.Append(wire, &codec.Publish{QoS: 1, PacketID: 1, Topic: "dev1/temp", Payload: []byte("21.5")}, codec.V5)
	wire = append(wire, 0x36, 0x00) // a PUBLISH with QoS 3: malformed

	r := bufio.NewReader(bytes.NewReader(wire))
	var version byte // 0: nothing but CONNECT is acceptable yet
	for {
		p, _, err := codec.ReadPacket(r, version, 1<<20)
		if errors.Is(err, io.EOF) {
			return
		}
		if code, ok := codec.CodeOf(err); ok {
			out, _ := codec.Append(nil, &codec.Disconnect{ReasonCode: code}, version)
			fmt.Printf("refused: %v, sending % x\n", code, out)
			return
		}
		switch p := p.(type) {
		case *codec.Connect:
			version = p.ProtocolLevel
			fmt.Printf("CONNECT %q at level %d\n", p.ClientID, version)
		case *codec.Publish:
			fmt.Printf("PUBLISH %s %s\n", p.Topic, p.Payload)
		}
	}
	// Output:
	// CONNECT "dev1" at level 5
	// PUBLISH dev1/temp 21.5
	// refused: malformed packet, sending e0 02 81 00
}
