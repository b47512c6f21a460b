package filewatch

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// waitCheck waits for one check call.
func waitCheck(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no check", what)
	}
}

func TestEventsAndInterval(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, []byte("1"), 0o600); err != nil {
		t.Fatal(err)
	}
	checks := make(chan struct{}, 16)
	check := func() { checks <- struct{}{} }

	w := Start(Options{Paths: []string{file, ""}, Settle: time.Millisecond}, check)
	// A rename over the file (how editors and `iotgw passwd` write) is an
	// event in its directory.
	if err := os.WriteFile(file+".tmp", []byte("2"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(file+".tmp", file); err != nil {
		t.Fatal(err)
	}
	waitCheck(t, checks, "rename")
	w.Close()
	w.Close() // twice is harmless

	// Without events the periodic check runs.
	p := Start(Options{Paths: []string{file}, NoEvents: true, Interval: 5 * time.Millisecond}, check)
	defer p.Close()
	for len(checks) > 0 {
		<-checks
	}
	waitCheck(t, checks, "interval")
}
