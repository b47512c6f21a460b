package stomp

import (
	"bufio"
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
					continue // not representable verbatim; appendUnescaped leaves it out
				}
				buf.Write(appendUnescaped(nil, fr))
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

// FuzzFrameReaderPaused checks the reader as connections use it: pooled,
// pausing at heart-beats that end the buffered input, and given back to
// the pool and borrowed again at each pause (the idle hand-over). It must
// return the same frames, and fail at the same one, as a reader that
// never pauses.
func FuzzFrameReaderPaused(f *testing.F) {
	f.Add([]byte("\n\nSEND\ndestination:a\n\nx\x00\n\nSEND\ndestination:b\ncontent-length:1\n\ny\x00\n"), 3, true)
	f.Add([]byte("CONNECT\naccept-version:1.0\n\n\x00\r\n\nSEND\nk:\\t\n\n\x00"), 20, false)
	f.Add([]byte("\n\nFOO\n\n\x00"), 1, true)
	f.Fuzz(func(t *testing.T, data []byte, split int, escapes bool) {
		const maxFrame, maxHeaders, maxLine = 512, 8, 64
		var want []*frame.Frame
		plain := newFrameReader(&splitReader{data: data, split: split}, maxFrame, maxHeaders, maxLine)
		var wantErr error
		for {
			fr, err := plain.read(escapes)
			if err != nil {
				wantErr = err
				break
			}
			want = append(want, fr)
		}
		src := &splitReader{data: data, split: split}
		r := borrowFrameReader(bufio.NewReaderSize(src, 4096), maxFrame, maxHeaders, maxLine)
		defer func() { r.release() }()
		for i := 0; ; {
			fr, err := r.read(escapes)
			if err != nil {
				if i != len(want) || isFrameError(err) != isFrameError(wantErr) {
					t.Fatalf("paused reader failed at frame %d with %v; plain reader read %d, then %v", i, err, len(want), wantErr)
				}
				return
			}
			if fr == nil {
				if r.br.Buffered() != 0 {
					t.Fatal("paused with input buffered")
				}
				r.release()
				r = borrowFrameReader(bufio.NewReaderSize(src, 4096), maxFrame, maxHeaders, maxLine)
				continue
			}
			if i >= len(want) {
				t.Fatalf("paused reader read frame %d %v; plain reader failed after %d: %v", i, fr.Command, len(want), wantErr)
			}
			w := want[i]
			if fr.Command != w.Command || !bytes.Equal(fr.Body, w.Body) || fr.Header.Len() != w.Header.Len() {
				t.Fatalf("frame %d: paused %v %v %q, plain %v %v %q", i, fr.Command, fr.Header, fr.Body, w.Command, w.Header, w.Body)
			}
			i++
		}
	})
}

// FuzzDecodeMatchesGoStomp: whatever frame our reader accepts with
// escapes, go-stomp's reader (which it replaced) decodes the same bytes
// into the same frame.
func FuzzDecodeMatchesGoStomp(f *testing.F) {
	f.Add([]byte("SEND\ndestination:a\nx:\\c\\n\\\\\\r\ny\\cz:1\n\nbody\x00"))
	f.Add([]byte("\r\n\nMESSAGE\nk:v\r\ncontent-length:2\nk:w\n\na\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ours, err := newFrameReader(bytes.NewReader(data), 1<<20, 1000, 1<<20).read(true)
		if err != nil || ours.Command == frame.CONNECT || ours.Command == frame.STOMP {
			return // refused, or decoded verbatim by design
		}
		gr := frame.NewReader(bytes.NewReader(data))
		var theirs *frame.Frame
		for theirs == nil {
			if theirs, err = gr.Read(); err != nil {
				t.Fatalf("we read %v %v %q; go-stomp fails: %v", ours.Command, ours.Header, ours.Body, err)
			}
		}
		if ours.Command != theirs.Command || !bytes.Equal(ours.Body, theirs.Body) || ours.Header.Len() != theirs.Header.Len() {
			t.Fatalf("ours %v %v %q, go-stomp %v %v %q", ours.Command, ours.Header, ours.Body, theirs.Command, theirs.Header, theirs.Body)
		}
		for i := 0; i < ours.Header.Len(); i++ {
			k1, v1 := ours.Header.GetAt(i)
			k2, v2 := theirs.Header.GetAt(i)
			if k1 != k2 || v1 != v2 {
				t.Fatalf("header %d: ours %q:%q, go-stomp %q:%q", i, k1, v1, k2, v2)
			}
		}
	})
}

// FuzzWriteEscapedMatchesGoStomp: appendEscaped writes what go-stomp's
// frame.Writer (which it replaced) writes.
func FuzzWriteEscapedMatchesGoStomp(f *testing.F) {
	f.Add("MESSAGE", "destination", "a/b", "x:y", "line\r\nbreak\\", []byte("body"))
	f.Fuzz(func(t *testing.T, cmd, k1, v1, k2, v2 string, body []byte) {
		fr := frame.New(cmd, k1, v1, k2, v2)
		fr.Body = body
		var ours, theirs bytes.Buffer
		ours.Write(appendEscaped(nil, fr))
		if err := frame.NewWriter(&theirs).Write(fr); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ours.Bytes(), theirs.Bytes()) {
			t.Fatalf("ours %q, go-stomp %q", ours.Bytes(), theirs.Bytes())
		}
	})
}
