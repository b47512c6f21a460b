// Package poll is the one way tests wait for a condition. It imports
// nothing of the gateway, so the core's own tests can use it as well as
// the black-box tests (testutil.Eventually is the same function).
package poll

import (
	"testing"
	"time"
)

// Eventually polls cond every few milliseconds until it holds or timeout
// passes; tests wait for conditions, never for fixed times.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v: %s", timeout, msg)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
