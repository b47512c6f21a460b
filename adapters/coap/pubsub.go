package coap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"
	"unicode/utf8"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/net/responsewriter"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/iotgw/iotgw/core"
)

type respWriter = *responsewriter.ResponseWriter[*udpClient.Conn]

// handlePubSub serves /ps/{topic}: POST or PUT publish, GET with
// Observe=0 subscribes, GET with Observe=1 or DELETE unsubscribes, and a
// plain GET reads the retained message.
func (s *Server) handlePubSub(w respWriter, r *pool.Message, req *request, peer *net.UDPAddr) {
	switch req.method {
	case codes.POST, codes.PUT:
		s.publish(w, r, req, peer)
	case codes.GET:
		switch {
		case req.observe == 0 && req.block2 <= 0:
			s.subscribe(w, r, req, peer)
		case req.observe == 1:
			s.unobserve(w, req, peer)
		default:
			// A Block2 request for a later block of a notification may
			// repeat Observe; it is a read, not a registration.
			s.read(w, req, peer)
		}
	case codes.DELETE:
		s.unsubscribe(w, req, peer)
	default:
		replyError(w, &reqError{code: codes.MethodNotAllowed, msg: "/ps supports GET, POST, PUT and DELETE"})
	}
}

// caller is who sent a request: a connection-mode endpoint, or a
// connectionless client described by its query.
type caller struct {
	ep   *endpoint
	info *core.ClientInfo
	// verified: info.Username is a DTLS-verified identity, and no
	// password is checked.
	verified bool
}

// identify resolves a request's client. A request with a token is in
// connection mode and must name a live connection (4.01 otherwise, as
// must any request when coap.connection_required is set); others are
// connectionless, with the query's clientid or one generated per peer.
func (s *Server) identify(req *request, peer *net.UDPAddr) (caller, *reqError) {
	q := &req.q
	if q.token != "" || s.cfg.ConnectionRequired {
		if q.clientID == "" || q.token == "" {
			return caller{}, &reqError{code: codes.Unauthorized, msg: "connection mode: clientid and token are required"}
		}
		ep := s.connection(q.clientID, q.token)
		if ep == nil {
			return caller{}, &reqError{code: codes.Unauthorized, msg: "connection mode: unknown clientid or invalid token"}
		}
		ep.touch(peer, req.local)
		return caller{ep: ep}, nil
	}
	id, remote := q.clientID, req.peerAddr
	if remote == "" {
		remote = peer.String()
	}
	if id == "" {
		if id = req.genID; id == "" {
			id = s.generatedClientID(peer)
		}
	}
	info := &core.ClientInfo{Protocol: core.ProtoCoAP, ClientID: id, Username: q.username,
		Password: q.password, Listener: req.listener(), Remote: remote}
	if req.identity != "" {
		// The DTLS session verified the client: its identity is the
		// user name, and the credential (as core.ConnectRequest.Identity).
		info.Username, info.Password = req.identity, nil
		return caller{info: info, verified: true}, nil
	}
	return caller{info: info}, nil
}

// authenticate runs the Authenticator for a connectionless request (a
// connection was authenticated when it was made).
func (s *Server) authenticate(c caller) *reqError {
	if c.ep != nil || c.verified {
		return nil
	}
	if err := s.b.Authenticate(noWait, c.info); err != nil {
		return coreError(err, true)
	}
	return nil
}

func (s *Server) defaultQoS(req *request) int {
	if req.q.qos >= 0 {
		return req.q.qos
	}
	if req.con {
		return s.cfg.DefaultQoSCon
	}
	return s.cfg.DefaultQoSNon
}

// publish routes the request body to the topic and answers 2.04 Changed
// once the core accepted it. go-coap answers a retransmitted CON (same
// message id) from its response cache, so it publishes once.
func (s *Server) publish(w respWriter, r *pool.Message, req *request, peer *net.UDPAddr) {
	topic := req.topic()
	if topic == "" {
		replyError(w, badRequest("publish needs a topic: /ps/{topic}"))
		return
	}
	if hasWildcard(topic) {
		replyError(w, badRequest("a publish topic must not contain + or #"))
		return
	}
	c, rerr := s.identify(req, peer)
	if rerr != nil {
		replyError(w, rerr)
		return
	}
	body, err := readBody(r, s.cfg.MaxBodySize)
	if errors.Is(err, errBodyTooLarge) {
		replyError(w, &reqError{code: codes.RequestEntityTooLarge, msg: fmt.Sprintf("body exceeds %d bytes", s.cfg.MaxBodySize)})
		w.Message().SetOptionUint32(message.Size1, uint32(s.cfg.MaxBodySize))
		return
	}
	if err != nil {
		replyError(w, badRequest("cannot read body: %v", err))
		return
	}
	if rerr := s.overRate(req, len(body)); rerr != nil {
		replyError(w, rerr)
		return
	}
	msg := s.publishMessage(req, topic, body)
	if c.ep != nil {
		err = c.ep.sess.Publish(msg)
		// CoAP publishers are not held, CON ones included: a handler
		// that waited would stop the peer's go-coap goroutine, whose
		// full channel then stops the read loop of every client, and a
		// held piggybacked ACK brings the client's retransmissions
		// (docs/design.md, CoAP adapter). A connectionless publish has
		// no session to collect waits in; a connection's are dropped.
		c.ep.sess.SkipWait()
	} else if rerr = s.authenticate(c); rerr != nil {
		replyError(w, rerr)
		return
	} else {
		err = s.b.PublishAs(c.info, msg)
	}
	if err != nil {
		replyError(w, coreError(err, false))
		return
	}
	_ = w.SetResponse(codes.Changed, message.TextPlain, nil)
}

// publishMessage is the core message of a publish request: its QoS,
// retain flag, Content-Format and expiry from the request (shared by the
// fast path, so both paths publish the same message).
func (s *Server) publishMessage(req *request, topic string, body []byte) *core.Message {
	msg := &core.Message{Topic: topic, Payload: body, QoS: byte(s.defaultQoS(req)), Retain: req.q.retain, Arrived: req.arrived}
	if req.hasCF {
		applyContentFormat(msg, req.cf)
		if req.cf == uint32(message.TextPlain) && utf8.Valid(body) {
			msg.PayloadFormat = 1
		}
	}
	if req.q.hasExpiry {
		msg.ExpiresAt = time.Now().Add(req.q.expiry)
	}
	return msg
}

// subscribe registers an observation [RFC 7641 §3.1]: a core subscription
// with its own identifier. The response is 2.05 with an Observe value;
// retained messages follow it as notifications.
func (s *Server) subscribe(w respWriter, r *pool.Message, req *request, peer *net.UDPAddr) {
	filter := req.topic()
	if filter == "" {
		replyError(w, badRequest("observe needs a topic filter: /ps/{filter}"))
		return
	}
	if len(req.token) == 0 {
		replyError(w, badRequest("observe needs a non-empty token"))
		return
	}
	c, rerr := s.identify(req, peer)
	if rerr != nil {
		replyError(w, rerr)
		return
	}
	ep := c.ep
	if ep == nil {
		if ep, rerr = s.observer(c, peer, req.local); rerr != nil {
			replyError(w, rerr)
			return
		}
	}
	o, res, seq := ep.observe(filter, req.token, byte(s.defaultQoS(req)), req.arrived)
	if res.Err != nil {
		if !ep.connMode {
			ep.dropIfUnused()
		}
		replyError(w, coreError(res.Err, false))
		return
	}
	m := w.Message()
	m.SetCode(codes.Content)
	m.SetObserve(seq)
	afterResponse(w, func() {
		ep.markReady(o)
		ep.sess.SendRetained(res)
	})
}

// dropIfUnused ends a connectionless endpoint that has no observation
// (its first registration failed).
func (ep *endpoint) dropIfUnused() {
	ep.mu.Lock()
	empty := len(ep.filters) == 0
	ep.mu.Unlock()
	if empty {
		ep.close(nil)
	}
}

// candidates are the endpoints a deregistration may concern: the
// connection named by the query, the endpoints at the sender's address,
// and the connectionless client named by the query's clientid.
func (s *Server) candidates(req *request, peer *net.UDPAddr) []*endpoint {
	var out []*endpoint
	q := &req.q
	if q.clientID != "" && q.token != "" {
		if ep := s.connection(q.clientID, q.token); ep != nil {
			out = append(out, ep)
		}
	}
	s.mu.Lock()
	out = append(out, s.byAddr[peer.String()]...)
	if q.clientID != "" {
		if ep := s.lessByID[q.clientID]; ep != nil {
			out = append(out, ep)
		}
	}
	s.mu.Unlock()
	return out
}

// unobserve handles GET with Observe=1: the observation with the
// request's token (or, as EMQX does, of the filter) ends
// [RFC 7641 §3.6]. The answer is 2.05 without Observe.
func (s *Server) unobserve(w respWriter, req *request, peer *net.UDPAddr) {
	cands := s.candidates(req, peer)
	done := false
	if len(req.token) > 0 {
		for _, ep := range cands {
			if o := ep.findByToken(req.token); o != nil {
				ep.removeObservation(o, "deregistered")
				done = true
				break
			}
		}
	}
	if !done {
		s.dropFilter(cands, req.topic())
	}
	w.Message().SetCode(codes.Content)
}

// unsubscribe handles DELETE /ps/{filter}; 2.02 Deleted also when there
// was no observation [RFC 7252 §5.8.4].
func (s *Server) unsubscribe(w respWriter, req *request, peer *net.UDPAddr) {
	filter := req.topic()
	if filter == "" {
		replyError(w, badRequest("unsubscribe needs a topic filter: /ps/{filter}"))
		return
	}
	if req.q.token != "" || s.cfg.ConnectionRequired {
		if _, rerr := s.identify(req, peer); rerr != nil {
			replyError(w, rerr)
			return
		}
	}
	s.dropFilter(s.candidates(req, peer), filter)
	_ = w.SetResponse(codes.Deleted, message.TextPlain, nil)
}

func (s *Server) dropFilter(cands []*endpoint, filter string) {
	for _, ep := range cands {
		if o := ep.findByFilter(filter); o != nil {
			ep.removeObservation(o, "unsubscribed")
			return
		}
	}
}

// read handles a plain GET: the topic's retained message (2.05 with its
// Content-Format) or 4.04; a Block2 request for a later block of a large
// notification gets that notification [RFC 7959 §2.6].
func (s *Server) read(w respWriter, req *request, peer *net.UDPAddr) {
	topic := req.topic()
	if topic == "" {
		replyError(w, badRequest("read needs a topic: /ps/{topic}"))
		return
	}
	if req.block2 > 0 {
		for _, ep := range s.candidates(req, peer) {
			if l := ep.largeFor(topic); l != nil {
				m := w.Message()
				m.SetCode(codes.Content)
				setRepresentation(m, l.msg, l.etag, hasWildcard(topic))
				return
			}
		}
	}
	if hasWildcard(topic) {
		replyError(w, badRequest("a plain GET reads one topic; observe (Observe=0) to subscribe to a filter"))
		return
	}
	c, rerr := s.identify(req, peer)
	if rerr == nil {
		rerr = s.authenticate(c)
	}
	if rerr != nil {
		replyError(w, rerr)
		return
	}
	info := c.info
	if c.ep != nil {
		info = c.ep.sess.Info()
	}
	if !s.b.Authorize(info, core.Access{Action: core.ActionSubscribe, Topic: topic}) {
		replyError(w, coreError(core.ErrNotAuthorized, false))
		return
	}
	msg, ok := s.b.Retained(topic)
	if !ok {
		replyError(w, &reqError{code: codes.NotFound, msg: "no retained message on " + topic})
		return
	}
	m := w.Message()
	m.SetCode(codes.Content)
	// The ETag lets a client fetching block by block notice that the
	// retained message changed in between [RFC 7959 §2.4].
	setRepresentation(m, msg, binary.BigEndian.AppendUint64(nil, uint64(msg.Created.UnixNano())), false)
}
