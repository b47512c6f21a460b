package interop

// STOMP 1.2 over TCP and over WebSocket (and their TLS twins), driven by
// go-stomp's client; over
// WebSocket the client runs on a gorilla/websocket connection presented as
// a byte stream (wsStream), the way a browser library frames STOMP.

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/go-stomp/stomp/v3"
	"github.com/go-stomp/stomp/v3/frame"
	"github.com/gorilla/websocket"
)

// Headers of the adapter's mapping (README "STOMP quick start").
const (
	hdrQoS    = "qos"
	hdrRetain = "retain"
)

func stompCaps() caps {
	return caps{
		pubQoS:      []int{0, 1, 2},
		seesRetain:  true,
		contentType: true,
		props:       true,
		maxIn: func(topic, ct string) int {
			hs := []string{"destination:" + topic, hdrQoS + ":1"}
			if ct != "" {
				hs = append(hs, "content-type:"+ct)
			}
			return stompMaxBody(stompMaxFrame, hs...)
		},
		maxOut: func(string) int { return unlimited },
	}
}

func protoSTOMP() *proto {
	return &proto{name: "stomp", caps: stompCaps(), dial: func(t testing.TB, e *env, id string, _ *will) client {
		return dialSTOMP(t, e.gw.STOMPAddr(), "", id)
	}}
}

func protoSTOMPWS() *proto {
	return &proto{name: "stompws", caps: stompCaps(), dial: func(t testing.TB, e *env, id string, _ *will) client {
		return dialSTOMP(t, "", e.gw.STOMPWSURL(), id)
	}}
}

type stompClient struct {
	c    *stomp.Conn
	in   chan delivery
	subs []*stomp.Subscription
	wg   sync.WaitGroup
	acks chan *stomp.Message // to acknowledge, in order
	done chan struct{}
	once sync.Once
}

// ackLoop sends the ACKs of client-individual subscriptions.
func (sc *stompClient) ackLoop() {
	for {
		select {
		case m := <-sc.acks:
			_ = sc.c.Ack(m)
		case <-sc.done:
			return
		}
	}
}

// dialSTOMP connects over TCP to addr, or over WebSocket to wsURL.
func dialSTOMP(t testing.TB, addr, wsURL, id string, extra ...func(*stomp.Conn) error) *stompClient {
	t.Helper()
	return dialSTOMPTLS(t, addr, wsURL, id, nil, extra...)
}

// dialSTOMPTLS is dialSTOMP over TLS (wsURL a wss:// one) when tlsc is
// not nil.
func dialSTOMPTLS(t testing.TB, addr, wsURL, id string, tlsc *tls.Config, extra ...func(*stomp.Conn) error) *stompClient {
	t.Helper()
	opts := []func(*stomp.Conn) error{
		stomp.ConnOpt.AcceptVersion(stomp.V12), stomp.ConnOpt.Host("iotgw"),
		stomp.ConnOpt.HeartBeat(0, 0), stomp.ConnOpt.Header("client-id", id),
		stomp.ConnOpt.MsgSendTimeout(waitTimeout), stomp.ConnOpt.RcvReceiptTimeout(waitTimeout),
		stomp.ConnOpt.DisconnectReceiptTimeout(waitTimeout), stomp.ConnOpt.Logger(quietLogger{}),
	}
	opts = append(opts, extra...)
	var c *stomp.Conn
	var err error
	if wsURL != "" {
		var ws *wsStream
		ws, err = dialWSStream(wsURL, "v12.stomp", tlsc)
		if err == nil {
			c, err = stomp.Connect(ws, opts...)
		}
	} else if tlsc != nil {
		var nc net.Conn
		nc, err = tls.DialWithDialer(&net.Dialer{Timeout: waitTimeout}, "tcp", addr, tlsc)
		if err == nil {
			c, err = stomp.Connect(nc, opts...)
		}
	} else {
		c, err = stomp.Dial("tcp", addr, opts...)
	}
	if err != nil {
		t.Fatalf("stomp %s connect: %v", id, err)
	}
	sc := &stompClient{c: c, in: make(chan delivery, 4096), acks: make(chan *stomp.Message, 4096), done: make(chan struct{})}
	go sc.ackLoop()
	t.Cleanup(sc.Close)
	return sc
}

// sync returns once the gateway has processed every frame sent before:
// a SEND with a receipt, answered in order [STOMP 1.2 "RECEIPT"].
func (sc *stompClient) sync(t testing.TB) {
	t.Helper()
	if err := sc.c.Send(syncTopic, "", nil, stomp.SendOpt.Header(hdrQoS, "0"), stomp.SendOpt.Receipt); err != nil {
		t.Fatalf("stomp sync: %v", err)
	}
}

// Subscribe maps QoS onto the ack mode (auto for 0, client-individual for
// 1 and 2) and states it in the qos header.
func (sc *stompClient) Subscribe(t testing.TB, filter string, qos byte) {
	t.Helper()
	mode := stomp.AckAuto
	if qos > 0 {
		mode = stomp.AckClientIndividual
	}
	sub, err := sc.c.Subscribe(filter, mode, stomp.SubscribeOpt.Header(hdrQoS, strconv.Itoa(int(qos))))
	if err != nil {
		t.Fatalf("stomp subscribe %s: %v", filter, err)
	}
	sc.subs = append(sc.subs, sub)
	sc.wg.Add(1)
	go func() {
		defer sc.wg.Done()
		for m := range sub.C {
			if m.Err != nil {
				sc.in <- delivery{Topic: "!error", Payload: []byte(m.Err.Error())}
				return
			}
			if mode != stomp.AckAuto {
				// Not from this goroutine: go-stomp's connection loop may
				// be waiting for it to take the next MESSAGE while the
				// ACK waits for the loop.
				sc.acks <- m
			}
			sc.in <- fromSTOMP(m)
		}
	}()
	sc.sync(t)
}

func fromSTOMP(m *stomp.Message) delivery {
	d := delivery{Topic: m.Destination, Payload: m.Body, QoS: qosUnknown, ContentType: m.ContentType,
		Headers: map[string]string{}}
	if m.Header.Get(hdrRetain) == "true" {
		d.Retain = 1
	}
	for i := 0; i < m.Header.Len(); i++ {
		k, v := m.Header.GetAt(i)
		d.Headers[k] = v
		switch k {
		case frame.Destination, frame.ContentType, frame.ContentLength, frame.Subscription, frame.MessageId,
			frame.Ack, hdrRetain, "redelivered":
		case "reply-to":
			d.ResponseTopic = v
		case "correlation-id":
			d.Correlation = []byte(v)
		case "expires":
			if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
				d.HasExpiry, d.ExpiryRaw = true, ms
			}
		default:
			d.UserProps = append(d.UserProps, [2]string{k, v})
		}
	}
	return d
}

// Publish sends with a receipt (so it returns once the gateway routed
// the message), except for bodies near the frame limit, where the
// receipt header would not fit the computed maximum.
func (sc *stompClient) Publish(t testing.TB, m msg) {
	t.Helper()
	opts := []func(*frame.Frame) error{stomp.SendOpt.Header(hdrQoS, strconv.Itoa(max(m.QoS, 0)))}
	if m.Retain {
		opts = append(opts, stomp.SendOpt.Header(hdrRetain, "true"))
	}
	for _, u := range m.UserProps {
		opts = append(opts, stomp.SendOpt.Header(u[0], u[1]))
	}
	if m.ResponseTopic != "" {
		opts = append(opts, stomp.SendOpt.Header("reply-to", m.ResponseTopic))
	}
	if m.Correlation != nil {
		opts = append(opts, stomp.SendOpt.Header("correlation-id", string(m.Correlation)))
	}
	if m.ExpirySeconds > 0 {
		exp := time.Now().Add(time.Duration(m.ExpirySeconds) * time.Second).UnixMilli()
		opts = append(opts, stomp.SendOpt.Header("expires", strconv.FormatInt(exp, 10)))
	}
	if len(m.Payload) < stompMaxFrame/2 {
		opts = append(opts, stomp.SendOpt.Receipt)
	}
	if err := sc.c.Send(m.Topic, m.ContentType, m.Payload, opts...); err != nil {
		t.Fatalf("stomp send %s: %v", m.Topic, err)
	}
}

func (sc *stompClient) Next(t testing.TB) delivery {
	t.Helper()
	select {
	case d := <-sc.in:
		if d.Topic == "!error" {
			t.Fatalf("stomp: %s", d.Payload)
		}
		return d
	case <-time.After(waitTimeout):
		t.Fatalf("stomp: no message within %v", waitTimeout)
		return delivery{}
	}
}

func (sc *stompClient) Close() {
	sc.once.Do(func() {
		close(sc.done)
		if err := sc.c.Disconnect(); err != nil {
			_ = sc.c.MustDisconnect()
		}
	})
}

// wsStream presents a WebSocket as the byte stream go-stomp reads and
// writes: reads run across message boundaries, each write is one message
// (text when it is UTF-8, as browser libraries send frames, else binary).
type wsStream struct {
	ws *websocket.Conn
	r  io.Reader
	mu sync.Mutex
}

func dialWSStream(wsURL, subprotocol string, tlsc *tls.Config) (*wsStream, error) {
	d := websocket.Dialer{Subprotocols: []string{subprotocol}, HandshakeTimeout: waitTimeout,
		Proxy: func(*http.Request) (*url.URL, error) { return nil, nil }, TLSClientConfig: tlsc}
	ws, resp, err := d.Dial(wsURL, nil)
	if err != nil {
		return nil, fmt.Errorf("websocket %s: %w", wsURL, err)
	}
	if resp.Body != nil {
		resp.Body.Close()
	}
	if ws.Subprotocol() != subprotocol {
		ws.Close()
		return nil, fmt.Errorf("websocket %s: subprotocol %q, want %q", wsURL, ws.Subprotocol(), subprotocol)
	}
	return &wsStream{ws: ws}, nil
}

func (s *wsStream) Read(p []byte) (int, error) {
	for {
		if s.r == nil {
			_, r, err := s.ws.NextReader()
			if err != nil {
				return 0, err
			}
			s.r = r
		}
		n, err := s.r.Read(p)
		if err == io.EOF {
			s.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

func (s *wsStream) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	kind := websocket.BinaryMessage
	if utf8.Valid(p) {
		kind = websocket.TextMessage
	}
	if err := s.ws.WriteMessage(kind, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (s *wsStream) Close() error { return s.ws.Close() }

// quietLogger keeps go-stomp's informational lines (a subscription ended
// by DISCONNECT) out of the test output; errors reach the tests through
// the API.
type quietLogger struct{}

func (quietLogger) Debugf(string, ...interface{})   {}
func (quietLogger) Infof(string, ...interface{})    {}
func (quietLogger) Warningf(string, ...interface{}) {}
func (quietLogger) Errorf(string, ...interface{})   {}
func (quietLogger) Debug(string)                    {}
func (quietLogger) Info(string)                     {}
func (quietLogger) Warning(string)                  {}
func (quietLogger) Error(string)                    {}
