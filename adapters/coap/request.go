package coap

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
)

// request is what the handlers need from a CoAP request, decoded once and
// copied out of go-coap's pooled message (its buffers are reused).
type request struct {
	method   codes.Code
	con      bool     // Confirmable
	token    []byte   // copied
	segments []string // Uri-Path, percent-decoded
	q        query
	observe  int64 // -1 when absent
	cf       uint32
	hasCF    bool
	block2   int64 // Block2 NUM; -1 when absent
	// local is the gateway address the request arrived at; go-coap keys
	// a peer's connection by it, so notifications must name it too.
	local *net.UDPAddr
	// peerAddr and genID are the sender's address and generated client
	// id, computed once per peer (empty when unknown).
	peerAddr, genID string
	// arrived is the kernel receive time of the request's datagram (the
	// last one of a block-wise body), Unix ns; 0 unknown.
	arrived int64
	// secure: the request came over DTLS; identity (when set) is the
	// user name the session verified, which replaces the query's
	// credentials.
	secure   bool
	identity string
	// peer is the sender's state (nil when unknown).
	peer *peerState
}

// fromPeer takes what the request's peer knows about its transport: a
// DTLS peer's listener address and verified identity.
func (r *request) fromPeer(p *peerState) {
	r.peer = p
	if !p.secure {
		return
	}
	r.secure, r.local = true, p.laddr
	if p.hasIdentity {
		r.identity = p.identity
	}
}

// listener names the listener of the request in core.ClientInfo.
func (r *request) listener() string {
	if r.secure {
		return "dtls"
	}
	return "udp"
}

// query holds the recognised Uri-Query parameters. The short names are
// EMQX's aliases (c, t, u, p, q, r).
type query struct {
	clientID, token, username string
	password                  []byte
	qos                       int // -1 when absent
	retain                    bool
	expiry                    time.Duration
	hasExpiry                 bool
}

// reqError is a request the gateway refuses, with the response code and a
// diagnostic payload (RFC 7252 §5.5.2).
type reqError struct {
	code codes.Code
	msg  string
	// maxAge (seconds, 0: none) tells a refused client when to retry
	// (4.29 Too Many Requests [RFC 8516 §3], 5.03 [RFC 7252 §5.9.3.4]).
	maxAge uint32
}

func (e *reqError) Error() string { return fmt.Sprintf("%v: %s", e.code, e.msg) }

func badRequest(format string, args ...any) *reqError {
	return &reqError{code: codes.BadRequest, msg: fmt.Sprintf(format, args...)}
}

// criticalKnown lists the critical options (odd numbers, RFC 7252 §5.4.6)
// this gateway understands or may safely ignore; any other critical option
// in a request is refused with 4.02 Bad Option [RFC 7252 §5.4.1].
var criticalKnown = map[message.OptionID]bool{
	message.IfMatch: true, message.URIHost: true, message.IfNoneMatch: true, message.URIPort: true,
	message.URIPath: true, message.URIQuery: true, message.Accept: true,
	message.Block2: true, message.Block1: true,
}

// parseRequest decodes the options of a request. It never panics on
// client input: every value is length-checked by go-coap's decoder or
// here.
func parseRequest(r *pool.Message) (*request, *reqError) {
	req := &request{method: r.Code(), con: r.Type() == message.Confirmable, observe: -1, block2: -1}
	req.q.qos = -1
	if t := r.Token(); len(t) > 0 {
		req.token = append([]byte(nil), t...)
	}
	for _, o := range r.Options() {
		switch o.ID {
		case message.URIPath:
			req.segments = append(req.segments, percentDecode(string(o.Value)))
		case message.URIQuery:
			if err := req.q.parse(string(o.Value)); err != nil {
				return nil, err
			}
		case message.ProxyURI, message.ProxyScheme:
			return nil, &reqError{code: codes.ProxyingNotSupported, msg: "this gateway is not a proxy"}
		default:
			if o.ID&1 == 1 && !criticalKnown[o.ID] {
				return nil, &reqError{code: codes.BadOption, msg: fmt.Sprintf("unrecognized critical option %d", o.ID)}
			}
		}
	}
	if v, err := r.Options().Observe(); err == nil {
		req.observe = int64(v)
	}
	if v, err := r.Options().ContentFormat(); err == nil {
		req.cf, req.hasCF = uint32(v), true
	}
	if v, err := r.Options().GetUint32(message.Block2); err == nil {
		if _, num, _, err := blockwise.DecodeBlockOption(v); err == nil {
			req.block2 = num
		}
	}
	return req, nil
}

// percentDecode undoes percent-encoding left in a Uri-Path segment (some
// clients send "%23" rather than "#"); a segment that is not valid
// percent-encoding is kept as sent, so "100%" stays a usable topic level.
func percentDecode(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	if d, err := url.PathUnescape(s); err == nil {
		return d
	}
	return s
}

// parse reads one Uri-Query option "key=value". Unknown keys are ignored,
// as EMQX does; known keys with bad values are refused with 4.00.
func (q *query) parse(opt string) *reqError {
	key, val, _ := strings.Cut(opt, "=")
	val = percentDecode(val)
	switch key {
	case "clientid", "c":
		q.clientID = val
	case "token", "t":
		q.token = val
	case "username", "u":
		q.username = val
	case "password", "p":
		q.password = []byte(val)
	case "qos", "q":
		switch val {
		case "0", "1", "2":
			q.qos = int(val[0] - '0')
		default:
			return badRequest("qos: %q is not 0, 1 or 2", val)
		}
	case "retain", "r":
		switch strings.ToLower(val) {
		case "true", "1":
			q.retain = true
		case "false", "0":
			q.retain = false
		default:
			return badRequest("retain: %q is not true or false", val)
		}
	case "expiry", "e":
		n, err := strconv.ParseUint(val, 10, 32)
		if err != nil {
			return badRequest("expiry: %q is not a number of seconds within 0..4294967295", val)
		}
		q.expiry, q.hasExpiry = time.Duration(n)*time.Second, n > 0
	}
	return nil
}

// topic joins the path segments after the first one ("ps") with "/".
func (r *request) topic() string {
	if len(r.segments) < 2 {
		return ""
	}
	return strings.Join(r.segments[1:], "/")
}

// errBodyTooLarge reports a body beyond coap.max_body_size.
var errBodyTooLarge = errors.New("request body too large")

// readBody copies a request body out of the pooled message, refusing one
// larger than max.
func readBody(r *pool.Message, max int) ([]byte, error) {
	body := r.Body()
	if body == nil {
		return nil, nil
	}
	size, err := r.BodySize()
	if err != nil {
		return nil, fmt.Errorf("body size: %w", err)
	}
	if size > int64(max) {
		return nil, errBodyTooLarge
	}
	if size == 0 {
		return nil, nil
	}
	if _, err := body.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("body seek: %w", err)
	}
	buf := make([]byte, size)
	if _, err := io.ReadFull(body, buf); err != nil {
		return nil, fmt.Errorf("body read: %w", err)
	}
	return buf, nil
}
