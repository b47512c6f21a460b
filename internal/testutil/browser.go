package testutil

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Chromium is the browser the headless tests drive: Debian's.
const Chromium = "/usr/bin/chromium"

// Browser checks what a headless-Chromium test needs: node, Chromium and
// the npm packages under dir/node_modules (dir is the test's
// testdata/browser, whose setup.sh installs them). It skips the test,
// naming what is missing, or returns node's path.
func Browser(t testing.TB, dir string, packages ...string) string {
	t.Helper()
	setup := filepath.Join(dir, "setup.sh")
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skipf("browser test skipped: node missing (run %s)", setup)
	}
	if _, err := os.Stat(Chromium); err != nil {
		t.Skipf("browser test skipped: %s missing (run %s)", Chromium, setup)
	}
	for _, p := range packages {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", p)); err != nil {
			t.Skipf("browser test skipped: npm package %s missing (run %s)", p, setup)
		}
	}
	return node
}

// SPKIHash is the base64 SHA-256 of the certificate's public key (its
// SubjectPublicKeyInfo): what Chromium's
// --ignore-certificate-errors-spki-list takes to trust that key alone.
func (c *Cert) SPKIHash() string {
	sum := sha256.Sum256(c.Leaf.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// NodeProc is a running node script, its output collected.
type NodeProc struct {
	Stdout, Stderr bytes.Buffer
	// Exited yields cmd.Wait's result once, when the script ends.
	Exited <-chan error
}

// StartNode runs node with args (the script first); ctx ends it.
func StartNode(t testing.TB, ctx context.Context, node string, args ...string) *NodeProc {
	t.Helper()
	p := &NodeProc{}
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Stdout, cmd.Stderr = &p.Stdout, &p.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	p.Exited = exited
	return p
}
