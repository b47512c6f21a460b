package coap_test

// JWT authentication (issue 16 item 3) seen by a CoAP client in
// connection mode: the token is the connection's password; when it
// expires the connection's session ends (its heartbeat gets 4.01); an
// expired token is refused at POST /mqtt/connection.

import (
	"bytes"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/iotgw/iotgw/core"
	"github.com/iotgw/iotgw/internal/auth/jwt"
	"github.com/iotgw/iotgw/internal/auth/jwt/jwttest"
	"github.com/iotgw/iotgw/internal/testutil"
)

const coapJWTSecret = "coap-test-secret-0123456789abcdef-0123"

func TestJWTConnectionMode(t *testing.T) {
	t.Parallel()
	cfg := jwt.DefaultConfig()
	cfg.Secret, cfg.Leeway = coapJWTSecret, 0
	be, err := jwt.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	chain, err := core.NewChain([]core.ChainLink{{Name: "jwt", Backend: be}}, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, nil, core.WithAuthenticator(chain))
	cc := g.coapClient(t)
	signer := jwttest.HMAC(coapJWTSecret)

	expired := signer.Token(t, jwttest.ExpiresIn(-time.Minute, nil))
	if r := post(t, cc, "/mqtt/connection", message.TextPlain, "", "clientid=cj0", "username=dev", "password="+expired); r.Code != codes.Unauthorized {
		t.Fatalf("expired token: %v", r.Code)
	}
	heartbeat := func(tok string) codes.Code {
		req, err := cc.NewPutRequest(ctxTimeout(t), "/mqtt/connection", message.TextPlain, bytes.NewReader(nil), queries("clientid=cj1", "token="+tok)...)
		return do(t, cc, req, err).Code
	}
	jwttest.WithLifetime(t, func(l time.Duration) bool {
		claims, exp := jwttest.ShortLived(l, nil)
		r := post(t, cc, "/mqtt/connection", message.TextPlain, "", "clientid=cj1", "username=dev", "password="+signer.Token(t, claims))
		if r.Code != codes.Created {
			if time.Now().After(exp) {
				return true
			}
			t.Fatalf("connect: %v %q", r.Code, r.Payload)
		}
		conn := r.Payload
		testutil.Eventually(t, waitTimeout, func() bool {
			return heartbeat(conn) == codes.Unauthorized
		}, "the connection to end at the token's expiry")
		if time.Now().Before(exp) {
			t.Error("connection ended before the token's exp")
		}
		return false
	})
}
