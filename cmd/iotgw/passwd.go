package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/iotgw/iotgw/internal/auth/passwd"
)

const passwdUsage = `usage: iotgw passwd [-H HASH] [-c | -D] FILE USER
       iotgw passwd [-H HASH] [-c] -b FILE USER PASSWORD

Adds USER to the password file FILE (auth.password_file) or changes its
password, as mosquitto_passwd does; the gateway picks the change up by
itself. Without -b the password is asked twice, not echoed. FILE is
written mode 0600; its comments and the order of its users are kept.

  -b       the password is the third argument (it shows in ps and shell history)
  -c       create FILE, replacing it if it exists
  -D       delete USER
  -H HASH  argon2id (default), bcrypt, sha512-pbkdf2 (mosquitto's $7$) or
           sha512 (mosquitto's $6$: fast to guess, for old tools only)
`

// runPasswd is "iotgw passwd ...": it returns the exit code (0 done or
// help, 1 the file could not be read or written or the user is not in
// it, 2 a usage error).
func runPasswd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("iotgw passwd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	batch := fs.Bool("b", false, "password on the command line")
	create := fs.Bool("c", false, "create or replace FILE")
	del := fs.Bool("D", false, "delete USER")
	kind := fs.String("H", string(passwd.KindArgon2id), "hash")
	fs.Usage = func() { fmt.Fprint(fs.Output(), passwdUsage) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fs.Usage()
			return 0
		}
		return 2
	}
	want := 2
	if *batch {
		want = 3
	}
	usage := func(msg string) int {
		fmt.Fprintf(stderr, "iotgw passwd: %s\n", msg)
		fs.Usage()
		return 2
	}
	switch {
	case *create && *del:
		return usage("-c and -D cannot be used together")
	case *batch && *del:
		return usage("-b and -D cannot be used together")
	case fs.NArg() != want:
		return usage(fmt.Sprintf("want %d arguments, got %d", want, fs.NArg()))
	case !validKind(*kind):
		return usage(fmt.Sprintf("-H %q: not one of argon2id, bcrypt, sha512-pbkdf2, sha512", *kind))
	}
	file, user := fs.Arg(0), fs.Arg(1)
	if err := passwd.CheckUser(user); err != nil {
		fmt.Fprintf(stderr, "iotgw passwd: %v\n", err)
		return 1
	}
	f := &passwd.File{}
	if !*create {
		var err error
		if f, err = passwd.ReadFile(file); err != nil {
			fmt.Fprintf(stderr, "iotgw passwd: %v\n", err)
			return 1
		}
	}
	if *del {
		if !f.Delete(user) {
			fmt.Fprintf(stderr, "iotgw passwd: user %s not in %s\n", user, file)
			return 1
		}
		return writePasswd(f, file, stderr)
	}
	var pw []byte
	if *batch {
		pw = []byte(fs.Arg(2))
	} else {
		var err error
		if pw, err = promptPassword(stdin, stderr); err != nil {
			fmt.Fprintf(stderr, "iotgw passwd: %v\n", err)
			return 1
		}
	}
	if len(pw) == 0 {
		fmt.Fprintln(stderr, "iotgw passwd: empty password")
		return 1
	}
	h, err := passwd.Hash(passwd.Kind(*kind), pw)
	if err != nil {
		fmt.Fprintf(stderr, "iotgw passwd: %v\n", err)
		return 1
	}
	f.Set(user, h)
	return writePasswd(f, file, stderr)
}

func validKind(k string) bool {
	for _, w := range passwd.WriteKinds {
		if string(w) == k {
			return true
		}
	}
	return false
}

func writePasswd(f *passwd.File, file string, stderr io.Writer) int {
	if err := f.Write(file); err != nil {
		fmt.Fprintf(stderr, "iotgw passwd: %v\n", err)
		return 1
	}
	return 0
}

// promptPassword asks for the password twice: without echo on a
// terminal, as two lines from a pipe (scripts, tests).
func promptPassword(stdin io.Reader, stderr io.Writer) ([]byte, error) {
	var read func() ([]byte, error)
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		read = func() ([]byte, error) {
			p, err := term.ReadPassword(int(f.Fd()))
			fmt.Fprintln(stderr) // the Enter the terminal did not echo
			return p, err
		}
	} else {
		r := bufio.NewReader(stdin)
		read = func() ([]byte, error) {
			line, err := r.ReadString('\n')
			if err != nil && (err != io.EOF || line == "") {
				return nil, errors.New("no password on standard input")
			}
			return []byte(strings.TrimRight(line, "\r\n")), nil
		}
	}
	fmt.Fprint(stderr, "Password: ")
	p1, err := read()
	if err != nil {
		return nil, err
	}
	fmt.Fprint(stderr, "Reenter password: ")
	p2, err := read()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(p1, p2) {
		return nil, errors.New("passwords do not match")
	}
	return p1, nil
}
