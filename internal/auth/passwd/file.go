// Package passwd is the password file backend of the authentication
// chain (auth.password_file) and the file editing behind `iotgw passwd`.
//
// The file is Mosquitto's: one "user:hash" line per user, blank lines and
// lines starting with '#' ignored, blanks around the name and the hash
// trimmed. Hashes may be argon2id (PHC string, what iotgw writes),
// bcrypt ($2a$/$2b$/$2y$) or mosquitto_passwd's $7$ (PBKDF2-SHA512) and
// $6$ (salted SHA-512), so a Mosquitto password file works as it is.
// Unlike Mosquitto, a line that does not parse is an error naming its
// line number, never a user silently dropped.
package passwd

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// maxLine bounds one line (mosquitto caps names and hashes at 65535
// bytes each).
const maxLine = 128 * 1024

// LineError is a line of the file that does not parse.
type LineError struct {
	Line int
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }
func (e *LineError) Unwrap() error { return e.Err }

// entry is one user of a parsed file.
type entry struct {
	stored string // the hash as written, to key the cache
	v      verifier
	line   int
}

// table is a parsed file, never changed once built: a reload swaps in a
// new one.
type table struct {
	users map[string]*entry
	// decoy has the cost of the file's most common kind of hash.
	decoy verifier
	sum   [sha256.Size]byte
}

// splitLine returns the user and hash of a line, ok false for a line
// without either (blank, comment). A line that is neither is an error.
func splitLine(line string) (user, hash string, ok bool, err error) {
	line = strings.TrimRight(line, "\r\n")
	t := strings.TrimSpace(line)
	if t == "" || strings.HasPrefix(t, "#") {
		return "", "", false, nil
	}
	u, h, found := strings.Cut(t, ":")
	user, hash = strings.TrimSpace(u), strings.TrimSpace(h)
	switch {
	case !found:
		return "", "", false, errors.New("no ':' between user name and hash")
	case user == "":
		return "", "", false, errors.New("empty user name")
	case hash == "":
		return "", "", false, fmt.Errorf("user %q has no hash", user)
	}
	return user, hash, true, nil
}

// parse reads a whole file; the first bad line is the error.
func parse(data []byte) (*table, error) {
	t := &table{users: map[string]*entry{}, sum: sha256.Sum256(data)}
	classes := map[string]int{}
	var best verifier
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	n := 0
	for sc.Scan() {
		n++
		user, hash, ok, err := splitLine(sc.Text())
		if err != nil {
			return nil, &LineError{n, err}
		}
		if !ok {
			continue
		}
		if prev := t.users[user]; prev != nil {
			return nil, &LineError{n, fmt.Errorf("user %q already on line %d", user, prev.line)}
		}
		v, err := parseHash(hash)
		if err != nil {
			return nil, &LineError{n, fmt.Errorf("user %q: %w", user, err)}
		}
		t.users[user] = &entry{stored: hash, v: v, line: n}
		c := v.class()
		classes[c]++
		if best == nil || classes[c] > classes[best.class()] {
			best = v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, &LineError{n + 1, err}
	}
	if best == nil {
		// An empty file: unknown users still pay for a default hash.
		v, err := parseHash(decoyDefault)
		if err != nil {
			return nil, err
		}
		best = v
	}
	d, err := best.decoy()
	if err != nil {
		return nil, err
	}
	t.decoy = d
	return t, nil
}

// decoyDefault is an argon2id hash with iotgw's costs, matching nothing
// anyone would type: the decoy of an empty file.
const decoyDefault = "$argon2id$v=19$m=19456,t=2,p=1$ZGVjb3lkZWNveWRlY295$ZGVjb3lkZWNveWRlY295ZGVjb3lkZWNveWRlY295"

// File is a password file's lines as read, for editing: comments,
// blank lines and the order of users are kept.
type File struct {
	lines []string
}

// ReadFile reads a password file for editing; a line that does not parse
// is an error naming it, so that an edit never rewrites a file it does
// not understand.
func ReadFile(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if _, err := parse(data); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s := strings.TrimSuffix(string(data), "\n")
	f := &File{}
	if s != "" {
		f.lines = strings.Split(s, "\n")
	}
	return f, nil
}

// CheckUser refuses names a file cannot hold.
func CheckUser(user string) error {
	switch {
	case user == "":
		return errors.New("empty user name")
	case strings.ContainsRune(user, ':'):
		return errors.New("user name must not contain ':'")
	case strings.ContainsAny(user, "\r\n"):
		return errors.New("user name must not contain a line break")
	case strings.TrimSpace(user) != user:
		return errors.New("user name must not start or end with a blank")
	case strings.HasPrefix(user, "#"):
		return errors.New("user name must not start with '#' (a comment)")
	}
	return nil
}

func (f *File) find(user string) int {
	for i, l := range f.lines {
		if u, _, ok, _ := splitLine(l); ok && u == user {
			return i
		}
	}
	return -1
}

// Set gives user the stored hash: its line is replaced where it stands,
// or a new line is added at the end.
func (f *File) Set(user, hash string) {
	line := user + ":" + hash
	if i := f.find(user); i >= 0 {
		f.lines[i] = line
		return
	}
	f.lines = append(f.lines, line)
}

// Delete removes user's line, false when there is none.
func (f *File) Delete(user string) bool {
	i := f.find(user)
	if i < 0 {
		return false
	}
	f.lines = append(f.lines[:i], f.lines[i+1:]...)
	return true
}

// Write replaces the file at path atomically (a temporary file in the
// same directory, renamed over it), mode 0600: the hashes are secrets
// worth guarding even hashed. An existing file's owner and group are
// kept where permitted, so that a gateway running as its own user can
// still read a file root edited.
func (f *File) Write(path string) error {
	var b strings.Builder
	for _, l := range f.lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return err
	}
	if st, err := os.Stat(path); err == nil {
		keepOwner(tmp, st)
	}
	if _, err := tmp.WriteString(b.String()); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	done = true
	return nil
}
