package jwt

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
)

// ParsePEM reads every public key of a PEM file: "PUBLIC KEY" (PKIX: RSA,
// ECDSA or Ed25519), "RSA PUBLIC KEY" (PKCS #1) or "CERTIFICATE" (its
// public key; the certificate itself is not checked: the file is the
// trust). Several blocks make several keys, for a rotation.
func ParsePEM(data []byte) ([]Key, error) {
	var keys []Key
	for n := 1; ; n++ {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		var pub any
		var err error
		switch b.Type {
		case "PUBLIC KEY":
			pub, err = x509.ParsePKIXPublicKey(b.Bytes)
		case "RSA PUBLIC KEY":
			pub, err = x509.ParsePKCS1PublicKey(b.Bytes)
		case "CERTIFICATE":
			var c *x509.Certificate
			if c, err = x509.ParseCertificate(b.Bytes); err == nil {
				pub = c.PublicKey
			}
		default:
			// A private key in the file is a mistake worth stopping for:
			// it should not be on the gateway at all.
			return nil, fmt.Errorf("PEM block %d: %q is not a public key or certificate", n, b.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("PEM block %d (%s): %w", n, b.Type, err)
		}
		k, err := PublicKey("", pub)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", n, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("no PEM public key found")
	}
	return keys, nil
}

// jwk is one JSON Web Key (RFC 7517) as a JWKS carries it; only public
// signature keys are read.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	Crv string `json:"crv"`
	N   string `json:"n"`
	E   string `json:"e"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// ParseJWKS reads a JWK Set (RFC 7517 5). Keys it cannot use (encryption
// keys, unknown types or curves, short RSA keys, symmetric keys: a
// published set holds no secrets) are skipped and counted in skipped, so
// that one odd key does not discard the rest; a set with no usable key is
// an error.
func ParseJWKS(data []byte) (keys []Key, skipped int, err error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, 0, fmt.Errorf("JWKS: %w", err)
	}
	for _, raw := range set.Keys {
		var j jwk
		if json.Unmarshal(raw, &j) != nil {
			skipped++
			continue
		}
		k, err := j.key()
		if err != nil {
			skipped++
			continue
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, skipped, fmt.Errorf("JWKS: no usable signature key among %d", len(set.Keys))
	}
	return keys, skipped, nil
}

func (j *jwk) key() (Key, error) {
	if j.Use != "" && j.Use != "sig" {
		return Key{}, fmt.Errorf("use %q", j.Use)
	}
	var pub any
	switch j.Kty {
	case "RSA":
		n, err1 := b64.DecodeString(j.N)
		e, err2 := b64.DecodeString(j.E)
		if err1 != nil || err2 != nil || len(e) == 0 || len(e) > 4 {
			return Key{}, errors.New("bad RSA n or e")
		}
		exp := new(big.Int).SetBytes(e).Int64()
		if exp < 3 || exp%2 == 0 {
			return Key{}, errors.New("bad RSA exponent")
		}
		pub = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(exp)}
	case "EC":
		var c elliptic.Curve
		switch j.Crv {
		case "P-256":
			c = elliptic.P256()
		case "P-384":
			c = elliptic.P384()
		case "P-521":
			c = elliptic.P521()
		default:
			return Key{}, fmt.Errorf("curve %q", j.Crv)
		}
		size := (c.Params().BitSize + 7) / 8
		x, err1 := b64.DecodeString(j.X)
		y, err2 := b64.DecodeString(j.Y)
		if err1 != nil || err2 != nil || len(x) != size || len(y) != size {
			return Key{}, errors.New("bad EC x or y")
		}
		// The uncompressed point form; parsing it checks that the point
		// is on the curve (an invalid-curve key must not get in).
		point := append(append([]byte{4}, x...), y...)
		k, err := ecdsa.ParseUncompressedPublicKey(c, point)
		if err != nil {
			return Key{}, err
		}
		pub = k
	case "OKP":
		x, err := b64.DecodeString(j.X)
		if j.Crv != "Ed25519" || err != nil || len(x) != ed25519.PublicKeySize {
			return Key{}, errors.New("bad OKP key")
		}
		pub = ed25519.PublicKey(x)
	default:
		return Key{}, fmt.Errorf("kty %q", j.Kty)
	}
	k, err := PublicKey(j.Kid, pub)
	if err != nil {
		return Key{}, err
	}
	k.Alg = j.Alg
	if k.Alg != "" && !k.Allows(k.Alg) {
		return Key{}, fmt.Errorf("alg %q does not fit a %s key", j.Alg, k.Type())
	}
	return k, nil
}
