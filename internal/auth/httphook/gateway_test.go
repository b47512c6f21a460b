package httphook_test

// The hooks in a whole gateway, served by httptest: real MQTT (paho and a
// raw client for the load cases), STOMP, MQTT-SN and CoAP clients.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/go-stomp/stomp/v3"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"

	mqttcodec "github.com/iotgw/iotgw/adapters/mqtt/codec"
	"github.com/iotgw/iotgw/adapters/mqttsn/codec"
	"github.com/iotgw/iotgw/adapters/mqttsn/sntest"
	"github.com/iotgw/iotgw/internal/testutil"
)

const waitTimeout = 10 * time.Second

// hook is a test hook that decides by user name prefix ("allow-",
// "deny-", "ignore-", "nc-" for 204, "slow-" to sleep past any timeout)
// or, for acl requests, by topic prefix; it records every request.
type hook struct {
	*httptest.Server
	mu       sync.Mutex
	seen     []map[string]string
	requests atomic.Int64
	inFlight atomic.Int64
	maxIn    atomic.Int64
	// header is added to every reply (Cache-Control tests).
	header atomic.Value
	// delay holds every reply this long (the concurrency cases).
	delay time.Duration
}

func newHook(t *testing.T) *hook {
	h := &hook{}
	h.header.Store("")
	h.Server = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.Close)
	return h
}

func (h *hook) serve(w http.ResponseWriter, r *http.Request) {
	h.requests.Add(1)
	n := h.inFlight.Add(1)
	defer h.inFlight.Add(-1)
	for m := h.maxIn.Load(); n > m && !h.maxIn.CompareAndSwap(m, n); m = h.maxIn.Load() {
	}
	body, _ := io.ReadAll(r.Body)
	f := map[string]string{}
	_ = json.Unmarshal(body, &f)
	h.mu.Lock()
	h.seen = append(h.seen, f)
	h.mu.Unlock()
	if h.delay > 0 {
		time.Sleep(h.delay)
	}
	if v := h.header.Load().(string); v != "" {
		w.Header().Set("Cache-Control", v)
	}
	key := f["username"]
	if f["topic"] != "" {
		key = strings.TrimPrefix(f["topic"], "$share/g/")
	}
	switch {
	case strings.HasPrefix(key, "slow"):
		select {
		case <-r.Context().Done():
		case <-time.After(waitTimeout):
		}
		w.WriteHeader(204)
	case strings.HasPrefix(key, "pubdeny"):
		if f["action"] == "publish" {
			_, _ = io.WriteString(w, `{"result":"deny"}`)
		} else {
			w.WriteHeader(204)
		}
	case strings.HasPrefix(key, "nc"):
		w.WriteHeader(204)
	case strings.HasPrefix(key, "allow"):
		_, _ = io.WriteString(w, `{"result":"allow","client_attrs":{"via":"hook"}}`)
	case strings.HasPrefix(key, "deny"):
		_, _ = io.WriteString(w, `{"result":"deny"}`)
	case strings.HasPrefix(key, "super"):
		_, _ = io.WriteString(w, `{"result":"allow","is_superuser":true}`)
	default:
		_, _ = io.WriteString(w, `{"result":"ignore"}`)
	}
}

// last returns the last request the hook saw with field k = v.
func (h *hook) last(k, v string) map[string]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := len(h.seen) - 1; i >= 0; i-- {
		if h.seen[i][k] == v {
			return h.seen[i]
		}
	}
	return nil
}

func pahoConnect(g *testutil.Gateway, id, user, pass string) (paho.Client, byte, error) {
	opts := paho.NewClientOptions().AddBroker(g.MQTTURL()).SetClientID(id).SetUsername(user).SetPassword(pass).
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(waitTimeout).SetOrderMatters(true)
	c := paho.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(waitTimeout) {
		return nil, 0, fmt.Errorf("connect %s: timed out", id)
	}
	return c, tok.(*paho.ConnectToken).ReturnCode(), tok.Error()
}

func hookYAML(url, extra string) string {
	return "auth:\n  http:\n    url: " + url + "\n" + extra
}

// TestAuthHookDecisions: allow, deny, ignore (the next backend decides),
// 204; the deny is "not authorized" (CONNACK 5), an ignored unknown user
// "bad user name or password" (4).
func TestAuthHookDecisions(t *testing.T) {
	h := newHook(t)
	g := testutil.Start(t, hookYAML(h.URL, "  users:\n    - {username: ignore-bob, password: pw}\n"))
	for _, tc := range []struct {
		user, pass string
		code       byte
	}{
		{"allow-1", "x", 0}, {"nc-1", "x", 0}, {"deny-1", "x", 5}, {"ignore-bob", "pw", 0}, {"ignore-bob", "bad", 4}, {"ignore-x", "x", 4},
	} {
		c, code, err := pahoConnect(g, "c-"+tc.user+tc.pass, tc.user, tc.pass)
		if code != tc.code {
			t.Errorf("%s/%s: CONNACK %d (%v), want %d", tc.user, tc.pass, code, err, tc.code)
		}
		if err == nil {
			c.Disconnect(0)
		}
	}
}

// TestAuthHookTemplate: the hook sees the right fields for MQTT, STOMP,
// MQTT-SN and CoAP clients.
func TestAuthHookTemplate(t *testing.T) {
	h := newHook(t)
	g := testutil.Start(t, hookYAML(h.URL, `    body:
      clientid: "${clientid}"
      username: "${username}"
      password: "${password}"
      peerhost: "${peerhost}"
      protocol: "${protocol}"
      listener: "${listener}"
      cn: "${cert_common_name}"
      note: "id=${clientid};"
`))
	check := func(proto, id, listener string) {
		t.Helper()
		got := h.last("clientid", id)
		want := map[string]string{"clientid": id, "username": "allow-" + proto, "password": "pw-" + proto,
			"peerhost": "127.0.0.1", "protocol": proto, "listener": listener, "cn": "", "note": "id=" + id + ";"}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: hook saw %v\nwant %v", proto, got, want)
		}
	}

	c, _, err := pahoConnect(g, "t-mqtt", "allow-mqtt", "pw-mqtt")
	if err != nil {
		t.Fatal(err)
	}
	c.Disconnect(0)
	check("mqtt", "t-mqtt", "tcp")

	sc, err := stomp.Dial("tcp", g.STOMPAddr(), stomp.ConnOpt.Login("allow-stomp", "pw-stomp"),
		stomp.ConnOpt.Header("client-id", "t-stomp"), stomp.ConnOpt.HeartBeat(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	_ = sc.Disconnect()
	check("stomp", "t-stomp", "tcp")

	sn := sntest.Dial(t, g.Addr("mqttsn.udp"))
	sn.Send(&codec.Auth{Method: "PLAIN", Data: []byte("\x00allow-mqttsn\x00pw-mqttsn")})
	sn.Connect("t-mqttsn", true, 60)
	check("mqttsn", "t-mqttsn", "udp")

	cc, err := udp.Dial(g.CoAPAddr(), options.WithErrors(func(error) {}))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	q := func(s string) message.Option { return message.Option{ID: message.URIQuery, Value: []byte(s)} }
	resp, err := cc.Post(ctx, "/mqtt/connection", message.TextPlain, strings.NewReader(""),
		q("clientid=t-coap"), q("username=allow-coap"), q("password=pw-coap"))
	if err != nil || resp.Code() != codes.Created {
		t.Fatalf("coap connection: %v %v", resp, err)
	}
	check("coap", "t-coap", "udp")
}

// TestAuthHookCache: with cache_ttl the second connect makes no request;
// without it, the hook's Cache-Control max-age caches, no-store does not.
func TestAuthHookCache(t *testing.T) {
	h := newHook(t)
	g := testutil.Start(t, hookYAML(h.URL, "    cache_ttl: 1m\n"))
	for range 3 {
		c, _, err := pahoConnect(g, "cached", "allow-c", "pw")
		if err != nil {
			t.Fatal(err)
		}
		c.Disconnect(0)
	}
	if n := h.requests.Load(); n != 1 {
		t.Fatalf("%d requests for three identical connects, want 1", n)
	}
	if c, _, err := pahoConnect(g, "cached", "allow-c", "other"); err == nil {
		c.Disconnect(0)
	}
	if n := h.requests.Load(); n != 2 {
		t.Fatalf("another password reused a cached answer (%d requests)", n)
	}

	h2 := newHook(t)
	h2.header.Store("max-age=60")
	g2 := testutil.Start(t, hookYAML(h2.URL, ""))
	for range 2 {
		if c, _, err := pahoConnect(g2, "ma", "allow-ma", "pw"); err == nil {
			c.Disconnect(0)
		}
	}
	h2.header.Store("no-store")
	for range 2 {
		if c, _, err := pahoConnect(g2, "ns", "allow-ns", "pw"); err == nil {
			c.Disconnect(0)
		}
	}
	if n := h2.requests.Load(); n != 3 {
		t.Fatalf("%d requests, want 3 (one for max-age=60, two for no-store)", n)
	}
}

// TestAuthHookTimeout: a hook that sleeps past its timeout refuses the
// client as "server unavailable" (CONNACK 3) under on_error deny, and
// lets the next backend decide under ignore.
func TestAuthHookTimeout(t *testing.T) {
	h := newHook(t)
	users := "  users:\n    - {username: slow-bob, password: pw}\n  chain: [http, users]\n"
	g := testutil.Start(t, hookYAML(h.URL, "    timeout: 200ms\n")+users)
	if _, code, err := pahoConnect(g, "slow1", "slow-bob", "pw"); code != 3 {
		t.Fatalf("on_error deny: CONNACK %d (%v), want 3", code, err)
	}
	g2 := testutil.Start(t, hookYAML(h.URL, "    timeout: 200ms\n    on_error: ignore\n")+users)
	c, code, err := pahoConnect(g2, "slow2", "slow-bob", "pw")
	if err != nil {
		t.Fatalf("on_error ignore: CONNACK %d (%v), want 0 through users", code, err)
	}
	c.Disconnect(0)
}

// TestAuthHookDown: a hook that drops every connection opens the breaker
// after breaker_failures; then connects fail fast without reaching it
// (no pile-up of requests, connections or goroutines), and a client of
// the users backend connects normally meanwhile.
func TestAuthHookDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	g := testutil.Start(t, hookYAML("http://"+ln.Addr().String()+"/auth",
		"    breaker_failures: 3\n    breaker_cooldown: 1h\n")+
		"  users:\n    - {username: bob, password: pw}\n  chain: [users, http]\n")
	// Three failures in a row open the breaker.
	for i := range 3 {
		if _, code, err := rawConnect(g.MQTTAddr(), fmt.Sprintf("first-%d", i), "dev", "pw"); code != 3 {
			t.Fatalf("connect %d: code %d (%v), want 3 (server unavailable)", i, code, err)
		}
	}
	opened := accepted.Load()
	before := runtime.NumGoroutine()
	var wg sync.WaitGroup
	var refused atomic.Int64
	for i := range 60 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, code, _ := rawConnect(g.MQTTAddr(), fmt.Sprintf("down-%d", i), "dev", "pw"); code == 3 {
				refused.Add(1)
			}
		}()
	}
	wg.Wait()
	if refused.Load() != 60 {
		t.Fatalf("%d of 60 refused as server unavailable", refused.Load())
	}
	if n := accepted.Load(); n != opened {
		t.Fatalf("the dead hook saw %d more connections while the breaker was open", n-opened)
	}
	// A hook nobody listens on: connection refused, the same fail-fast.
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadURL := "http://" + dead.Addr().String() + "/"
	dead.Close()
	g2 := testutil.Start(t, hookYAML(deadURL, "    breaker_failures: 2\n    breaker_cooldown: 1h\n"))
	for i := range 20 {
		if _, code, err := rawConnect(g2.MQTTAddr(), fmt.Sprintf("refused-%d", i), "dev", "pw"); code != 3 {
			t.Fatalf("hook refusing connections: code %d (%v), want 3", code, err)
		}
	}
	sys := g2.Broker.SysSnapshot()
	p := "$SYS/broker/hooks/auth.http/"
	if sys[p+"requests"] != "2" || sys[p+"failures"] != "2" || sys[p+"rejected"] != "18" || sys[p+"breaker_open"] != "1" ||
		sys["$SYS/broker/auth/http/failed"] != "20" {
		t.Fatalf("$SYS after 20 connects against a refusing hook: requests %s failures %s rejected %s breaker_open %s, chain failed %s",
			sys[p+"requests"], sys[p+"failures"], sys[p+"rejected"], sys[p+"breaker_open"], sys["$SYS/broker/auth/http/failed"])
	}
	c, _, err := pahoConnect(g, "bob-1", "bob", "pw")
	if err != nil {
		t.Fatalf("a users client while the hook is down: %v", err)
	}
	c.Disconnect(0)
	testutil.Eventually(t, waitTimeout, func() bool { return runtime.NumGoroutine() <= before+10 },
		fmt.Sprintf("goroutines %d, before %d", runtime.NumGoroutine(), before))
	t.Logf("3 failures opened the breaker (%d connections to the hook); 60 more connects reached it 0 times", opened)
}

// rawConnect sends an MQTT 3.1.1 CONNECT with a user name and password
// and returns the CONNACK's return code; the connection is closed.
func rawConnect(addr, id, user, pass string) (time.Duration, byte, error) {
	start := time.Now()
	nc, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		return 0, 0xFF, err
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(3 * waitTimeout))
	pkt, err := mqttcodec.Append(nil, &mqttcodec.Connect{ProtocolLevel: mqttcodec.V311, ClientID: id, CleanStart: true,
		KeepAlive: 60, UsernameFlag: true, Username: user, PasswordFlag: true, Password: []byte(pass)}, 0)
	if err != nil {
		return 0, 0xFF, err
	}
	if _, err := nc.Write(pkt); err != nil {
		return 0, 0xFF, err
	}
	var ack [4]byte
	if _, err := io.ReadFull(bufio.NewReader(nc), ack[:]); err != nil {
		return 0, 0xFF, err
	}
	if ack[0] != 0x20 {
		return 0, 0xFF, fmt.Errorf("not a CONNACK: % x", ack)
	}
	return time.Since(start), ack[3], nil
}

// TestAuthHookThousandConnects: 1,000 concurrent connects through a hook
// with max_concurrency 8: the hook never sees more than 8 at once and all
// succeed; with a short queue the overflow fails fast (server
// unavailable) and every client gets its answer.
func TestAuthHookThousandConnects(t *testing.T) {
	const n = 1000
	run := func(g *testutil.Gateway) (ok, unavailable int64) {
		var wg sync.WaitGroup
		var a, u atomic.Int64
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, code, err := rawConnect(g.MQTTAddr(), fmt.Sprintf("k-%d", i), fmt.Sprintf("allow-%d", i), "pw")
				switch {
				case err == nil && code == 0:
					a.Add(1)
				case err == nil && code == 3:
					u.Add(1)
				default:
					t.Errorf("client %d: code %d, %v", i, code, err)
				}
			}()
		}
		close(start)
		wg.Wait()
		return a.Load(), u.Load()
	}

	h := newHook(t)
	h.delay = time.Millisecond
	g := testutil.Start(t, hookYAML(h.URL, "    max_concurrency: 8\n    queue_limit: 2000\n    timeout: 60s\n"))
	ok, unavailable := run(g)
	if ok != n || h.maxIn.Load() > 8 {
		t.Fatalf("%d accepted, %d unavailable; the hook saw %d at once (max_concurrency 8)", ok, unavailable, h.maxIn.Load())
	}
	t.Logf("queue 2000: %d/%d accepted, at most %d requests in flight", ok, n, h.maxIn.Load())

	h2 := newHook(t)
	h2.delay = 20 * time.Millisecond
	g2 := testutil.Start(t, hookYAML(h2.URL, "    max_concurrency: 4\n    queue_limit: 10\n    timeout: 60s\n    breaker_failures: 0\n"))
	ok, unavailable = run(g2)
	if ok+unavailable != n || unavailable == 0 || ok < 4 || h2.maxIn.Load() > 4 {
		t.Fatalf("queue 10: %d accepted, %d unavailable, %d in flight at most", ok, unavailable, h2.maxIn.Load())
	}
	t.Logf("queue 10: %d accepted, %d failed fast, at most %d in flight", ok, unavailable, h2.maxIn.Load())
}

// TestACLHook: acl.http on publish and subscribe with paho, after the
// configured rules and before acl.default; answers cached per request.
func TestACLHook(t *testing.T) {
	h := newHook(t)
	g := testutil.Start(t, `acl:
  default: deny
  rules:
    - {permission: allow, action: all, topic: "open/#"}
  http:
    url: `+h.URL+`
    cache_ttl: 1m
    timeout: 300ms
`)
	opts := paho.NewClientOptions().AddBroker(g.MQTTURL()).SetClientID("acl-1").SetProtocolVersion(4).
		SetAutoReconnect(false).SetConnectTimeout(waitTimeout).SetOrderMatters(true)
	got := make(chan string, 16)
	opts.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { got <- m.Topic() })
	c := paho.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(0)
	sub := func(filter string) byte {
		tok := c.Subscribe(filter, 1, nil)
		if !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
			t.Fatalf("subscribe %s: %v", filter, tok.Error())
		}
		return tok.(*paho.SubscribeToken).Result()[filter]
	}
	for filter, want := range map[string]byte{"allow/#": 1, "pubdeny/#": 1, "nc/x": 1, "deny/x": 0x80, "ignore/x": 0x80,
		"open/x": 1, "slow/x": 0x80} {
		if code := sub(filter); code != want {
			t.Errorf("subscribe %s: SUBACK 0x%02x, want 0x%02x", filter, code, want)
		}
	}
	if f := h.last("topic", "open/x"); f != nil {
		t.Errorf("a configured rule decided open/x, yet the hook was asked: %v", f)
	}
	if f := h.last("topic", "allow/#"); f == nil || f["action"] != "subscribe" || f["qos"] != "1" || f["clientid"] != "acl-1" || f["retain"] != "false" {
		t.Errorf("hook saw %v for the subscribe", f)
	}

	pub := func(topic string, retain bool) {
		if tok := c.Publish(topic, 1, retain, "x"); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
			t.Fatalf("publish %s: %v", topic, tok.Error())
		}
	}
	pub("pubdeny/a", false) // refused: dropped (3.1.1)
	pub("allow/b", false)
	if topic := <-got; topic != "allow/b" {
		t.Fatalf("received %s first, want allow/b (pubdeny/a refused)", topic)
	}
	if f := h.last("topic", "allow/b"); f == nil || f["action"] != "publish" || f["qos"] != "1" {
		t.Errorf("hook saw %v for the publish", f)
	}
	pub("allow/r", true)
	if f := h.last("topic", "allow/r"); f == nil || f["retain"] != "true" {
		t.Errorf("hook saw %v for a retained publish", f)
	}
	<-got
	before := h.requests.Load()
	for range 5 {
		pub("allow/b", false)
		<-got
	}
	if n := h.requests.Load() - before; n != 0 {
		t.Errorf("%d requests for five cached publishes", n)
	}
}

// TestConnectRateFigure logs connects/s through the hook, without and
// with its cache (a fleet reconnecting: the same 1,000 clients again),
// next to the users backend. A figure, never asserted: the machine is
// shared.
func TestConnectRateFigure(t *testing.T) {
	if testing.Short() {
		t.Skip("a figure")
	}
	// 200 clients by default, to keep the suite quick; a figure worth
	// quoting: IOTGW_HOOK_FIGURES=1 (1,000 clients).
	clients, workers := 200, 16
	if os.Getenv("IOTGW_HOOK_FIGURES") != "" {
		clients = 1000
	}
	rate := func(g *testutil.Gateway, user func(i int) string) float64 {
		var next atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := int(next.Add(1)); i <= clients; i = int(next.Add(1)) {
					if _, code, err := rawConnect(g.MQTTAddr(), fmt.Sprintf("r-%d", i), user(i), "pw"); err != nil || code != 0 {
						t.Errorf("connect %d: code %d, %v", i, code, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		return float64(clients) / time.Since(start).Seconds()
	}
	users := "  users:\n"
	for i := 1; i <= clients; i++ {
		users += fmt.Sprintf("    - {username: u%d, password: pw}\n", i)
	}
	// Each figure is a second pass: the first warms up the gateway.
	gu := testutil.Start(t, users)
	rate(gu, func(i int) string { return fmt.Sprintf("u%d", i) })
	base := rate(gu, func(i int) string { return fmt.Sprintf("u%d", i) })

	h := newHook(t)
	gn := testutil.Start(t, hookYAML(h.URL, ""))
	rate(gn, func(i int) string { return fmt.Sprintf("allow-%d", i) })
	noCache := rate(gn, func(i int) string { return fmt.Sprintf("allow-%d", i) })
	gc := testutil.Start(t, hookYAML(h.URL, "    cache_ttl: 1m\n"))
	rate(gc, func(i int) string { return fmt.Sprintf("allow-%d", i) }) // fills the cache
	cached := rate(gc, func(i int) string { return fmt.Sprintf("allow-%d", i) })
	t.Logf("MQTT connects/s (%d clients, %d at a time, CONNECT to CONNACK and close): users backend %.0f, auth.http %.0f, auth.http cached %.0f",
		clients, workers, base, noCache, cached)
}
