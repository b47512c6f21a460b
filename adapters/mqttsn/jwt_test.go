package mqttsn_test

// JWT authentication (issue 16 item 3) seen by an MQTT-SN client: the
// token is the password of the AUTH extension (PLAIN); when it expires
// the gateway sends DISCONNECT and forgets the client; an expired token
// is refused at CONNECT.

import (
	"fmt"
	"testing"
	"time"

	"github.com/iotgw/iotgw/adapters/mqttsn/codec"
	"github.com/iotgw/iotgw/adapters/mqttsn/sntest"
	"github.com/iotgw/iotgw/internal/auth/jwt/jwttest"
	"github.com/iotgw/iotgw/internal/testutil"
)

const snJWTSecret = "mqttsn-test-secret-0123456789abcdef-0"

func TestJWTMQTTSN(t *testing.T) {
	t.Parallel()
	g := testutil.Start(t, fmt.Sprintf("auth:\n  allow_anonymous: false\n  jwt:\n    secret: %q\n    leeway: 0s\nmqttsn:\n  new_session_rate: 0\n", snJWTSecret))
	signer := jwttest.HMAC(snJWTSecret)
	connect := func(c *sntest.Client, tok string) codec.ReturnCode {
		c.Send(&codec.Auth{Method: "PLAIN", Data: []byte("\x00dev\x00" + tok)})
		c.Send(&codec.Connect{Flags: codec.Flags{CleanSession: true}, ProtocolID: codec.ProtocolID12, Duration: 60, ClientID: uniqueID("snjwt")})
		ack, ok := c.Expect(codec.TypeConnack).(*codec.ReturnOnly)
		if !ok {
			t.Fatal("CONNACK is not a return code")
		}
		return ack.Code
	}
	jwttest.WithLifetime(t, func(l time.Duration) bool {
		claims, exp := jwttest.ShortLived(l, nil)
		c := sntest.Dial(t, g.Addr("mqttsn.udp"))
		if rc := connect(c, signer.Token(t, claims)); rc != codec.Accepted {
			if time.Now().After(exp) {
				return true
			}
			t.Fatalf("CONNACK %v", rc)
		}
		c.Expect(codec.TypeDisconnect)
		if time.Now().Before(exp) {
			t.Error("disconnected before the token's exp")
		}
		return false
	})
	// 1.2 has no "not authorized": a refusal is "rejected: not supported".
	c := sntest.Dial(t, g.Addr("mqttsn.udp"))
	if rc := connect(c, signer.Token(t, jwttest.ExpiresIn(-time.Minute, nil))); rc != codec.NotSupported {
		t.Errorf("expired token: CONNACK %v, want rejected (not supported)", rc)
	}
}
