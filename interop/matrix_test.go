package interop

import (
	"bytes"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// matrixWidth is how many publisher × subscriber pairs run at once. The
// pairs mostly wait on the network, so more than GOMAXPROCS run side by
// side; go test's -parallel (GOMAXPROCS by default) would allow 2.
const matrixWidth = 8

// TestMatrix runs every publisher protocol against every subscriber
// protocol on one gateway. Each pair has its own two clients and its own
// topics under ix/{publisher}/{subscriber}/, and checks, in order:
//
//   - exact: one publication per QoS the publisher has, through an exact
//     filter subscribed at QoS 2: delivered at the publisher's QoS (never
//     upgraded; MQTT-SN QoS −1 arrives as 0);
//   - wildcard: through a "+" and a "#" filter;
//   - downgrade: QoS 2 publications through filters subscribed at QoS 0
//     and 1 arrive at QoS 0 and 1;
//   - once: five QoS 2 publications (MQTT-SN publishers send each twice,
//     as after a lost PUBREC) arrive exactly once each;
//   - content type, where both ends carry one, and MQTT 5 properties
//     (user properties, response topic, correlation data, expiry) where
//     both ends carry them; otherwise the message still arrives;
//   - binary: a payload holding all 256 byte values at the largest size
//     the pair can carry;
//   - empty: a zero-length payload;
//   - topic-name: a topic with UTF-8, a space and a colon;
//   - retained: a retained publication reaches a subscription made after
//     it, flagged retained, with its content type where both ends carry
//     one;
//   - retained-cleared: an empty retained publication deletes it, so a
//     new subscription gets nothing;
//   - fence: a last QoS 1 marker arrives with nothing before it, so no
//     duplicate of anything above is still on its way.
//
// One more row runs the stream protocols over their secured listeners
// (TLS, WebSocket over TLS), as a ring of pairs among themselves
// (secured_test.go), with the same checks.
func TestMatrix(t *testing.T) {
	e := startEnv(t, "")
	type pair struct{ p, s *proto }
	var pairs []pair
	for _, p := range e.protos {
		for _, s := range e.protos {
			pairs = append(pairs, pair{p, s})
		}
	}
	if testing.Short() {
		// -short: each protocol once as publisher and once as subscriber
		// (a diagonal shifted by one), still every check.
		var some []pair
		for i, p := range e.protos {
			some = append(some, pair{p, e.protos[(i+1)%len(e.protos)]})
		}
		pairs = some
	}
	for _, r := range securedRing(e.secured) {
		pairs = append(pairs, pair{r[0], r[1]})
	}
	if keys := undrivenSecured(); len(keys) > 0 {
		t.Errorf("secured listeners with no driver in the matrix: %v (add one to secured_test.go)", keys)
	}
	start := time.Now()
	// Subtests are started from several goroutines at once (t.Run allows
	// it), bounded by matrixWidth.
	sem := make(chan struct{}, matrixWidth)
	var wg sync.WaitGroup
	for _, pr := range pairs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			t.Run(pr.p.name+"-to-"+pr.s.name, func(t *testing.T) { runPair(t, e, pr.p, pr.s) })
		}()
	}
	wg.Wait()
	t.Logf("%d pairs (%d protocols, %d secured) in %v", len(pairs), len(e.protos), len(e.secured),
		time.Since(start).Round(time.Millisecond))
}

// pubQoSMax is the highest QoS the publisher can send.
func pubQoSMax(p *proto) int { return slices.Max(p.caps.pubQoS) }

// deliveredQoS is the QoS a subscription at subQoS receives from a
// publication at pubQoS: min of the two, QoS −1 counting as 0.
func deliveredQoS(pubQoS, subQoS int) int { return max(min(pubQoS, subQoS), 0) }

func runPair(t *testing.T, e *env, P, S *proto) {
	base := fmt.Sprintf("ix/%s/%s", P.name, S.name)
	pub := P.dial(t, e, uniqueID("pub-"+P.name), nil)
	sub := S.dial(t, e, uniqueID("sub-"+S.name), nil)
	top := pubQoSMax(P)

	sub.Subscribe(t, base+"/exact", 2)
	sub.Subscribe(t, base+"/w/+/x", 2)
	sub.Subscribe(t, base+"/h/#", 1)
	sub.Subscribe(t, base+"/q0", 0)
	sub.Subscribe(t, base+"/q1", 1)

	t.Run("exact", func(t *testing.T) {
		var ws []want
		for _, q := range P.caps.pubQoS {
			p := []byte(fmt.Sprintf("exact at QoS %d from %s", q, P.name))
			pub.Publish(t, msg{Topic: base + "/exact", Payload: p, QoS: q})
			ws = append(ws, want{topic: base + "/exact", payload: p, qos: deliveredQoS(q, 2), retain: 0})
		}
		expectAll(t, sub, ws...)
	})

	t.Run("wildcard", func(t *testing.T) {
		plus, hash := []byte("through +"), []byte("through #")
		pub.Publish(t, msg{Topic: base + "/w/level/x", Payload: plus, QoS: 1})
		pub.Publish(t, msg{Topic: base + "/h/a/b/c", Payload: hash, QoS: top})
		expectAll(t, sub,
			want{topic: base + "/w/level/x", payload: plus, qos: 1, retain: 0},
			want{topic: base + "/h/a/b/c", payload: hash, qos: deliveredQoS(top, 1), retain: 0})
	})

	t.Run("downgrade", func(t *testing.T) {
		p0, p1 := []byte("QoS 2 to a QoS 0 subscription"), []byte("QoS 2 to a QoS 1 subscription")
		pub.Publish(t, msg{Topic: base + "/q0", Payload: p0, QoS: top})
		pub.Publish(t, msg{Topic: base + "/q1", Payload: p1, QoS: top})
		expectAll(t, sub,
			want{topic: base + "/q0", payload: p0, qos: deliveredQoS(top, 0), retain: 0},
			want{topic: base + "/q1", payload: p1, qos: deliveredQoS(top, 1), retain: 0})
	})

	t.Run("once", func(t *testing.T) {
		var ws []want
		for i := range 5 {
			p := []byte(fmt.Sprintf("exactly once #%d", i))
			pub.Publish(t, msg{Topic: base + "/exact", Payload: p, QoS: top, Retransmit: true})
			ws = append(ws, want{topic: base + "/exact", payload: p, qos: deliveredQoS(top, 2), retain: 0})
		}
		expectAll(t, sub, ws...)
		fence(t, pub, sub, base+"/exact", 1)
	})

	t.Run("properties", func(t *testing.T) {
		ct := ""
		if P.caps.contentType {
			ct = contentTypeCT
		}
		m := msg{Topic: base + "/exact", Payload: []byte(`{"t":21.5}`), QoS: 1, ContentType: ct}
		w := want{topic: m.Topic, payload: m.Payload, qos: 1, retain: 0}
		if P.caps.contentType && S.caps.contentType {
			w.ct = &m.ContentType
		}
		if P.caps.props {
			// Order, a repeated key, and the characters STOMP 1.2 escapes
			// in headers (colon, line feed, carriage return, backslash).
			m.UserProps = [][2]string{{"unit", "C"}, {"room", "kitchen"}, {"unit", "celsius"},
				{"odd:key\\", "line\nbreak\r:colon\\"}}
			m.ResponseTopic = base + "/reply"
			m.Correlation = []byte("req-42")
			m.ExpirySeconds = 3600
			if S.caps.props {
				w.check = checkProps(m)
			}
		}
		pub.Publish(t, m)
		expectAll(t, sub, w)
	})

	t.Run("binary", func(t *testing.T) {
		topic := base + "/bin"
		size := min(P.caps.maxIn(topic, ""), S.caps.maxOut(topic))
		sub.Subscribe(t, topic, 1)
		p := binaryPayload(size)
		pub.Publish(t, msg{Topic: topic, Payload: p, QoS: 1})
		expectAll(t, sub, want{topic: topic, payload: p, qos: 1, retain: 0})
		t.Logf("%d bytes", size)
	})

	t.Run("empty", func(t *testing.T) {
		pub.Publish(t, msg{Topic: base + "/exact", Payload: []byte{}, QoS: 1})
		expectAll(t, sub, want{topic: base + "/exact", payload: []byte{}, qos: 1, retain: 0})
	})

	t.Run("topic-name", func(t *testing.T) {
		// UTF-8, a space and a colon (escaped in STOMP 1.2 headers).
		topic := base + "/ünïcødé name:1"
		sub.Subscribe(t, topic, 1)
		p := []byte("odd topic name")
		pub.Publish(t, msg{Topic: topic, Payload: p, QoS: 1})
		expectAll(t, sub, want{topic: topic, payload: p, qos: 1, retain: 0})
	})

	t.Run("retained", func(t *testing.T) {
		topic := base + "/retained"
		p := []byte("retained for late subscribers")
		m := msg{Topic: topic, Payload: p, QoS: 1, Retain: true}
		w := want{topic: topic, payload: p, qos: 1, retain: 1}
		if P.caps.contentType {
			m.ContentType = contentTypeCT
			if S.caps.contentType {
				w.ct = &m.ContentType
			}
		}
		pub.Publish(t, m)
		sub.Subscribe(t, topic, 1)
		expectAll(t, sub, w)
	})

	t.Run("retained-cleared", func(t *testing.T) {
		// An empty retained publication deletes the retained message: a
		// new subscription gets nothing (the fence comes first).
		topic := base + "/retained"
		pub.Publish(t, msg{Topic: topic, Payload: []byte{}, QoS: 1, Retain: true})
		expectAll(t, sub, want{topic: topic, payload: []byte{}, qos: 1, retain: 0})
		sub.Subscribe(t, topic+"/#", 1)
		fence(t, pub, sub, base+"/exact", 1)
	})

	fence(t, pub, sub, base+"/exact", 1)
	pub.Close()
	sub.Close()
}

// checkProps checks the MQTT 5 properties a publication carried, as a
// subscriber of a protocol that carries them sees them: user properties
// in order with duplicates, response topic, correlation data and the
// message expiry (MQTT 5: seconds left, at most what was sent; STOMP:
// an absolute time in ms, in the future).
func checkProps(m msg) func(t testing.TB, d delivery) {
	return func(t testing.TB, d delivery) {
		t.Helper()
		if !slices.Equal(d.UserProps, m.UserProps) {
			t.Errorf("user properties %v, want %v", d.UserProps, m.UserProps)
		}
		if d.ResponseTopic != m.ResponseTopic {
			t.Errorf("response topic %q, want %q", d.ResponseTopic, m.ResponseTopic)
		}
		if !bytes.Equal(d.Correlation, m.Correlation) {
			t.Errorf("correlation data %q, want %q", d.Correlation, m.Correlation)
		}
		switch {
		case !d.HasExpiry:
			t.Errorf("no message expiry, want one of %d s", m.ExpirySeconds)
		case d.Headers != nil: // STOMP expires: ms since the epoch
			if now := time.Now().UnixMilli(); d.ExpiryRaw <= now || d.ExpiryRaw > now+int64(m.ExpirySeconds)*1000+60_000 {
				t.Errorf("expires %d, want within %d s from now (%d)", d.ExpiryRaw, m.ExpirySeconds, now)
			}
		default:
			if d.ExpiryRaw <= 0 || d.ExpiryRaw > int64(m.ExpirySeconds) {
				t.Errorf("message expiry %d s, want 1..%d", d.ExpiryRaw, m.ExpirySeconds)
			}
		}
	}
}
