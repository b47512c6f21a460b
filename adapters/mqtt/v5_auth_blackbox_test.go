package mqtt_test

// MQTT 5.0 enhanced authentication (4.12) with SCRAM-SHA-256 against
// auth.users, driven by paho.golang's AuthHandler and by a raw client.

import (
	"sync"
	"testing"

	paho5 "github.com/eclipse/paho.golang/paho"

	"github.com/iotgw/iotgw/adapters/mqtt/codec"
	"github.com/iotgw/iotgw/internal/testutil"
)

const v5AuthYAML = "auth:\n  allow_anonymous: true\n  users: [{username: alice, password: secret}]\n"

// v5SCRAMAuther is a paho.Auther answering the server's SCRAM challenge
// and recording what the server sent.
type v5SCRAMAuther struct {
	s *v5SCRAM

	mu      sync.Mutex
	steps   int
	reasons []byte
	methods []string
	err     error
}

func (a *v5SCRAMAuther) Authenticate(in *paho5.Auth) *paho5.Auth {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.steps++
	a.reasons = append(a.reasons, in.ReasonCode)
	var data []byte
	if in.Properties != nil {
		a.methods = append(a.methods, in.Properties.AuthMethod)
		var err error
		if data, err = a.s.final(in.Properties.AuthData); err != nil && a.err == nil {
			a.err = err
		}
	}
	// [MQTT-4.12.0-3] the client answers with 0x18 and the same method
	// [MQTT-4.12.0-5].
	return &paho5.Auth{ReasonCode: byte(codec.ContinueAuthentication),
		Properties: &paho5.AuthProperties{AuthMethod: v5SCRAMMethod, AuthData: data}}
}

func (a *v5SCRAMAuther) Authenticated() {}

// v5SCRAMConnect is a raw CONNECT starting a SCRAM-SHA-256 exchange.
func v5SCRAMConnect(s *v5SCRAM) *codec.Connect {
	return &codec.Connect{ProtocolLevel: codec.V5, ClientID: uniqueID("scram"), CleanStart: true,
		Props: codec.Properties{Present: codec.PropMask(codec.PropAuthMethod, codec.PropAuthData),
			AuthMethod: v5SCRAMMethod, AuthData: s.first()}}
}

func TestV5Auth(t *testing.T) {
	t.Parallel()

	t.Run("scram_sha256_success", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, v5AuthYAML)
		auther := &v5SCRAMAuther{s: newV5SCRAM("alice", "secret")}
		cp := v5ConnectPacket("scram")
		cp.Properties = &paho5.ConnectProperties{AuthMethod: v5SCRAMMethod, AuthData: auther.s.first()}
		c := v5Connect(t, g, cp, func(cfg *paho5.ClientConfig) { cfg.AuthHandler = auther })

		auther.mu.Lock()
		steps, reasons, methods, err := auther.steps, auther.reasons, auther.methods, auther.err
		auther.mu.Unlock()
		if err != nil {
			t.Fatalf("server-first-message: %v", err)
		}
		// [MQTT-4.12.0-2] the challenge comes in AUTH 0x18, [MQTT-4.12.0-5]
		// naming the CONNECT's method.
		if steps != 1 || reasons[0] != byte(codec.ContinueAuthentication) || methods[0] != v5SCRAMMethod {
			t.Errorf("server AUTH packets: %d, reason codes % x, methods %q; want one 0x18 %s [MQTT-4.12.0-2], [MQTT-4.12.0-5]",
				steps, reasons, methods, v5SCRAMMethod)
		}
		// [MQTT-4.12.0-5] the successful CONNACK names the method too, and
		// carries server-final-message: the server proves it knows the
		// password (RFC 5802 section 3).
		p := c.ack.Properties
		if p == nil || p.AuthMethod != v5SCRAMMethod {
			t.Fatalf("CONNACK without Authentication Method %s [MQTT-4.12.0-5]", v5SCRAMMethod)
		}
		if err := auther.s.verify(p.AuthData); err != nil {
			t.Errorf("CONNACK Authentication Data: %v", err)
		}
		// The authenticated connection works.
		c.sub("scram/t", 1)
		c.publish("scram/t", 1, false, "hello")
		if m := c.next(); string(m.Payload) != "hello" {
			t.Errorf("got %q", m.Payload)
		}
	})

	for _, tc := range []struct{ name, user, password string }{
		{"scram_wrong_password", "alice", "wrong"},
		{"scram_unknown_user", "mallory", "secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := testutil.Start(t, v5AuthYAML)
			s := newV5SCRAM(tc.user, tc.password)
			r := v5DialRaw(t, g)
			r.send(v5SCRAMConnect(s))
			challenge := v5Expect[*codec.Auth](r, "AUTH challenge")
			if challenge.ReasonCode != codec.ContinueAuthentication || challenge.Props.AuthMethod != v5SCRAMMethod {
				t.Fatalf("AUTH %#x method %q, want 0x18 %s [MQTT-4.12.0-2], [MQTT-4.12.0-5]",
					byte(challenge.ReasonCode), challenge.Props.AuthMethod, v5SCRAMMethod)
			}
			final, err := s.final(challenge.Props.AuthData)
			if err != nil {
				t.Fatalf("server-first-message: %v", err)
			}
			r.send(&codec.Auth{ReasonCode: codec.ContinueAuthentication,
				Props: codec.Properties{Present: codec.PropMask(codec.PropAuthMethod, codec.PropAuthData),
					AuthMethod: v5SCRAMMethod, AuthData: final}})
			ack := v5Expect[*codec.Connack](r, "CONNACK")
			// [MQTT-4.12.0-4] the server rejects the authentication with a
			// CONNACK of 0x80 or above, here 0x86, and closes
			// [MQTT-3.2.2-7].
			if ack.ReasonCode != codec.BadUsernameOrPassword {
				t.Errorf("%s: CONNACK %#x, want 0x86 [MQTT-4.12.0-4]", tc.name, byte(ack.ReasonCode))
			}
			if ack.SessionPresent {
				t.Errorf("refusing CONNACK with Session Present 1 [MQTT-3.2.2-6]")
			}
			r.expectClosed("after the refusing CONNACK [MQTT-3.2.2-7]")
		})
	}

	t.Run("unknown_method", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, v5AuthYAML)
		cp := v5ConnectPacket("krb")
		cp.Properties = &paho5.ConnectProperties{AuthMethod: "GS2-KRB5", AuthData: []byte("token")}
		_, ack, err := v5TryConnect(t, g, cp, nil)
		// [MQTT-4.12.0-1] an unsupported method: CONNACK 0x8C (or 0x87)
		// and the connection is closed.
		if ack == nil {
			t.Fatalf("no CONNACK for an unknown authentication method: %v", err)
		}
		if ack.ReasonCode != byte(codec.BadAuthMethod) {
			t.Errorf("unknown method: CONNACK %#x, want 0x8C [MQTT-4.12.0-1]", ack.ReasonCode)
		}
		r := v5DialRaw(t, g)
		rack := r.connect(&codec.Connect{ClientID: uniqueID("krb"), CleanStart: true,
			Props: codec.Properties{Present: codec.PropMask(codec.PropAuthMethod), AuthMethod: "GS2-KRB5"}})
		if rack.ReasonCode != codec.BadAuthMethod {
			t.Errorf("unknown method (raw): CONNACK %#x, want 0x8C [MQTT-4.12.0-1]", byte(rack.ReasonCode))
		}
		r.expectClosed("after CONNACK 0x8C [MQTT-4.12.0-1]")
	})

	t.Run("password", func(t *testing.T) {
		t.Parallel()
		g := testutil.Start(t, v5AuthYAML)
		ok := v5ConnectPacket("pw")
		ok.Username, ok.UsernameFlag, ok.Password, ok.PasswordFlag = "alice", true, []byte("secret"), true
		v5Connect(t, g, ok, nil)
		bad := v5ConnectPacket("pw")
		bad.Username, bad.UsernameFlag, bad.Password, bad.PasswordFlag = "alice", true, []byte("nope"), true
		_, ack, _ := v5TryConnect(t, g, bad, nil)
		// 3.2.2.2: 0x86 Bad User Name or Password.
		if ack == nil || ack.ReasonCode != byte(codec.BadUsernameOrPassword) {
			t.Errorf("wrong password: CONNACK %+v, want reason 0x86", ack)
		}
	})
}
