package interop

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"math"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iotgw/iotgw/cmd/iotgw/app"
	"github.com/iotgw/iotgw/internal/testutil"
)

// waitTimeout bounds every wait for something that must happen. It is
// generous for -race on two shared cores; a passing run never waits for it.
const waitTimeout = 30 * time.Second

// Limits the test gateway runs with; the largest payloads are computed
// from them.
const (
	mqttMaxPacket = 1 << 20 // mqtt.max_packet_size (its default)
	stompMaxFrame = 1 << 20 // stomp.max_frame_size (its default)
	coapMaxBody   = 1 << 18 // coap.max_body_size (lowered from 4 MiB: block-wise at 1 KiB per round trip)
	udpMaxPayload = 65507   // the largest IPv4 UDP datagram payload (65535 − 20 − 8)
	snPublishHdr  = 9       // MQTT-SN PUBLISH header in the 3-byte length form (§5.2.1, §5.4.12)
	unlimited     = math.MaxInt
	qosMinus1     = -1 // MQTT-SN QoS −1 as a publish QoS
	qosUnknown    = -1 // the subscriber's protocol does not show the delivered QoS
	retainUnknown = -1 // ... or the retain flag
	contentTypeCT = "application/json"
	syncTopic     = "interop/sync" // STOMP clients' receipt round trips
)

// msg is a publication as a test asks for it; every driver maps it onto
// its protocol and ignores what its protocol cannot carry (the matrix only
// asks for what the publisher's caps say it carries).
type msg struct {
	Topic       string
	Payload     []byte
	QoS         int // 0..2, or qosMinus1 (MQTT-SN)
	Retain      bool
	ContentType string
	// MQTT 5 extras, carried by MQTT 5 and STOMP (headers).
	UserProps     [][2]string
	ResponseTopic string
	Correlation   []byte
	ExpirySeconds uint32 // 0: none
	// Retransmit asks a publisher that can (MQTT-SN) to send a QoS 2
	// PUBLISH twice before PUBREL, as after a lost PUBREC.
	Retransmit bool
}

// delivery is a message as a subscriber's client saw it.
type delivery struct {
	Topic   string
	Payload []byte
	// QoS is the delivered QoS, qosUnknown when the protocol does not show
	// it. QoSCoarse marks CoAP, where only 0 (NON) and ≥1 (CON) differ.
	QoS       int
	QoSCoarse bool
	Retain    int // 0, 1 or retainUnknown
	Dup       bool
	// ContentType is the MQTT 5 content type, the STOMP content-type or
	// the CoAP Content-Format mapped back to a media type.
	ContentType   string
	PayloadFormat int // MQTT 5 payload format indicator, -1 when absent
	UserProps     [][2]string
	ResponseTopic string
	Correlation   []byte
	HasExpiry     bool
	ExpiryRaw     int64 // MQTT 5: seconds left; STOMP: ms since the epoch
	Headers       map[string]string
}

// client is one protocol client as the tests drive it. Every method runs
// on the test's goroutine and fails the test on errors.
type client interface {
	// Subscribe subscribes and returns once the gateway has acknowledged
	// the subscription, so a publication from another client that starts
	// afterwards reaches it.
	Subscribe(t testing.TB, filter string, qos byte)
	// Publish publishes and returns once the gateway accepted it where
	// the protocol acknowledges (QoS ≥ 1, STOMP receipt, CoAP CON).
	Publish(t testing.TB, m msg)
	// Next returns the next delivery, acknowledging it as its protocol
	// requires; it fails the test after waitTimeout.
	Next(t testing.TB) delivery
	// Close disconnects cleanly (no will).
	Close()
}

// killer is a client that can lose its connection without a clean
// disconnect, so that the gateway publishes its will.
type killer interface {
	Kill(t testing.TB)
}

// will is a client's last will as a test defines it.
type will struct {
	Topic       string
	Payload     []byte
	QoS         byte
	Retain      bool
	ContentType string // MQTT 5 only
	// KeepAlive is the MQTT-SN keep alive in seconds: the gateway notices
	// a silent client after 1.5 × it (MQTT clients are cut off instead).
	KeepAlive uint16
}

// caps says what a protocol carries; the matrix derives every expectation
// from them.
type caps struct {
	pubQoS      []int // QoS levels a publisher can send
	seesQoS     bool  // a subscriber sees the delivered QoS (exactly)
	coarseQoS   bool  // ... or only 0 versus ≥ 1 (CoAP NON/CON)
	seesRetain  bool  // a subscriber sees the retain flag
	contentType bool  // content type both ways
	props       bool  // user properties, response topic, correlation data, expiry
	will        bool  // the client can leave a will
	// maxIn is the largest payload a publisher can send to topic (with the
	// given content type); maxOut the largest a subscriber can receive.
	maxIn  func(topic, contentType string) int
	maxOut func(topic string) int
}

// proto is one row and one column of the matrix.
type proto struct {
	name string
	caps caps
	dial func(t testing.TB, e *env, clientID string, w *will) client
}

// env is one gateway with the protocols it serves.
type env struct {
	gw     *testutil.Gateway
	protos []*proto
	coap   string // CoAP UDP address, "" when CoAP is not wired
	// secured are the protocols over the secured listeners, which every
	// test gateway has on (a test CA's server certificate); tls is the
	// client configuration that trusts that CA.
	secured []*proto
	tls     *tls.Config
}

// coapWired reports whether cmd/iotgw/app configures a CoAP adapter.
func coapWired() bool { return slices.Contains(app.Keys(), "coap.udp") }

// startEnv starts one gateway for a top-level test.
func startEnv(t testing.TB, extra string) *env {
	t.Helper()
	// The limits the largest payloads are computed from, pinned.
	yaml := fmt.Sprintf("mqtt:\n  max_packet_size: %d\nstomp:\n  max_frame_size: %d\n", mqttMaxPacket, stompMaxFrame)
	if coapWired() {
		yaml += fmt.Sprintf("coap:\n  udp: 127.0.0.1:0\n  max_body_size: %d\n", coapMaxBody)
	}
	pki := testutil.NewPKI(t, "interop")
	yaml += pki.TLSYAML(pki.Server("server"))
	yaml += extra
	e := &env{gw: testutil.Start(t, yaml), secured: securedProtos(), tls: pki.ClientConfig(nil)}
	e.protos = []*proto{protoMQTT311(), protoMQTT5(), protoMQTTWS(), protoMQTTSN(), protoSTOMP(), protoSTOMPWS()}
	if coapWired() {
		a := e.gw.Addr("coap.udp")
		if a == nil {
			t.Fatal(`coap.udp is a configuration key but Gateway.Addr("coap.udp") returns nil: wire it in cmd/iotgw/app Addr`)
		}
		e.coap = a.String()
		e.protos = append(e.protos, protoCoAP())
	}
	return e
}

// proto returns the protocol named name.
func (e *env) proto(t testing.TB, name string) *proto {
	for _, p := range e.protos {
		if p.name == name {
			return p
		}
	}
	t.Fatalf("no protocol %q on this gateway", name)
	return nil
}

var clientSeq atomic.Uint64

// uniqueID returns a client id unique in the test binary.
func uniqueID(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, clientSeq.Add(1))
}

// binaryPayload returns n bytes holding every byte value (in its first
// 256 bytes) and not periodic in 256, so a shifted or truncated copy is
// caught.
func binaryPayload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i) ^ byte(i>>8) ^ byte(i>>16)
	}
	return b
}

// want is one expected delivery: matched by topic and payload, then its
// QoS, retain flag and content type are checked where the subscriber's
// protocol shows them.
type want struct {
	topic   string
	payload []byte
	qos     int // expected delivered QoS
	retain  int // expected retain flag; retainUnknown to skip
	ct      *string
	check   func(t testing.TB, d delivery)
}

func (w want) String() string {
	return fmt.Sprintf("%s %s", w.topic, short(w.payload))
}

func short(p []byte) string {
	if len(p) > 40 {
		return fmt.Sprintf("%q… (%d bytes)", p[:40], len(p))
	}
	return fmt.Sprintf("%q", p)
}

// expectAll receives until every wanted delivery arrived, in any order
// (MQTT orders messages per topic and QoS only); a delivery matching no
// outstanding want (a duplicate or a stray) fails the test.
func expectAll(t testing.TB, c client, wants ...want) []delivery {
	t.Helper()
	left := slices.Clone(wants)
	var got []delivery
	for len(left) > 0 {
		d := c.Next(t)
		i := slices.IndexFunc(left, func(w want) bool { return w.topic == d.Topic && bytes.Equal(w.payload, d.Payload) })
		if i < 0 {
			t.Errorf("unexpected delivery (duplicate or stray): %s %s; still waiting for %v", d.Topic, short(d.Payload), left)
			continue
		}
		w := left[i]
		left = slices.Delete(left, i, i+1)
		checkDelivery(t, w, d)
		got = append(got, d)
	}
	return got
}

func checkDelivery(t testing.TB, w want, d delivery) {
	t.Helper()
	switch {
	case d.QoS == qosUnknown:
	case d.QoSCoarse:
		if (d.QoS > 0) != (w.qos > 0) {
			t.Errorf("%s: delivered as QoS class %d (CON ≥ 1, NON 0), want QoS %d", w, d.QoS, w.qos)
		}
	case d.QoS != w.qos:
		t.Errorf("%s: delivered at QoS %d, want %d", w, d.QoS, w.qos)
	}
	if w.retain != retainUnknown && d.Retain != retainUnknown && d.Retain != w.retain {
		t.Errorf("%s: retain flag %d, want %d", w, d.Retain, w.retain)
	}
	if w.ct != nil && d.ContentType != *w.ct {
		t.Errorf("%s: content type %q, want %q", w, d.ContentType, *w.ct)
	}
	if w.check != nil {
		w.check(t, d)
	}
}

// fence publishes a QoS 1 marker on topic and expects exactly it: any
// duplicate still on its way before the marker fails the test.
func fence(t testing.TB, pub, sub client, topic string, pubQoS int) {
	t.Helper()
	p := []byte("fence " + topic)
	pub.Publish(t, msg{Topic: topic, Payload: p, QoS: pubQoS})
	expectAll(t, sub, want{topic: topic, payload: p, qos: pubQoS, retain: 0})
}

// mqttMaxPayload is the largest PUBLISH payload within maxPacket bytes:
// fixed header, remaining length, topic, packet id and (MQTT 5) the
// properties of propsLen bytes with their length.
func mqttMaxPayload(maxPacket int, topic string, v5 bool, propsLen int) int {
	for vlen := 1; vlen <= 4; vlen++ {
		rl := maxPacket - 1 - vlen
		if varintLen(rl) != vlen {
			continue
		}
		n := rl - 2 - len(topic) - 2
		if v5 {
			n -= varintLen(propsLen) + propsLen
		}
		return n
	}
	return 0
}

func varintLen(n int) int {
	l := 1
	for n >= 128 {
		n >>= 7
		l++
	}
	return l
}

// stompMaxBody is the largest SEND body within maxFrame bytes for the
// headers go-stomp writes (content-length first, then the rest), as the
// adapter counts: command line, headers and blank line, then body and NUL.
func stompMaxBody(maxFrame int, headers ...string) int {
	fixed := len("SEND\n") + len("\n") + 1 // command, blank line, NUL
	for _, h := range headers {
		fixed += len(h) + 1
	}
	// content-length:<n> where n depends on the body size itself.
	for digits := 1; digits < 10; digits++ {
		n := maxFrame - fixed - len("content-length:\n") - digits
		if len(fmt.Sprint(n)) == digits {
			return n
		}
	}
	return 0
}
