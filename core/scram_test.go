package core

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"testing"
)

// scramClient computes a client-final-message the RFC 5802 way, written
// independently of the server code above.
func scramClient(t *testing.T, user, password string, conv func([]byte) []byte) (serverFinal []byte) {
	t.Helper()
	cnonce := "rOprNGfwEbeRWgbNEkqO"
	bare := "n=" + user + ",r=" + cnonce
	serverFirst := string(conv([]byte("n,," + bare)))
	f := map[string]string{}
	for _, kv := range strings.Split(serverFirst, ",") {
		f[kv[:1]] = kv[2:]
	}
	salt, _ := base64.StdEncoding.DecodeString(f["s"])
	iter, _ := strconv.Atoi(f["i"])
	salted, _ := pbkdf2.Key(sha256.New, password, salt, iter, 32)
	mac := func(k []byte, m string) []byte { h := hmac.New(sha256.New, k); h.Write([]byte(m)); return h.Sum(nil) }
	clientKey := mac(salted, "Client Key")
	stored := sha256.Sum256(clientKey)
	final := "c=biws,r=" + f["r"]
	sig := mac(stored[:], bare+","+serverFirst+","+final)
	proof := make([]byte, 32)
	for i := range proof {
		proof[i] = clientKey[i] ^ sig[i]
	}
	return conv([]byte(final + ",p=" + base64.StdEncoding.EncodeToString(proof)))
}

func TestSCRAM(t *testing.T) {
	s := NewSCRAM([]User{{Username: "alice", Password: "s3cret"}})
	for _, tc := range []struct {
		user, pass string
		ok         bool
	}{{"alice", "s3cret", true}, {"alice", "wrong", false}, {"mallory", "s3cret", false}} {
		var c AuthConversation
		var stepErr error
		final := scramClient(t, tc.user, tc.pass, func(m []byte) []byte {
			if c == nil {
				conv, resp, err := s.Start(m)
				if err != nil {
					t.Fatal(err)
				}
				c = conv
				return resp
			}
			resp, done, err := c.Step(m)
			if !done {
				t.Fatal("not done after client-final")
			}
			stepErr = err
			return resp
		})
		if (stepErr == nil) != tc.ok {
			t.Fatalf("%s/%s: err %v", tc.user, tc.pass, stepErr)
		}
		if tc.ok && (!strings.HasPrefix(string(final), "v=") || c.Username() != "alice") {
			t.Fatalf("server final %q", final)
		}
	}
	if _, _, err := s.Start([]byte("p=tls-unique,,n=a,r=x")); err == nil {
		t.Fatal("channel binding accepted")
	}
}

func TestUsers(t *testing.T) {
	users, err := NewUsers([]User{{Username: "a", Password: "p"}})
	if err != nil {
		t.Fatal(err)
	}
	u := chainOf(t, false, ChainLink{Name: "users", Backend: users})
	ctx := context.Background()
	if err := u.Authenticate(ctx, &ClientInfo{Username: "a", Password: []byte("p")}); err != nil {
		t.Fatal(err)
	}
	if err := u.Authenticate(ctx, &ClientInfo{Username: "a", Password: []byte("x")}); !errors.Is(err, ErrBadCredentials) {
		t.Fatal(err)
	}
	if err := u.Authenticate(ctx, &ClientInfo{}); !errors.Is(err, ErrNotAuthorized) {
		t.Fatal("anonymous accepted")
	}
	if _, err := NewUsers([]User{{Username: "a"}, {Username: "a"}}); err == nil {
		t.Fatal("duplicate accepted")
	}
}
