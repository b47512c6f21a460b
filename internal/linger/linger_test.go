package linger

import (
	"testing"
	"time"
)

func TestWakeNeverBlocksAndWaitSeesIt(t *testing.T) {
	wake := make(chan struct{}, 1)
	Wake(wake)
	Wake(wake) // a second signal while one is pending must not block
	var timer *time.Timer
	if !Wait(wake, &timer, time.Hour) {
		t.Fatal("Wait missed a pending wake")
	}
	if timer == nil {
		t.Fatal("Wait did not keep its timer for reuse")
	}
}

func TestWaitRetiresWithoutWake(t *testing.T) {
	wake := make(chan struct{}, 1)
	var timer *time.Timer
	if Wait(wake, &timer, time.Millisecond) {
		t.Fatal("Wait reported a wake that never came")
	}
	// The timer is reused: a later wake is still seen.
	Wake(wake)
	if !Wait(wake, &timer, time.Hour) {
		t.Fatal("Wait with a reused timer missed a wake")
	}
}
