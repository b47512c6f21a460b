package mqtt_test

// JWT authentication (issue 16 item 3) seen by MQTT clients: tokens in the
// password (3.1.1 and 5) or as the Authentication Data of the "JWT"
// method (5), the end of the connection when the token expires (MQTT 5
// DISCONNECT 0xA0, 3.1.1 a plain close), re-authentication with a fresh
// token (AUTH 0x19) that keeps the connection, verify_claims and the acl
// claim. Tokens are signed by PyJWT (internal/auth/jwt/jwttest).

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"
	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/iotgw/iotgw/adapters/mqtt/codec"
	"github.com/iotgw/iotgw/internal/auth/jwt/jwttest"
	"github.com/iotgw/iotgw/internal/testutil"
)

const jwtSecret = "mqtt-test-secret-0123456789abcdef-0123"

// jwtYAML configures the HS256 backend with no leeway, so that a token
// ends its connection at its exp; extra goes under auth.jwt.
func jwtYAML(extra string) string {
	return fmt.Sprintf("auth:\n  allow_anonymous: false\n  jwt:\n    secret: %q\n    leeway: 0s\n%s", jwtSecret, extra)
}

var jwtSigner = jwttest.HMAC(jwtSecret)

// jwtConnect is an MQTT 5 CONNECT presenting tok as the data of the JWT
// method.
func jwtConnect(id, tok string) *codec.Connect {
	return &codec.Connect{ProtocolLevel: codec.V5, ClientID: id, CleanStart: true,
		Props: codec.Properties{Present: codec.PropMask(codec.PropAuthMethod, codec.PropAuthData),
			AuthMethod: "JWT", AuthData: []byte(tok)}}
}

func jwtReauth(tok string) *codec.Auth {
	return &codec.Auth{ReasonCode: codec.ReAuthenticate,
		Props: codec.Properties{Present: codec.PropMask(codec.PropAuthMethod, codec.PropAuthData),
			AuthMethod: "JWT", AuthData: []byte(tok)}}
}

// expectExpiryDisconnect reads until the gateway's DISCONNECT, which must
// say 0xA0 (maximum connect time), then the close.
func expectExpiryDisconnect(t *testing.T, r *v5Raw) {
	t.Helper()
	d := v5Expect[*codec.Disconnect](r, "DISCONNECT at the token's expiry")
	if d.ReasonCode != codec.MaximumConnectTime {
		t.Fatalf("DISCONNECT %#x at the token's expiry, want 0xA0 (maximum connect time)", byte(d.ReasonCode))
	}
	r.expectClosed("after DISCONNECT 0xA0")
}

// TestJWTConnectMQTT5: a valid token connects, in the password or as the
// JWT method's data (CONNACK then names the method); an expired token, a
// wrong signature and garbage in the JWT method are refused with 0x86.
func TestJWTConnectMQTT5(t *testing.T) {
	t.Parallel()
	g := testutil.Start(t, jwtYAML(""))
	toks := jwtSigner.Tokens(t,
		jwttest.ExpiresIn(time.Hour, nil),
		jwttest.ExpiresIn(-time.Minute, nil))
	good, expired := toks[0], toks[1]
	forged := jwttest.HMAC("another-secret-another-secret-another").Token(t, jwttest.ExpiresIn(time.Hour, nil))

	r := v5DialRaw(t, g)
	r.connectOK(&codec.Connect{ClientID: uniqueID("jwt5"), CleanStart: true, PasswordFlag: true, Password: []byte(good)})

	r = v5DialRaw(t, g)
	ack := r.connectOK(jwtConnect(uniqueID("jwt5m"), good))
	if !ack.Props.Has(codec.PropAuthMethod) || ack.Props.AuthMethod != "JWT" {
		t.Errorf("CONNACK of the JWT method without Authentication Method JWT [MQTT-4.12.0-5]")
	}

	for name, c := range map[string]*codec.Connect{
		"expired_password": {ClientID: uniqueID("jwt5"), CleanStart: true, PasswordFlag: true, Password: []byte(expired)},
		"expired_method":   jwtConnect(uniqueID("jwt5"), expired),
		"forged":           jwtConnect(uniqueID("jwt5"), forged),
	} {
		r := v5DialRaw(t, g)
		if ack := r.connect(c); ack.ReasonCode != codec.BadUsernameOrPassword {
			t.Errorf("%s: CONNACK %#x, want 0x86", name, byte(ack.ReasonCode))
		}
	}
	// Data that is no token is no backend's: without a user name the
	// client is anonymous, and anonymous clients are not allowed (0x87).
	if ack := v5DialRaw(t, g).connect(jwtConnect(uniqueID("jwt5"), "hunter2")); ack.ReasonCode != codec.NotAuthorized {
		t.Errorf("not a token: CONNACK %#x, want 0x87", byte(ack.ReasonCode))
	}
	// A method the gateway does not know stays 0x8C.
	c := jwtConnect(uniqueID("jwt5"), good)
	c.Props.AuthMethod = "OAUTH2"
	if ack := v5DialRaw(t, g).connect(c); ack.ReasonCode != codec.BadAuthMethod {
		t.Errorf("unknown method: CONNACK %#x, want 0x8C", byte(ack.ReasonCode))
	}
}

// TestJWTExpiryDisconnectsMQTT5: a token that expires while its client is
// connected ends the connection with DISCONNECT 0xA0, whether it came in
// the password or as the JWT method's data.
func TestJWTExpiryDisconnectsMQTT5(t *testing.T) {
	t.Parallel()
	g := testutil.Start(t, jwtYAML(""))
	for _, method := range []bool{false, true} {
		jwttest.WithLifetime(t, func(l time.Duration) bool {
			claims, exp := jwttest.ShortLived(l, nil)
			tok := jwtSigner.Token(t, claims)
			r := v5DialRaw(t, g)
			id := uniqueID("jwtexp")
			c := &codec.Connect{ClientID: id, CleanStart: true, PasswordFlag: true, Password: []byte(tok)}
			if method {
				c = jwtConnect(id, tok)
			}
			if ack := r.connect(c); ack.ReasonCode != codec.Success {
				if time.Now().After(exp) {
					return true
				}
				t.Fatalf("method %v: CONNACK %#x", method, byte(ack.ReasonCode))
			}
			expectExpiryDisconnect(t, r)
			if time.Now().Before(exp) {
				t.Errorf("method %v: disconnected before the token's exp", method)
			}
			return false
		})
	}
}

// TestJWTExpiryClosesMQTT311: an MQTT 3.1.1 client (which has no
// DISCONNECT from the server) is closed when its token expires; paho
// sees the connection lost.
func TestJWTExpiryClosesMQTT311(t *testing.T) {
	t.Parallel()
	g := testutil.Start(t, jwtYAML(""))
	jwttest.WithLifetime(t, func(l time.Duration) bool {
		claims, exp := jwttest.ShortLived(l, nil)
		tok := jwtSigner.Token(t, claims)
		r := dialRaw(t, g.MQTTAddr())
		ack := r.connect(&codec.Connect{ProtocolLevel: codec.V311, ClientID: uniqueID("jwt311"), CleanStart: true,
			UsernameFlag: true, Username: "dev", PasswordFlag: true, Password: []byte(tok)})
		if ack.ReasonCode != 0 {
			if time.Now().After(exp) {
				return true
			}
			t.Fatalf("CONNACK return code %d", ack.ReasonCode)
		}
		r.expectClosed("at the token's expiry")
		return false
	})
	jwttest.WithLifetime(t, func(l time.Duration) bool {
		claims, exp := jwttest.ShortLived(l, nil)
		tok := jwtSigner.Token(t, claims)
		c, _, err := tryConnectPaho(t, g.MQTTURL(), uniqueID("jwtpaho"), func(o *paho.ClientOptions) {
			o.SetUsername("dev").SetPassword(tok)
		})
		if err != nil {
			if time.Now().After(exp) {
				return true
			}
			t.Fatalf("paho connect: %v", err)
		}
		testutil.Eventually(t, waitTimeout, func() bool { return c.lostErr() != nil }, "paho still connected after its token expired")
		return false
	})

	// An expired token: CONNACK return code 4 (bad user name or password).
	expired := jwtSigner.Token(t, jwttest.ExpiresIn(-time.Minute, nil))
	ack := dialRaw(t, g.MQTTAddr()).connect(&codec.Connect{ProtocolLevel: codec.V311, ClientID: uniqueID("jwt311"), CleanStart: true,
		UsernameFlag: true, Username: "dev", PasswordFlag: true, Password: []byte(expired)})
	if ack.ReasonCode != codec.ConnRefusedBadCredentials {
		t.Errorf("expired token: CONNACK return code %d, want 4", ack.ReasonCode)
	}
}

// TestJWTReauthMQTT5: a client connected with the JWT method sends a fresh
// token in AUTH 0x19 before the first expires; the gateway answers AUTH
// 0x00 and the connection outlives the first token, until the fresh one
// expires (DISCONNECT 0xA0). A bad fresh token ends the connection with
// 0x87; a client that connected with a password cannot re-authenticate
// (its CONNECT named no method) [MQTT-4.12.1-1].
func TestJWTReauthMQTT5(t *testing.T) {
	t.Parallel()
	g := testutil.Start(t, jwtYAML(""))

	t.Run("fresh_token", func(t *testing.T) {
		t.Parallel()
		jwttest.WithLifetime(t, func(l time.Duration) bool {
			c1, exp1 := jwttest.ShortLived(l, nil)
			c2, exp2 := jwttest.ShortLived(l+2*time.Second, nil)
			toks := jwtSigner.Tokens(t, c1, c2)
			r := v5DialRaw(t, g)
			id := uniqueID("reauth")
			if ack := r.connect(jwtConnect(id, toks[0])); ack.ReasonCode != codec.Success {
				if time.Now().After(exp1) {
					return true
				}
				t.Fatalf("CONNACK %#x", byte(ack.ReasonCode))
			}
			r.send(jwtReauth(toks[1]))
			switch a := r.expect("AUTH after re-authentication").(type) {
			case *codec.Auth:
				if a.ReasonCode != codec.Success || a.Props.AuthMethod != "JWT" {
					t.Fatalf("AUTH %#x method %q, want 0x00 JWT", byte(a.ReasonCode), a.Props.AuthMethod)
				}
			case *codec.Disconnect:
				if a.ReasonCode == codec.MaximumConnectTime && time.Now().After(exp1) {
					return true // the first token expired before AUTH got there
				}
				t.Fatalf("DISCONNECT %#x instead of AUTH 0x00", byte(a.ReasonCode))
			default:
				t.Fatalf("%s instead of AUTH 0x00", a.Type())
			}
			// Past the first token's expiry the connection still works.
			time.Sleep(time.Until(exp1.Add(300 * time.Millisecond)))
			r.subscribe(1, codec.Properties{}, codec.Subscription{Filter: "reauth/" + id, QoS: 0})
			r.send(&codec.Pingreq{})
			v5Expect[*codec.Pingresp](r, "PINGRESP after the first token's expiry")
			// The fresh token's expiry ends it.
			expectExpiryDisconnect(t, r)
			if time.Now().Before(exp2) {
				t.Error("disconnected before the fresh token's exp")
			}
			return false
		})
	})

	toks := jwtSigner.Tokens(t, jwttest.ExpiresIn(-time.Minute, nil), jwttest.ExpiresIn(time.Hour, nil))
	expired, good := toks[0], toks[1]

	t.Run("bad_fresh_token", func(t *testing.T) {
		t.Parallel()
		for _, bad := range []string{expired, "not a token"} {
			r := v5DialRaw(t, g)
			r.connectOK(jwtConnect(uniqueID("reauthbad"), good))
			r.send(jwtReauth(bad))
			d := v5Expect[*codec.Disconnect](r, "DISCONNECT after a bad re-authentication")
			if d.ReasonCode != codec.NotAuthorized {
				t.Errorf("DISCONNECT %#x, want 0x87", byte(d.ReasonCode))
			}
			r.expectClosed("after a bad re-authentication [MQTT-4.12.1-2]")
		}
	})

	t.Run("password_connection", func(t *testing.T) {
		t.Parallel()
		r := v5DialRaw(t, g)
		r.connectOK(&codec.Connect{ClientID: uniqueID("reauthpw"), CleanStart: true, PasswordFlag: true, Password: []byte(good)})
		r.send(jwtReauth(good))
		d := v5Expect[*codec.Disconnect](r, "DISCONNECT")
		if d.ReasonCode != codec.ProtocolError {
			t.Errorf("re-authentication without a CONNECT method: DISCONNECT %#x, want 0x82 [MQTT-4.12.1-1]", byte(d.ReasonCode))
		}
	})
}

// jwtAuther is the paho.Auther of the JWT method, which has no
// challenge: paho requires one once a CONNECT names a method.
type jwtAuther struct{ challenges atomic.Int32 }

func (a *jwtAuther) Authenticate(*paho5.Auth) *paho5.Auth {
	a.challenges.Add(1) // the JWT method never challenges
	return &paho5.Auth{ReasonCode: byte(codec.ContinueAuthentication), Properties: &paho5.AuthProperties{AuthMethod: "JWT"}}
}

func (a *jwtAuther) Authenticated() {}

// TestJWTReauthPahoGolang: the same re-authentication from paho.golang's
// Client.Authenticate, the client API an application would use.
func TestJWTReauthPahoGolang(t *testing.T) {
	t.Parallel()
	g := testutil.Start(t, jwtYAML(""))
	jwttest.WithLifetime(t, func(l time.Duration) bool {
		c1, exp1 := jwttest.ShortLived(l, nil)
		toks := jwtSigner.Tokens(t, c1, jwttest.ExpiresIn(time.Hour, nil))
		cp := v5ConnectPacket("pahoreauth")
		cp.Properties = &paho5.ConnectProperties{AuthMethod: "JWT", AuthData: []byte(toks[0])}
		auther := &jwtAuther{}
		c, _, err := v5TryConnect(t, g, cp, func(cfg *paho5.ClientConfig) { cfg.AuthHandler = auther })
		if err != nil {
			if time.Now().After(exp1) {
				return true
			}
			t.Fatalf("connect: %v", err)
		}
		if c.ack.Properties == nil || c.ack.Properties.AuthMethod != "JWT" {
			t.Fatal("CONNACK without Authentication Method JWT")
		}
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		resp, err := c.Authenticate(ctx, &paho5.Auth{ReasonCode: byte(codec.ReAuthenticate),
			Properties: &paho5.AuthProperties{AuthMethod: "JWT", AuthData: []byte(toks[1])}})
		if err != nil || !resp.Success {
			if resp != nil && resp.ReasonCode == byte(codec.MaximumConnectTime) && time.Now().After(exp1) {
				return true
			}
			t.Fatalf("re-authentication: %+v %v", resp, err)
		}
		time.Sleep(time.Until(exp1.Add(300 * time.Millisecond)))
		c.sub("pahoreauth/t", 1)
		c.publish("pahoreauth/t", 1, false, "still here")
		if m := c.next(); string(m.Payload) != "still here" {
			t.Fatalf("got %q", m.Payload)
		}
		select {
		case d := <-c.discs:
			t.Fatalf("DISCONNECT %#x after re-authentication", d.ReasonCode)
		default:
		}
		if n := auther.challenges.Load(); n != 0 {
			t.Errorf("%d AUTH 0x18 challenges; the JWT method has none", n)
		}
		return false
	})
}

// TestJWTClaimsMQTT: verify_claims binds the token to its client id
// (another client id is refused with 0x87), and the acl claim limits the
// client to devices/<its id>/# (acl.default deny refuses the rest).
func TestJWTClaimsMQTT(t *testing.T) {
	t.Parallel()
	g := testutil.Start(t, jwtYAML("    verify_claims: {sub: \"${clientid}\"}\n")+"acl:\n  default: deny\n")
	id := uniqueID("dev")
	tok := jwtSigner.Token(t, jwttest.ExpiresIn(time.Hour, jwttest.Claims{"sub": id,
		"acl": []any{map[string]string{"permission": "allow", "action": "all", "topic": "devices/${clientid}/#"}}}))

	if ack := v5DialRaw(t, g).connect(jwtConnect(uniqueID("other"), tok)); ack.ReasonCode != codec.NotAuthorized {
		t.Errorf("token of %s used by another client id: CONNACK %#x, want 0x87", id, byte(ack.ReasonCode))
	}
	r := v5DialRaw(t, g)
	r.connectOK(jwtConnect(id, tok))
	sa := r.subscribe(1, codec.Properties{},
		codec.Subscription{Filter: "devices/" + id + "/cmd", QoS: 1},
		codec.Subscription{Filter: "devices/someone-else/cmd", QoS: 1},
		codec.Subscription{Filter: "#", QoS: 1})
	// The access rules' refusal in SUBACK is 0x80 (handlers.go).
	if want := []byte{1, 0x80, 0x80}; string(sa.ReasonCodes) != string(want) {
		t.Errorf("SUBACK % x, want % x", sa.ReasonCodes, want)
	}
	r.send(&codec.Publish{Topic: "devices/someone-else/up", QoS: 1, PacketID: 2, Payload: []byte("x")})
	if a := v5Expect[*codec.Ack](r, "PUBACK"); a.ReasonCode != codec.NotAuthorized {
		t.Errorf("publish outside the acl claim: PUBACK %#x, want 0x87", byte(a.ReasonCode))
	}
	r.send(&codec.Publish{Topic: "devices/" + id + "/cmd", QoS: 1, PacketID: 3, Payload: []byte("mine")})
	var got bool
	for !got {
		switch p := r.expect("PUBACK and PUBLISH").(type) {
		case *codec.Ack:
			if p.ReasonCode >= 0x80 {
				t.Fatalf("publish inside the acl claim: PUBACK %#x", byte(p.ReasonCode))
			}
		case *codec.Publish:
			got = string(p.Payload) == "mine"
		}
	}
}

// TestJWTJWKSMQTT: a gateway with jwks_url accepts an ES256 token of the
// provider's key, then, after the provider rotates, a token of the new
// kid (one fetch for the unknown kid), while 10 connects with made-up
// kids add no fetch (jwks_min_interval) and are refused.
func TestJWTJWKSMQTT(t *testing.T) {
	t.Parallel()
	k1, k2 := jwttest.EC(t, "k1"), jwttest.RSA(t, "k2")
	var mu sync.Mutex
	set := jwttest.JWKS(k1)
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		mu.Lock()
		defer mu.Unlock()
		_, _ = w.Write(set)
	}))
	t.Cleanup(srv.Close)
	g := testutil.Start(t, fmt.Sprintf("auth:\n  allow_anonymous: false\n  jwt:\n    jwks_url: %q\n    jwks_min_interval: 1h\n", srv.URL))
	claims := jwttest.ExpiresIn(time.Hour, nil)
	v5DialRaw(t, g).connectOK(jwtConnect(uniqueID("jwks"), k1.Token(t, claims)))
	mu.Lock()
	set = jwttest.JWKS(k1, k2)
	mu.Unlock()
	before := hits.Load()
	v5DialRaw(t, g).connectOK(jwtConnect(uniqueID("jwks"), k2.Token(t, claims)))
	if n := hits.Load(); n != before+1 {
		t.Errorf("%d JWKS fetches for the new kid, want 1", n-before)
	}
	bogus := make([]jwttest.Claims, 10)
	for i := range bogus {
		bogus[i] = claims
	}
	before = hits.Load()
	for _, tok := range jwttest.RSA(t, "made-up").Tokens(t, bogus...) {
		if ack := v5DialRaw(t, g).connect(jwtConnect(uniqueID("jwks"), tok)); ack.ReasonCode != codec.BadUsernameOrPassword {
			t.Errorf("unknown kid: CONNACK %#x, want 0x86", byte(ack.ReasonCode))
		}
	}
	if n := hits.Load(); n != before {
		t.Errorf("%d JWKS fetches for 10 unknown kids within jwks_min_interval, want 0", n-before)
	}
}
