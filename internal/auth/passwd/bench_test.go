package passwd

import (
	"context"
	"testing"

	"github.com/iotgw/iotgw/core"
)

// BenchmarkVerify is the cost of one login per kind of hash, at the costs
// files have in practice: ns/op is the CPU a connect spends there, and
// 1e9/ns-op × cores the connects/s a gateway can check without the cache.
func BenchmarkVerify(b *testing.B) {
	for _, tc := range []struct {
		name string
		kind Kind
		c    costs
	}{
		{"argon2id-m19456-t2-p1(iotgw)", KindArgon2id, defaultCosts},
		{"bcrypt-10(iotgw -H bcrypt)", KindBcrypt, costs{bcrypt: 10}},
		{"bcrypt-5(htpasswd -B)", KindBcrypt, costs{bcrypt: 5}},
		{"pbkdf2-101(mosquitto 2.0)", KindPBKDF2, costs{pbkdf2: 101}},
		{"pbkdf2-210000(mosquitto 2.1)", KindPBKDF2, costs{pbkdf2: 210000}},
		{"sha512(mosquitto $6$)", KindSHA512, costs{}},
	} {
		s, err := hashWith(tc.kind, []byte("secret"), tc.c)
		if err != nil {
			b.Fatal(err)
		}
		v, err := parseHash(s)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				if !v.verify([]byte("secret")) {
					b.Fatal("no match")
				}
			}
		})
	}
}

// BenchmarkAuthenticateCached is a reconnect within the cache's TTL: an
// HMAC and a map look-up instead of the hash.
func BenchmarkAuthenticateCached(b *testing.B) {
	s, _ := Hash(KindArgon2id, []byte("secret"))
	bk, _, _ := newBackend(b, "alice:"+s+"\n", nil)
	c := &core.ClientInfo{Username: "alice", Password: []byte("secret")}
	ctx := context.Background()
	for b.Loop() {
		if r, err := bk.Authenticate(ctx, c); err != nil || r.Decision != core.Allow {
			b.Fatal(r, err)
		}
	}
}
