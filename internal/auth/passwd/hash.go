package passwd

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Argon2id cost of the hashes iotgw writes: OWASP's first recommendation
// for argon2id (19 MiB, 2 passes, 1 lane). It takes about 29 ms on the
// 2-core machine of the project's benchmarks, well under the 50 ms a
// login may cost, while a 64 MiB / 1 pass setting took 96 ms there and
// mosquitto 2.1's 46 MiB / 1 pass took 50 ms. One lane because a
// connect storm already keeps every core busy: more lanes would only add
// threads, not throughput. The memory (19 MiB per verification in
// flight) is bounded by the backend's limit on concurrent verifications.
const (
	Argon2Memory  = 19 * 1024 // KiB
	Argon2Time    = 2
	Argon2Threads = 1
	argon2SaltLen = 16
	argon2KeyLen  = 32
)

// Mosquitto's constants (mosquitto 2.0 src/password_mosq.h): 12-byte
// salts, 64-byte SHA-512 results, 101 PBKDF2 iterations by default.
const (
	mosqSaltLen = 12
	mosqHashLen = sha512.Size
	// PBKDF2Iterations is what "iotgw passwd -H sha512-pbkdf2" writes:
	// mosquitto_passwd's default, so that such a file is the one
	// Mosquitto 2.0 would write. It is weak (56 µs a guess): argon2id is
	// the default for a reason.
	PBKDF2Iterations = 101
	// BcryptCost is what "iotgw passwd -H bcrypt" writes (the library's
	// default; about 70 ms a login on the benchmark machine).
	BcryptCost = bcrypt.DefaultCost
)

// Limits on costs read from a file: a typo must not make every login
// take minutes or allocate gigabytes.
const (
	maxArgon2Memory = 4 * 1024 * 1024 // KiB: 4 GiB
	maxArgon2Time   = 64
	maxPBKDF2Iter   = 100_000_000
)

// Kind names a hash format.
type Kind string

// Hash formats read from a password file; WriteKinds lists those "iotgw
// passwd -H" writes.
const (
	KindArgon2id Kind = "argon2id"      // $argon2id$v=19$m=,t=,p=$salt$hash (PHC)
	KindBcrypt   Kind = "bcrypt"        // $2a$, $2b$, $2y$
	KindPBKDF2   Kind = "sha512-pbkdf2" // mosquitto $7$iterations$salt$hash
	KindSHA512   Kind = "sha512"        // mosquitto $6$salt$hash: SHA-512(password ‖ salt)
)

// WriteKinds are the formats Hash can write, the default first; the
// names are mosquitto_passwd's -H names where it has one.
var WriteKinds = []Kind{KindArgon2id, KindBcrypt, KindPBKDF2, KindSHA512}

// verifier is one stored hash, parsed.
type verifier interface {
	// verify compares in constant time (for the given stored hash).
	verify(password []byte) bool
	// decoy returns a verifier of the same kind and cost that matches no
	// password: unknown users are checked against it so that a wrong name
	// costs what a wrong password does.
	decoy() (verifier, error)
	// class groups verifiers of equal cost, to pick the decoy.
	class() string
}

// parseHash parses one stored hash in any accepted format.
func parseHash(s string) (verifier, error) {
	switch {
	case strings.HasPrefix(s, "$argon2id$"):
		return parseArgon2id(s)
	case strings.HasPrefix(s, "$2a$"), strings.HasPrefix(s, "$2b$"), strings.HasPrefix(s, "$2y$"):
		if _, err := bcrypt.Cost([]byte(s)); err != nil {
			return nil, fmt.Errorf("bad bcrypt hash: %v", err)
		}
		return bcryptHash(s), nil
	case strings.HasPrefix(s, "$7$"):
		return parseMosquitto(s[3:], true)
	case strings.HasPrefix(s, "$6$"):
		return parseMosquitto(s[3:], false)
	case strings.HasPrefix(s, "$argon2i$"), strings.HasPrefix(s, "$argon2d$"):
		return nil, errors.New("only argon2id of the argon2 variants is accepted")
	}
	return nil, errors.New("not a hash iotgw reads ($argon2id$, $2a$/$2b$/$2y$ bcrypt, mosquitto's $7$ or $6$); plaintext passwords belong in auth.users, or hash them with `iotgw passwd`")
}

// b64 decodes standard base64 with or without padding: mosquitto pads,
// the PHC format does not, and hand-made lines may do either.
func b64(s string) ([]byte, error) {
	return base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
}

// mosqHash is mosquitto's $7$ (PBKDF2-HMAC-SHA512) or $6$ (one SHA-512
// of the password followed by the salt), as mosquitto 2.0's pw__digest
// computes them; iter is 0 for $6$.
type mosqHash struct {
	iter int
	salt []byte
	sum  []byte
}

func parseMosquitto(rest string, pbkdf bool) (verifier, error) {
	parts := strings.Split(rest, "$")
	h := &mosqHash{}
	if pbkdf {
		if len(parts) != 3 {
			return nil, errors.New("bad $7$ hash: want $7$iterations$salt$hash")
		}
		n, err := strconv.Atoi(parts[0])
		if err != nil || n < 1 || n > maxPBKDF2Iter {
			return nil, fmt.Errorf("bad $7$ hash: iterations %q not a number from 1 to %d", parts[0], maxPBKDF2Iter)
		}
		h.iter = n
		parts = parts[1:]
	} else if len(parts) != 2 {
		return nil, errors.New("bad $6$ hash: want $6$salt$hash")
	}
	var err error
	// Any salt length: mosquitto 2.0 writes 12 bytes, 2.1 writes 64.
	if h.salt, err = b64(parts[0]); err != nil || len(h.salt) == 0 {
		return nil, fmt.Errorf("bad salt %q: not base64", parts[0])
	}
	if h.sum, err = b64(parts[1]); err != nil || len(h.sum) != mosqHashLen {
		return nil, fmt.Errorf("bad hash %q: not %d bytes of base64", parts[1], mosqHashLen)
	}
	return h, nil
}

func (h *mosqHash) compute(password []byte) []byte {
	if h.iter == 0 {
		d := sha512.New()
		d.Write(password)
		d.Write(h.salt)
		return d.Sum(nil)
	}
	// Only FIPS mode refuses a key; a nil key then matches nothing.
	k, _ := pbkdf2.Key(sha512.New, string(password), h.salt, h.iter, mosqHashLen)
	return k
}

func (h *mosqHash) verify(password []byte) bool {
	return subtle.ConstantTimeCompare(h.compute(password), h.sum) == 1
}

func (h *mosqHash) decoy() (verifier, error) {
	return &mosqHash{iter: h.iter, salt: randomBytes(len(h.salt)), sum: randomBytes(len(h.sum))}, nil
}

func (h *mosqHash) class() string { return "mosquitto/" + strconv.Itoa(h.iter) }

func (h *mosqHash) String() string {
	enc := base64.StdEncoding
	if h.iter == 0 {
		return "$6$" + enc.EncodeToString(h.salt) + "$" + enc.EncodeToString(h.sum)
	}
	return "$7$" + strconv.Itoa(h.iter) + "$" + enc.EncodeToString(h.salt) + "$" + enc.EncodeToString(h.sum)
}

// bcryptHash is a bcrypt hash as written ($2a$, $2b$ and $2y$ differ only
// in bugs of old C implementations; the Go library reads all three).
type bcryptHash string

func (h bcryptHash) verify(password []byte) bool {
	// bcrypt reads only the first 72 bytes: a longer password would match
	// whatever followed them, so it is refused rather than truncated.
	if len(password) > 72 {
		return false
	}
	return bcrypt.CompareHashAndPassword([]byte(h), password) == nil
}

func (h bcryptHash) decoy() (verifier, error) {
	cost, _ := bcrypt.Cost([]byte(h))
	b, err := bcrypt.GenerateFromPassword(randomBytes(16), cost)
	if err != nil {
		return nil, err
	}
	return bcryptHash(b), nil
}

func (h bcryptHash) class() string {
	cost, _ := bcrypt.Cost([]byte(h))
	return "bcrypt/" + strconv.Itoa(cost)
}

// argon2Hash is an argon2id hash in the PHC string format
// ($argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>, base64
// without padding), as the reference implementation, libsodium and
// mosquitto 2.1 write it.
type argon2Hash struct {
	memory, time uint32
	threads      uint8
	salt, sum    []byte
}

func parseArgon2id(s string) (verifier, error) {
	parts := strings.Split(s, "$")
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, hash
	if len(parts) != 6 {
		return nil, errors.New("bad argon2id hash: want $argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>")
	}
	if parts[2] != "v=19" {
		return nil, fmt.Errorf("bad argon2id hash: version %q is not v=19", parts[2])
	}
	h := &argon2Hash{}
	seen := 0
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, _ := strings.Cut(kv, "=")
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("bad argon2id parameter %q", kv)
		}
		switch k {
		case "m":
			h.memory, seen = uint32(n), seen|1
		case "t":
			h.time, seen = uint32(n), seen|2
		case "p":
			if n > 255 {
				return nil, fmt.Errorf("bad argon2id parameter %q: at most 255 lanes", kv)
			}
			h.threads, seen = uint8(n), seen|4
		default:
			return nil, fmt.Errorf("unknown argon2id parameter %q", kv)
		}
	}
	switch {
	case seen != 7:
		return nil, errors.New("bad argon2id hash: m, t and p are all required")
	case h.threads < 1 || h.time < 1 || h.time > maxArgon2Time:
		return nil, fmt.Errorf("bad argon2id cost t=%d,p=%d (t from 1 to %d, p at least 1)", h.time, h.threads, maxArgon2Time)
	case h.memory < 8*uint32(h.threads) || h.memory > maxArgon2Memory:
		return nil, fmt.Errorf("bad argon2id memory m=%d KiB (from 8×p to %d)", h.memory, maxArgon2Memory)
	}
	var err error
	if h.salt, err = b64(parts[4]); err != nil || len(h.salt) < 8 {
		return nil, fmt.Errorf("bad argon2id salt %q: not base64 of at least 8 bytes", parts[4])
	}
	if h.sum, err = b64(parts[5]); err != nil || len(h.sum) < 4 {
		return nil, fmt.Errorf("bad argon2id hash %q: not base64 of at least 4 bytes", parts[5])
	}
	return h, nil
}

func (h *argon2Hash) verify(password []byte) bool {
	k := argon2.IDKey(password, h.salt, h.time, h.memory, h.threads, uint32(len(h.sum)))
	return subtle.ConstantTimeCompare(k, h.sum) == 1
}

func (h *argon2Hash) decoy() (verifier, error) {
	d := *h
	d.salt, d.sum = randomBytes(len(h.salt)), randomBytes(len(h.sum))
	return &d, nil
}

func (h *argon2Hash) class() string {
	return fmt.Sprintf("argon2id/%d/%d/%d", h.memory, h.time, h.threads)
}

func (h *argon2Hash) String() string {
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s", h.memory, h.time, h.threads,
		enc.EncodeToString(h.salt), enc.EncodeToString(h.sum))
}

// Hash returns the stored form of password in format kind (argon2id with
// the costs above, bcrypt at BcryptCost, mosquitto's $7$ with 101
// iterations or $6$), with a fresh random salt.
func Hash(kind Kind, password []byte) (string, error) {
	return hashWith(kind, password, defaultCosts)
}

// costs are the parameters Hash writes (tests use cheaper ones).
type costs struct {
	argon2Memory, argon2Time uint32
	bcrypt, pbkdf2           int
}

var defaultCosts = costs{Argon2Memory, Argon2Time, BcryptCost, PBKDF2Iterations}

func hashWith(kind Kind, password []byte, c costs) (string, error) {
	switch kind {
	case KindArgon2id, "":
		h := &argon2Hash{memory: c.argon2Memory, time: c.argon2Time, threads: Argon2Threads, salt: randomBytes(argon2SaltLen)}
		h.sum = argon2.IDKey(password, h.salt, h.time, h.memory, h.threads, argon2KeyLen)
		return h.String(), nil
	case KindBcrypt:
		b, err := bcrypt.GenerateFromPassword(password, c.bcrypt)
		if err != nil {
			return "", err
		}
		return string(b), nil
	case KindPBKDF2, KindSHA512:
		h := &mosqHash{salt: randomBytes(mosqSaltLen)}
		if kind == KindPBKDF2 {
			h.iter = c.pbkdf2
		}
		h.sum = h.compute(password)
		if len(h.sum) != mosqHashLen {
			return "", errors.New("PBKDF2 refused (FIPS mode?)")
		}
		return h.String(), nil
	}
	return "", fmt.Errorf("unknown hash %q (want one of %s)", kind, kindList())
}

func kindList() string {
	names := make([]string, len(WriteKinds))
	for i, k := range WriteKinds {
		names[i] = string(k)
	}
	return strings.Join(names, ", ")
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go ≥ 1.24)
	return b
}
