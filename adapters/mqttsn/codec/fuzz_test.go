package codec

import (
	"reflect"
	"testing"
)

// FuzzDecode feeds arbitrary datagrams to Decode: it must never panic, and
// whatever it accepts must encode and decode back to the same message.
func FuzzDecode(f *testing.F) {
	for _, g := range golden {
		f.Add(g.raw)
	}
	f.Add([]byte{0x01, 0x00, 0x04, 0x16})
	f.Add([]byte{3, 0xFE, 0})
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := Decode(raw)
		if err != nil {
			return
		}
		enc, err := Encode(m)
		if err != nil {
			// Only a message with an over-long field may fail to encode.
			return
		}
		m2, err := Decode(enc)
		if err != nil {
			t.Fatalf("re-decode of % X (from % X): %v", enc, raw, err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip:\n%#v\n%#v", m, m2)
		}
		if e, ok := m.(*Encapsulated); ok {
			// The inner message is decoded separately; it must not panic.
			_, _ = Decode(e.Inner)
		}
	})
}
