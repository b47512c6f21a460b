package jwt

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

// FuzzParse feeds client input (an MQTT password, a STOMP passcode) to
// the token parser and to verification. It must never panic, must class
// every input as a token, not a token or a broken token, and no input may
// verify without the key: the fuzzer does not know the secret, so a
// signature that verifies can only come from the seeds.
func FuzzParse(f *testing.F) {
	secret := []byte("fuzz-secret-fuzz-secret-fuzz-secret")
	enc := base64.RawURLEncoding.EncodeToString
	sign := func(h, c string) string {
		in := enc([]byte(h)) + "." + enc([]byte(c))
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(in))
		return in + "." + enc(m.Sum(nil))
	}
	for _, s := range []string{
		"",
		"password",
		"a.b.c",
		"e30.e30.",
		sign(`{"alg":"HS256","typ":"JWT"}`, `{"sub":"x","exp":9999999999}`),
		sign(`{"alg":"HS256","kid":"k"}`, `{"exp":1.5e9,"nbf":0,"iat":-1,"acl":[{"permission":"allow","topic":"#"}]}`),
		sign(`{"alg":"none"}`, `{}`),
		sign(`{"alg":"HS256","crit":[]}`, `{}`),
		sign(`{"alg":"HS256"}`, `{"exp":1e400}`),
		sign(`{"alg":"HS256"}`, `[]`),
		sign(`{"alg":"HS256"} `, `{"a":{"b":[1,2,{"c":null}]}}`),
		enc([]byte(`{"alg":"RS256"}`)) + "." + enc([]byte(`{}`)) + ".!!",
		"eyJhbGciOiJIUzI1NiJ9..",
		"eyJhbGciOiJIUzI1NiJ9.e30.e30.e30.e30", // JWE-like: five parts
	} {
		f.Add(s)
	}
	key, err := HMACKey(secret)
	if err != nil {
		f.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0)
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrNotJWT) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse error %v is neither ErrNotJWT nor ErrMalformed", err)
			}
			if tok != nil {
				t.Fatal("a token with an error")
			}
			return
		}
		if tok.Header.Alg == "" || tok.Claims == nil || len(tok.Header.Crit) > 0 {
			t.Fatalf("parsed token %+v: no alg, no claims or crit", tok.Header)
		}
		if !strings.HasPrefix(s, string(tok.signed)+".") {
			t.Fatal("signing input is not the token's first two parts")
		}
		_, _, _ = tok.NumericDate("exp")
		_, _ = tok.CheckTimes(now, time.Minute, false)
		if tok.Verify(key) == nil && tok.Header.Alg != "HS256" && tok.Header.Alg != "HS384" && tok.Header.Alg != "HS512" {
			t.Fatalf("an HMAC key verified alg %q", tok.Header.Alg)
		}
		_, _ = rulesFromClaim(tok.Claims["acl"])
	})
}
