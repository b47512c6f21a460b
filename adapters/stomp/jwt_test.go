package stomp_test

// JWT authentication (issue 16 item 3) seen by a STOMP client: the token
// is the passcode; when it expires the gateway sends ERROR "authentication
// expired" and closes; an expired or forged token is refused at CONNECT.

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/iotgw/iotgw/internal/auth/jwt/jwttest"
	"github.com/iotgw/iotgw/internal/testutil"
)

const stompJWTSecret = "stomp-test-secret-0123456789abcdef-01"

func TestJWTSTOMP(t *testing.T) {
	t.Parallel()
	g := testutil.Start(t, fmt.Sprintf("auth:\n  allow_anonymous: false\n  jwt:\n    secret: %q\n    leeway: 0s\n", stompJWTSecret))
	signer := jwttest.HMAC(stompJWTSecret)

	t.Run("expiry_ends_connection", func(t *testing.T) {
		t.Parallel()
		jwttest.WithLifetime(t, func(l time.Duration) bool {
			claims, exp := jwttest.ShortLived(l, nil)
			tok := signer.Token(t, claims)
			r := dialRaw(t, g.STOMPAddr())
			r.write("CONNECT\naccept-version:1.2\nhost:test\nlogin:dev\npasscode:" + tok + "\n\n\x00")
			f := r.expect2(frame.CONNECTED, frame.ERROR)
			if f.Command == frame.ERROR {
				if time.Now().After(exp) {
					return true
				}
				t.Fatalf("CONNECT refused: %v", f.Header)
			}
			r.expectError("authentication expired")
			if time.Now().Before(exp) {
				t.Error("closed before the token's exp")
			}
			return false
		})
	})

	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		expired := signer.Token(t, jwttest.ExpiresIn(-time.Minute, nil))
		forged := jwttest.HMAC(strings.Repeat("x", 40)).Token(t, jwttest.ExpiresIn(time.Hour, nil))
		for _, tok := range []string{expired, forged} {
			r := dialRaw(t, g.STOMPAddr())
			r.write("CONNECT\naccept-version:1.2\nhost:test\nlogin:dev\npasscode:" + tok + "\n\n\x00")
			r.expectError("login failed")
		}
		good := signer.Token(t, jwttest.ExpiresIn(time.Hour, nil))
		dialRaw(t, g.STOMPAddr()).connect("login:dev", "passcode:"+good)
	})
}

// expect2 reads the next frame (skipping heart-beats), which must be one
// of the two commands.
func (r *rawStomp) expect2(a, b string) *frame.Frame {
	r.t.Helper()
	for {
		f, err := r.read()
		if err != nil {
			r.t.Fatalf("waiting for %s or %s: %v", a, b, err)
		}
		if f == nil {
			continue
		}
		if f.Command != a && f.Command != b {
			r.t.Fatalf("got %s %v, want %s or %s", f.Command, f.Header, a, b)
		}
		return f
	}
}
