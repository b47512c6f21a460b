package codec

import (
	"bufio"
	"io"
	"strconv"
)

// ioError wraps an I/O failure with the step that hit it while keeping the
// cause reachable through errors.Is / errors.As.
type ioError struct {
	op  string
	err error
}

func (e *ioError) Error() string { return "mqtt codec: " + e.op + ": " + e.err.Error() }
func (e *ioError) Unwrap() error { return e.err }

// wrapIO wraps err; mid says the packet had started, so a plain EOF means
// the stream ended inside it.
func wrapIO(op string, err error, mid bool) error {
	if mid && err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return &ioError{op: op, err: err}
}

// directReadLimit is the largest body allocated in full before any of it
// has arrived. Larger bodies grow as data arrives, so a peer announcing
// 256 MB cannot make the server allocate it by sending five bytes.
const directReadLimit = 64 << 10

// ReadPacket reads and decodes one packet from r.
//
// version is the connection's protocol level, or 0 before CONNECT, in which
// case only a CONNECT is accepted [MQTT-3.1.0-1] and it is decoded
// according to its own level. maxSize is the largest total packet size in
// bytes (fixed header included) the caller accepts, 0 meaning only the
// protocol's own limit; a larger announced size fails with PacketTooLarge
// before the body is read. The fixed header is validated before the body
// is read too.
//
// n is the number of bytes consumed from r, also on error. The body is read
// into a buffer allocated for this packet alone, so []byte fields of the
// result stay valid after the next call. Errors are *Error for protocol
// violations (see Decode for the partial *Connect returned with CONNECT
// errors) or wrapped I/O errors: errors.Is(err, io.EOF) means the stream
// ended cleanly between packets, io.ErrUnexpectedEOF that it ended inside
// one.
func ReadPacket(r *bufio.Reader, version byte, maxSize int) (p Packet, n int, err error) {
	h, err := r.ReadByte()
	if err != nil {
		return nil, 0, wrapIO("read fixed header", err, false)
	}
	n = 1
	remaining := 0
	for i := 0; ; i++ {
		c, err := r.ReadByte()
		if err != nil {
			return nil, n, wrapIO("read remaining length", err, true)
		}
		n++
		done, e := remainingStep(i, c, &remaining)
		if e != nil {
			return nil, n, e
		}
		if done {
			break
		}
	}
	if e := checkHeader(h, version); e != nil {
		return nil, n, e
	}
	if maxSize > 0 && n+remaining > maxSize {
		return nil, n, &Error{Code: PacketTooLarge,
			Reason: "packet of " + strconv.Itoa(n+remaining) + " bytes exceeds the limit of " + strconv.Itoa(maxSize)}
	}
	body, err := readBody(r, remaining)
	n += len(body)
	if err != nil {
		return nil, n, wrapIO("read packet body", err, true)
	}
	p, err = decodeBody(h, body, version)
	return p, n, err
}

// readBody reads exactly size bytes into a fresh slice. On error the bytes
// read so far are returned for the caller's byte count.
func readBody(r *bufio.Reader, size int) ([]byte, error) {
	if size == 0 {
		return nil, nil
	}
	if size <= directReadLimit {
		body := make([]byte, size)
		m, err := io.ReadFull(r, body)
		return body[:m], err
	}
	body := make([]byte, 0, directReadLimit)
	for len(body) < size {
		if len(body) == cap(body) {
			grown := make([]byte, len(body), min(2*cap(body), size))
			copy(grown, body)
			body = grown
		}
		m, err := io.ReadFull(r, body[len(body):cap(body)])
		body = body[:len(body)+m]
		if err != nil {
			return body, err
		}
	}
	return body, nil
}
