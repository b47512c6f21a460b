package stomp

import (
	"strings"

	"github.com/go-stomp/stomp/v3/frame"
)

// STOMP 1.0 knows no header escapes, and CONNECT and CONNECTED frames
// never use them, "in order to remain backward compatible with STOMP 1.0"
// [STOMP 1.2 "Value Encoding"]. go-stomp's frame reader and writer always
// apply the 1.1 escapes, so those frames are decoded (reader.go) and
// encoded here instead.

// requiredHeaders are the headers a frame cannot go without. When one
// holds a line break, which no unescaped header can carry, it is written
// with the 1.1 escapes for CR and LF rather than left out; any other
// header that cannot be written is left out, so that a value from an MQTT
// publisher can never inject headers into the frame.
var requiredHeaders = map[string]bool{
	frame.Destination: true, frame.Subscription: true, frame.MessageId: true,
	frame.ReceiptId: true, frame.Session: true, frame.Message: true,
}

var lineBreakEscaper = strings.NewReplacer("\r", `\r`, "\n", `\n`)

// appendUnescaped appends f to buf without header escapes.
func appendUnescaped(buf []byte, f *frame.Frame) []byte {
	buf = append(buf, f.Command...)
	buf = append(buf, '\n')
	for i := 0; i < f.Header.Len(); i++ {
		k, v := f.Header.GetAt(i)
		if k == "" || strings.ContainsAny(k, ":\r\n") {
			continue // the name would end early or break the line
		}
		if strings.ContainsAny(v, "\r\n") {
			if !requiredHeaders[k] {
				continue
			}
			v = lineBreakEscaper.Replace(v)
		}
		buf = append(buf, k...)
		buf = append(buf, ':')
		buf = append(buf, v...)
		buf = append(buf, '\n')
	}
	buf = append(buf, '\n')
	buf = append(buf, f.Body...)
	return append(buf, 0)
}

// appendEscaped appends f to buf with the STOMP 1.1+ header escapes, byte
// for byte what go-stomp's frame.Writer writes, without its bufio.Writer
// (a 4 KiB buffer and a second copy) and its strings.Replacer (a header
// needing no escape, nearly all of them, is copied as it is).
func appendEscaped(buf []byte, f *frame.Frame) []byte {
	buf = append(buf, f.Command...)
	buf = append(buf, '\n')
	for i := 0; i < f.Header.Len(); i++ {
		k, v := f.Header.GetAt(i)
		buf = appendEscapedValue(buf, k)
		buf = append(buf, ':')
		buf = appendEscapedValue(buf, v)
		buf = append(buf, '\n')
	}
	buf = append(buf, '\n')
	buf = append(buf, f.Body...)
	return append(buf, 0)
}

// appendEscapedValue appends one header name or value, escaped [STOMP 1.2
// "Value Encoding"].
func appendEscapedValue(buf []byte, s string) []byte {
	if !strings.ContainsAny(s, "\\\r\n:") {
		return append(buf, s...)
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			buf = append(buf, `\\`...)
		case '\r':
			buf = append(buf, `\r`...)
		case '\n':
			buf = append(buf, `\n`...)
		case ':':
			buf = append(buf, `\c`...)
		default:
			buf = append(buf, c)
		}
	}
	return buf
}
