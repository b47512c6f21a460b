package coap

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/net/responsewriter"
	"github.com/plgd-dev/go-coap/v3/options/config"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"
	"github.com/plgd-dev/go-coap/v3/udp/coder"
	"go.uber.org/zap"

	"github.com/iotgw/iotgw/core"
)

// Server is the CoAP adapter: one UDP socket read by the adapter's own
// transport, simple publishes answered by its fast path and other
// requests served through go-coap (message codec, retransmission,
// block-wise transfer), requests mapped onto the core, and one endpoint
// per observing or connected client.
type Server struct {
	cfg   Config
	log   *zap.Logger
	b     *core.Broker
	pc    *core.PacketCounters
	tr    *transport     // the coap.udp socket; nil when off
	dt    *dtlsTransport // the coap.dtls listener; nil when off
	addr  net.Addr
	seed  maphash.Seed
	subID atomic.Uint32
	bt    block1Tokens
	// backpressure: session.queue_full_policy is backpressure, so QoS 0
	// notifications pace their publishers (endpoint.Room).
	backpressure bool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	conns    map[string]*endpoint   // connection mode, by client id
	peers    map[string]*endpoint   // connectionless observers, by peer address
	lessByID map[string]*endpoint   // connectionless observers, by client id
	byAddr   map[string][]*endpoint // every live endpoint, by its address
	stopped  bool
}

var _ core.Adapter = (*Server)(nil)

// Indexes of the $SYS packet counters (core.PacketCounters) of "coap".
const (
	pktCON = iota
	pktNON
	pktACK
	pktRST
	pktMalformed
	pktGET
	pktPOST
	pktPUT
	pktDELETE
	pktNotification
)

// PacketNames are the names of the adapter's $SYS packet counters, indexed
// as registered with core.Stats.Packets: message types and methods
// received, "malformed" datagrams dropped, notifications sent.
var PacketNames = []string{"con", "non", "ack", "rst", "malformed", "get", "post", "put", "delete", "notification"}

var errHeartbeatTimeout = errors.New("connection heartbeat expired")

// New returns a CoAP adapter; cfg must be valid.
func New(cfg Config, log *zap.Logger) *Server {
	if log == nil {
		log = zap.NewNop()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		cfg: cfg, log: log.Named("coap"), seed: maphash.MakeSeed(), ctx: ctx, cancel: cancel,
		conns: make(map[string]*endpoint), peers: make(map[string]*endpoint),
		lessByID: make(map[string]*endpoint), byAddr: make(map[string][]*endpoint),
	}
}

// Name returns "coap".
func (s *Server) Name() string { return "coap" }

// Start binds the UDP and DTLS listeners and serves them in the
// background.
func (s *Server) Start(ctx context.Context, b *core.Broker) error {
	s.b = b
	s.pc = b.Stats().Packets(core.ProtoCoAP, PacketNames)
	s.backpressure = b.Config().QueueFullPolicy == core.Backpressure
	if err := s.startUDP(ctx); err != nil {
		return err
	}
	if err := s.startDTLS(); err != nil {
		s.cancel()
		if s.tr != nil {
			s.tr.close()
		}
		s.wg.Wait()
		return err
	}
	return nil
}

// startUDP binds coap.udp when it is on.
func (s *Server) startUDP(ctx context.Context) error {
	if s.cfg.UDP == "" {
		return nil
	}
	pc, err := (&net.ListenConfig{}).ListenPacket(ctx, "udp", s.cfg.UDP)
	if err != nil {
		return fmt.Errorf("coap.udp: %w", err)
	}
	uc, ok := pc.(*net.UDPConn)
	if !ok {
		pc.Close()
		return fmt.Errorf("coap.udp: %T is not a UDP socket", pc)
	}
	if s.cfg.ReadBuffer > 0 {
		if err := uc.SetReadBuffer(s.cfg.ReadBuffer); err != nil {
			s.log.Warn("cannot set the UDP receive buffer", zap.Int("bytes", s.cfg.ReadBuffer), zap.Error(err))
		}
	}
	s.addr = uc.LocalAddr()
	s.tr = newTransport(s, uc, s.handle)
	s.periodic(s.tr.expire)
	s.log.Info("listening", zap.String("transport", "udp"), zap.Stringer("addr", s.addr))
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.tr.serve()
	}()
	return nil
}

// Addr returns the UDP listener's address (nil when disabled); tests
// listening on port 0 read the real port here.
func (s *Server) Addr() net.Addr { return s.addr }

// Stop ends every client (observers get a final 5.03 notification), closes
// the socket and waits for the adapter's goroutines (or ctx).
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	s.stopped = true
	var eps []*endpoint
	for _, list := range s.byAddr {
		eps = append(eps, list...)
	}
	s.mu.Unlock()
	for _, ep := range eps {
		ep.close(core.ErrServerShuttingDown)
	}
	// Give the writers a moment to send their final notifications before
	// the socket goes, without holding shutdown up for a slow one.
	flush := time.NewTimer(200 * time.Millisecond)
	for _, ep := range eps {
		select {
		case <-ep.done:
		case <-flush.C:
		case <-ctx.Done():
		}
	}
	flush.Stop()
	s.cancel()
	if s.tr != nil {
		s.tr.close()
	}
	if s.dt != nil {
		s.dt.close()
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// conDeadline bounds the wait for the ACK of a CON notification. go-coap
// retransmits at the first tick after ACK_TIMEOUT × 1, 2, … (linearly, not
// with RFC 7252's doubling) and drops the exchange at the tick after the
// last retransmission, at about ACK_TIMEOUT × (MAX_RETRANSMIT + 1); the
// deadline lies beyond that.
func (s *Server) conDeadline() time.Duration {
	return s.cfg.AckTimeout * time.Duration(s.cfg.MaxRetransmit+2)
}

// periodic drives the transport's expiry work (go-coap's retransmissions,
// block-wise and inactivity timers). Its default
// ticks every 4 s, too coarse for ACK_TIMEOUT 2 s; half of ACK_TIMEOUT
// also leaves the last retransmission that long to be acknowledged.
func (s *Server) periodic(f func(now time.Time) bool) {
	tick := s.cfg.AckTimeout / 2
	tick = min(max(tick, 5*time.Millisecond), time.Second)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(tick)
		defer t.Stop()
		for {
			select {
			case <-s.ctx.Done():
				return
			case now := <-t.C:
				if !f(now) {
					return
				}
			}
		}
	}()
}

// malformedErrors are the decoder errors go-coap reports for a datagram
// that is not CoAP; it drops the datagram (and the peer's connection
// state) and the adapter counts it.
var malformedErrors = []error{
	coder.ErrMessageTruncated, coder.ErrMessageInvalidVersion, message.ErrTooSmall,
	message.ErrInvalidOptionHeaderExt, message.ErrInvalidTokenLen, message.ErrInvalidValueLength,
	message.ErrShortRead, message.ErrOptionTruncated, message.ErrOptionUnexpectedExtendMarker,
	message.ErrOptionsTooSmall, message.ErrInvalidEncoding, message.ErrOptionDuplicate,
}

// onError is go-coap's error callback.
func (s *Server) onError(err error) {
	for _, m := range malformedErrors {
		if errors.Is(err, m) {
			s.pc.In(pktMalformed)
			if ce := s.log.Check(zap.DebugLevel, "malformed datagram dropped"); ce != nil {
				ce.Write(zap.Error(err))
			}
			return
		}
	}
	if strings.Contains(err.Error(), "max message size") {
		s.pc.In(pktMalformed)
	}
	if ce := s.log.Check(zap.DebugLevel, "go-coap"); ce != nil {
		ce.Write(zap.Error(err))
	}
}

// monitor sees every decoded message before go-coap processes it: it
// counts them and routes ACK and RST to the endpoint at their address, so
// that an RST is told apart from an ACK (go-coap completes the CON
// exchange on either).
//
// It also gives a request that may publish or observe its datagram's
// receive time (transport.at), which processReceived takes for the
// exchange.
func (s *Server) monitor(cc *udpClient.Conn, req *pool.Message) (bool, error) {
	return s.monitorAt(cc, req, s.tr.at)
}

// monitorAt is monitor for a message received at at (Unix ns, 0 unknown).
func (s *Server) monitorAt(cc *udpClient.Conn, req *pool.Message, at int64) (bool, error) {
	s.b.Stats().WireBytesReceived.Add(wireSize(req, 0))
	if at != 0 {
		if c := req.Code(); c == codes.GET || c == codes.POST || c == codes.PUT {
			req.SetContext(context.WithValue(req.Context(), arrivedKey{}, at))
		}
	}
	switch req.Type() {
	case message.Confirmable:
		s.pc.In(pktCON)
	case message.NonConfirmable:
		s.pc.In(pktNON)
	case message.Acknowledgement, message.Reset:
		rst := req.Type() == message.Reset
		if rst {
			s.pc.In(pktRST)
		} else {
			s.pc.In(pktACK)
		}
		mid := uint16(req.MessageID())
		addr := cc.RemoteAddr().String()
		s.mu.Lock()
		for _, ep := range s.byAddr[addr] {
			if rst {
				ep.onReset(mid)
			} else {
				ep.onAck(mid)
			}
		}
		s.mu.Unlock()
	}
	switch req.Code() {
	case codes.GET:
		s.pc.In(pktGET)
	case codes.POST:
		s.pc.In(pktPOST)
	case codes.PUT:
		s.pc.In(pktPUT)
	case codes.DELETE:
		s.pc.In(pktDELETE)
	}
	return false, nil
}

// arrivedKey carries a request's receive time (int64 Unix ns) in the
// request message's context, from monitor to processReceived.
type arrivedKey struct{}

// exchangeKey carries a request's *exchange in the context of the
// response being built (the same response writer reaches the handler
// through go-coap's block-wise layer, the request message may not).
type exchangeKey struct{}

// exchange is what processReceived tells the handlers about a request.
type exchange struct {
	typ   message.Type // the type it arrived with (go-coap sees ACK)
	at    int64        // its (last block's) kernel receive time, Unix ns; 0 unknown
	peer  *peerState   // nil only if go-coap made no connection state
	hooks []func()     // to run once the response is on the wire
}

func exchangeOf(w respWriter) *exchange {
	ex, _ := w.Message().Context().Value(exchangeKey{}).(*exchange)
	return ex
}

// afterResponse runs f after the response written through w has been
// sent (an observation's retained messages and notifications must follow
// its registration response).
func afterResponse(w respWriter, f func()) {
	if ex := exchangeOf(w); ex != nil {
		ex.hooks = append(ex.hooks, f)
		return
	}
	f() // not reached through processReceived; nothing to wait for
}

// peerKey carries a go-coap connection's *peerState in its context.
type peerKey struct{}

// peerState is the adapter's state of one go-coap connection (one UDP
// peer): its deduplication state and what would otherwise be computed
// for every request.
type peerState struct {
	dd       *dedup
	addr     string // the peer's address, as a string
	clientID string // the client id of a connectionless client without one

	cc           *udpClient.Conn // the peer's go-coap connection
	mon          *idleMonitor
	raddr, laddr *net.UDPAddr
	stop         context.CancelFunc // ends cc's request goroutine
	via          path               // the listener the peer talks to

	// secure: the peer is a DTLS session; identity (when hasIdentity)
	// is the user name its PSK or certificate verified.
	secure      bool
	identity    string
	hasIdentity bool

	// limit is the peer's limits.client_* budget (nil: none), shared by
	// the read loop's fast path and the peer's go-coap goroutine.
	limitMu sync.Mutex
	limit   *core.ClientLimit
}

// processReceived wraps go-coap's request processing: it deduplicates
// requests, refuses bodies beyond coap.max_body_size before block-wise
// reassembly buffers them, and runs the request's after-response hooks
// once go-coap has written the response (it does so synchronously in
// ProcessReceivedMessageWithHandler).
//
// Deduplication is by the sender's message id and endpoint
// [RFC 7252 §4.5], done here rather than by go-coap v3.5: its response
// cache is keyed by the id of the answer, which for a NON request is drawn
// from the gateway's own per-peer counter, so a later request that happens
// to carry that id (a client counting its ids up meets the counter) was
// taken for a duplicate and never processed, and a CON one even got
// another request's answer; and go-coap scans that whole cache on every
// datagram, so each request cost O(requests of the last
// EXCHANGE_LIFETIME). go-coap looks up and fills its cache only for CON
// and NON messages, so requests are handed to it typed as ACK (its
// request processing does not otherwise depend on the type), and the
// answer gets its real type and id back here: a piggybacked ACK with the
// request's id for CON, a NON message with a fresh id of the gateway's
// for NON [RFC 7252 §5.2.3: a NON request's response SHOULD be NON].
func (s *Server) processReceived(req *pool.Message, cc *udpClient.Conn, handler config.HandlerFunc[*udpClient.Conn]) {
	typ := req.Type()
	if req.Code() < codes.GET || req.Code() > 31 || (typ != message.Confirmable && typ != message.NonConfirmable) {
		cc.ProcessReceivedMessageWithHandler(req, handler) // ACK, RST, ping, responses: go-coap's
		return
	}
	mid := req.MessageID()
	ps, _ := cc.Context().Value(peerKey{}).(*peerState)
	if ps != nil {
		switch v, ack := ps.dd.check(uint16(mid), time.Now()); v {
		case dedupPending, dedupDrop:
			// A NON duplicate is silently ignored; a CON duplicate with
			// no stored answer is one still being processed, whose
			// answer is still to come [RFC 7252 §4.5].
			cc.ReleaseMessage(req)
			return
		case dedupAnswer:
			handler = func(w *responsewriter.ResponseWriter[*udpClient.Conn], _ *pool.Message) {
				_, err := w.Message().UnmarshalWithDecoder(coder.DefaultCoder, ack)
				w.Message().SetModified(err == nil)
			}
		}
	}
	if s.exceedsBodyLimit(req) {
		handler = func(w *responsewriter.ResponseWriter[*udpClient.Conn], _ *pool.Message) { s.tooLarge(w) }
	}
	req.SetType(message.Acknowledgement)
	ex := &exchange{typ: typ, peer: ps}
	ex.at, _ = req.Context().Value(arrivedKey{}).(int64)
	var own []byte // the request's token, when go-coap sees another
	if ps != nil {
		if canon := s.bt.canonical(ps.addr, req, s.cfg.ExchangeLifetime); canon != nil {
			own = append([]byte(nil), req.Token()...)
			req.SetToken(canon)
		}
	}
	cc.ProcessReceivedMessageWithHandler(req, func(w *responsewriter.ResponseWriter[*udpClient.Conn], r *pool.Message) {
		w.Message().SetContext(context.WithValue(w.Message().Context(), exchangeKey{}, ex))
		handler(w, r)
		resp := w.Message() // block-wise transfer may have swapped it
		var ack []byte
		if typ == message.Confirmable {
			if !resp.IsModified() {
				// Nothing to answer: an empty ACK [RFC 7252 §4.2].
				resp.SetCode(codes.Empty)
				resp.SetToken(nil)
			} else if own != nil {
				resp.SetToken(own)
			}
			resp.SetType(message.Acknowledgement)
			resp.SetMessageID(mid)
			if ps != nil {
				ack, _ = resp.MarshalWithEncoder(coder.DefaultCoder)
			}
		} else if resp.IsModified() {
			if own != nil {
				resp.SetToken(own)
			}
			resp.SetType(message.NonConfirmable)
			if m := resp.MessageID(); !message.ValidateMID(m) || m == mid {
				resp.SetMessageID(cc.GetMessageID())
			}
		}
		if ps != nil {
			ps.dd.done(uint16(mid), ack)
		}
		if resp.IsModified() {
			s.b.Stats().WireBytesSent.Add(wireSize(resp, 0))
		}
	})
	for _, f := range ex.hooks {
		f()
	}
}

// exceedsBodyLimit reports a POST/PUT whose body, counting the blocks
// before it (Block1) or the announced total (Size1), passes the limit.
func (s *Server) exceedsBodyLimit(r *pool.Message) bool {
	if r.Code() != codes.POST && r.Code() != codes.PUT {
		return false
	}
	max := int64(s.cfg.MaxBodySize)
	size, err := r.BodySize()
	if err != nil {
		return false
	}
	if total, err := r.GetOptionUint32(message.Size1); err == nil && int64(total) > max {
		return true
	}
	if v, err := r.GetOptionUint32(message.Block1); err == nil {
		if szx, num, _, err := blockwise.DecodeBlockOption(v); err == nil {
			return num*szx.Size()+size > max
		}
	}
	return size > max
}

// wireSize is the encoded size of m (RFC 7252 §3), its body counted up to
// maxBody bytes when maxBody is positive (a block-wise message sends one
// block of it).
func wireSize(m *pool.Message, maxBody int64) uint64 {
	n, err := coder.DefaultCoder.Size(message.Message{Token: m.Token(), Options: m.Options()})
	if err != nil {
		return 0
	}
	if body, err := m.BodySize(); err == nil && body > 0 {
		if maxBody > 0 && body > maxBody {
			body = maxBody + 3 // and a Block2 option
		}
		n += int(body) + 1
	}
	return uint64(n)
}

// tooLarge answers 4.13 with Size1 telling the limit [RFC 7959 §2.9.3]
// (processReceived gives the answer its type and message id).
func (s *Server) tooLarge(w *responsewriter.ResponseWriter[*udpClient.Conn]) {
	replyError(w, &reqError{code: codes.RequestEntityTooLarge, msg: fmt.Sprintf("body exceeds %d bytes", s.cfg.MaxBodySize)})
	w.Message().SetOptionUint32(message.Size1, uint32(s.cfg.MaxBodySize))
}

// handle is go-coap's request handler: it routes by the first Uri-Path
// segments (go-coap's mux joins segments into one string and loses
// percent-encoded slashes, so routing is done here).
func (s *Server) handle(w *responsewriter.ResponseWriter[*udpClient.Conn], r *pool.Message) {
	if r.Code() < codes.GET || r.Code() > 31 {
		return // ACK, RST, ping and responses are go-coap's business
	}
	req, rerr := parseRequest(r)
	if ex := exchangeOf(w); req != nil && ex != nil {
		req.con = ex.typ == message.Confirmable
		req.arrived = ex.at
		if ex.peer != nil {
			req.peerAddr, req.genID = ex.peer.addr, ex.peer.clientID
			req.fromPeer(ex.peer)
		}
	}
	if rerr != nil {
		replyError(w, rerr)
		return
	}
	peer, ok := w.Conn().RemoteAddr().(*net.UDPAddr)
	if !ok {
		replyError(w, &reqError{code: codes.InternalServerError, msg: "no peer address"})
		return
	}
	if !req.secure {
		req.local = s.localAddrOf(r)
	}
	seg := req.segments
	switch {
	case len(seg) >= 1 && seg[0] == "ps":
		s.handlePubSub(w, r, req, peer)
	case len(seg) == 2 && seg[0] == "mqtt" && seg[1] == "connection":
		s.handleConnection(w, req, peer)
	case len(seg) == 2 && seg[0] == ".well-known" && seg[1] == "core":
		s.discovery(w, req, r)
	default:
		replyError(w, &reqError{code: codes.NotFound, msg: "no resource at /" + strings.Join(seg, "/")})
	}
}

// localAddrOf returns the local address go-coap's server keys the
// sender's connection by: the listener's, with the datagram's destination
// IP when the listener is bound to a wildcard address. Passing it to
// NewConn finds that connection, so a CON notification's ACK, which
// arrives on it, completes the exchange.
func (s *Server) localAddrOf(r *pool.Message) *net.UDPAddr {
	la, _ := s.addr.(*net.UDPAddr)
	if la == nil {
		return nil
	}
	l := *la
	if cm := r.ControlMessage(); cm != nil && len(cm.Dst) > 0 && !cm.Dst.IsMulticast() {
		l.IP = append(net.IP(nil), cm.Dst...)
	}
	return &l
}

// link is one entry of /.well-known/core.
type link struct {
	href, rt, title string
	obs             bool
}

// links are the resources in CoRE Link Format [RFC 6690 §5].
var links = []link{
	{href: "/ps", rt: "core.ps", obs: true,
		title: "publish: POST|PUT /ps/{topic}; observe: GET /ps/{filter} Observe=0; read retained: GET /ps/{topic}"},
	{href: "/mqtt/connection", rt: "core.mqtt-connection",
		title: "connection mode: POST connect, PUT heartbeat, DELETE close"},
}

// discovery answers GET /.well-known/core, filtered by a query such as
// ?rt=core.ps or ?href=/ps* [RFC 6690 §4.1].
func (s *Server) discovery(w *responsewriter.ResponseWriter[*udpClient.Conn], req *request, r *pool.Message) {
	if req.method != codes.GET {
		replyError(w, &reqError{code: codes.MethodNotAllowed, msg: "/.well-known/core supports GET only"})
		return
	}
	var filterKey, filterVal string
	if qs, err := r.Queries(); err == nil && len(qs) > 0 {
		filterKey, filterVal, _ = strings.Cut(qs[0], "=")
	}
	var b strings.Builder
	for _, l := range links {
		if filterKey != "" && !l.matches(filterKey, filterVal) {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "<%s>;rt=%q", l.href, l.rt)
		if l.obs {
			b.WriteString(";obs")
		}
		fmt.Fprintf(&b, ";title=%q", l.title)
	}
	_ = w.SetResponse(codes.Content, message.AppLinkFormat, bytes.NewReader([]byte(b.String())))
}

// matches applies one RFC 6690 §4.1 filter; a value ending in "*" is a
// prefix.
func (l link) matches(key, val string) bool {
	var have string
	switch key {
	case "href":
		have = l.href
	case "rt":
		have = l.rt
	case "title":
		have = l.title
	case "obs":
		return l.obs
	default:
		return false
	}
	if p, ok := strings.CutSuffix(val, "*"); ok {
		return strings.HasPrefix(have, p)
	}
	return have == val
}

// replyError answers with a code and a diagnostic payload, which carries
// no Content-Format [RFC 7252 §5.5.2].
func replyError(w *responsewriter.ResponseWriter[*udpClient.Conn], e *reqError) {
	_ = w.SetResponse(e.code, message.TextPlain, nil)
	if e.maxAge > 0 {
		w.Message().SetOptionUint32(message.MaxAge, e.maxAge)
	}
	if e.msg != "" {
		w.Message().SetBody(bytes.NewReader([]byte(e.msg)))
	}
}

// codeFor maps a core error onto a CoAP response code: the one place where
// core errors become CoAP codes. auth is true for errors of authentication
// (4.01) rather than of authorization (4.03).
func codeFor(err error, auth bool) codes.Code {
	switch {
	case errors.Is(err, core.ErrBadCredentials):
		return codes.Unauthorized
	case errors.Is(err, core.ErrNotAuthorized):
		if auth {
			return codes.Unauthorized
		}
		return codes.Forbidden
	case errors.Is(err, core.ErrInvalidTopic), errors.Is(err, core.ErrInvalidFilter),
		errors.Is(err, core.ErrTopicTooLong), errors.Is(err, core.ErrClientIDInvalid),
		errors.Is(err, core.ErrSharedNotSupported), errors.Is(err, core.ErrWildcardUnsupported):
		return codes.BadRequest
	case errors.Is(err, core.ErrBanned):
		return codes.Forbidden
	case errors.Is(err, core.ErrQuotaExceeded), errors.Is(err, core.ErrRateLimited):
		return codes.TooManyRequests
	case errors.Is(err, core.ErrServerBusy):
		return codes.ServiceUnavailable
	case errors.Is(err, core.ErrServerShuttingDown), errors.Is(err, core.ErrServerUnavailable),
		errors.Is(err, core.ErrSessionClosed), errors.Is(err, core.ErrStore):
		return codes.ServiceUnavailable
	}
	return codes.InternalServerError
}

func coreError(err error, auth bool) *reqError {
	return &reqError{code: codeFor(err, auth), msg: err.Error(), maxAge: maxAgeOf(core.RetryAfter(err))}
}

// maxAgeOf is a retry wait as a Max-Age: whole seconds, rounded up, at
// least one; 0 for no wait.
func maxAgeOf(d time.Duration) uint32 {
	if d <= 0 {
		return 0
	}
	return uint32(min((d+time.Second-1)/time.Second, 1<<31))
}

// noWait is the context of every authentication: CoAP requests are
// served on the read loop and the peers' goroutines, which must not sleep
// out a throttled login; it is refused with 4.29 and a Max-Age instead.
var noWait = core.NoWait(context.Background())

// overRate refuses a publish of size bytes beyond the sender's
// limits.client_* budget. A datagram sender cannot be slowed by flow
// control, so it is told to wait: 4.29 Too Many Requests with Max-Age
// [RFC 8516], chosen over 5.03 with Max-Age because the limit is this
// client's, not the server's (5.03 answers the listener-wide connection
// rate). Counted; NON requests are answered alike.
func (s *Server) overRate(req *request, size int) *reqError {
	p := req.peer
	if p == nil || p.limit == nil {
		return nil
	}
	p.limitMu.Lock()
	ok, wait := p.limit.Admit(size, false)
	p.limitMu.Unlock()
	if ok {
		return nil
	}
	return &reqError{code: codes.TooManyRequests, msg: "message rate exceeded", maxAge: maxAgeOf(wait)}
}

// nextSubID returns a fresh subscription identifier (never 0).
func (s *Server) nextSubID() uint32 {
	for {
		if id := s.subID.Add(1); id != 0 {
			return id
		}
	}
}

// generatedClientID names a connectionless client that sent no clientid:
// stable per UDP peer, so logs and ACL rules see one client.
func (s *Server) generatedClientID(peer *net.UDPAddr) string {
	return s.generatedClientIDOf(peer.String())
}

func (s *Server) generatedClientIDOf(addr string) string {
	h := maphash.String(s.seed, addr)
	var b [8]byte
	for i := range b {
		b[i] = byte(h >> (8 * i))
	}
	return "coap-" + hex.EncodeToString(b[:])
}

// idleMonitor is go-coap's per-peer inactivity monitor: a peer's
// connection state (deduplication cache, block-wise transfers) is dropped
// after coap.exchange_lifetime without traffic, unless an endpoint still
// sends notifications to it.
type idleMonitor struct {
	s    *Server
	last atomic.Int64
}

func newIdleMonitor(s *Server) *idleMonitor {
	m := &idleMonitor{s: s}
	m.Notify()
	return m
}

func (m *idleMonitor) Notify() { m.last.Store(time.Now().UnixNano()) }

func (m *idleMonitor) CheckInactivity(now time.Time, cc *udpClient.Conn) {
	if now.Sub(time.Unix(0, m.last.Load())) < m.s.cfg.ExchangeLifetime {
		return
	}
	if m.s.hasEndpointAt(cc.RemoteAddr().String()) {
		m.Notify()
		return
	}
	_ = cc.Close()
}
