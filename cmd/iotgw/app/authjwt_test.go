package app

import (
	"strings"
	"testing"
	"time"
)

func TestLoadJWT(t *testing.T) {
	doc := []byte(`
auth:
  jwt:
    secret: "0123456789abcdef0123456789abcdef"
    leeway: 5
    verify_claims: {sub: "${clientid}", iss: https://idp.example.com}
    superuser_claim: is_superuser
`)
	cfg, err := Load(doc, []string{"IOTGW_AUTH_JWT_FROM=username"})
	if err != nil {
		t.Fatal(err)
	}
	j := cfg.JWT
	if !j.Configured() || j.Leeway != 5*time.Second || j.From != "username" || j.SuperuserClaim != "is_superuser" || j.ACLClaim != "acl" {
		t.Fatalf("jwt %+v", j)
	}
	if len(j.VerifyClaims) != 2 || j.VerifyClaims["sub"] != "${clientid}" || j.VerifyClaims["iss"] != "https://idp.example.com" {
		t.Fatalf("verify_claims %v", j.VerifyClaims)
	}
	names, err := cfg.chainNames()
	if err != nil || len(names) != 1 || names[0] != "jwt" {
		t.Fatalf("chain %v %v", names, err)
	}
	ms := chainMethods(&cfg)
	if len(ms) != 1 || ms[0].Name() != JWTMethod {
		t.Fatalf("methods %v", ms)
	}
	if ms := chainMethods(&Config{}); len(ms) != 0 {
		t.Fatalf("methods without jwt: %v", ms)
	}
}

func TestLoadJWTErrors(t *testing.T) {
	for doc, want := range map[string]string{
		"auth:\n  jwt:\n    secret: short\n":                                          "auth.jwt.secret",
		"auth:\n  jwt:\n    secrets: x\n":                                             "auth.jwt.secrets",
		"auth:\n  jwt:\n    secret: x\n    jwks_url: http://a/b\n":                    "only one",
		"auth:\n  jwt:\n    jwks_url: http://a/b\n    verify_claims: {sub: {a: b}}\n": "auth.jwt.verify_claims",
		"auth:\n  chain: [jwt]\n":                                                     "not configured",
	} {
		if _, err := Load([]byte(doc), nil); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error naming %s", doc, err, want)
		}
	}
}
