package stomp

import (
	"bytes"
	"io"
	"testing"

	"github.com/go-stomp/stomp/v3/frame"
)

// splitReader hands its data out in two pieces, cut at split, so that
// frames straddling reads are exercised.
type splitReader struct {
	data  []byte
	split int
}

func (s *splitReader) Read(p []byte) (int, error) {
	if len(s.data) == 0 {
		return 0, io.EOF
	}
	n := len(s.data)
	if s.split > 0 && s.split < n {
		n = s.split
		s.split = 0
	}
	n = copy(p, s.data[:n])
	s.data = s.data[n:]
	return n, nil
}

// FuzzFrameReader feeds arbitrary bytes, split at an arbitrary point, to
// the limited frame reader: it must never panic, never return a frame
// beyond the limits, and every frame it returns must survive go-stomp's
// writer and a second read unchanged.
func FuzzFrameReader(f *testing.F) {
	seeds := []string{
		"CONNECT\naccept-version:1.2\nhost:x\nheart-beat:100,100\n\n\x00",
		"SEND\ndestination:a/b\ncontent-length:3\n\na\x00b\x00\n\n",
		"SEND\ndestination:a\nx:\\c\\n\\\\\\r\n\nbody\x00",
		"\n\r\n\nSUBSCRIBE\nid:0\ndestination:a/#\nack:client\n\n\x00",
		"ACK\nid:12\ntransaction:t\n\n\x00NACK\nid:13\n\n\x00",
		"SEND\ndestination:a\ncontent-length:99999999999\n\n\x00",
		"SEND\nbad\\t:x\n\n\x00",
		"FOO\n\n\x00",
		"SEND\ndestination:a\nx:a\\cb:c\\t\n\nraw\x00",
		"CONNECT\nlogin:a:b\npasscode:p\\c\n\n\x00",
	}
	for i, s := range seeds {
		f.Add([]byte(s), i*3, true)
	}
	f.Fuzz(func(t *testing.T, data []byte, split int, escapes bool) {
		const maxFrame, maxHeaders, maxLine = 512, 8, 64
		r := newFrameReader(&splitReader{data: data, split: split}, maxFrame, maxHeaders, maxLine)
		for {
			fr, err := r.read(escapes)
			if err != nil {
				return
			}
			if fr.Header.Len() > maxHeaders || len(fr.Body) > maxFrame {
				t.Fatalf("frame beyond limits: %d headers, %d body bytes", fr.Header.Len(), len(fr.Body))
			}
			_, hasCL := fr.Header.Contains(frame.ContentLength)
			if !hasCL && bytes.IndexByte(fr.Body, 0) >= 0 {
				t.Fatalf("body %q holds NUL without content-length", fr.Body)
			}
			// Written back the way it was read (escaped, or verbatim as
			// STOMP 1.0 and CONNECT are), it must read the same.
			var buf bytes.Buffer
			verbatim := !escapes || fr.Command == frame.CONNECT || fr.Command == frame.STOMP
			if verbatim {
				if hasCR(fr) {
					continue // not representable verbatim; writeUnescaped leaves it out
				}
				writeUnescaped(&buf, fr)
			} else if err := frame.NewWriter(&buf).Write(fr); err != nil {
				t.Fatal(err)
			}
			again, err := newFrameReader(&buf, 1<<20, 1000, 1<<20).read(escapes)
			if err != nil {
				t.Fatalf("re-reading %q: %v", buf.Bytes(), err)
			}
			if again.Command != fr.Command || !bytes.Equal(again.Body, fr.Body) || again.Header.Len() != fr.Header.Len() {
				t.Fatalf("round trip changed %v %q into %v %q", fr.Header, fr.Body, again.Header, again.Body)
			}
			for i := 0; i < fr.Header.Len(); i++ {
				k1, v1 := fr.Header.GetAt(i)
				k2, v2 := again.Header.GetAt(i)
				if k1 != k2 || v1 != v2 {
					t.Fatalf("header %d: %q:%q became %q:%q", i, k1, v1, k2, v2)
				}
			}
		}
	})
}

// hasCR reports a header holding a CR, which a verbatim header line can
// only carry in its middle.
func hasCR(f *frame.Frame) bool {
	for i := 0; i < f.Header.Len(); i++ {
		k, v := f.Header.GetAt(i)
		if bytes.ContainsRune([]byte(k+v), '\r') {
			return true
		}
	}
	return false
}
