package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"
	paho "github.com/eclipse/paho.mqtt.golang"
	gostomp "github.com/go-stomp/stomp/v3"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/iotgw/iotgw/adapters/mqttsn/codec"
	"github.com/iotgw/iotgw/adapters/mqttsn/sntest"
	"github.com/iotgw/iotgw/cmd/iotgw/app"
	"github.com/iotgw/iotgw/core"
	"github.com/iotgw/iotgw/internal/testutil"
)

// Every test client comes from loopback; Linux routes all of 127/8 to lo,
// so a client bound to 127.0.0.2 or 127.0.0.3 is "another address".
func from(ip string) *net.Dialer {
	return &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
}

// mqtt311 connects a paho.mqtt.golang client; the error is the CONNECT's.
func mqtt311(t *testing.T, g *testutil.Gateway, local, id, user, pass string) (paho.Client, error) {
	t.Helper()
	o := paho.NewClientOptions().AddBroker(g.MQTTURL()).SetClientID(id).SetUsername(user).SetPassword(pass).
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(10 * time.Second).SetWriteTimeout(10 * time.Second)
	if local != "" {
		o.SetDialer(from(local))
	}
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(20 * time.Second) {
		return nil, errors.New("CONNECT timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Disconnect(50) })
	return c, nil
}

// mqtt5Connack connects with paho.golang and returns the CONNACK reason.
func mqtt5Connack(t *testing.T, addr, local, id, user string, onDisconnect func(*paho5.Disconnect)) (*paho5.Client, byte, error) {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	if local != "" {
		d = from(local)
	}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, 0, err
	}
	c := paho5.NewClient(paho5.ClientConfig{Conn: nc, PacketTimeout: 5 * time.Second, OnServerDisconnect: onDisconnect})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cp := &paho5.Connect{ClientID: id, CleanStart: true, KeepAlive: 30}
	if user != "" {
		cp.Username, cp.UsernameFlag = user, true
	}
	ack, err := c.Connect(ctx, cp)
	t.Cleanup(func() { nc.Close() })
	if ack != nil {
		return c, ack.ReasonCode, nil
	}
	return c, 0, err
}

func TestClientRateSlowsStreamClientsWithoutLoss(t *testing.T) {
	const rate, burst, n = 40, 10, 50
	g := testutil.Start(t, fmt.Sprintf("limits:\n  client_msg_rate: %d\n  client_msg_burst: %d\n", rate, burst))
	sub, err := mqtt311(t, g, "", "sub", "", "")
	if err != nil {
		t.Fatal(err)
	}
	var got atomic.Int32
	if tok := sub.Subscribe("rate/#", 1, func(paho.Client, paho.Message) { got.Add(1) }); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	minimum := time.Duration(float64(n-burst) / rate * 0.5 * float64(time.Second))

	t.Run("mqtt", func(t *testing.T) {
		got.Store(0)
		pub, err := mqtt311(t, g, "", "pub", "", "")
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		for i := 0; i < n; i++ {
			if tok := pub.Publish("rate/mqtt", 1, false, fmt.Sprint(i)); !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
				t.Fatalf("publish %d: %v", i, tok.Error())
			}
		}
		took := time.Since(start)
		testutil.Eventually(t, 10*time.Second, func() bool { return got.Load() == n }, "every QoS 1 message delivered")
		t.Logf("MQTT: %d QoS 1 messages in %v: %.1f msg/s observed (limit %d/s, burst %d)", n, took, float64(n)/took.Seconds(), rate, burst)
		if took < minimum {
			t.Fatalf("%d messages took %v, less than half of what %d/s allows beyond the burst", n, took, rate)
		}
	})
	t.Run("stomp", func(t *testing.T) {
		got.Store(0)
		c, err := gostomp.Dial("tcp", g.STOMPAddr(), gostomp.ConnOpt.HeartBeat(0, 0))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Disconnect()
		start := time.Now()
		for i := 0; i < n; i++ {
			// With a receipt, Send returns once the gateway took it.
			if err := c.Send("rate/stomp", "text/plain", []byte(fmt.Sprint(i)), gostomp.SendOpt.Receipt, gostomp.SendOpt.Header("qos", "1")); err != nil {
				t.Fatalf("send %d: %v", i, err)
			}
		}
		took := time.Since(start)
		testutil.Eventually(t, 10*time.Second, func() bool { return got.Load() == n }, "every SEND delivered")
		t.Logf("STOMP: %d SENDs in %v: %.1f msg/s observed (limit %d/s, burst %d)", n, took, float64(n)/took.Seconds(), rate, burst)
		if took < minimum {
			t.Fatalf("%d frames took %v, less than half of what %d/s allows beyond the burst", n, took, rate)
		}
	})
	snap := g.Broker.SysSnapshot()
	if snap["$SYS/broker/limits/client/throttled"] == "0" {
		t.Fatal("throttling not counted")
	}
}

func TestClientRateDatagramCongestion(t *testing.T) {
	g := testutil.Start(t, "limits:\n  client_msg_rate: 1\n  client_msg_burst: 2\n")
	t.Run("mqttsn", func(t *testing.T) {
		c := sntest.Dial(t, g.Addr("mqttsn.udp"))
		c.Connect("sn-rate", true, 60)
		c.Publish(codec.TopicShort, 0x6162, 1, false, "1")
		c.Publish(codec.TopicShort, 0x6162, 1, false, "2")
		// The third within the second is refused as congestion, not held.
		c.Send(&codec.Publish{Flags: codec.Flags{QoS: 1, TopicIDType: codec.TopicShort}, TopicID: 0x6162, MsgID: c.NextID(), Data: []byte("3")})
		c.ExpectCode(codec.TypePuback, codec.Congestion)
		// QoS 0 beyond the rate is dropped, and counted.
		c.Send(&codec.Publish{Flags: codec.Flags{TopicIDType: codec.TopicShort}, TopicID: 0x6162, Data: []byte("4")})
		testutil.Eventually(t, 5*time.Second, func() bool {
			return g.Broker.SysSnapshot()["$SYS/broker/limits/client/dropped"] == "1"
		}, "QoS 0 drop counted")
	})
	t.Run("coap", func(t *testing.T) {
		cc, err := udp.Dial(g.CoAPAddr(), options.WithErrors(func(error) {}))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		var last codes.Code
		var maxAge uint32
		for i := 0; i < 4 && last != codes.TooManyRequests; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			resp, err := cc.Post(ctx, "/ps/rate/coap", message.TextPlain, bytes.NewReader([]byte("x")))
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			last = resp.Code()
			maxAge, _ = resp.GetOptionUint32(message.MaxAge)
		}
		if last != codes.TooManyRequests || maxAge < 1 {
			t.Fatalf("over the rate: %v with Max-Age %d, want 4.29 with a Max-Age [RFC 8516]", last, maxAge)
		}
	})
}

func TestLoginFloodThrottledAndBanned(t *testing.T) {
	g := testutil.Start(t, `
auth:
  users: [{username: alice, password: good}, {username: bob, password: good}]
limits:
  login_failures: 3
  login_delay: 50ms
  login_delay_max: 200ms
  login_ban_failures: 6
  ban_time: 1m
`)
	start := time.Now()
	for i := 0; i < 6; i++ {
		_, err := mqtt311(t, g, "127.0.0.2", "mallory", "alice", "guess")
		if err == nil || !strings.Contains(err.Error(), "password") {
			t.Fatalf("guess %d: %v", i, err)
		}
		if i == 4 {
			// While the attacker is throttled, another client connects
			// at once.
			t0 := time.Now()
			if _, err := mqtt311(t, g, "127.0.0.1", "legit", "bob", "good"); err != nil {
				t.Fatalf("another client during the flood: %v", err)
			}
			t.Logf("another client connected in %v while the flood was throttled", time.Since(t0))
		}
	}
	t.Logf("6 failed logins took %v (3 delayed: 50+100+200 ms)", time.Since(start))
	if snap := g.Broker.SysSnapshot(); snap["$SYS/broker/limits/login/delayed"] != "3" || snap["$SYS/broker/limits/login/banned"] == "0" {
		t.Fatalf("delayed %s, banned %s", snap["$SYS/broker/limits/login/delayed"], snap["$SYS/broker/limits/login/banned"])
	}
	// Banned: the address at accept (the connection is closed before
	// CONNACK), the user name at CONNECT even with the right password.
	if _, err := mqtt311(t, g, "127.0.0.2", "mallory", "bob", "good"); err == nil {
		t.Fatal("a banned address connected")
	}
	if _, rc, err := mqtt5Connack(t, g.MQTTAddr(), "", "x", "alice", nil); err != nil || rc != 0x8A {
		t.Fatalf("banned user name over MQTT 5: rc 0x%02X, %v; want 0x8A", rc, err)
	}
	if _, err := mqtt311(t, g, "", "legit2", "bob", "good"); err != nil {
		t.Fatalf("another user after the bans: %v", err)
	}
}

// startStored starts a gateway on loopback listeners with a pebble store
// in dir; the caller stops it (stopGW) before another opens dir.
func startStored(t *testing.T, dir string) *app.Gateway {
	t.Helper()
	cfg, err := app.Load([]byte(`
http: {listen: ""}
mqtt: {tcp: 127.0.0.1:0, ws: "", tls: "", wss: ""}
stomp: {tcp: 127.0.0.1:0, ws: "", tls: "", wss: ""}
mqttsn: {udp: 127.0.0.1:0, dtls: ""}
coap: {udp: 127.0.0.1:0, dtls: ""}
sys: {interval: 0}
store: {engine: pebble, dir: `+dir+`}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	g, err := app.Start(context.Background(), cfg, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func stopGW(t *testing.T, g *app.Gateway) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := g.Stop(ctx); err != nil {
		t.Error(err)
	}
}

func TestBansRefuseEveryProtocolAfterRestart(t *testing.T) {
	dir := t.TempDir()
	g1 := startStored(t, dir)
	for _, b := range []core.Ban{{Field: core.BanClientID, Value: "bad-id", Reason: "test"},
		{Field: core.BanUsername, Value: "mallory"}, {Field: core.BanAddress, Value: "127.0.0.3/32"},
		{Field: core.BanClientID, Value: "brief", Until: time.Now().Add(time.Millisecond)}} {
		if err := g1.Broker.Bans().Add(b); err != nil {
			t.Fatal(err)
		}
	}
	stopGW(t, g1)
	time.Sleep(5 * time.Millisecond) // the brief ban is over
	g := startStored(t, dir)
	defer stopGW(t, g)
	if n := len(g.Broker.Bans().List()); n != 3 {
		t.Fatalf("%d bans after the restart, want 3: %+v", n, g.Broker.Bans().List())
	}
	mqttAddr, stompAddr := g.Addr("mqtt.tcp").String(), g.Addr("stomp.tcp").String()

	t.Run("mqtt", func(t *testing.T) {
		o := paho.NewClientOptions().AddBroker("tcp://" + mqttAddr).SetClientID("bad-id").SetAutoReconnect(false)
		tok := paho.NewClient(o).Connect()
		tok.WaitTimeout(10 * time.Second)
		if ct, _ := tok.(*paho.ConnectToken); ct == nil || ct.ReturnCode() != 5 {
			t.Fatalf("MQTT 3.1.1 banned client id: %v, want rc 5 (not authorized)", tok.Error())
		}
		if _, rc, err := mqtt5Connack(t, mqttAddr, "", "bad-id", "", nil); rc != 0x8A {
			t.Fatalf("MQTT 5 banned client id: rc 0x%02X, %v; want 0x8A", rc, err)
		}
		if _, rc, err := mqtt5Connack(t, mqttAddr, "127.0.0.3", "ok-id", "", nil); err == nil && rc == 0 {
			t.Fatal("MQTT 5 from the banned range accepted")
		}
		if _, rc, err := mqtt5Connack(t, mqttAddr, "", "brief", "", nil); err != nil || rc != 0 {
			t.Fatalf("expired ban still refuses: rc 0x%02X, %v", rc, err)
		}
	})
	t.Run("stomp", func(t *testing.T) {
		_, err := gostomp.Dial("tcp", stompAddr, gostomp.ConnOpt.Login("mallory", "x"), gostomp.ConnOpt.HeartBeat(0, 0))
		if err == nil || !strings.Contains(err.Error(), "banned") {
			t.Fatalf("STOMP banned login: %v, want ERROR banned", err)
		}
	})
	t.Run("mqttsn", func(t *testing.T) {
		c := sntest.Dial(t, g.Addr("mqttsn.udp"))
		c.Send(&codec.Connect{Flags: codec.Flags{CleanSession: true}, ProtocolID: codec.ProtocolID12, Duration: 60, ClientID: "bad-id"})
		c.ExpectCode(codec.TypeConnack, codec.NotSupported)
		ua, _ := net.ResolveUDPAddr("udp", g.Addr("mqttsn.udp").String())
		conn, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP("127.0.0.3")}, ua)
		if err != nil {
			t.Fatal(err)
		}
		c3 := sntest.New(t, conn)
		c3.Send(&codec.Connect{Flags: codec.Flags{CleanSession: true}, ProtocolID: codec.ProtocolID12, Duration: 60, ClientID: "fine"})
		c3.ExpectCode(codec.TypeConnack, codec.NotSupported)
	})
	t.Run("coap", func(t *testing.T) {
		post := func(local, path string, q ...string) codes.Code {
			opts := []udp.Option{options.WithErrors(func(error) {})}
			if local != "" {
				opts = append(opts, options.WithDialer(&net.Dialer{LocalAddr: &net.UDPAddr{IP: net.ParseIP(local)}}))
			}
			cc, err := udp.Dial(g.Addr("coap.udp").String(), opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer cc.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var mo []message.Option
			for _, s := range q {
				mo = append(mo, message.Option{ID: message.URIQuery, Value: []byte(s)})
			}
			resp, err := cc.Post(ctx, path, message.TextPlain, bytes.NewReader([]byte("x")), mo...)
			if err != nil {
				t.Fatal(err)
			}
			return resp.Code()
		}
		if code := post("", "/mqtt/connection", "clientid=bad-id"); code != codes.Forbidden {
			t.Fatalf("CoAP banned client id: %v, want 4.03", code)
		}
		if code := post("127.0.0.3", "/ps/any", "clientid=fine"); code != codes.Forbidden {
			t.Fatalf("CoAP publish from the banned range: %v, want 4.03", code)
		}
		if code := post("", "/ps/any", "clientid=fine"); code != codes.Changed {
			t.Fatalf("CoAP publish elsewhere: %v", code)
		}
	})
	if removed, err := g.Broker.Bans().Remove(core.BanClientID, "bad-id"); !removed || err != nil {
		t.Fatalf("remove: %v %v", removed, err)
	}
	if _, rc, err := mqtt5Connack(t, mqttAddr, "", "bad-id", "", nil); err != nil || rc != 0 {
		t.Fatalf("after lifting the ban: rc 0x%02X, %v", rc, err)
	}
}

func TestMaxConnectionLifetimeDisconnectsMQTT5(t *testing.T) {
	g := testutil.Start(t, "limits:\n  max_connection_lifetime: 300ms\n")
	got := make(chan byte, 1)
	_, rc, err := mqtt5Connack(t, g.MQTTAddr(), "", "short-lived", "", func(d *paho5.Disconnect) { got <- d.ReasonCode })
	if err != nil || rc != 0 {
		t.Fatalf("connect: rc 0x%02X, %v", rc, err)
	}
	select {
	case rc := <-got:
		if rc != 0xA0 {
			t.Fatalf("DISCONNECT 0x%02X, want 0xA0 (maximum connect time)", rc)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no DISCONNECT after the connection's lifetime")
	}
}

func TestConnectRatePerAddress(t *testing.T) {
	g := testutil.Start(t, "limits:\n  connect_rate_per_addr: 0.1\n  connect_burst_per_addr: 2\n")
	for i := 0; i < 2; i++ {
		if _, err := mqtt311(t, g, "127.0.0.2", fmt.Sprint("a", i), "", ""); err != nil {
			t.Fatalf("connect %d within the burst: %v", i, err)
		}
	}
	if _, err := mqtt311(t, g, "127.0.0.2", "a2", "", ""); err == nil {
		t.Fatal("third connect from one address within 10 s accepted")
	}
	// The address's budget is spent for every protocol: STOMP from it is
	// refused too, while another address connects over both.
	if nc, err := from("127.0.0.2").Dial("tcp", g.STOMPAddr()); err == nil {
		_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := gostomp.Connect(nc, gostomp.ConnOpt.HeartBeat(0, 0)); err == nil {
			t.Fatal("STOMP from the exhausted address accepted")
		}
		nc.Close()
	}
	if _, err := gostomp.Dial("tcp", g.STOMPAddr(), gostomp.ConnOpt.HeartBeat(0, 0)); err != nil {
		t.Fatalf("STOMP from another address: %v", err)
	}
	if _, err := mqtt311(t, g, "127.0.0.1", "b", "", ""); err != nil {
		t.Fatalf("MQTT from another address: %v", err)
	}
	if got := g.Broker.SysSnapshot()["$SYS/broker/limits/connect/refused/address"]; got != "2" {
		t.Fatalf("refusals counted %s, want 2", got)
	}
}
