package codec_test

import (
	"bufio"
	"bytes"
	"io"
	"reflect"
	"testing"

	"github.com/iotgw/iotgw/adapters/mqtt/codec"
	"github.com/iotgw/iotgw/adapters/mqtt/codec/codectest"
)

// twoPieceReader hands out its data as two separately read pieces, the way
// a packet split across TCP segments arrives. A read never crosses from
// the first piece into the second.
type twoPieceReader struct {
	pieces [2][]byte
}

func (r *twoPieceReader) Read(p []byte) (int, error) {
	for i := range r.pieces {
		if len(r.pieces[i]) > 0 {
			n := copy(p, r.pieces[i])
			r.pieces[i] = r.pieces[i][n:]
			return n, nil
		}
	}
	return 0, io.EOF
}

// checkReencode asserts the fuzzing invariant: a packet that decodes must
// encode, the encoding must have the size Size predicts, and decoding the
// encoding must give the same packet back and re-encode to the same bytes.
func checkReencode(t *testing.T, p codec.Packet, v byte) {
	t.Helper()
	v = encodeVersion(p, v)
	enc, err := codec.Append(nil, p, v)
	if err != nil {
		t.Fatalf("decoded packet does not encode: %v\n%#v", err, p)
	}
	if size := codec.Size(p, v); size != len(enc) {
		t.Fatalf("Size %d != encoded length %d for %#v", size, len(enc), p)
	}
	h, rl, hn, err := codec.ParseHeader(enc)
	if err != nil || hn+rl != len(enc) {
		t.Fatalf("ParseHeader(% x) = %d, %d, %v", enc, rl, hn, err)
	}
	p2, err := codec.Decode(h, enc[hn:], v)
	if err != nil {
		t.Fatalf("re-encoded packet % x does not decode: %v", enc, err)
	}
	if !reflect.DeepEqual(p, p2) {
		t.Fatalf("round trip changed the packet\nfirst  %#v\nsecond %#v", p, p2)
	}
	if enc2, _ := codec.Append(nil, p2, v); !bytes.Equal(enc, enc2) {
		t.Fatalf("encoding not stable: % x then % x", enc, enc2)
	}
}

var fuzzVersions = []byte{0, codec.V31, codec.V311, codec.V5}

func FuzzReadPacket(f *testing.F) {
	for _, g := range codectest.Goldens() {
		f.Add(g.Raw, uint16(len(g.Raw)/2))
	}
	f.Fuzz(func(t *testing.T, data []byte, split uint16) {
		k := int(split) % (len(data) + 1)
		for _, start := range fuzzVersions {
			src := &twoPieceReader{pieces: [2][]byte{data[:k], data[k:]}}
			// The smallest bufio buffer makes headers and bodies straddle
			// buffer refills as well as the split point.
			r := bufio.NewReaderSize(src, 16)
			v := start
			consumed := 0
			for {
				p, n, err := codec.ReadPacket(r, v, 0)
				consumed += n
				if consumed > len(data) {
					t.Fatalf("consumed %d of %d bytes", consumed, len(data))
				}
				if err != nil {
					if p != nil {
						if _, ok := p.(*codec.Connect); !ok {
							t.Fatalf("non-CONNECT packet %#v returned with error %v", p, err)
						}
					}
					break
				}
				if n == 0 {
					t.Fatalf("packet %#v consumed no bytes", p)
				}
				checkReencode(t, p, v)
				if c, ok := p.(*codec.Connect); ok && v == 0 {
					v = c.ProtocolLevel // as the server does after CONNECT
				}
			}
		}
	})
}

func FuzzDecode(f *testing.F) {
	for _, g := range codectest.Goldens() {
		h, rl, hn, err := codec.ParseHeader(g.Raw)
		if err != nil || hn+rl > len(g.Raw) {
			continue
		}
		f.Add(h, g.Raw[hn:hn+rl], g.Version)
	}
	f.Fuzz(func(t *testing.T, header byte, body []byte, version byte) {
		v := version
		if v != 0 && v != codec.V31 && v != codec.V311 && v != codec.V5 {
			v = fuzzVersions[int(version)%len(fuzzVersions)]
		}
		p, err := codec.Decode(header, body, v)
		if err != nil {
			if _, ok := codec.CodeOf(err); !ok {
				t.Fatalf("Decode returned a non-protocol error: %v", err)
			}
			if _, ok := p.(*codec.Connect); p != nil && !ok {
				t.Fatalf("non-CONNECT packet %#v returned with error %v", p, err)
			}
			return
		}
		checkReencode(t, p, v)
	})
}
