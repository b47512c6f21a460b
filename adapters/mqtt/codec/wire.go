package codec

import (
	"io"
	"unicode/utf8"
)

// decoder walks a packet body. The first failure is kept in err and every
// later read becomes a no-op returning zero values, so decoding functions
// can read a whole layout and check err once instead of after every field.
type decoder struct {
	b   []byte
	off int
	err *Error
	// shared is a string copy of b[sharedOff:sharedOff+len(shared)]. Strings
	// read inside that range are substrings of it, so a packet's topic and
	// property strings cost one allocation instead of one each.
	shared    string
	sharedOff int
}

// fail records e unless an earlier error is already recorded, and moves the
// cursor to the end so that no further field is read.
func (d *decoder) fail(e *Error) {
	if d.err == nil {
		d.err = e
	}
	d.off = len(d.b)
}

func (d *decoder) remaining() int { return len(d.b) - d.off }

func (d *decoder) truncated() {
	d.fail(malformed("packet shorter than its fields"))
}

func (d *decoder) byte1() byte {
	if d.off >= len(d.b) {
		d.truncated()
		return 0
	}
	c := d.b[d.off]
	d.off++
	return c
}

func (d *decoder) u16() uint16 {
	if len(d.b)-d.off < 2 {
		d.truncated()
		return 0
	}
	v := uint16(d.b[d.off])<<8 | uint16(d.b[d.off+1])
	d.off += 2
	return v
}

func (d *decoder) u32() uint32 {
	if len(d.b)-d.off < 4 {
		d.truncated()
		return 0
	}
	b := d.b[d.off : d.off+4]
	d.off += 4
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// vbi reads a Variable Byte Integer inside the body (property lengths and
// Subscription Identifiers).
func (d *decoder) vbi() int {
	v := 0
	for i := 0; i < 4; i++ {
		if d.off >= len(d.b) {
			d.truncated()
			return 0
		}
		c := d.b[d.off]
		d.off++
		v |= int(c&0x7F) << (7 * i)
		if c&0x80 == 0 {
			// [MQTT-1.5.5-1] the minimum number of bytes: a final zero
			// byte after a continuation only pads the value.
			if c == 0 && i > 0 {
				d.fail(malformed("variable byte integer not minimally encoded [MQTT-1.5.5-1]"))
				return 0
			}
			return v
		}
	}
	d.fail(malformed("variable byte integer longer than 4 bytes"))
	return 0
}

// binary reads two-byte-length-prefixed Binary Data. The result aliases the
// body and is nil when empty, so decoded packets compare equal regardless of
// where their bytes came from.
func (d *decoder) binary() []byte {
	n := int(d.u16())
	if d.err != nil {
		return nil
	}
	if len(d.b)-d.off < n {
		d.truncated()
		return nil
	}
	if n == 0 {
		return nil
	}
	b := d.b[d.off : d.off+n : d.off+n]
	d.off += n
	return b
}

// rawString reads a length-prefixed string without validating it.
func (d *decoder) rawString() []byte {
	n := int(d.u16())
	if d.err != nil {
		return nil
	}
	if len(d.b)-d.off < n {
		d.truncated()
		return nil
	}
	b := d.b[d.off : d.off+n]
	d.off += n
	return b
}

// str reads a UTF-8 Encoded String. The result never aliases the body, so
// a long-lived string (a topic kept in an index) cannot pin a payload in
// memory; at most it keeps the packet's other header strings alive.
func (d *decoder) str() string {
	b := d.rawString()
	if d.err != nil {
		return ""
	}
	if reason := checkUTF8(b); reason != "" {
		d.fail(malformed(reason))
		return ""
	}
	start, end := d.off-len(b)-d.sharedOff, d.off-d.sharedOff
	if start >= 0 && end <= len(d.shared) {
		return d.shared[start:end]
	}
	return string(b)
}

// shareStrings copies b[from:to] into one string that later str calls in
// that range slice from. Callers pass only header regions (never payload
// or password bytes), so what a substring keeps alive stays small and
// holds no secrets.
func (d *decoder) shareStrings(from, to int) {
	if from < to && to <= len(d.b) {
		d.shared = string(d.b[from:to])
		d.sharedOff = from
	}
}

// peekVBI decodes a Variable Byte Integer at b[off:] without consuming it,
// returning the value and the offset after it; ok is false if b ends or the
// encoding is invalid (the real read reports why).
func peekVBI(b []byte, off int) (v, next int, ok bool) {
	for i := 0; i < 4 && off+i < len(b); i++ {
		c := b[off+i]
		v |= int(c&0x7F) << (7 * i)
		if c&0x80 == 0 {
			return v, off + i + 1, true
		}
	}
	return 0, 0, false
}

// rest returns the unread remainder (a payload), nil when empty.
func (d *decoder) rest() []byte {
	if d.off >= len(d.b) {
		return nil
	}
	b := d.b[d.off:len(d.b):len(d.b)]
	d.off = len(d.b)
	return b
}

// finish flags bytes left over after the last field: the remaining length
// has to match the contents exactly.
func (d *decoder) finish() {
	if d.err == nil && d.off != len(d.b) {
		d.fail(malformed("remaining length exceeds the packet's fields"))
	}
}

// checkUTF8 returns why b is not an acceptable MQTT string, or "" when it
// is. ASCII is checked inline because topics are almost always ASCII and
// the generic decoder would cost a call per byte.
func checkUTF8(b []byte) string {
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			if c == 0 {
				// [MQTT-1.5.3-2] (3.1.1), [MQTT-1.5.4-2] (5.0).
				return "string contains U+0000 (3.1.1 [MQTT-1.5.3-2], 5.0 [MQTT-1.5.4-2])"
			}
			i++
			continue
		}
		// utf8.DecodeRune rejects overlong forms and the surrogate range
		// U+D800..U+DFFF by returning RuneError with width 1.
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			// [MQTT-1.5.3-1] (3.1.1), [MQTT-1.5.4-1] (5.0).
			return "ill-formed UTF-8 string (3.1.1 [MQTT-1.5.3-1], 5.0 [MQTT-1.5.4-1])"
		}
		i += size
	}
	return ""
}

// vbiLen is the number of bytes needed to encode v as a Variable Byte
// Integer.
func vbiLen(v int) int {
	switch {
	case v < 1<<7:
		return 1
	case v < 1<<14:
		return 2
	case v < 1<<21:
		return 3
	default:
		return 4
	}
}

func appendVBI(dst []byte, v int) []byte {
	for {
		c := byte(v & 0x7F)
		v >>= 7
		if v == 0 {
			return append(dst, c)
		}
		dst = append(dst, c|0x80)
	}
}

func appendU16(dst []byte, v uint16) []byte {
	return append(dst, byte(v>>8), byte(v))
}

func appendU32(dst []byte, v uint32) []byte {
	return append(dst, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

func appendString(dst []byte, s string) []byte {
	dst = appendU16(dst, uint16(len(s)))
	return append(dst, s...)
}

func appendBinary(dst []byte, b []byte) []byte {
	dst = appendU16(dst, uint16(len(b)))
	return append(dst, b...)
}

// remainingStep folds the i-th byte of a fixed-header remaining length into
// *v. It reports done when the value is complete. Both ParseHeader and
// ReadPacket use it so that the two entry points agree byte for byte.
func remainingStep(i int, c byte, v *int) (done bool, err *Error) {
	*v |= int(c&0x7F) << (7 * i)
	if c&0x80 == 0 {
		if c == 0 && i > 0 {
			// MQTT 3.1.1 section 2.2.3 and [MQTT-1.5.5-1]: the encoding
			// must be minimal, so a zero final byte is padding.
			return true, malformed("remaining length not minimally encoded (5.0 [MQTT-1.5.5-1])")
		}
		return true, nil
	}
	if i == 3 {
		// At most four bytes; a fifth continuation is malformed.
		return true, malformed("remaining length longer than 4 bytes")
	}
	return false, nil
}

// ParseHeader parses the fixed header at the start of b, returning the
// first byte, the remaining length and the number of header bytes. It
// returns io.ErrUnexpectedEOF when b ends inside the header. It is meant for
// transports that deliver whole packets in one buffer (and for tests); the
// body is then b[n:n+remaining], ready for Decode.
func ParseHeader(b []byte) (header byte, remaining, n int, err error) {
	if len(b) == 0 {
		return 0, 0, 0, io.ErrUnexpectedEOF
	}
	header = b[0]
	for i := 0; ; i++ {
		if 1+i >= len(b) {
			return header, 0, 0, io.ErrUnexpectedEOF
		}
		done, e := remainingStep(i, b[1+i], &remaining)
		if e != nil {
			return header, 0, 0, e
		}
		if done {
			return header, remaining, 2 + i, nil
		}
	}
}
