package app_test

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/iotgw/iotgw/internal/auth/passwd"
	"github.com/iotgw/iotgw/internal/testutil"
)

// rawConnect does one MQTT 3.1.1 CONNECT with credentials over a fresh
// TCP connection and returns the CONNACK return code.
func rawConnect(addr, user, pw string) (byte, error) {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	str := func(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }
	body := append([]byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0xC2, 0, 60}, str("")...)
	body = append(append(body, str(user)...), str(pw)...)
	if _, err := nc.Write(append([]byte{0x10, byte(len(body))}, body...)); err != nil {
		return 0, err
	}
	ack := make([]byte, 4)
	_ = nc.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.ReadFull(nc, ack); err != nil {
		return 0, err
	}
	return ack[3], nil
}

// BenchmarkConnect is the end-to-end connect rate through the password
// file per kind of hash: MQTT CONNECT to CONNACK over loopback, 8
// clients at once, one user. "nocache" sets auth.password_cache_ttl 0,
// so every connect pays its hash (a storm of distinct devices); "cached"
// is a fleet reconnecting within the TTL.
func BenchmarkConnect(b *testing.B) {
	for _, tc := range []struct {
		name, line string
		cache      bool
	}{
		{"argon2id-nocache", "", false},
		{"argon2id-cached", "", true},
		// htpasswd -nbB (cost 5) and -nbB -C 10 of "secret".
		{"bcrypt-5-nocache", "u:$2y$05$sogcH66O2vqN7HCQ6Tmgb.Ht0eXLdj8PVTIkO/UKyQjGwLoegY4tS", false},
		{"bcrypt-10-nocache", "u:$2y$10$ozJQquIYrv9X1Roa610p7.LJ6xXCgqdP0WFiuOy8HRCrvzU91KacK", false},
		// mosquitto_passwd 2.0 ($7$, 101 iterations) of "secret".
		{"pbkdf2-101-nocache", "u:$7$101$f8d3ZOh+8b4Uyun8$iMWFq31exsCtNBphWG6pQ1TwOa9dZtb83GCV+s0biuUmkRzoeYTvJ7qlmwpC2Kai0wHjzsYYd7PY1z2oKXBk0Q==", false},
	} {
		b.Run(tc.name, func(b *testing.B) {
			file := filepath.Join(b.TempDir(), "users.txt")
			l := tc.line
			if l == "" {
				h, err := passwd.Hash(passwd.KindArgon2id, []byte("secret"))
				if err != nil {
					b.Fatal(err)
				}
				l = "u:" + h
			}
			if err := os.WriteFile(file, []byte(l+"\n"), 0o600); err != nil {
				b.Fatal(err)
			}
			ttl := "0"
			if tc.cache {
				ttl = "5m"
			}
			g := testutil.Start(b, "auth:\n  allow_anonymous: false\n  password_file: "+file+"\n  password_cache_ttl: "+ttl+"\n")
			addr := g.MQTTAddr()
			if rc, err := rawConnect(addr, "u", "secret"); rc != 0 || err != nil {
				b.Fatalf("CONNACK %d %v", rc, err)
			}
			b.SetParallelism(4) // × GOMAXPROCS (2) = 8 clients
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if rc, err := rawConnect(addr, "u", "secret"); rc != 0 || err != nil {
						b.Errorf("CONNACK %d %v", rc, err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "connects/s")
		})
	}
}
