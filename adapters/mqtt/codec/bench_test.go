package codec_test

import (
	"bufio"
	"bytes"
	"testing"

	"github.com/iotgw/iotgw/adapters/mqtt/codec"
)

// loopReader replays one packet forever so that a benchmark measures
// decoding rather than the refilling of a test fixture.
type loopReader struct {
	data []byte
	off  int
}

func (r *loopReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.data[r.off:])
		n += c
		r.off = (r.off + c) % len(r.data)
	}
	return n, nil
}

// benchPublish is a typical telemetry message: a QoS 1 PUBLISH with a
// three-level topic and a 64-byte payload, plus, for MQTT 5, the
// properties a well-behaved client tends to send.
func benchPublish(v byte) *codec.Publish {
	p := &codec.Publish{QoS: 1, PacketID: 42, Topic: "site/room-1/temperature",
		Payload: bytes.Repeat([]byte{'7'}, 64)}
	if v == codec.V5 {
		p.Props = codec.Properties{
			Present:       codec.PropMask(codec.PropPayloadFormat, codec.PropMessageExpiry, codec.PropContentType),
			PayloadFormat: 1, MessageExpiry: 3600, ContentType: "application/json",
			User: []codec.UserProperty{{Key: "unit", Value: "C"}},
		}
	}
	return p
}

var benchVersions = []struct {
	name string
	v    byte
}{{"v311", codec.V311}, {"v5", codec.V5}}

func BenchmarkReadPublish(b *testing.B) {
	for _, bv := range benchVersions {
		b.Run(bv.name, func(b *testing.B) {
			raw, err := codec.Append(nil, benchPublish(bv.v), bv.v)
			if err != nil {
				b.Fatal(err)
			}
			r := bufio.NewReaderSize(&loopReader{data: raw}, 4096)
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := codec.ReadPacket(r, bv.v, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkAppendPublish(b *testing.B) {
	for _, bv := range benchVersions {
		b.Run(bv.name, func(b *testing.B) {
			p := benchPublish(bv.v)
			buf := make([]byte, 0, 512)
			b.SetBytes(int64(codec.Size(p, bv.v)))
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if buf, err = codec.Append(buf[:0], p, bv.v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkSizePublish(b *testing.B) {
	p := benchPublish(codec.V5)
	b.ReportAllocs()
	for b.Loop() {
		if codec.Size(p, codec.V5) < 0 {
			b.Fatal("unencodable")
		}
	}
}
