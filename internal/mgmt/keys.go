// Package mgmt is iotgw's HTTP management listener (http.listen): the
// server, its authentication by API keys (http.api_keys_file) and login
// tokens, failed-login throttling, and the audit log of every mutating
// call. The REST handlers live in package api; other handlers (metrics,
// health) are mounted with Server.Mount.
package mgmt

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Role is what a key may do. Each role includes the ones before it.
type Role int

// Roles, weakest first.
const (
	RoleNone      Role = iota
	RoleViewer         // read everything (GET)
	RolePublisher      // viewer + publish
	RoleAdmin          // everything: kick, subscribe on behalf, bans, retained deletes, reload
)

// String returns the role's name as the keys file spells it.
func (r Role) String() string {
	switch r {
	case RoleViewer:
		return "viewer"
	case RolePublisher:
		return "publisher"
	case RoleAdmin:
		return "admin"
	}
	return "none"
}

// ParseRole reads a role name.
func ParseRole(s string) (Role, error) {
	switch s {
	case "viewer":
		return RoleViewer, nil
	case "publisher":
		return RolePublisher, nil
	case "admin":
		return RoleAdmin, nil
	}
	return RoleNone, fmt.Errorf("role %q is not viewer, publisher or admin", s)
}

// hashPrefix marks the one hash format of API key secrets: SHA-256 of the
// secret, base64 without padding. A slow password hash would buy nothing
// here: secrets are 32 random bytes, not guessable words, and a request
// must not cost tens of milliseconds of CPU (the dashboard polls).
const hashPrefix = "$sha256$"

// HashSecret returns the stored form of a secret.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hashPrefix + base64.RawStdEncoding.EncodeToString(sum[:])
}

// NewSecret returns a fresh random secret: 32 bytes, URL-safe base64, so
// it goes in a Basic password, a Bearer token or a cookie unchanged.
func NewSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Key is one API key: a name (the Basic user name, and what the audit log
// shows), the hash of its secret, and its role.
type Key struct {
	Name string
	Hash string
	Role Role
	sum  []byte // decoded hash
}

// Keys is a parsed keys file, by name and by secret hash.
type Keys struct {
	byName map[string]*Key
	byHash map[string]*Key
}

// Len returns the number of keys.
func (k *Keys) Len() int {
	if k == nil {
		return 0
	}
	return len(k.byName)
}

// Check returns the key a name and secret name, if they match.
func (k *Keys) Check(name, secret string) (*Key, bool) {
	if k == nil {
		return nil, false
	}
	key, ok := k.byName[name]
	sum := sha256.Sum256([]byte(secret))
	if !ok {
		return nil, false
	}
	return key, subtle.ConstantTimeCompare(sum[:], key.sum) == 1
}

// Bearer returns the key whose secret is token: secrets are random and
// unique, so the secret alone names its key.
func (k *Keys) Bearer(token string) (*Key, bool) {
	if k == nil {
		return nil, false
	}
	key, ok := k.byHash[HashSecret(token)]
	return key, ok
}

// ParseKeys reads a keys file: one "name:hashed-secret:role" a line;
// blank lines and lines starting with # are ignored. Every problem is
// reported with its line number.
func ParseKeys(data []byte) (*Keys, error) {
	ks := &Keys{byName: map[string]*Key{}, byHash: map[string]*Key{}}
	var errs []error
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, err := parseKeyLine(line)
		if err == nil && ks.byName[k.Name] != nil {
			err = fmt.Errorf("key %q defined twice", k.Name)
		}
		if err == nil && ks.byHash[k.Hash] != nil {
			err = fmt.Errorf("key %q has the same secret as %q", k.Name, ks.byHash[k.Hash].Name)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("line %d: %w", n, err))
			continue
		}
		ks.byName[k.Name] = k
		ks.byHash[k.Hash] = k
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, err)
	}
	return ks, errors.Join(errs...)
}

func parseKeyLine(line string) (*Key, error) {
	parts := strings.Split(line, ":")
	if len(parts) != 3 {
		return nil, errors.New("want name:hashed-secret:role")
	}
	if err := CheckName(parts[0]); err != nil {
		return nil, err
	}
	if !strings.HasPrefix(parts[1], hashPrefix) {
		return nil, fmt.Errorf("key %q: the secret is not a %s hash (make keys with `iotgw apikey add`)", parts[0], hashPrefix)
	}
	sum, err := base64.RawStdEncoding.DecodeString(strings.TrimPrefix(parts[1], hashPrefix))
	if err != nil || len(sum) != sha256.Size {
		return nil, fmt.Errorf("key %q: bad %s hash", parts[0], hashPrefix)
	}
	role, err := ParseRole(parts[2])
	if err != nil {
		return nil, fmt.Errorf("key %q: %w", parts[0], err)
	}
	return &Key{Name: parts[0], Hash: parts[1], Role: role, sum: sum}, nil
}

// CheckName refuses key names the file format or the logs cannot carry.
func CheckName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("key name %q: want 1 to 64 characters", name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("key name %q: only letters, digits, '-', '_' and '.'", name)
		}
	}
	return nil
}

// ReadKeys reads and parses a keys file.
func ReadKeys(path string) (*Keys, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	ks, err := ParseKeys(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ks, nil
}

// AddKey adds a key named name with role to the keys file at path
// (created, mode 0600, if missing; an existing key of that name is an
// error) and returns its secret, which is stored only as its hash. The
// file is replaced atomically, so the gateway never reads half of it.
func AddKey(path, name string, role Role) (string, error) {
	if err := CheckName(name); err != nil {
		return "", err
	}
	if role == RoleNone {
		return "", errors.New("no role")
	}
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	ks, err := ParseKeys(data)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	if ks.byName[name] != nil {
		return "", fmt.Errorf("%s: key %q exists (remove its line to replace it)", path, name)
	}
	secret := NewSecret()
	if len(data) > 0 && !bytes.HasSuffix(data, []byte("\n")) {
		data = append(data, '\n')
	}
	data = append(data, fmt.Sprintf("%s:%s:%s\n", name, HashSecret(secret), role)...)
	tmp, err := os.CreateTemp(filepath.Dir(path), ".apikeys-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return "", err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	return secret, os.Rename(tmp.Name(), path)
}
