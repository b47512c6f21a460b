package passwd

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Lines written by real tools, kept so the formats stay checked where the
// tools are not installed.
var toolLines = []struct {
	tool, line, password string
}{
	// Debian's mosquitto_passwd 2.0.11: -c -b (the default, $7$) and -H sha512.
	{"mosquitto_passwd", `u:$7$101$UxE3TjGvXFKsqAcX$xf+6hArxRIUt5aaHf2XXNdp/7QxO2SKK/V3MPrqEbG2+bJWhjPpttM44cl+mk5/4eeDECOI7iixaG7Vb9E5AQQ==`, "p"},
	{"mosquitto_passwd -H sha512", `v:$6$fQWJlrXTRhsAD6CJ$hquCE4h3TDhBp+64EPlMTgk+u+Ux6VNbEnH9HA+IiiH5JzBAlSAMoLmifNy3LI4p719VBtzJsaAnlMr+q6+sSw==`, "q"},
	// Apache's htpasswd -nbB (bcrypt $2y$, cost 5).
	{"htpasswd -B", `alice:$2y$05$sogcH66O2vqN7HCQ6Tmgb.Ht0eXLdj8PVTIkO/UKyQjGwLoegY4tS`, "secret"},
	// The argon2 reference CLI (Debian's argon2): -id -t 1 -k 1024 -p 2 -e.
	{"argon2", `carol:$argon2id$v=19$m=1024,t=1,p=2$YzJGc2RIbHpZV3gwZVE$uPogSJTkR2BwOagcxCuAFrdH7gjU9Kpq65c45ipHGvk`, "secret"},
}

// cheap costs keep tests quick (bcrypt and argon2 crawl under -race).
var cheap = costs{argon2Memory: 64, argon2Time: 1, bcrypt: 4, pbkdf2: 10}

// TestReferenceDefaults: what Hash writes by default is what the argon2
// reference CLI computes with iotgw's costs (-id -t 2 -k 19456 -p 1).
func TestReferenceDefaults(t *testing.T) {
	t.Parallel()
	const ref = `$argon2id$v=19$m=19456,t=2,p=1$YzJGc2RITmhiSFJ6WVd4MA$+y3FwcR/+OjPTrQXFX9Jvxrw5b2e6mKaghlSvlN7ck0` // "secret"
	v, err := parseHash(ref)
	if err != nil {
		t.Fatal(err)
	}
	if !v.verify([]byte("secret")) {
		t.Error("reference hash does not verify")
	}
	s, _ := Hash("", []byte("x"))
	d, _ := parseHash(s)
	if !strings.HasPrefix(s, "$argon2id$v=19$m=19456,t=2,p=1$") || d.class() != v.class() {
		t.Errorf("default hash %q is not argon2id with iotgw's costs", s)
	}
}

func TestToolLines(t *testing.T) {
	t.Parallel()
	for _, tc := range toolLines {
		user, hash, ok, err := splitLine(tc.line)
		if !ok || err != nil {
			t.Fatalf("%s: %q does not split: %v", tc.tool, tc.line, err)
		}
		v, err := parseHash(hash)
		if err != nil {
			t.Fatalf("%s (%s): %v", tc.tool, user, err)
		}
		if !v.verify([]byte(tc.password)) {
			t.Errorf("%s (%s): the right password does not verify", tc.tool, user)
		}
		if v.verify([]byte(tc.password + "x")) {
			t.Errorf("%s (%s): a wrong password verifies", tc.tool, user)
		}
	}
}

// TestLiveTools checks files the installed tools write now, both
// mosquitto_passwd formats among them.
func TestLiveTools(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// Each tool writes file f with user "dev" and password "pw 7".
	cmds := []struct{ tool, f, script string }{
		{"mosquitto_passwd", "m7", "mosquitto_passwd -c -b m7 dev 'pw 7'"},
		{"mosquitto_passwd", "m6", "mosquitto_passwd -H sha512 -c -b m6 dev 'pw 7'"},
		{"htpasswd", "ht", "htpasswd -nbB -C 4 dev 'pw 7' > ht"},
		{"argon2", "a2", "printf '%s' 'pw 7' | argon2 saltysalty -id -t 1 -k 1024 -p 2 -e | sed 's/^/dev:/' > a2"},
	}
	ran := 0
	for _, c := range cmds {
		if _, err := exec.LookPath(c.tool); err != nil {
			t.Logf("%s: not installed", c.tool)
			continue
		}
		sh := exec.Command("sh", "-c", c.script)
		sh.Dir = dir
		if out, err := sh.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", c.script, err, out)
		}
		ran++
	}
	if ran == 0 {
		t.Skip("none of mosquitto_passwd, htpasswd, argon2 installed")
	}
	for _, f := range []string{"m7", "m6", "ht", "a2"} {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			continue
		}
		tb, err := parse(data)
		if err != nil {
			t.Fatalf("%s: %v\n%s", f, err, data)
		}
		e := tb.users["dev"]
		if e == nil || !e.v.verify([]byte("pw 7")) || e.v.verify([]byte("pw 8")) {
			t.Errorf("%s: %q does not verify as it should", f, data)
		}
	}
}

func TestHashRoundTrip(t *testing.T) {
	t.Parallel()
	for _, k := range WriteKinds {
		s, err := hashWith(k, []byte("sécret"), cheap)
		if err != nil {
			t.Fatal(k, err)
		}
		v, err := parseHash(s)
		if err != nil {
			t.Fatalf("%s: %q: %v", k, s, err)
		}
		if !v.verify([]byte("sécret")) || v.verify([]byte("secret")) || v.verify(nil) {
			t.Errorf("%s: %q verifies wrongly", k, s)
		}
		d, err := v.decoy()
		if err != nil || d.class() != v.class() || d.verify([]byte("sécret")) {
			t.Errorf("%s: decoy %v of class %q (want %q) or it matches", k, err, d.class(), v.class())
		}
		two, _ := hashWith(k, []byte("sécret"), cheap)
		if two == s {
			t.Errorf("%s: two hashes of one password are equal: no fresh salt", k)
		}
	}
	if !strings.HasPrefix(mustHash(t, KindPBKDF2), "$7$101$") || !strings.HasPrefix(mustHash(t, KindSHA512), "$6$") {
		t.Error("mosquitto prefixes wrong")
	}
	if _, err := Hash("md5", []byte("x")); err == nil {
		t.Error("md5 accepted")
	}
}

func mustHash(t *testing.T, k Kind) string {
	t.Helper()
	s, err := Hash(k, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestBcryptLongPassword(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 72)
	h, err := hashWith(KindBcrypt, []byte(long), cheap)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := parseHash(h)
	if !v.verify([]byte(long)) {
		t.Fatal("72 bytes do not verify")
	}
	// bcrypt ignores what follows byte 72: such a password is refused.
	if v.verify([]byte(long + "tail")) {
		t.Error("a password longer than 72 bytes verifies")
	}
	if _, err := hashWith(KindBcrypt, []byte(long+"b"), cheap); err == nil {
		t.Error("bcrypt hash of 73 bytes written")
	}
}

func TestBadHashes(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		"plaintext",
		"$1$md5crypt$xxxx",
		"$7$0$UxE3TjGvXFKsqAcX$" + strings.Repeat("A", 86),
		"$7$x$UxE3TjGvXFKsqAcX$" + strings.Repeat("A", 86),
		"$7$101$UxE3TjGvXFKsqAcX",
		"$7$101$UxE3TjGvXFKsqAcX$c2hvcnQ=",
		"$7$101$!!!$" + strings.Repeat("A", 86),
		"$6$fQWJlrXTRhsAD6CJ",
		"$6$$" + strings.Repeat("A", 86),
		"$2y$05$short",
		"$2y$99$sogcH66O2vqN7HCQ6Tmgb.Ht0eXLdj8PVTIkO/UKyQjGwLoegY4tS",
		"$argon2i$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g",
		"$argon2id$v=16$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g",
		"$argon2id$v=19$m=1024,t=1$c2FsdHNhbHQ$aGFzaGhhc2g",
		"$argon2id$v=19$m=1024,t=0,p=1$c2FsdHNhbHQ$aGFzaGhhc2g",
		"$argon2id$v=19$m=4,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g",
		"$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g",
		"$argon2id$v=19$m=1024,t=1,p=300$c2FsdHNhbHQ$aGFzaGhhc2g",
		"$argon2id$v=19$m=1024,t=1,p=1,x=2$c2FsdHNhbHQ$aGFzaGhhc2g",
		"$argon2id$v=19$m=1024,t=1,p=1$c2Fs$aGFzaGhhc2g",
		"$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$",
		"$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ",
	} {
		if _, err := parseHash(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}
