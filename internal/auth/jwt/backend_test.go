package jwt_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iotgw/iotgw/core"
	"github.com/iotgw/iotgw/internal/auth/jwt"
	"github.com/iotgw/iotgw/internal/auth/jwt/jwttest"
)

const testSecret = "0123456789abcdef0123456789abcdef-test"

func newBackend(t *testing.T, mod func(*jwt.Config)) *jwt.Backend {
	t.Helper()
	cfg := jwt.DefaultConfig()
	mod(&cfg)
	b, err := jwt.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func auth(t *testing.T, b *jwt.Backend, clientID, user, password string) core.AuthResult {
	t.Helper()
	r, err := b.Authenticate(context.Background(), &core.ClientInfo{Protocol: "mqtt", ClientID: clientID, Username: user, Password: []byte(password)})
	if err != nil {
		t.Fatalf("backend failure: %v", err)
	}
	return r
}

// craft builds a token by hand, for what no honest library signs.
func craft(header, claims any, sign func(input []byte) []byte) string {
	enc := base64.RawURLEncoding.EncodeToString
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	input := enc(h) + "." + enc(c)
	return input + "." + enc(sign([]byte(input)))
}

func hs256(secret []byte) func([]byte) []byte {
	return func(in []byte) []byte {
		m := hmac.New(sha256.New, secret)
		m.Write(in)
		return m.Sum(nil)
	}
}

// TestPyJWTAlgorithms: tokens PyJWT signs with HS256 (secret and
// secret_file), HS512, RS256, RS512, PS256, ES256 and EdDSA (public key
// files) are accepted, with
// their exp (plus leeway) as the end of the connection.
func TestPyJWTAlgorithms(t *testing.T) {
	t.Parallel()
	rs, es, ed := jwttest.RSA(t, ""), jwttest.EC(t, ""), jwttest.Ed25519(t, "")
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte(testSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour).Unix()
	claims := jwttest.Claims{"exp": exp, "sub": "dev1"}
	for _, tc := range []struct {
		name   string
		signer *jwttest.Signer
		cfg    func(*jwt.Config)
	}{
		{"HS256_secret", jwttest.HMAC(testSecret), func(c *jwt.Config) { c.Secret = testSecret }},
		{"HS256_secret_file", jwttest.HMAC(testSecret), func(c *jwt.Config) { c.SecretFile = secretFile }},
		{"RS256", rs, func(c *jwt.Config) { c.PublicKeyFile = rs.WritePublicPEM(t) }},
		{"ES256", es, func(c *jwt.Config) { c.PublicKeyFile = es.WritePublicPEM(t) }},
		{"PS256", rs.WithAlg("PS256"), func(c *jwt.Config) { c.PublicKeyFile = rs.WritePublicPEM(t) }},
		{"RS512", rs.WithAlg("RS512"), func(c *jwt.Config) { c.PublicKeyFile = rs.WritePublicPEM(t) }},
		{"EdDSA", ed, func(c *jwt.Config) { c.PublicKeyFile = ed.WritePublicPEM(t) }},
		{"HS512", jwttest.HMAC(testSecret).WithAlg("HS512"), func(c *jwt.Config) { c.Secret = testSecret }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBackend(t, tc.cfg)
			r := auth(t, b, "dev1", "", tc.signer.Token(t, claims))
			if r.Decision != core.Allow || r.Grant == nil {
				t.Fatalf("%s: %v %v", tc.name, r.Decision, r.Err)
			}
			if want := time.Unix(exp, 0).Add(30 * time.Second); !r.Grant.ExpireAt.Equal(want) {
				t.Errorf("ExpireAt %v, want exp + leeway %v", r.Grant.ExpireAt, want)
			}
			if r.Grant.Attrs["sub"] != "dev1" {
				t.Errorf("attrs %v", r.Grant.Attrs)
			}
		})
	}
}

// TestRefusals: what is not a token is ignored (another backend may know
// the password); every kind of bad token is denied, with the reason the
// client is told.
func TestRefusals(t *testing.T) {
	t.Parallel()
	rs := jwttest.RSA(t, "")
	pubPEM := rs.PublicPEM(t)
	pemFile := rs.WritePublicPEM(t)
	hmacB := newBackend(t, func(c *jwt.Config) { c.Secret = testSecret })
	rsaB := newBackend(t, func(c *jwt.Config) { c.PublicKeyFile = pemFile })
	hs := jwttest.HMAC(testSecret)
	now := time.Now()
	valid := jwttest.Claims{"exp": now.Add(time.Hour).Unix()}
	toks := hs.Tokens(t,
		jwttest.Claims{"exp": now.Add(-time.Minute).Unix()},                                // 0 expired beyond the leeway
		jwttest.Claims{"exp": now.Add(time.Hour).Unix(), "nbf": now.Add(time.Hour).Unix()}, // 1 not yet valid
		jwttest.Claims{"exp": now.Add(time.Hour).Unix(), "iat": now.Add(time.Hour).Unix()}, // 2 issued in the future
		jwttest.Claims{"sub": "x"}, // 3 no exp
		valid,                      // 4
		jwttest.Claims{"exp": now.Add(-10 * time.Second).Unix()}, // 5 expired within the leeway
	)
	other := jwttest.HMAC("another-secret-of-more-than-32-bytes!!").Token(t, valid)
	rsTok := rs.Token(t, valid)
	parts := strings.Split(toks[4], ".")
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"exp":9999999999,"superuser":true}`)) + "." + parts[2]

	for _, tc := range []struct {
		name  string
		b     *jwt.Backend
		token string
		want  core.Decision
		err   error
	}{
		{"empty", hmacB, "", core.Ignore, nil},
		{"password", hmacB, "hunter2", core.Ignore, nil},
		{"three_dots_not_base64", hmacB, "a.b.c", core.Ignore, nil},
		{"header_not_json", hmacB, "bm90IGpzb24.e30.", core.Ignore, nil},
		{"valid_hs256", hmacB, toks[4], core.Allow, nil},
		{"expired_within_leeway", hmacB, toks[5], core.Allow, nil},
		{"expired", hmacB, toks[0], core.Deny, core.ErrBadCredentials},
		{"not_yet_valid", hmacB, toks[1], core.Deny, core.ErrBadCredentials},
		{"issued_in_future", hmacB, toks[2], core.Deny, core.ErrBadCredentials},
		{"no_exp", hmacB, toks[3], core.Deny, core.ErrBadCredentials},
		{"wrong_secret", hmacB, other, core.Deny, core.ErrBadCredentials},
		{"tampered_claims", hmacB, tampered, core.Deny, core.ErrBadCredentials},
		{"alg_none", hmacB, craft(map[string]string{"alg": "none"}, valid, func([]byte) []byte { return nil }), core.Deny, core.ErrBadCredentials},
		{"alg_None_rsa", rsaB, craft(map[string]string{"alg": "None"}, valid, func([]byte) []byte { return nil }), core.Deny, core.ErrBadCredentials},
		// The classic confusion: HS256 keyed with the RSA public key that
		// the server holds; an RSA key only verifies RS*/PS*.
		{"hs256_with_rsa_public_key", rsaB, craft(map[string]string{"alg": "HS256", "typ": "JWT"}, valid, hs256(pubPEM)), core.Deny, core.ErrBadCredentials},
		{"rs256_against_secret", hmacB, rsTok, core.Deny, core.ErrBadCredentials},
		{"rs256_valid", rsaB, rsTok, core.Allow, nil},
		{"crit_header", hmacB, craft(map[string]any{"alg": "HS256", "crit": []string{"b64"}, "b64": false}, valid, hs256([]byte(testSecret))), core.Deny, core.ErrBadCredentials},
		{"ALG_uppercase_only", hmacB, craft(map[string]any{"ALG": "HS256"}, valid, hs256([]byte(testSecret))), core.Ignore, nil},
		{"exp_not_number", hmacB, craft(map[string]any{"alg": "HS256"}, map[string]any{"exp": "tomorrow"}, hs256([]byte(testSecret))), core.Deny, core.ErrBadCredentials},
		{"signature_truncated", hmacB, toks[4][:len(toks[4])-4], core.Deny, core.ErrBadCredentials},
	} {
		r := auth(t, tc.b, "c", "", tc.token)
		t.Logf("%s: %v %v", tc.name, r.Decision, r.Err)
		if r.Decision != tc.want {
			t.Errorf("%s: %v (%v), want %v", tc.name, r.Decision, r.Err, tc.want)
			continue
		}
		if tc.err != nil && !errors.Is(r.Err, tc.err) {
			t.Errorf("%s: reason %v, want %v", tc.name, r.Err, tc.err)
		}
	}
}

// TestFromUsername: with from: username the token is the user name and
// the password is not looked at.
func TestFromUsername(t *testing.T) {
	t.Parallel()
	b := newBackend(t, func(c *jwt.Config) { c.Secret = testSecret; c.From = "username" })
	tok := jwttest.HMAC(testSecret).Token(t, jwttest.ExpiresIn(time.Hour, nil))
	if r := auth(t, b, "c", tok, "whatever"); r.Decision != core.Allow {
		t.Fatalf("token as user name: %v %v", r.Decision, r.Err)
	}
	if r := auth(t, b, "c", "alice", tok); r.Decision != core.Ignore {
		t.Fatalf("token in the password with from username: %v", r.Decision)
	}
}

// TestVerifyClaims: every listed claim must equal its expanded value;
// an array claim (aud) matches when it holds the value.
func TestVerifyClaims(t *testing.T) {
	t.Parallel()
	b := newBackend(t, func(c *jwt.Config) {
		c.Secret = testSecret
		c.VerifyClaims = map[string]string{"sub": "${clientid}", "username": "${username}", "aud": "iotgw"}
	})
	hs := jwttest.HMAC(testSecret)
	toks := hs.Tokens(t,
		jwttest.ExpiresIn(time.Hour, jwttest.Claims{"sub": "dev1", "username": "alice", "aud": "iotgw"}),
		jwttest.ExpiresIn(time.Hour, jwttest.Claims{"sub": "dev1", "username": "alice", "aud": []string{"other", "iotgw"}}),
		jwttest.ExpiresIn(time.Hour, jwttest.Claims{"sub": "dev2", "username": "alice", "aud": "iotgw"}),
		jwttest.ExpiresIn(time.Hour, jwttest.Claims{"sub": "dev1", "aud": "iotgw"}),
	)
	for i, want := range []core.Decision{core.Allow, core.Allow, core.Deny, core.Deny} {
		r := auth(t, b, "dev1", "alice", toks[i])
		if r.Decision != want {
			t.Errorf("token %d: %v (%v), want %v", i, r.Decision, r.Err, want)
		}
		if want == core.Deny && !errors.Is(r.Err, core.ErrNotAuthorized) {
			t.Errorf("token %d: reason %v, want not authorized", i, r.Err)
		}
	}
	// The same good token presented by another client id is refused.
	if r := auth(t, b, "dev2", "alice", toks[0]); r.Decision != core.Deny {
		t.Errorf("token of dev1 used by dev2: %v", r.Decision)
	}
}

// TestACLAndSuperuserClaims: the acl claim becomes the client's rules
// (placeholders as %c/%u), a malformed one refuses the token, and the
// superuser claim is honoured only as a JSON true.
func TestACLAndSuperuserClaims(t *testing.T) {
	t.Parallel()
	b := newBackend(t, func(c *jwt.Config) { c.Secret = testSecret; c.SuperuserClaim = "is_superuser" })
	hs := jwttest.HMAC(testSecret)
	toks := hs.Tokens(t,
		jwttest.ExpiresIn(time.Hour, jwttest.Claims{"acl": []any{
			map[string]string{"permission": "allow", "action": "publish", "topic": "devices/${clientid}/up"},
			map[string]string{"permission": "allow", "action": "subscribe", "topic": "devices/%c/down/#"},
			map[string]string{"permission": "deny", "topic": "#"},
		}}),
		jwttest.ExpiresIn(time.Hour, jwttest.Claims{"acl": []any{map[string]string{"permission": "allow", "topic": "a", "qos": "1"}}}),
		jwttest.ExpiresIn(time.Hour, jwttest.Claims{"acl": []any{map[string]string{"permission": "allow", "topic": "a/#/b"}}}),
		jwttest.ExpiresIn(time.Hour, jwttest.Claims{"is_superuser": true}),
		jwttest.ExpiresIn(time.Hour, jwttest.Claims{"is_superuser": "true"}),
	)
	r := auth(t, b, "dev1", "", toks[0])
	if r.Decision != core.Allow || len(r.Grant.Rules) != 3 {
		t.Fatalf("acl claim: %v %v %+v", r.Decision, r.Err, r.Grant)
	}
	if got := r.Grant.Rules[0]; !got.Allow || got.Action != "publish" || got.Topic != "devices/%c/up" {
		t.Errorf("rule 0 %+v", got)
	}
	if got := r.Grant.Rules[2]; got.Allow || got.Action != "all" || got.Topic != "#" {
		t.Errorf("rule 2 %+v", got)
	}
	for _, i := range []int{1, 2} {
		if r := auth(t, b, "dev1", "", toks[i]); r.Decision != core.Deny || !errors.Is(r.Err, core.ErrNotAuthorized) {
			t.Errorf("malformed acl claim %d: %v %v", i, r.Decision, r.Err)
		}
	}
	if r := auth(t, b, "dev1", "", toks[3]); r.Decision != core.Allow || !r.Grant.Superuser {
		t.Errorf("superuser true: %+v", r.Grant)
	}
	if r := auth(t, b, "dev1", "", toks[4]); r.Decision != core.Allow || r.Grant.Superuser {
		t.Errorf(`superuser "true" (a string): %+v`, r.Grant)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		mod  func(*jwt.Config)
		want string
	}{
		{func(c *jwt.Config) { c.Secret = "short" }, "auth.jwt.secret"},
		{func(c *jwt.Config) { c.Secret = testSecret; c.JWKSURL = "https://x/jwks" }, "only one"},
		{func(c *jwt.Config) { c.JWKSURL = "ftp://x/jwks" }, "auth.jwt.jwks_url"},
		{func(c *jwt.Config) { c.Secret = testSecret; c.From = "header" }, "auth.jwt.from"},
		{func(c *jwt.Config) { c.Secret = testSecret; c.OnError = "maybe" }, "auth.jwt.on_error"},
	} {
		cfg := jwt.DefaultConfig()
		tc.mod(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error naming %s", cfg, err, tc.want)
		}
	}
	if err := jwt.DefaultConfig().Validate(); err != nil {
		t.Errorf("unconfigured: %v", err)
	}
	// A private key where the public one belongs is refused at start.
	p := filepath.Join(t.TempDir(), "k.pem")
	_ = os.WriteFile(p, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o600)
	cfg := jwt.DefaultConfig()
	cfg.PublicKeyFile = p
	if _, err := jwt.New(cfg, nil); err == nil || !strings.Contains(err.Error(), "not a public key") {
		t.Errorf("private key file: %v", err)
	}
}
