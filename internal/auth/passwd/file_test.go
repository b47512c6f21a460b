package passwd

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseFile(t *testing.T) {
	t.Parallel()
	data := "# users\n\n" + toolLines[0].line + "\r\n  " + strings.Replace(toolLines[2].line, ":", " : ", 1) + "  \n" +
		toolLines[3].line // no final newline
	tb, err := parse([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	if len(tb.users) != 3 || tb.users["u"] == nil || tb.users["alice"] == nil || tb.users["carol"] == nil {
		t.Fatalf("users %v", tb.users)
	}
	if tb.users["alice"].line != 4 || !tb.users["alice"].v.verify([]byte("secret")) {
		t.Errorf("alice: line %d or her password", tb.users["alice"].line)
	}
	empty, err := parse(nil)
	if err != nil || len(empty.users) != 0 || empty.decoy == nil {
		t.Errorf("empty file: %v", err)
	}
}

func TestParseDecoyFollowsTheFile(t *testing.T) {
	t.Parallel()
	// Two $7$ users and one argon2id: unknown names pay for a $7$.
	m7, _ := Hash(KindPBKDF2, []byte("a"))
	m7b, _ := Hash(KindPBKDF2, []byte("b"))
	tb, err := parse([]byte("a:" + m7 + "\n" + toolLines[3].line + "\nb:" + m7b + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if tb.decoy.class() != "mosquitto/101" {
		t.Errorf("decoy class %q", tb.decoy.class())
	}
}

func TestParseBadLines(t *testing.T) {
	t.Parallel()
	good := toolLines[0].line
	for _, tc := range []struct {
		data string
		line int
		want string
	}{
		{good + "\nbob\n", 2, "no ':'"},
		{"# x\n:" + strings.SplitN(good, ":", 2)[1] + "\n", 2, "empty user name"},
		{good + "\n\nbob:\n", 3, "no hash"},
		{good + "\nbob:secret\n", 2, "plaintext"},
		{good + "\n" + good + "\n", 2, "already on line 1"},
		{"bob:$7$101$x$y\n", 1, "bad salt"},
	} {
		_, err := parse([]byte(tc.data))
		var le *LineError
		if !errors.As(err, &le) || le.Line != tc.line || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v (want line %d, %q)", tc.data, err, tc.line, tc.want)
		}
	}
}

func TestFileEdit(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(path, []byte("# team\n"+toolLines[0].line+"\n\n"+toolLines[2].line+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := Hash(KindPBKDF2, []byte("new"))
	f.Set("u", h)    // replaced in place
	f.Set("dave", h) // added at the end
	if !f.Delete("alice") || f.Delete("nobody") {
		t.Error("Delete")
	}
	if err := f.Write(path); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	want := "# team\nu:" + h + "\n\ndave:" + h + "\n"
	if string(data) != want {
		t.Errorf("file\n%s\nwant\n%s", data, want)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", st.Mode().Perm())
	}
	tb, err := parse(data)
	if err != nil || !tb.users["u"].v.verify([]byte("new")) {
		t.Errorf("rewritten file: %v", err)
	}

	// A file with a bad line is not edited: the error names the line.
	if err := os.WriteFile(path, []byte(toolLines[0].line+"\nbroken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(path); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("bad file read for editing: %v", err)
	}
	for _, u := range []string{"", "a:b", "#x", " x", "a\nb"} {
		if CheckUser(u) == nil {
			t.Errorf("user %q accepted", u)
		}
	}
}
