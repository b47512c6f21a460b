// Package jwt verifies JSON Web Tokens (RFC 7519) signed as JWS compact
// serialisation (RFC 7515) with the algorithms of RFC 7518 and RFC 8037,
// and turns a valid token into an authentication answer of the gateway's
// chain (Backend). It is written on the standard library alone: the part of
// JOSE a broker needs is small, and owning it keeps "alg: none", algorithm
// confusion and key fetching under our control.
package jwt

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// MaxTokenSize bounds what Parse looks at: a token is a header, a claims
// set and a signature; anything much larger is not one we issue, and the
// bound keeps base64 and JSON decoding of client input cheap.
const MaxTokenSize = 16 << 10

// ErrNotJWT means the input is not a JWS compact token at all (a plain
// password, say): the backend leaves such a client to the next one.
var ErrNotJWT = errors.New("jwt: not a JSON Web Token")

// ErrMalformed means the input is shaped like a token (its header decodes)
// but some part of it is broken: that is a bad credential, not somebody
// else's.
var ErrMalformed = errors.New("jwt: malformed token")

// Header is the JOSE header of a token, the fields this package reads.
type Header struct {
	Alg string
	Kid string
	Typ string
	// Crit lists extensions the verifier must understand; this package
	// understands none, so a token that sets it is refused (RFC 7515
	// 4.1.11).
	Crit []string
}

// Token is a parsed, not yet verified, token.
type Token struct {
	Header Header
	// Claims is the decoded claims set; numbers are json.Number so that
	// large integers and exact comparisons survive.
	Claims map[string]any
	// signed is "header.payload", the JWS signing input.
	signed []byte
	// Signature is the decoded signature.
	Signature []byte
}

// b64 is the unpadded base64url of RFC 7515 section 2, strict so that a
// signature (or header) has one encoding only.
var b64 = base64.RawURLEncoding.Strict()

// Parse splits and decodes a compact token without verifying it. It
// returns ErrNotJWT for input that is not a token and ErrMalformed (wrapped)
// for a token that is broken.
func Parse(s string) (*Token, error) {
	if len(s) > MaxTokenSize || len(s) < len("e30.e30.") {
		return nil, ErrNotJWT
	}
	h, rest, ok := strings.Cut(s, ".")
	if !ok {
		return nil, ErrNotJWT
	}
	p, sig, ok := strings.Cut(rest, ".")
	if !ok || strings.Contains(sig, ".") {
		// Five parts would be JWE (RFC 7516), which we do not accept
		// either.
		return nil, ErrNotJWT
	}
	hb, err := b64.DecodeString(h)
	if err != nil {
		return nil, ErrNotJWT
	}
	t := &Token{}
	if !decodeHeader(hb, &t.Header) {
		return nil, ErrNotJWT
	}
	// From here on it claims to be a token.
	pb, err := b64.DecodeString(p)
	if err != nil {
		return nil, fmt.Errorf("%w: claims: %v", ErrMalformed, err)
	}
	if !isObject(pb) {
		return nil, fmt.Errorf("%w: claims are not a JSON object", ErrMalformed)
	}
	dec := json.NewDecoder(bytes.NewReader(pb))
	dec.UseNumber()
	if err := dec.Decode(&t.Claims); err != nil {
		return nil, fmt.Errorf("%w: claims: %v", ErrMalformed, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: claims: trailing data", ErrMalformed)
	}
	if t.Signature, err = b64.DecodeString(sig); err != nil {
		return nil, fmt.Errorf("%w: signature: %v", ErrMalformed, err)
	}
	if len(t.Header.Crit) > 0 {
		return nil, fmt.Errorf("%w: critical header extensions %q not understood", ErrMalformed, t.Header.Crit)
	}
	t.signed = []byte(s[:len(h)+1+len(p)])
	return t, nil
}

// decodeHeader reads the header's members by their exact names:
// encoding/json would match struct fields case-insensitively, so "ALG"
// could stand in for "alg".
func decodeHeader(b []byte, h *Header) bool {
	if !isObject(b) {
		return false
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		return false
	}
	if json.Unmarshal(m["alg"], &h.Alg) != nil || h.Alg == "" {
		return false
	}
	if raw, ok := m["kid"]; ok && json.Unmarshal(raw, &h.Kid) != nil {
		return false
	}
	if raw, ok := m["typ"]; ok && json.Unmarshal(raw, &h.Typ) != nil {
		return false
	}
	if raw, ok := m["crit"]; ok && (json.Unmarshal(raw, &h.Crit) != nil || len(h.Crit) == 0) {
		// An empty or ill-typed crit is itself invalid (RFC 7515 4.1.11);
		// keep a marker so that Parse refuses the token.
		h.Crit = []string{"crit"}
	}
	return true
}

// isObject reports whether b, trimmed, looks like a JSON object, so that
// "null" or a number is not taken for an empty header or claims set.
func isObject(b []byte) bool {
	b = bytes.TrimSpace(b)
	return len(b) >= 2 && b[0] == '{' && b[len(b)-1] == '}'
}

// NumericDate reads a time claim (RFC 7519 2: seconds since the epoch, may
// have a fraction). ok is false when the claim is absent; an error means it
// is present but not a usable number.
func (t *Token) NumericDate(name string) (at time.Time, ok bool, err error) {
	v, present := t.Claims[name]
	if !present {
		return time.Time{}, false, nil
	}
	n, isNum := v.(json.Number)
	if !isNum {
		return time.Time{}, true, fmt.Errorf("%w: %s is not a number", ErrMalformed, name)
	}
	f, err := n.Float64()
	// Beyond ±2^53 seconds a date is meaningless (and time.Unix overflows).
	if err != nil || math.IsNaN(f) || math.Abs(f) > 1<<53 {
		return time.Time{}, true, fmt.Errorf("%w: %s is not a usable date", ErrMalformed, name)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true, nil
}

// TimeError is a token outside its validity period.
type TimeError struct {
	// Claim is "exp", "nbf" or "iat".
	Claim string
	At    time.Time
}

func (e *TimeError) Error() string {
	switch e.Claim {
	case "exp":
		return fmt.Sprintf("jwt: token expired at %s", e.At.UTC().Format(time.RFC3339))
	case "nbf":
		return fmt.Sprintf("jwt: token not valid before %s", e.At.UTC().Format(time.RFC3339))
	}
	return fmt.Sprintf("jwt: token issued in the future (%s)", e.At.UTC().Format(time.RFC3339))
}

// CheckTimes applies exp, nbf and iat at now, each with leeway for clock
// skew between the issuer and us (RFC 7519 4.1.4, 4.1.5). It returns the
// time the token stops being accepted (exp + leeway; zero without exp).
// requireExp refuses a token without exp: one that never expires would
// keep its connection forever.
func (t *Token) CheckTimes(now time.Time, leeway time.Duration, requireExp bool) (until time.Time, err error) {
	exp, hasExp, err := t.NumericDate("exp")
	if err != nil {
		return time.Time{}, err
	}
	if hasExp {
		until = exp.Add(leeway)
		if !now.Before(until) {
			return time.Time{}, &TimeError{Claim: "exp", At: exp}
		}
	} else if requireExp {
		return time.Time{}, errors.New("jwt: token without exp (auth.jwt.require_exp)")
	}
	nbf, hasNbf, err := t.NumericDate("nbf")
	if err != nil {
		return time.Time{}, err
	}
	if hasNbf && now.Add(leeway).Before(nbf) {
		return time.Time{}, &TimeError{Claim: "nbf", At: nbf}
	}
	iat, hasIat, err := t.NumericDate("iat")
	if err != nil {
		return time.Time{}, err
	}
	if hasIat && now.Add(leeway).Before(iat) {
		return time.Time{}, &TimeError{Claim: "iat", At: iat}
	}
	return until, nil
}
