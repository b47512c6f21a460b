package stomp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/go-stomp/stomp/v3/frame"
)

// Errors of the frame reader; each becomes an ERROR frame naming it.
var (
	errFrameTooLarge  = errors.New("frame too large")
	errHeaderTooLong  = errors.New("header too long")
	errTooManyHeaders = errors.New("too many headers")
	errUnknownCommand = errors.New("unknown command")
	errBadHeader      = errors.New("bad header")
	errMalformed      = errors.New("malformed frame")
)

// knownCommands are the commands go-stomp's reader accepts; checking the
// command first rejects garbage before its headers and body are read.
var knownCommands = map[string]bool{
	frame.CONNECT: true, frame.STOMP: true, frame.SEND: true, frame.SUBSCRIBE: true,
	frame.UNSUBSCRIBE: true, frame.ACK: true, frame.NACK: true, frame.BEGIN: true,
	frame.COMMIT: true, frame.ABORT: true, frame.DISCONNECT: true, frame.CONNECTED: true,
	frame.MESSAGE: true, frame.RECEIPT: true, frame.ERROR: true,
}

// frameReader splits one frame at a time off a byte stream under the
// configured limits and decodes it into a go-stomp frame.Frame.
//
// go-stomp's reader is not used: it reads lines of any length, and it
// allocates a body of whatever content-length says (up to 4 GiB) before
// reading a byte of it. The raw frame is cut here, bounded in every
// dimension, and decoded from the header positions noted while cutting
// it (once, go-stomp's unescaping strings.Replacer and its second pass
// over the bytes cost a third of a busy STOMP reader's time).
type frameReader struct {
	br                   *bufio.Reader
	raw                  []byte
	maxFrame, maxHeaders int
	maxLine              int
	spans                []headerSpan
	// pauseAtEOL makes read return a nil frame after heart-beats that
	// use up the buffered input, rather than block for the next frame:
	// the connection can then go idle between client heart-beats.
	pauseAtEOL bool
}

// headerSpan locates one header line in frameReader.raw.
type headerSpan struct{ start, colon, end int }

func newFrameReader(r io.Reader, maxFrame, maxHeaders, maxHeaderLen int) *frameReader {
	fr := &frameReader{br: bufio.NewReaderSize(r, 4096)}
	fr.setLimits(maxFrame, maxHeaders, maxHeaderLen)
	return fr
}

func (r *frameReader) setLimits(maxFrame, maxHeaders, maxHeaderLen int) {
	r.maxFrame, r.maxHeaders = maxFrame, maxHeaders
	r.maxLine = maxHeaderLen + 2 // a header line may end in CR LF
}

// frameReaderPool holds frame readers' scratch (the raw frame and its
// header positions): a connection borrows one only while input is
// arriving, so an idle connection holds none. The read buffer is the
// engine's (internal/streamconn), pooled there.
var frameReaderPool = sync.Pool{New: func() any { return &frameReader{} }}

// borrowFrameReader takes a frame reader from the pool, reading br under
// the given limits.
func borrowFrameReader(br *bufio.Reader, maxFrame, maxHeaders, maxHeaderLen int) *frameReader {
	r := frameReaderPool.Get().(*frameReader)
	r.br = br
	r.setLimits(maxFrame, maxHeaders, maxHeaderLen)
	r.pauseAtEOL = true
	return r
}

// release returns a frame reader to the pool; it keeps no reference to
// the connection or to the last frame's bytes.
func (r *frameReader) release() {
	r.br = nil
	if cap(r.raw) > 4096 {
		r.raw = nil // a large frame's buffer is left to the GC
	}
	r.raw = r.raw[:0]
	r.spans = r.spans[:0]
	frameReaderPool.Put(r)
}

// read returns the next frame, skipping heart-beats (EOLs between frames,
// which also absorb the EOLs a client may put after a frame's NUL
// [STOMP 1.2 "STOMP Frames"]); see pauseAtEOL. escapes asks for STOMP 1.1+ header escapes
// (validated here, decoded by go-stomp); without, headers are taken
// verbatim (STOMP 1.0). CONNECT and STOMP frames never use escapes
// [STOMP 1.2 "Value Encoding"].
func (r *frameReader) read(escapes bool) (*frame.Frame, error) {
	if cap(r.raw) > 64<<10 {
		r.raw = nil // a connection idle after a large frame keeps no large buffer
	}
	var line []byte
	for {
		r.raw = r.raw[:0]
		if err := r.line(r.maxLine); err != nil {
			return nil, err
		}
		if line = trimEOL(r.raw); len(line) > 0 {
			break
		}
		if r.pauseAtEOL && r.br.Buffered() == 0 {
			return nil, nil
		}
	}
	cmd := string(line)
	if !knownCommands[cmd] {
		return nil, fmt.Errorf("%w: %.32q", errUnknownCommand, cmd)
	}
	if cmd == frame.CONNECT || cmd == frame.STOMP {
		escapes = false
	}
	contentLength := -1
	seenCL := false
	r.spans = r.spans[:0]
	for n := 0; ; n++ {
		start := len(r.raw)
		if err := r.line(r.maxLine); err != nil {
			return nil, err
		}
		h := trimEOL(r.raw[start:])
		if len(h) == 0 {
			break
		}
		if n >= r.maxHeaders {
			return nil, fmt.Errorf("%w: more than %d", errTooManyHeaders, r.maxHeaders)
		}
		colon := bytes.IndexByte(h, ':')
		if colon <= 0 {
			return nil, fmt.Errorf("%w: %.40q has no name or no colon", errBadHeader, h)
		}
		r.spans = append(r.spans, headerSpan{start: start, colon: start + colon, end: start + len(h)})
		if !utf8.Valid(h) || bytes.IndexByte(h, 0) >= 0 {
			// Headers are UTF-8 [STOMP 1.2 "Value Encoding"]; NUL is refused
			// too, because MQTT strings must not hold it [MQTT-1.5.4-2].
			return nil, fmt.Errorf("%w: %.40q is not valid UTF-8 without NUL", errBadHeader, h)
		}
		if escapes {
			if err := checkEscapes(h); err != nil {
				return nil, err
			}
		}
		// The first of repeated headers counts [STOMP 1.2 "Repeated Header
		// Entries"], as in go-stomp's Header.ContentLength.
		if !seenCL && string(h[:colon]) == frame.ContentLength {
			seenCL = true
			v, ok := parseLength(h[colon+1:])
			if !ok {
				return nil, fmt.Errorf("%w: content-length %.20q", errBadHeader, h[colon+1:])
			}
			contentLength = v
		}
	}
	bodyStart := len(r.raw)
	if contentLength >= 0 {
		if contentLength >= r.maxFrame-len(r.raw) {
			return nil, fmt.Errorf("%w: content-length %d, limit %d", errFrameTooLarge, contentLength, r.maxFrame)
		}
		n := len(r.raw)
		r.raw = slices.Grow(r.raw, contentLength+1)[:n+contentLength+1]
		if _, err := io.ReadFull(r.br, r.raw[n:]); err != nil {
			return nil, err
		}
		if r.raw[len(r.raw)-1] != 0 {
			// [STOMP 1.2 "The content-length header"]: the body is
			// followed by the NULL octet.
			return nil, fmt.Errorf("%w: no NUL after content-length bytes", errMalformed)
		}
	} else {
		for {
			chunk, err := r.br.ReadSlice(0)
			r.raw = append(r.raw, chunk...)
			if len(r.raw) > r.maxFrame {
				return nil, fmt.Errorf("%w: limit %d", errFrameTooLarge, r.maxFrame)
			}
			if err == nil {
				break
			}
			if !errors.Is(err, bufio.ErrBufferFull) {
				return nil, err
			}
		}
	}
	return r.decode(cmd, bodyStart, escapes), nil
}

// decode builds the frame just read. All its header text is converted
// to one string, of which names and values are substrings (one
// allocation, not two a header); with escapes, a name or value holding a
// backslash is unescaped into a string of its own (checkEscapes has
// vetted the sequences). The body runs to the NUL (content-length, when
// present, has put it right after the body).
func (r *frameReader) decode(cmd string, bodyStart int, escapes bool) *frame.Frame {
	// The entries are gathered on the stack (for the usual few headers)
	// and copied once into a header of the exact size, rather than grown
	// by Add.
	var arr [32]string
	kv := arr[:0]
	if len(r.spans) > 0 {
		base := r.spans[0].start
		text := string(r.raw[base:bodyStart])
		field := func(from, to int) string {
			v := text[from-base : to-base]
			if escapes && strings.IndexByte(v, '\\') >= 0 {
				return unescape(v)
			}
			return v
		}
		for _, h := range r.spans {
			kv = append(kv, field(h.start, h.colon), field(h.colon+1, h.end))
		}
	}
	f := &frame.Frame{Command: cmd, Header: frame.NewHeader(kv...)}
	f.Body = append([]byte{}, r.raw[bodyStart:len(r.raw)-1]...)
	return f
}

// unescape decodes the STOMP 1.1+ header escapes [STOMP 1.2 "Value
// Encoding"]; checkEscapes has refused any other backslash sequence.
func unescape(v string) string {
	var b strings.Builder
	b.Grow(len(v))
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '\\' && i+1 < len(v) {
			i++
			switch v[i] {
			case 'r':
				c = '\r'
			case 'n':
				c = '\n'
			case 'c':
				c = ':'
			default:
				c = v[i] // a backslash
			}
		}
		b.WriteByte(c)
	}
	return b.String()
}

// line appends one line, LF included, to r.raw, within limit bytes.
func (r *frameReader) line(limit int) error {
	start := len(r.raw)
	for {
		chunk, err := r.br.ReadSlice('\n')
		r.raw = append(r.raw, chunk...)
		if len(r.raw)-start > limit {
			return fmt.Errorf("%w: limit %d", errHeaderTooLong, limit-2)
		}
		if len(r.raw) > r.maxFrame {
			return fmt.Errorf("%w: limit %d", errFrameTooLarge, r.maxFrame)
		}
		if err == nil {
			return nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return err
		}
	}
}

// trimEOL removes a trailing LF or CR LF [STOMP 1.2 "Augmented BNF"].
func trimEOL(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte{'\n'})
	return bytes.TrimSuffix(b, []byte{'\r'})
}

// checkEscapes enforces that a backslash starts one of the defined escape
// sequences: "Undefined escape sequences such as \t MUST be treated as a
// fatal protocol error" [STOMP 1.2 "Value Encoding"].
func checkEscapes(h []byte) error {
	for i := 0; i < len(h); i++ {
		if h[i] != '\\' {
			continue
		}
		if i+1 >= len(h) {
			return fmt.Errorf("%w: %.40q ends in a backslash", errBadHeader, h)
		}
		switch h[i+1] {
		case 'r', 'n', 'c', '\\':
			i++
		default:
			return fmt.Errorf("%w: undefined escape \\%c in %.40q", errBadHeader, h[i+1], h)
		}
	}
	return nil
}

// parseLength parses a content-length value: decimal digits only. Values
// beyond a billion saturate, which every frame limit refuses as too large.
func parseLength(b []byte) (int, bool) {
	if len(b) == 0 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		if n < 1e9 {
			n = n*10 + int(c-'0')
		}
	}
	return n, true
}
