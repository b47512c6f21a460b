package wsconn

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// scripted is a net.Conn whose input is fixed bytes handed out in pieces
// of at most chunk bytes (so frames straddle reads), and whose output is
// collected.
type scripted struct {
	in    *bytes.Reader
	chunk int
	out   bytes.Buffer
}

func (s *scripted) Read(p []byte) (int, error) {
	if s.chunk > 0 && len(p) > s.chunk {
		p = p[:s.chunk]
	}
	return s.in.Read(p)
}
func (s *scripted) Write(p []byte) (int, error)      { return s.out.Write(p) }
func (s *scripted) Close() error                     { return nil }
func (s *scripted) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (s *scripted) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (s *scripted) SetDeadline(time.Time) error      { return nil }
func (s *scripted) SetReadDeadline(time.Time) error  { return nil }
func (s *scripted) SetWriteDeadline(time.Time) error { return nil }

// clientFrame encodes one masked client frame.
func clientFrame(fin bool, op byte, key [4]byte, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	hdr := appendHeader(nil, 0, len(payload)) // length encoding as a server's
	hdr[0] = b0
	hdr[1] |= 0x80
	b := append(hdr, key[:]...)
	for i, c := range payload {
		b = append(b, c^key[i&3])
	}
	return b
}

// framed splits payload into messages of up to msg bytes, each in frames
// of up to frag bytes, with a ping between every two frames.
func framed(payload []byte, msg, frag int) []byte {
	var out []byte
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	for len(payload) > 0 {
		m := payload[:min(msg, len(payload))]
		payload = payload[len(m):]
		op := byte(opBinary)
		for first := true; first || len(m) > 0; first = false {
			f := m[:min(frag, len(m))]
			m = m[len(f):]
			out = append(out, clientFrame(len(m) == 0, op, key, f)...)
			op = opContinuation
			out = append(out, clientFrame(true, opPing, key, []byte("hi"))...)
			key[0]++
		}
	}
	return out
}

func readAll(c *Conn) ([]byte, error) {
	var got []byte
	buf := make([]byte, 7)
	for {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			return got, err
		}
	}
}

func TestFramesStreamWithFragmentsAndPings(t *testing.T) {
	payload := bytes.Repeat([]byte("0123456789abcdef"), 1000) // 16,000 bytes: 16- and 64-bit lengths too
	for _, chunk := range []int{1, 3, 4096} {
		in := append(framed(payload, 70000, 300), framed(payload, 100, 40)...)
		in = append(in, clientFrame(true, opClose, [4]byte{1, 2, 3, 4}, []byte{0x03, 0xe8})...)
		sc := &scripted{in: bytes.NewReader(in), chunk: chunk}
		c := newConn(sc, Options{})
		got, err := readAll(c)
		if !errors.Is(err, io.EOF) || !bytes.Equal(got, append(payload, payload...)) {
			t.Fatalf("chunk %d: %d bytes, %v", chunk, len(got), err)
		}
		// Every ping is answered with a pong carrying its payload, and the
		// close with a close of the same code.
		out := sc.out.Bytes()
		if !bytes.HasPrefix(out, []byte{0x8A, 2, 'h', 'i'}) || !bytes.HasSuffix(out, []byte{0x88, 2, 0x03, 0xe8}) {
			t.Fatalf("chunk %d: replies % x ... % x", chunk, out[:4], out[len(out)-4:])
		}
	}
}

// TestOneCloseFrameEachWay: whichever side closes first, the server sends
// one close frame [RFC 6455, 5.5.1]: the client's answer to CloseWrite is
// not answered, and CloseWrite after the client's close sends nothing.
func TestOneCloseFrameEachWay(t *testing.T) {
	closeFrame := clientFrame(true, opClose, [4]byte{1, 2, 3, 4}, []byte{0x03, 0xe8})
	for _, serverFirst := range []bool{true, false} {
		sc := &scripted{in: bytes.NewReader(closeFrame)}
		c := newConn(sc, Options{})
		if serverFirst {
			if err := c.CloseWrite(); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := readAll(c); !errors.Is(err, io.EOF) {
			t.Fatalf("server first %v: %v, want the end of the stream", serverFirst, err)
		}
		if err := c.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		if out := sc.out.Bytes(); !bytes.Equal(out, []byte{0x88, 2, 0x03, 0xe8}) {
			t.Errorf("server first %v: sent % x, want one close frame 1000", serverFirst, out)
		}
	}
}

func TestFrameProtocolErrors(t *testing.T) {
	key := [4]byte{9, 8, 7, 6}
	cases := map[string]struct {
		in   []byte
		code uint16
	}{
		"unmasked":               {[]byte{0x82, 0x01, 'x'}, closeProtocolError},
		"reserved bit":           {append([]byte{0xC2}, clientFrame(true, opBinary, key, []byte("x"))[1:]...), closeProtocolError},
		"bare continuation":      {clientFrame(true, opContinuation, key, []byte("x")), closeProtocolError},
		"message inside another": {append(clientFrame(false, opBinary, key, []byte("x")), clientFrame(true, opBinary, key, []byte("y"))...), closeProtocolError},
		"fragmented ping":        {clientFrame(false, opPing, key, nil), closeProtocolError},
		"long ping":              {clientFrame(true, opPing, key, make([]byte, 126)), closeProtocolError},
		"unknown opcode":         {clientFrame(true, 0x3, key, nil), closeProtocolError},
		"64-bit length top bit":  {append([]byte{0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0}, key[:]...), closeProtocolError},
		"bad UTF-8 text":         {clientFrame(true, opText, key, []byte{0xff}), closeInvalidData},
		"text ends mid-rune":     {clientFrame(true, opText, key, []byte("é")[:1]), closeInvalidData},
	}
	for name, tc := range cases {
		sc := &scripted{in: bytes.NewReader(tc.in)}
		c := newConn(sc, Options{AcceptText: true})
		if _, err := readAll(c); !errors.Is(err, errProtocol) {
			t.Errorf("%s: %v, want a protocol error", name, err)
			continue
		}
		if out := sc.out.Bytes(); len(out) < 4 || out[0] != 0x88 || binary.BigEndian.Uint16(out[2:]) != tc.code {
			t.Errorf("%s: sent % x, want close %d", name, out, tc.code)
		}
	}
}

func TestTextAcrossFrames(t *testing.T) {
	key := [4]byte{1, 1, 1, 1}
	s := []byte("héllo wörld €") // runes split between frames below
	in := append(clientFrame(false, opText, key, s[:2]), clientFrame(false, opContinuation, key, s[2:12])...)
	in = append(in, clientFrame(true, opContinuation, key, s[12:])...)
	c := newConn(&scripted{in: bytes.NewReader(in), chunk: 2}, Options{AcceptText: true})
	if got, err := readAll(c); !errors.Is(err, io.EOF) || !bytes.Equal(got, s) {
		t.Fatalf("%q %v", got, err)
	}
	c = newConn(&scripted{in: bytes.NewReader(clientFrame(true, opText, key, s))}, Options{})
	if _, err := readAll(c); !errors.Is(err, ErrTextFrame) {
		t.Fatalf("text where binary only: %v", err)
	}
}

// FuzzFrames feeds arbitrary bytes to the frame reader: it must neither
// panic nor loop, and a stream of valid frames made from the input must
// come out whole.
func FuzzFrames(f *testing.F) {
	key := [4]byte{5, 6, 7, 8}
	f.Add([]byte("hello"), uint8(3), uint8(2))
	f.Add(clientFrame(true, opBinary, key, []byte("abc")), uint8(1), uint8(200))
	f.Add(append(clientFrame(false, opText, key, []byte("é")[:1]), clientFrame(true, opContinuation, key, []byte("é")[1:])...), uint8(5), uint8(1))
	f.Add(clientFrame(true, opPing, key, []byte("p")), uint8(0), uint8(9))
	f.Add(clientFrame(true, opClose, key, []byte{0x03}), uint8(2), uint8(4))
	f.Fuzz(func(t *testing.T, data []byte, chunk, frag uint8) {
		// Raw bytes as frames: any outcome but a panic or a hang.
		c := newConn(&scripted{in: bytes.NewReader(data), chunk: int(chunk)}, Options{AcceptText: true, MaxMessage: 1000})
		for range len(data) + 10 {
			if _, err := c.Read(make([]byte, 1+int(frag)%64)); err != nil {
				break
			}
		}
		// The same bytes as payload of valid frames: they come out whole.
		c = newConn(&scripted{in: bytes.NewReader(framed(data, 1+int(frag)*3, 1+int(frag))), chunk: int(chunk)}, Options{})
		got, err := readAll(c)
		if !errors.Is(err, io.EOF) || !bytes.Equal(got, data) {
			t.Fatalf("framed %d bytes: got %d, %v", len(data), len(got), err)
		}
	})
}
