package wsconn

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"unicode/utf8"
)

// reader decodes the client's frames into the stream. Its state survives
// a timed-out read: every byte taken from the socket is kept until used.
type reader struct {
	c *Conn
	// buf holds raw bytes read past what was asked for; borrowed from
	// readPool only while it holds some (buf[r:w]), so an idle connection
	// keeps none.
	buf  *[]byte
	r, w int
	one  [1]byte // the first byte after a pause, read without a buffer

	remain  uint64  // payload bytes left in the current frame
	mask    [4]byte // the current frame's masking key
	maskPos int
	fin     bool // the current frame ends its message
	inMsg   bool // a message is in progress (more frames to come)
	text    bool // the current message is text
	n       int64
	carry   [utf8.UTFMax]byte // an incomplete rune at the end of text so far
	ncarry  int
	err     error // final: a protocol error or the close handshake
}

// readPool holds read buffers; 4 KiB takes in many small frames per
// system call under load.
var readPool = sync.Pool{New: func() any { b := make([]byte, 4096); return &b }}

// errProtocol reports a frame that breaks RFC 6455.
var errProtocol = errors.New("websocket: protocol error")

func (rd *reader) read(p []byte) (int, error) {
	for {
		if rd.err != nil {
			return 0, rd.err
		}
		if rd.remain == 0 {
			if rd.fin && rd.inMsg {
				if err := rd.endMessage(); err != nil {
					return 0, err
				}
			}
			if err := rd.nextFrame(); err != nil {
				return 0, err
			}
			continue
		}
		if len(p) == 0 {
			return 0, nil
		}
		q := p
		if uint64(len(q)) > rd.remain {
			q = q[:rd.remain]
		}
		if limit := rd.c.opts.MaxMessage; limit > 0 && int64(len(q)) > limit-rd.n+1 {
			q = q[:limit-rd.n+1] // just enough to see the limit crossed
		}
		n, err := rd.payload(q)
		if n > 0 {
			rd.remain -= uint64(n)
			rd.n += int64(n)
			if rd.text && !rd.validText(q[:n]) {
				return 0, rd.fail(closeInvalidData, "invalid UTF-8 in a text message")
			}
			if limit := rd.c.opts.MaxMessage; limit > 0 && rd.n > limit {
				rd.c.opts.MaxMessage = 0 // once: what follows is only drained before the close
				return 0, fmt.Errorf("%w: websocket message over %d bytes", rd.c.opts.TooLarge, limit)
			}
			return n, nil
		}
		if err != nil {
			return 0, err
		}
	}
}

// payload reads and unmasks payload bytes into q: buffered ones first,
// else straight from the socket (q is the caller's, usually large).
func (rd *reader) payload(q []byte) (int, error) {
	var n int
	var err error
	if rd.w > rd.r {
		n = copy(q, (*rd.buf)[rd.r:rd.w])
		rd.consume(n)
	} else {
		n, err = rd.c.nc.Read(q)
		if err != nil && !isTimeout(err) {
			rd.err = err
		}
	}
	for i := range n {
		q[i] ^= rd.mask[rd.maskPos&3]
		rd.maskPos++
	}
	return n, err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// consume drops n buffered bytes, returning the buffer once it is empty.
func (rd *reader) consume(n int) {
	rd.r += n
	if rd.r == rd.w {
		readPool.Put(rd.buf)
		rd.buf, rd.r, rd.w = nil, 0, 0
	}
}

// need makes at least k (≤ 4096) raw bytes buffered. With nothing
// buffered it first waits for one byte without a buffer: that is where an
// idle connection waits. A timeout keeps what arrived.
func (rd *reader) need(k int) error {
	for rd.w-rd.r < k {
		if rd.buf == nil {
			n, err := rd.c.nc.Read(rd.one[:])
			if n == 0 {
				if err == nil {
					continue
				}
				if !isTimeout(err) {
					rd.err = err
				}
				return err
			}
			rd.buf = readPool.Get().(*[]byte)
			(*rd.buf)[0] = rd.one[0]
			rd.r, rd.w = 0, 1
			continue
		}
		b := *rd.buf
		if rd.r > 0 && len(b)-rd.r < k {
			copy(b, b[rd.r:rd.w]) // room for the rest of a header
			rd.w -= rd.r
			rd.r = 0
		}
		n, err := rd.c.nc.Read(b[rd.w:])
		rd.w += n
		if err != nil && rd.w-rd.r < k {
			if !isTimeout(err) {
				rd.err = err
			}
			return err
		}
	}
	return nil
}

// nextFrame reads a frame header; control frames are handled whole here.
func (rd *reader) nextFrame() error {
	if err := rd.need(2); err != nil {
		return err
	}
	b := (*rd.buf)[rd.r:rd.w]
	b0, b1 := b[0], b[1]
	if b0&0x70 != 0 {
		return rd.fail(closeProtocolError, "reserved bits set (no extension was negotiated)")
	}
	if b1&0x80 == 0 {
		return rd.fail(closeProtocolError, "unmasked client frame")
	}
	hlen := 2 + 4
	switch b1 & 0x7F {
	case 126:
		hlen += 2
	case 127:
		hlen += 8
	}
	if err := rd.need(hlen); err != nil {
		return err
	}
	b = (*rd.buf)[rd.r:rd.w]
	fin, op := b0&0x80 != 0, b0&0x0F
	length := uint64(b1 & 0x7F)
	switch length {
	case 126:
		length = uint64(binary.BigEndian.Uint16(b[2:]))
	case 127:
		length = binary.BigEndian.Uint64(b[2:])
		if length>>63 != 0 {
			return rd.fail(closeProtocolError, "frame length has its top bit set")
		}
	}
	copy(rd.mask[:], b[hlen-4:hlen])
	rd.maskPos = 0
	rd.consume(hlen)
	if op >= opClose {
		if !fin || length > 125 {
			return rd.fail(closeProtocolError, "fragmented or long control frame")
		}
		return rd.control(op, int(length))
	}
	switch op {
	case opContinuation:
		if !rd.inMsg {
			return rd.fail(closeProtocolError, "continuation frame without a message")
		}
	case opText, opBinary:
		if rd.inMsg {
			return rd.fail(closeProtocolError, "new message inside a fragmented one")
		}
		if op == opText && !rd.c.opts.AcceptText {
			rd.err = ErrTextFrame
			return rd.err
		}
		rd.inMsg, rd.text, rd.n, rd.ncarry = true, op == opText, 0, 0
	default:
		return rd.fail(closeProtocolError, fmt.Sprintf("unknown opcode %#x", op))
	}
	rd.fin = fin
	rd.remain = length
	return nil
}

// endMessage closes a finished message: its text must end on a whole rune.
func (rd *reader) endMessage() error {
	rd.inMsg = false
	if rd.text && rd.ncarry > 0 {
		return rd.fail(closeInvalidData, "text message ends inside a UTF-8 sequence")
	}
	return nil
}

// control handles a ping, pong or close frame of n payload bytes.
func (rd *reader) control(op byte, n int) error {
	var body [125]byte
	if n > 0 {
		if err := rd.need(n); err != nil {
			// The header is consumed: without its payload the frame
			// cannot be resumed, so even a timeout is final here.
			rd.err = fmt.Errorf("%w: control frame cut short: %v", errProtocol, err)
			return rd.err
		}
		copy(body[:n], (*rd.buf)[rd.r:rd.r+n])
		rd.consume(n)
		for i := range n {
			body[i] ^= rd.mask[i&3]
		}
	}
	switch op {
	case opPing:
		if err := rd.c.writeControl(opPong, body[:n]); err != nil {
			rd.err = err
			return err
		}
	case opClose:
		code := closeNoStatus
		switch {
		case n == 1:
			return rd.fail(closeProtocolError, "one-byte close frame")
		case n >= 2:
			code = int(binary.BigEndian.Uint16(body[:2]))
			if !utf8.Valid(body[2:n]) {
				return rd.fail(closeInvalidData, "close reason is not UTF-8")
			}
		}
		// Answer with the same code [RFC 6455, 5.5.1], unless this is
		// the answer to ours; the stream ends.
		_ = rd.c.sendClose(code)
		rd.err = io.EOF
		return rd.err
	}
	return nil // a pong needs nothing
}

// fail sends a close frame with code and makes the error final.
func (rd *reader) fail(code int, why string) error {
	_ = rd.c.sendClose(code)
	rd.err = fmt.Errorf("%w: %s", errProtocol, why)
	return rd.err
}

// validText checks the next piece of a text message; a rune may be split
// across pieces (and frames), so an incomplete one at the end is carried.
func (rd *reader) validText(b []byte) bool {
	for rd.ncarry > 0 && len(b) > 0 {
		rd.carry[rd.ncarry] = b[0]
		rd.ncarry++
		b = b[1:]
		if utf8.FullRune(rd.carry[:rd.ncarry]) {
			if !utf8.Valid(rd.carry[:rd.ncarry]) {
				return false
			}
			rd.ncarry = 0
		}
	}
	tail := 0
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax+1; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				tail = len(b) - i
			}
			break
		}
	}
	if !utf8.Valid(b[:len(b)-tail]) {
		return false
	}
	rd.ncarry = copy(rd.carry[:], b[len(b)-tail:])
	return true
}
