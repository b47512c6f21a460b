package jwt_test

import (
	"context"
	"testing"
	"time"

	"github.com/iotgw/iotgw/core"
	"github.com/iotgw/iotgw/internal/auth/jwt"
	"github.com/iotgw/iotgw/internal/auth/jwt/jwttest"
)

// BenchmarkAuthenticate is the cost of one connect's token check (parse,
// signature, times, an acl claim of two rules) per algorithm.
func BenchmarkAuthenticate(b *testing.B) {
	rs, es, ed := jwttest.RSA(b, ""), jwttest.EC(b, ""), jwttest.Ed25519(b, "")
	claims := jwttest.ExpiresIn(time.Hour, jwttest.Claims{"sub": "dev1", "acl": []any{
		map[string]string{"permission": "allow", "topic": "devices/${clientid}/#"},
		map[string]string{"permission": "deny", "topic": "#"},
	}})
	for _, tc := range []struct {
		name   string
		signer *jwttest.Signer
		cfg    func(*jwt.Config)
	}{
		{"HS256", jwttest.HMAC(testSecret), func(c *jwt.Config) { c.Secret = testSecret }},
		{"RS256", rs, func(c *jwt.Config) { c.PublicKeyFile = rs.WritePublicPEM(b) }},
		{"ES256", es, func(c *jwt.Config) { c.PublicKeyFile = es.WritePublicPEM(b) }},
		{"EdDSA", ed, func(c *jwt.Config) { c.PublicKeyFile = ed.WritePublicPEM(b) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			cfg := jwt.DefaultConfig()
			tc.cfg(&cfg)
			be, err := jwt.New(cfg, nil)
			if err != nil {
				b.Fatal(err)
			}
			c := &core.ClientInfo{ClientID: "dev1", Password: []byte(tc.signer.Token(b, claims))}
			b.ReportAllocs()
			for b.Loop() {
				if r, err := be.Authenticate(context.Background(), c); err != nil || r.Decision != core.Allow {
					b.Fatal(r.Err, err)
				}
			}
		})
	}
}
