package interop

// CoAP (RFC 7252, Observe RFC 7641, block-wise RFC 7959) over UDP, driven
// by go-coap's client, which does block-wise transfers both ways and
// acknowledges CON notifications itself.

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	coapnet "github.com/plgd-dev/go-coap/v3/net/client"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"
)

// coapMediaTypes maps the Content-Format numbers the tests use back to
// the media types of the IANA registry, as the adapter does.
var coapMediaTypes = map[uint16]string{
	0:  "text/plain;charset=utf-8",
	42: "application/octet-stream",
	50: "application/json",
	60: "application/cbor",
}

// coapClientMaxMessage is the go-coap client's largest assembled body.
const coapClientMaxMessage = 4 << 20

func protoCoAP() *proto {
	return &proto{name: "coap", caps: coapCaps(), dial: func(t testing.TB, e *env, _ string, _ *will) client {
		return dialCoAP(t, e.coap)
	}}
}

func coapCaps() caps {
	return caps{
		pubQoS:      []int{0, 1, 2},
		coarseQoS:   true,
		contentType: true,
		maxIn:       func(string, string) int { return coapMaxBody },
		maxOut:      func(string) int { return unlimited },
	}
}

// coapClientOptions are the go-coap client options of every CoAP driver,
// UDP or DTLS. go-coap assembles block-wise bodies up to 64 KiB within
// 3 s by default; a client that wants large messages raises both (the
// transfer time for -race on two busy cores).
func coapClientOptions() []udp.Option {
	return []udp.Option{options.WithErrors(func(error) {}), options.WithMaxMessageSize(coapClientMaxMessage),
		options.WithBlockwise(true, blockwise.SZX1024, waitTimeout)}
}

// newCoAPClient is the driver over a go-coap connection.
func newCoAPClient(t testing.TB, cc *udpClient.Conn) *coapClient {
	c := &coapClient{cc: cc, in: make(chan delivery, 4096)}
	t.Cleanup(c.Close)
	return c
}

type coapClient struct {
	cc  *udpClient.Conn
	in  chan delivery
	mu  sync.Mutex
	obs []coapnet.Observation
}

func dialCoAP(t testing.TB, addr string) *coapClient {
	t.Helper()
	cc, err := udp.Dial(addr, coapClientOptions()...)
	if err != nil {
		t.Fatalf("coap dial %s: %v", addr, err)
	}
	return newCoAPClient(t, cc)
}

// psPath is the /ps URI of a topic or filter; "#" is percent-encoded, as
// a URI needs.
func psPath(topic string) string {
	return "/ps/" + strings.ReplaceAll(topic, "#", "%23")
}

// coapMaxTransmitWait is MAX_TRANSMIT_WAIT (RFC 7252 §4.8.2): how long a
// CoAP client may wait for the response to a CON request while its
// retransmissions recover lost datagrams. A client that gives up earlier
// reports losses CoAP would have repaired.
const coapMaxTransmitWait = 93 * time.Second

func coapCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), coapMaxTransmitWait)
}

// Subscribe registers an observation with the QoS in the query; it
// returns after the 2.05 registration response.
func (c *coapClient) Subscribe(t testing.TB, filter string, qos byte) {
	t.Helper()
	ctx, cancel := coapCtx()
	defer cancel()
	var first sync.Once
	registered := make(chan codes.Code, 1)
	o, err := c.cc.Observe(ctx, psPath(filter), func(m *pool.Message) {
		isResponse := false
		first.Do(func() {
			isResponse = true
			registered <- m.Code()
		})
		if isResponse {
			return
		}
		c.in <- fromCoAP(m, filter)
	}, message.Option{ID: message.URIQuery, Value: []byte("qos=" + strconv.Itoa(int(qos)))})
	if err != nil {
		t.Fatalf("coap observe %s: %v", filter, err)
	}
	select {
	case code := <-registered:
		if code != codes.Content {
			t.Fatalf("coap observe %s: %v", filter, code)
		}
	case <-time.After(coapMaxTransmitWait):
		t.Fatalf("coap observe %s: no registration response", filter)
	}
	c.mu.Lock()
	c.obs = append(c.obs, o)
	c.mu.Unlock()
}

// fromCoAP reads a notification: the topic from Location-Path (wildcard
// observations) or the observed filter itself.
func fromCoAP(m *pool.Message, filter string) delivery {
	d := delivery{Topic: sharedInner(filter), QoS: 0, QoSCoarse: true, Retain: retainUnknown}
	if m.Type() == message.Confirmable {
		d.QoS = 1
	}
	body, err := m.ReadBody()
	if err != nil {
		d.Topic = "!error"
		d.Payload = []byte(err.Error())
		return d
	}
	d.Payload = body
	if d.Payload == nil {
		d.Payload = []byte{}
	}
	var loc []string
	for _, o := range m.Options() {
		if o.ID == message.LocationPath {
			loc = append(loc, string(o.Value))
		}
	}
	if len(loc) > 1 && loc[0] == "ps" {
		d.Topic = strings.Join(loc[1:], "/")
	}
	if cf, err := m.ContentFormat(); err == nil {
		if mt, ok := coapMediaTypes[uint16(cf)]; ok {
			d.ContentType = mt
		} else {
			d.ContentType = fmt.Sprintf("cf:%d", cf)
		}
	}
	if age, err := m.GetOptionUint32(message.MaxAge); err == nil {
		d.HasExpiry, d.ExpiryRaw = true, int64(age)
	}
	return d
}

// sharedInner strips a shared subscription's "$share/{group}/" or
// "$queue/" prefix: the topic of a notification on an exact filter.
func sharedInner(filter string) string {
	if rest, ok := strings.CutPrefix(filter, "$queue/"); ok {
		return rest
	}
	if rest, ok := strings.CutPrefix(filter, "$share/"); ok {
		if _, inner, ok := strings.Cut(rest, "/"); ok {
			return inner
		}
	}
	return filter
}

// Publish maps QoS onto the message type where it can (QoS 0: NON, QoS 1:
// CON, the gateway's defaults) and onto the qos query for QoS 2.
func (c *coapClient) Publish(t testing.TB, m msg) {
	t.Helper()
	ctx, cancel := coapCtx()
	defer cancel()
	var q []message.Option
	if m.QoS == 2 {
		q = append(q, message.Option{ID: message.URIQuery, Value: []byte("qos=2")})
	}
	if m.Retain {
		q = append(q, message.Option{ID: message.URIQuery, Value: []byte("retain=true")})
	}
	if m.ExpirySeconds > 0 {
		q = append(q, message.Option{ID: message.URIQuery, Value: []byte("expiry=" + strconv.Itoa(int(m.ExpirySeconds)))})
	}
	cf := message.AppOctets
	if m.ContentType != "" {
		found := false
		for n, mt := range coapMediaTypes {
			if mt == m.ContentType {
				cf, found = message.MediaType(n), true
			}
		}
		if !found {
			t.Fatalf("coap: no Content-Format for %q", m.ContentType)
		}
	}
	req, err := c.cc.NewPostRequest(ctx, psPath(m.Topic), cf, bytes.NewReader(m.Payload), q...)
	if err != nil {
		t.Fatalf("coap post %s: %v", m.Topic, err)
	}
	defer c.cc.ReleaseMessage(req)
	if m.ContentType == "" {
		req.Remove(message.ContentFormat)
	}
	if m.QoS == 0 {
		req.SetType(message.NonConfirmable)
	}
	resp, err := c.cc.Do(req)
	if err != nil {
		t.Fatalf("coap post %s: %v", m.Topic, err)
	}
	defer c.cc.ReleaseMessage(resp)
	if resp.Code() != codes.Changed {
		body, _ := resp.ReadBody()
		t.Fatalf("coap post %s: %v %s", m.Topic, resp.Code(), body)
	}
}

func (c *coapClient) Next(t testing.TB) delivery {
	t.Helper()
	select {
	case d := <-c.in:
		if d.Topic == "!error" {
			t.Fatalf("coap notification: %s", d.Payload)
		}
		return d
	case <-time.After(waitTimeout):
		t.Fatalf("coap: no notification within %v", waitTimeout)
		return delivery{}
	}
}

func (c *coapClient) Close() {
	c.mu.Lock()
	obs := c.obs
	c.obs = nil
	c.mu.Unlock()
	for _, o := range obs {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = o.Cancel(ctx)
		cancel()
	}
	_ = c.cc.Close()
}
