package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// README.md's quick starts are run as written. A fenced block is marked
// for a test by an HTML comment (invisible on GitHub) on the line before
// it:
//
//	<!-- test: NAME -->              a shell block, run with bash
//	<!-- test: NAME file: F -->      a block saved as the file F first
//	<!-- test: NAME output -->       lines the shell blocks must print
//
// Blocks of one NAME make one test: its files are written into a fresh
// directory, its shell blocks joined into one script and run there, and
// every line of its output blocks must appear in what the script (and the
// jobs it left in the background) print on standard output.
//
// The blocks use the default ports, as a reader would. To run them with
// those ports whatever else runs on the machine (another test package, a
// mosquitto, a gateway), each test gets a network namespace of its own
// (unshare -rn, loopback brought up): nothing outside can hold its ports,
// and nothing it starts is reachable from outside. Without namespaces the
// test runs on the host if the default ports are free and skips if not.
//
// The one command not run as written is the build: "go build -o iotgw
// ./cmd/iotgw" copies the binary this test run built (from the same
// source) instead of compiling again, since two cores are shared by the
// whole suite. Everything else, the waiting for the port included, is the
// README's own text.

var markerRE = regexp.MustCompile(`^<!-- test: ([a-z0-9-]+)(?: (file: (\S+)|output))? -->$`)

type readmeTest struct {
	name   string
	files  [][2]string // name, content, in README order
	script strings.Builder
	output []string
}

// parseREADME returns the marked tests of doc in their order.
func parseREADME(doc string) ([]*readmeTest, error) {
	lines := strings.Split(doc, "\n")
	byName := map[string]*readmeTest{}
	var tests []*readmeTest
	for i := 0; i < len(lines); i++ {
		m := markerRE.FindStringSubmatch(strings.TrimSpace(lines[i]))
		if m == nil {
			if strings.Contains(lines[i], "<!-- test:") {
				return nil, fmt.Errorf("README.md:%d: malformed marker %q", i+1, lines[i])
			}
			continue
		}
		if i+1 >= len(lines) || !strings.HasPrefix(lines[i+1], "```") {
			return nil, fmt.Errorf("README.md:%d: marker not followed by a fenced block", i+1)
		}
		var body []string
		j := i + 2
		for ; j < len(lines) && !strings.HasPrefix(lines[j], "```"); j++ {
			body = append(body, lines[j])
		}
		if j == len(lines) {
			return nil, fmt.Errorf("README.md:%d: unterminated block", i+2)
		}
		t := byName[m[1]]
		if t == nil {
			t = &readmeTest{name: m[1]}
			byName[m[1]] = t
			tests = append(tests, t)
		}
		text := strings.Join(body, "\n") + "\n"
		switch {
		case m[3] != "":
			t.files = append(t.files, [2]string{m[3], text})
		case m[2] == "output":
			for _, l := range body {
				if strings.TrimSpace(l) != "" {
					t.output = append(t.output, l)
				}
			}
		default:
			t.script.WriteString(text)
		}
		i = j
	}
	return tests, nil
}

// prelude makes the README's build line use the binary already built.
const prelude = `go() {
  if [ "$*" = "build -o iotgw ./cmd/iotgw" ]; then cp "$README_TEST_IOTGW" iotgw; else command go "$@"; fi
}
`

// readmeTools are the commands a quick start may need; a test whose
// script names one that is missing skips.
var readmeTools = []string{"mosquitto_pub", "mosquitto_sub", "coap-client-notls", "coap-client-openssl", "/usr/bin/python3", "openssl"}

// The ports of the default configuration, for the check without a
// namespace.
var defaultTCPPorts = []string{"1883", "8083", "8883", "8084", "61613", "61614", "61615", "61616", "18083"}

func netnsWorks() bool {
	return exec.Command("unshare", "-rn", "sh", "-c", "ip link set lo up").Run() == nil
}

func TestREADMEQuickStarts(t *testing.T) {
	doc, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	tests, err := parseREADME(string(doc))
	if err != nil {
		t.Fatal(err)
	}
	covered := map[string]bool{}
	for _, rt := range tests {
		covered[rt.name] = true
	}
	for _, want := range []string{"quickstart-mqtt", "quickstart-mqttsn", "quickstart-coap", "quickstart-stomp", "quickstart-tls"} {
		if !covered[want] {
			t.Errorf("README.md has no block marked <!-- test: %s -->", want)
		}
	}
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash not installed: README quick starts not run")
	}
	isolated := netnsWorks()
	bin := buildBinary(t)
	for _, rt := range tests {
		t.Run(rt.name, func(t *testing.T) {
			if rt.script.Len() == 0 || len(rt.output) == 0 {
				t.Fatalf("%s: needs a shell block and an output block", rt.name)
			}
			runQuickStart(t, rt, bin, isolated)
		})
	}
}

func runQuickStart(t *testing.T, rt *readmeTest, bin string, isolated bool) {
	script := rt.script.String()
	for _, tool := range readmeTools {
		if strings.Contains(script, tool) {
			if _, err := exec.LookPath(tool); err != nil {
				t.Skipf("%s not installed (scripts/test.sh installs it)", tool)
			}
		}
	}
	if strings.Contains(script, "import stomp") && exec.Command("/usr/bin/python3", "-c", "import stomp").Run() != nil {
		t.Skip("/usr/bin/python3 cannot import stomp: python3-stomp not installed")
	}
	if !isolated {
		for _, p := range defaultTCPPorts {
			ln, err := net.Listen("tcp", "127.0.0.1:"+p)
			if err != nil {
				t.Skipf("no network namespace (unshare -rn) and port %s is in use: not run", p)
			}
			ln.Close()
		}
	}
	dir := t.TempDir()
	for _, f := range rt.files {
		if err := os.WriteFile(filepath.Join(dir, f[0]), []byte(f[1]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "quickstart.sh"), []byte(prelude+script), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, _ := os.Create(filepath.Join(dir, "stdout"))
	stderr, _ := os.Create(filepath.Join(dir, "stderr"))
	defer stdout.Close()
	defer stderr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var cmd *exec.Cmd
	if isolated {
		cmd = exec.CommandContext(ctx, "unshare", "-rn", "bash", "-c", "ip link set lo up && exec bash quickstart.sh")
	} else {
		cmd = exec.CommandContext(ctx, "bash", "quickstart.sh")
	}
	cmd.Dir = dir
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "IOTGW_") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, "README_TEST_IOTGW="+bin)
	cmd.Stdout, cmd.Stderr = stdout, stderr // files: the background jobs may outlive the script
	// Its own process group, so the gateway and every other job it left
	// behind are stopped with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The gateway is still running in the background: stop the whole
	// group and wait until it is gone, so its store is closed before
	// t.TempDir's cleanup removes the directory under it.
	defer stopGroup(cmd.Process.Pid)
	runErr := cmd.Wait()
	// Background jobs may print after the script ends: look until every
	// line is there, or a generous bound passes.
	var missing []string
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		missing = missingLines(filepath.Join(dir, "stdout"), rt.output)
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(missing) > 0 {
		out, _ := os.ReadFile(filepath.Join(dir, "stdout"))
		errOut, _ := os.ReadFile(filepath.Join(dir, "stderr"))
		t.Fatalf("script ended with %v; lines not printed: %q\nstdout:\n%s\nstderr:\n%s", runErr, missing, out, errOut)
	}
}

// stopGroup sends SIGTERM to process group pgid and waits (up to 15 s,
// then SIGKILL) until no process of it is left.
func stopGroup(pgid int) {
	syscall.Kill(-pgid, syscall.SIGTERM)
	gone := func(bound time.Duration) bool {
		for deadline := time.Now().Add(bound); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if syscall.Kill(-pgid, 0) != nil {
				return true
			}
		}
		return false
	}
	if !gone(15 * time.Second) {
		syscall.Kill(-pgid, syscall.SIGKILL)
		gone(5 * time.Second)
	}
}

// missingLines returns the lines of want that the file does not hold.
func missingLines(path string, want []string) []string {
	f, err := os.Open(path)
	if err != nil {
		return want
	}
	defer f.Close()
	have := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		have[strings.TrimRight(sc.Text(), " \r")] = true
	}
	var missing []string
	for _, w := range want {
		if !have[w] {
			missing = append(missing, w)
		}
	}
	return missing
}

func TestParseREADME(t *testing.T) {
	doc := "x\n<!-- test: a file: c.yaml -->\n```yaml\nk: v\n```\n<!-- test: a -->\n```sh\necho hi\n```\n" +
		"text\n<!-- test: a output -->\n```text\nhi\n\n```\n```sh\nnot marked\n```\n"
	tests, err := parseREADME(doc)
	if err != nil {
		t.Fatal(err)
	}
	if len(tests) != 1 || tests[0].name != "a" || tests[0].script.String() != "echo hi\n" ||
		len(tests[0].files) != 1 || tests[0].files[0] != [2]string{"c.yaml", "k: v\n"} ||
		len(tests[0].output) != 1 || tests[0].output[0] != "hi" {
		t.Fatalf("parsed %+v", tests[0])
	}
	if _, err := parseREADME("<!-- test: a -->\ntext\n"); err == nil {
		t.Error("a marker before text: no error")
	}
	if _, err := parseREADME("<!-- test: A B -->\n```sh\n```\n"); err == nil {
		t.Error("a malformed marker: no error")
	}
}
