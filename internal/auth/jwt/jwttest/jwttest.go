// Package jwttest makes keys and tokens for tests of JWT authentication:
// keys are generated in Go, tokens are signed by python3-jwt (PyJWT), an
// implementation independent of the verifier under test.
package jwttest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Python is the interpreter that has PyJWT (Debian's python3-jwt).
const Python = "/usr/bin/python3"

// Signer is one signing key with its algorithm.
type Signer struct {
	Alg    string
	Kid    string
	secret string        // HS*
	priv   crypto.Signer // RS*, ES*
}

// HMAC returns an HS256 signer with secret.
func HMAC(secret string) *Signer { return &Signer{Alg: "HS256", secret: secret} }

// RSA returns an RS256 signer with a new 2048-bit key.
func RSA(t testing.TB, kid string) *Signer {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return &Signer{Alg: "RS256", Kid: kid, priv: k}
}

// EC returns an ES256 signer with a new P-256 key.
func EC(t testing.TB, kid string) *Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &Signer{Alg: "ES256", Kid: kid, priv: k}
}

// Ed25519 returns an EdDSA signer with a new Ed25519 key.
func Ed25519(t testing.TB, kid string) *Signer {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &Signer{Alg: "EdDSA", Kid: kid, priv: k}
}

// WithAlg returns a copy of the signer using another algorithm of its key
// (PS256 for an RSA key, say).
func (s *Signer) WithAlg(alg string) *Signer {
	c := *s
	c.Alg = alg
	return &c
}

// Public returns the public key (nil for HMAC).
func (s *Signer) Public() crypto.PublicKey {
	if s.priv == nil {
		return nil
	}
	return s.priv.Public()
}

// PublicPEM returns the public key as a PEM "PUBLIC KEY" block.
func (s *Signer) PublicPEM(t testing.TB) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(s.Public())
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// WritePublicPEM writes PublicPEM to a file in the test's directory and
// returns its path.
func (s *Signer) WritePublicPEM(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "jwt-public.pem")
	if err := os.WriteFile(p, s.PublicPEM(t), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func (s *Signer) privatePEM(t testing.TB) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(s.priv)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// JWK returns the public key as a JSON Web Key with the signer's kid and
// alg.
func (s *Signer) JWK() map[string]any {
	enc := base64.RawURLEncoding.EncodeToString
	m := map[string]any{"kid": s.Kid, "use": "sig", "alg": s.Alg}
	switch k := s.Public().(type) {
	case *rsa.PublicKey:
		m["kty"], m["n"] = "RSA", enc(k.N.Bytes())
		m["e"] = enc([]byte{byte(k.E >> 16), byte(k.E >> 8), byte(k.E)})
	case ed25519.PublicKey:
		m["kty"], m["crv"], m["x"] = "OKP", "Ed25519", enc(k)
	case *ecdsa.PublicKey:
		b, _ := k.Bytes() // 0x04 || X || Y
		size := (len(b) - 1) / 2
		m["kty"], m["crv"] = "EC", k.Curve.Params().Name
		m["x"], m["y"] = enc(b[1:1+size]), enc(b[1+size:])
	}
	return m
}

// JWKS returns a JWK Set of the signers' public keys.
func JWKS(signers ...*Signer) []byte {
	keys := make([]map[string]any, len(signers))
	for i, s := range signers {
		keys[i] = s.JWK()
	}
	b, _ := json.Marshal(map[string]any{"keys": keys})
	return b
}

// Claims are a token's claims.
type Claims = map[string]any

// ExpiresIn returns claims with exp d from now and iat now, plus extra.
func ExpiresIn(d time.Duration, extra Claims) Claims {
	c := Claims{"iat": time.Now().Unix(), "exp": time.Now().Add(d).Unix()}
	for k, v := range extra {
		c[k] = v
	}
	return c
}

// ShortLived is ExpiresIn with exp to the millisecond (a fractional
// NumericDate, RFC 7519 2), for tokens meant to expire during a test: a
// whole-second exp could cut d by up to a second. It also returns exp.
func ShortLived(d time.Duration, extra Claims) (Claims, time.Time) {
	exp := time.Now().Add(d).Truncate(time.Millisecond)
	c := ExpiresIn(d, extra)
	c["exp"] = float64(exp.UnixMilli()) / 1000
	return c, exp
}

// WithLifetime runs try with a token lifetime of 1.5 s, then longer ones
// while try reports that its token expired before it could be used (two
// shared cores and the race detector can make signing and connecting
// slow): a test of expiry then never depends on how fast the machine is.
func WithLifetime(t testing.TB, try func(lifetime time.Duration) (tooSlow bool)) {
	t.Helper()
	for l := 1500 * time.Millisecond; l <= 12*time.Second; l *= 2 {
		if !try(l) {
			return
		}
		t.Logf("a %v token expired before it was used; trying a longer one", l)
	}
	t.Fatal("every token expired before it could be used")
}

const mintScript = `
import json, sys, jwt
req = json.load(sys.stdin)
out = []
for claims in req["claims"]:
    headers = {"kid": req["kid"]} if req["kid"] else None
    out.append(jwt.encode(claims, req["key"], algorithm=req["alg"], headers=headers))
print("\n".join(out))
`

// Tokens signs each claims set with PyJWT, in one interpreter run. The
// test is skipped when python3-jwt is not installed.
func (s *Signer) Tokens(t testing.TB, claims ...Claims) []string {
	t.Helper()
	key := s.secret
	if s.priv != nil {
		key = s.privatePEM(t)
	}
	req, err := json.Marshal(map[string]any{"claims": claims, "key": key, "alg": s.Alg, "kid": s.Kid})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(Python, "-c", mintScript)
	cmd.Stdin = bytes.NewReader(req)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if strings.Contains(stderr.String(), "No module named") || os.IsNotExist(err) {
			t.Skipf("python3-jwt not available: %v %s", err, stderr.String())
		}
		t.Fatalf("PyJWT: %v: %s", err, stderr.String())
	}
	toks := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(toks) != len(claims) {
		t.Fatalf("PyJWT made %d tokens for %d claim sets", len(toks), len(claims))
	}
	return toks
}

// Token signs one claims set with PyJWT.
func (s *Signer) Token(t testing.TB, claims Claims) string {
	t.Helper()
	return s.Tokens(t, claims)[0]
}
