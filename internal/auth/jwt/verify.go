package jwt

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"
	"math/big"
)

// Key is one verification key. Its type alone decides which algorithms
// it verifies: an HMAC secret only HS*, an RSA key only RS* and PS*, an
// ECDSA key only the ES* of its curve, an Ed25519 key only EdDSA. So a
// token cannot choose how its signature is checked ("alg confusion": an
// HS256 token "signed" with a public RSA key as the secret), and "none" is
// no algorithm at all.
type Key struct {
	// ID is the key's kid (JWKS); empty for configured keys.
	ID string
	// Alg, when set (a JWK's "alg"), is the only algorithm the key
	// verifies.
	Alg string
	// material is []byte (HMAC), *rsa.PublicKey, *ecdsa.PublicKey or
	// ed25519.PublicKey.
	material any
}

// MinRSABits is the smallest RSA modulus accepted (RFC 7518 3.3: "a key
// of size 2048 bits or larger MUST be used").
const MinRSABits = 2048

// MinHMACBytes is the shortest HMAC secret accepted: RFC 7518 3.2 wants
// a key at least as long as the hash output (32 bytes for HS256).
const MinHMACBytes = 32

// HMACKey makes a key from a shared secret.
func HMACKey(secret []byte) (Key, error) {
	if len(secret) < MinHMACBytes {
		return Key{}, fmt.Errorf("HMAC secret of %d bytes; at least %d are needed (RFC 7518 3.2)", len(secret), MinHMACBytes)
	}
	return Key{material: append([]byte(nil), secret...)}, nil
}

// PublicKey makes a key from an RSA, ECDSA or Ed25519 public key.
func PublicKey(id string, pub crypto.PublicKey) (Key, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < MinRSABits {
			return Key{}, fmt.Errorf("RSA key of %d bits; at least %d are needed (RFC 7518 3.3)", k.N.BitLen(), MinRSABits)
		}
	case *ecdsa.PublicKey:
		if curveAlg(k.Curve) == "" {
			return Key{}, fmt.Errorf("ECDSA curve %s is not P-256, P-384 or P-521", k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return Key{}, errors.New("Ed25519 key of the wrong size")
		}
	default:
		return Key{}, fmt.Errorf("unsupported public key type %T", pub)
	}
	return Key{ID: id, material: pub}, nil
}

// Type names the key's kind, for logs: "HMAC", "RSA", "EC P-256",
// "Ed25519".
func (k Key) Type() string {
	switch m := k.material.(type) {
	case []byte:
		return "HMAC"
	case *rsa.PublicKey:
		return "RSA"
	case *ecdsa.PublicKey:
		return "EC " + m.Curve.Params().Name
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return "none"
}

func curveAlg(c elliptic.Curve) string {
	switch c {
	case elliptic.P256():
		return "ES256"
	case elliptic.P384():
		return "ES384"
	case elliptic.P521():
		return "ES512"
	}
	return ""
}

// Allows reports whether the key verifies tokens of algorithm alg.
func (k Key) Allows(alg string) bool {
	if k.Alg != "" && k.Alg != alg {
		return false
	}
	switch m := k.material.(type) {
	case []byte:
		return alg == "HS256" || alg == "HS384" || alg == "HS512"
	case *rsa.PublicKey:
		switch alg {
		case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
			return true
		}
	case *ecdsa.PublicKey:
		return alg == curveAlg(m.Curve)
	case ed25519.PublicKey:
		// "EdDSA" (RFC 8037); "Ed25519" is its fully specified name
		// (RFC 9864).
		return alg == "EdDSA" || alg == "Ed25519"
	}
	return false
}

// ErrSignature is a signature that does not verify (or an algorithm the
// key does not allow).
var ErrSignature = errors.New("jwt: signature invalid")

// hashFor returns the hash of an algorithm by its size suffix.
func hashFor(alg string) (crypto.Hash, func() hash.Hash) {
	switch alg[len(alg)-3:] {
	case "384":
		return crypto.SHA384, sha512.New384
	case "512":
		return crypto.SHA512, sha512.New
	}
	return crypto.SHA256, sha256.New
}

// Verify checks the token's signature with key.
func (t *Token) Verify(k Key) error {
	alg := t.Header.Alg
	if !k.Allows(alg) {
		return fmt.Errorf("%w: a %s key does not verify %q", ErrSignature, k.Type(), alg)
	}
	var ok bool
	switch m := k.material.(type) {
	case []byte:
		_, newHash := hashFor(alg)
		mac := hmac.New(newHash, m)
		mac.Write(t.signed)
		ok = hmac.Equal(mac.Sum(nil), t.Signature)
	case *rsa.PublicKey:
		h, _ := hashFor(alg)
		d := digest(h, t.signed)
		if alg[0] == 'P' {
			// RFC 7518 3.5: MGF1 with the same hash, salt as long as the
			// hash.
			ok = rsa.VerifyPSS(m, h, d, t.Signature, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil
		} else {
			ok = rsa.VerifyPKCS1v15(m, h, d, t.Signature) == nil
		}
	case *ecdsa.PublicKey:
		h, _ := hashFor(alg)
		// RFC 7518 3.4: R and S as fixed-size big-endian integers, not
		// DER.
		size := (m.Curve.Params().BitSize + 7) / 8
		if len(t.Signature) == 2*size {
			r := new(big.Int).SetBytes(t.Signature[:size])
			s := new(big.Int).SetBytes(t.Signature[size:])
			ok = ecdsa.Verify(m, digest(h, t.signed), r, s)
		}
	case ed25519.PublicKey:
		ok = ed25519.Verify(m, t.signed, t.Signature)
	}
	if !ok {
		return ErrSignature
	}
	return nil
}

func digest(h crypto.Hash, b []byte) []byte {
	w := h.New()
	w.Write(b)
	return w.Sum(nil)
}
