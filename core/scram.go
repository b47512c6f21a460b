package core

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// AuthMethod is a challenge/response authentication method (MQTT 5
// enhanced authentication). Adapters drive it; the core holds the
// credentials.
type AuthMethod interface {
	// Name is the method's name as clients send it, e.g. "SCRAM-SHA-256".
	Name() string
	// Start begins a conversation with the client's first message and
	// returns the server's challenge.
	Start(clientFirst []byte) (AuthConversation, []byte, error)
}

// AuthConversation is one authentication exchange in progress.
type AuthConversation interface {
	// Step takes the client's next message. When done, err nil means the
	// client proved its identity as Username(), and resp is the server's
	// final message (sent with the success acknowledgement).
	Step(clientMsg []byte) (resp []byte, done bool, err error)
	// Username is the authenticated user name once done.
	Username() string
}

// SCRAMIterations is the PBKDF2 iteration count (RFC 7677's minimum).
const SCRAMIterations = 4096

// SCRAM implements SCRAM-SHA-256 (RFC 5802, RFC 7677) without channel
// binding against a Users list.
type SCRAM struct {
	keys map[string]scramKeys
	fake scramKeys // answers unknown users so names cannot be probed
}

type scramKeys struct {
	salt      []byte
	storedKey []byte
	serverKey []byte
}

var errSCRAM = fmt.Errorf("%w: SCRAM-SHA-256 exchange failed", ErrBadCredentials)

// NewSCRAM derives the SCRAM keys of every user once, at start-up.
func NewSCRAM(users []User) *SCRAM {
	s := &SCRAM{keys: make(map[string]scramKeys, len(users))}
	for _, u := range users {
		s.keys[u.Username] = deriveSCRAM(u.Password)
	}
	s.fake = deriveSCRAM(randomString(18))
	return s
}

func deriveSCRAM(password string) scramKeys {
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	salted, _ := pbkdf2.Key(sha256.New, password, salt, SCRAMIterations, sha256.Size)
	clientKey := hmacSHA256(salted, "Client Key")
	stored := sha256.Sum256(clientKey)
	return scramKeys{salt: salt, storedKey: stored[:], serverKey: hmacSHA256(salted, "Server Key")}
}

func hmacSHA256(key []byte, msg string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msg))
	return h.Sum(nil)
}

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawStdEncoding.EncodeToString(b)
}

// Name returns "SCRAM-SHA-256".
func (s *SCRAM) Name() string { return "SCRAM-SHA-256" }

type scramConv struct {
	s               *SCRAM
	user            string
	known           bool
	keys            scramKeys
	nonce           string
	clientFirstBare string
	serverFirst     string
	done            bool
}

// Start parses client-first-message "n,,n=user,r=nonce".
func (s *SCRAM) Start(clientFirst []byte) (AuthConversation, []byte, error) {
	msg := string(clientFirst)
	// GS2 header: no channel binding ("n") or client supports it but
	// thinks we do not ("y"); "p=" would require binding we cannot offer.
	if !strings.HasPrefix(msg, "n,") && !strings.HasPrefix(msg, "y,") {
		return nil, nil, errSCRAM
	}
	parts := strings.SplitN(msg, ",", 3)
	if len(parts) != 3 || parts[1] != "" { // authzid is not supported
		return nil, nil, errSCRAM
	}
	bare := parts[2]
	attrs := strings.Split(bare, ",")
	if len(attrs) < 2 || !strings.HasPrefix(attrs[0], "n=") || !strings.HasPrefix(attrs[1], "r=") || len(attrs[1]) < 3 {
		return nil, nil, errSCRAM
	}
	user := strings.NewReplacer("=2C", ",", "=3D", "=").Replace(attrs[0][2:])
	c := &scramConv{s: s, user: user, clientFirstBare: bare}
	c.keys, c.known = s.keys[user]
	if !c.known {
		c.keys = s.fake
	}
	c.nonce = attrs[1][2:] + randomString(18)
	c.serverFirst = "r=" + c.nonce + ",s=" + base64.StdEncoding.EncodeToString(c.keys.salt) +
		fmt.Sprintf(",i=%d", SCRAMIterations)
	return c, []byte(c.serverFirst), nil
}

// Step verifies client-final-message "c=biws,r=nonce,p=proof".
func (c *scramConv) Step(clientMsg []byte) ([]byte, bool, error) {
	if c.done {
		return nil, true, errors.New("scram: exchange already complete")
	}
	c.done = true
	msg := string(clientMsg)
	i := strings.LastIndex(msg, ",p=")
	if i < 0 {
		return nil, true, errSCRAM
	}
	withoutProof, proofB64 := msg[:i], msg[i+3:]
	attrs := strings.Split(withoutProof, ",")
	if len(attrs) < 2 || !strings.HasPrefix(attrs[0], "c=") || attrs[1] != "r="+c.nonce {
		return nil, true, errSCRAM
	}
	if cb := attrs[0][2:]; cb != "biws" && cb != "eSws" { // base64 of "n,," or "y,,"
		return nil, true, errSCRAM
	}
	proof, err := base64.StdEncoding.DecodeString(proofB64)
	if err != nil || len(proof) != sha256.Size {
		return nil, true, errSCRAM
	}
	authMessage := c.clientFirstBare + "," + c.serverFirst + "," + withoutProof
	clientSig := hmacSHA256(c.keys.storedKey, authMessage)
	clientKey := make([]byte, sha256.Size)
	for j := range clientKey {
		clientKey[j] = proof[j] ^ clientSig[j]
	}
	got := sha256.Sum256(clientKey)
	if subtle.ConstantTimeCompare(got[:], c.keys.storedKey) != 1 || !c.known {
		return nil, true, errSCRAM
	}
	serverSig := hmacSHA256(c.keys.serverKey, authMessage)
	return []byte("v=" + base64.StdEncoding.EncodeToString(serverSig)), true, nil
}

// Username returns the user the conversation authenticated.
func (c *scramConv) Username() string { return c.user }
