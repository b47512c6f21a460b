package app_test

// The password file backend end to end: files written by Debian's
// mosquitto_passwd, by `iotgw passwd` and by other tools, logging in with
// real clients of every protocol; reloads on change and on Reload.

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	pahov3 "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
	gostomp "github.com/go-stomp/stomp/v3"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp"
	"github.com/plgd-dev/go-coap/v3/udp/client"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/iotgw/iotgw/adapters/mqttsn/codec"
	"github.com/iotgw/iotgw/adapters/mqttsn/sntest"
	"github.com/iotgw/iotgw/cmd/iotgw/app"
	"github.com/iotgw/iotgw/internal/auth/passwd"
	"github.com/iotgw/iotgw/internal/testutil"
)

var idSeq atomic.Int64

func uniqueID(prefix string) string {
	return prefix + "-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-" + strconv.FormatInt(idSeq.Add(1), 10)
}

func testLogger(t *testing.T) *zap.Logger { return zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)) }

// pwFile writes a password file of user:hash lines.
func pwFile(t *testing.T, path string, lines ...string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// line hashes password for user in kind.
func line(t *testing.T, kind passwd.Kind, user, password string) string {
	t.Helper()
	h, err := passwd.Hash(kind, []byte(password))
	if err != nil {
		t.Fatal(err)
	}
	return user + ":" + h
}

func startWithFile(t *testing.T, file string) *testutil.Gateway {
	t.Helper()
	return testutil.Start(t, "auth:\n  allow_anonymous: false\n  password_file: "+file+"\n")
}

// mqtt3 connects with paho.mqtt.golang (MQTT 3.1.1) and returns the
// CONNACK refusal (nil: accepted).
func mqtt3(t *testing.T, g *testutil.Gateway, user, password string) error {
	t.Helper()
	o := pahov3.NewClientOptions().AddBroker(g.MQTTURL()).SetClientID(uniqueID("v3")).SetUsername(user).
		SetPassword(password).SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectTimeout(10 * time.Second)
	c := pahov3.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(15 * time.Second) {
		t.Fatal("MQTT 3.1.1 connect timed out")
	}
	if tok.Error() == nil {
		c.Disconnect(0)
	}
	return tok.Error()
}

// mqtt5 connects with paho.golang and returns the CONNACK reason code.
func mqtt5(t *testing.T, g *testutil.Gateway, user, password string) byte {
	t.Helper()
	conn, err := net.Dial("tcp", g.MQTTAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := paho.NewClient(paho.ClientConfig{Conn: conn})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	ca, err := c.Connect(ctx, &paho.Connect{ClientID: uniqueID("v5"), CleanStart: true, KeepAlive: 30,
		Username: user, UsernameFlag: true, Password: []byte(password), PasswordFlag: true})
	if ca == nil {
		t.Fatalf("MQTT 5 connect: %v", err)
	}
	if err == nil {
		_ = c.Disconnect(&paho.Disconnect{})
	}
	return ca.ReasonCode
}

// mosquittoPub publishes once with Debian's mosquitto_pub and returns its
// error output (empty: it connected and published).
func mosquittoPub(t *testing.T, g *testutil.Gateway, user, password string) string {
	t.Helper()
	host, port, _ := net.SplitHostPort(g.MQTTAddr())
	out, err := exec.Command("mosquitto_pub", "-h", host, "-p", port, "-u", user, "-P", password,
		"-t", "pw/test", "-m", "hello", "-q", "1").CombinedOutput()
	if err == nil {
		return ""
	}
	if len(out) == 0 {
		return err.Error()
	}
	return string(out)
}

func stomp(t *testing.T, g *testutil.Gateway, user, password string) error {
	t.Helper()
	c, err := gostomp.Dial("tcp", g.STOMPAddr(), gostomp.ConnOpt.Host("iotgw"), gostomp.ConnOpt.HeartBeat(0, 0),
		gostomp.ConnOpt.Login(user, password))
	if err == nil {
		_ = c.Disconnect()
	}
	return err
}

// mqttsn sends AUTH (PLAIN) then CONNECT and returns the CONNACK code.
func mqttsn(t *testing.T, g *testutil.Gateway, user, password string) codec.ReturnCode {
	t.Helper()
	c := sntest.Dial(t, g.Addr("mqttsn.udp"))
	c.Send(&codec.Auth{Method: "PLAIN", Data: []byte("\x00" + user + "\x00" + password)})
	c.Send(&codec.Connect{Flags: codec.Flags{CleanSession: true}, ProtocolID: 1, Duration: 60, ClientID: uniqueID("sn")})
	return c.Expect(codec.TypeConnack).(*codec.ReturnOnly).Code
}

func coapClient(t *testing.T, g *testutil.Gateway) *client.Conn {
	t.Helper()
	cc, err := udp.Dial(g.CoAPAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// coap connects in connection mode (POST /mqtt/connection) and publishes
// with credentials in the query; it returns both response codes.
func coap(t *testing.T, g *testutil.Gateway, user, password string) (connect, publish codes.Code) {
	t.Helper()
	cc := coapClient(t, g)
	q := func(kv ...string) []message.Option {
		var o []message.Option
		for _, s := range kv {
			o = append(o, message.Option{ID: message.URIQuery, Value: []byte(s)})
		}
		return o
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	r, err := cc.Post(ctx, "/mqtt/connection", message.TextPlain, bytes.NewReader(nil),
		q("clientid="+uniqueID("coap"), "username="+user, "password="+password)...)
	if err != nil {
		t.Fatalf("coap connect: %v", err)
	}
	connect = r.Code()
	r, err = cc.Post(ctx, "/ps/pw/coap", message.TextPlain, bytes.NewReader([]byte("x")), q("u="+user, "p="+password)...)
	if err != nil {
		t.Fatalf("coap publish: %v", err)
	}
	return connect, r.Code()
}

// TestMosquittoPasswdFile: a file made by Debian's mosquitto_passwd (both
// of its formats) logs in with mosquitto_pub and paho; a wrong password
// is refused as bad credentials (3.1.1 return code 4, MQTT 5 0x86).
func TestMosquittoPasswdFile(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("mosquitto_passwd"); err != nil {
		t.Skip("mosquitto_passwd not installed (Debian's mosquitto)")
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "mosquitto.pw")
	for _, argv := range [][]string{
		{"-c", "-b", file, "alice", "secret"},           // $7$, mosquitto 2.0's default
		{"-H", "sha512", "-b", file, "bob", "hunter 2"}, // $6$
	} {
		if out, err := exec.Command("mosquitto_passwd", argv...).CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_passwd %v: %v\n%s", argv, err, out)
		}
	}
	data, _ := os.ReadFile(file)
	if !strings.Contains(string(data), "alice:$7$") || !strings.Contains(string(data), "bob:$6$") {
		t.Fatalf("mosquitto_passwd wrote\n%s", data)
	}
	g := startWithFile(t, file)
	if _, err := exec.LookPath("mosquitto_pub"); err == nil {
		if out := mosquittoPub(t, g, "alice", "secret"); out != "" {
			t.Errorf("mosquitto_pub alice ($7$): %s", out)
		}
		if out := mosquittoPub(t, g, "bob", "hunter 2"); out != "" {
			t.Errorf("mosquitto_pub bob ($6$): %s", out)
		}
		if out := mosquittoPub(t, g, "alice", "wrong"); !strings.Contains(out, "bad user name or password") {
			t.Errorf("mosquitto_pub with a wrong password: %q", out)
		}
	}
	if err := mqtt3(t, g, "alice", "secret"); err != nil {
		t.Errorf("paho 3.1.1 alice: %v", err)
	}
	if err := mqtt3(t, g, "bob", "wrong"); err != packets.ErrorRefusedBadUsernameOrPassword {
		t.Errorf("paho 3.1.1 wrong password: %v, want return code 4", err)
	}
	if rc := mqtt5(t, g, "bob", "hunter 2"); rc != 0 {
		t.Errorf("paho.golang bob: CONNACK %#x", rc)
	}
	if rc := mqtt5(t, g, "alice", "wrong"); rc != 0x86 {
		t.Errorf("paho.golang wrong password: CONNACK %#x, want 0x86", rc)
	}
	// A name not in the file is refused too: no other backend knows it.
	if rc := mqtt5(t, g, "mallory", "secret"); rc != 0x86 {
		t.Errorf("unknown user: CONNACK %#x, want 0x86", rc)
	}
}

// TestPasswordFileEveryProtocol: one file with every kind of hash (what
// `iotgw passwd` writes by default and with -H, and bcrypt as htpasswd
// writes it) serves MQTT, MQTT-SN (AUTH PLAIN extension), CoAP
// (connection mode and query credentials) and STOMP (login/passcode).
func TestPasswordFileEveryProtocol(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "users.txt")
	users := map[string]string{"argon": "pa ss", "pbkdf": "p7", "sha": "p6"}
	pwFile(t, file,
		"# written by iotgw passwd and htpasswd -nbB -C 5",
		line(t, passwd.KindArgon2id, "argon", users["argon"]),
		line(t, passwd.KindPBKDF2, "pbkdf", users["pbkdf"]),
		line(t, passwd.KindSHA512, "sha", users["sha"]),
		"bcrypt:$2y$05$sogcH66O2vqN7HCQ6Tmgb.Ht0eXLdj8PVTIkO/UKyQjGwLoegY4tS", // secret
	)
	users["bcrypt"] = "secret"
	g := startWithFile(t, file)
	for user, pw := range users {
		if err := mqtt3(t, g, user, pw); err != nil {
			t.Errorf("MQTT %s: %v", user, err)
		}
		if rc := mqttsn(t, g, user, pw); rc != codec.Accepted {
			t.Errorf("MQTT-SN %s: CONNACK %v", user, rc)
		}
		if c, p := coap(t, g, user, pw); c != codes.Created || p != codes.Changed {
			t.Errorf("CoAP %s: connect %v, publish %v", user, c, p)
		}
		if err := stomp(t, g, user, pw); err != nil {
			t.Errorf("STOMP %s: %v", user, err)
		}
	}
	// Wrong passwords: refused by each protocol's own means (MQTT-SN 1.2
	// has no "not authorized" code: "rejected: not supported").
	if err := mqtt3(t, g, "argon", "x"); err != packets.ErrorRefusedBadUsernameOrPassword {
		t.Errorf("MQTT wrong password: %v", err)
	}
	if rc := mqttsn(t, g, "argon", "x"); rc != codec.NotSupported {
		t.Errorf("MQTT-SN wrong password: CONNACK %v", rc)
	}
	if c, p := coap(t, g, "bcrypt", "x"); c != codes.Unauthorized || p != codes.Unauthorized {
		t.Errorf("CoAP wrong password: connect %v, publish %v", c, p)
	}
	if err := stomp(t, g, "pbkdf", "x"); err == nil {
		t.Error("STOMP wrong passcode accepted")
	}
}

// TestPasswordFileReload: the file is re-read when it changes and on
// Gateway.Reload; a bad line keeps the users in use.
func TestPasswordFileReload(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "users.txt")
	pwFile(t, file, line(t, passwd.KindPBKDF2, "alice", "a1"))
	g := startWithFile(t, file)
	if rc := mqtt5(t, g, "alice", "a1"); rc != 0 {
		t.Fatalf("alice: %#x", rc)
	}
	// A change is picked up by itself (file events).
	pwFile(t, file, line(t, passwd.KindPBKDF2, "alice", "a1"), line(t, passwd.KindPBKDF2, "bob", "b1"))
	testutil.Eventually(t, 10*time.Second, func() bool { return mqtt5(t, g, "bob", "b1") == 0 }, "bob added to the file")

	// A bad line: reported with its number, the users in use kept.
	pwFile(t, file, line(t, passwd.KindPBKDF2, "carol", "c1"), "bob:plaintext")
	err := g.Reload()
	if err == nil || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), file) {
		t.Fatalf("Reload with a bad line: %v", err)
	}
	if rc := mqtt5(t, g, "bob", "b1"); rc != 0 {
		t.Errorf("bob after a bad file: %#x (old file not kept)", rc)
	}
	if rc := mqtt5(t, g, "carol", "c1"); rc != 0x86 {
		t.Errorf("carol from the bad file: %#x", rc)
	}

	// Fixed: Reload takes it at once (whether or not the watcher already
	// did), and a removed user is refused.
	pwFile(t, file, line(t, passwd.KindPBKDF2, "carol", "c1"))
	if err := g.Reload(); err != nil {
		t.Fatal(err)
	}
	if rc := mqtt5(t, g, "carol", "c1"); rc != 0 {
		t.Errorf("carol after Reload: %#x", rc)
	}
	if rc := mqtt5(t, g, "alice", "a1"); rc != 0x86 {
		t.Errorf("alice removed from the file: %#x", rc)
	}
}

// TestPasswordFileStartErrors: a bad line or a missing file stops the
// start-up with the key, the file and the line.
func TestPasswordFileStartErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.txt")
	pwFile(t, bad, "# users", "alice:$7$101$broken")
	for file, want := range map[string]string{bad: "line 2", filepath.Join(dir, "none"): "no such file"} {
		cfg, err := app.Load([]byte("http: {listen: \"\"}\nmqtt: {tcp: 127.0.0.1:0, ws: \"\"}\nstomp: {tcp: \"\", ws: \"\"}\nmqttsn: {udp: \"\"}\ncoap: {udp: \"\"}\n"+
			"store: {engine: memory}\nauth: {password_file: "+file+"}\n"), nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = app.Start(context.Background(), cfg, testLogger(t))
		if err == nil || !strings.Contains(err.Error(), "auth.password_file: ") || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v", file, err)
		}
	}
}
