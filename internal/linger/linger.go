// Package linger is the writer-goroutine life cycle that the MQTT and
// STOMP connections share: a writer goroutine runs only while there is
// something to write, lingers briefly for more, and is woken without
// blocking whoever queues. An idle connection then costs one goroutine
// (its reader), not two.
package linger

import "time"

// Wake signals a writer goroutine waiting in Wait on wake, which must have
// a buffer of one. It never blocks: a signal already pending covers this
// one, since the writer drains everything queued once woken.
func Wake(wake chan struct{}) {
	select {
	case wake <- struct{}{}:
	default:
	}
}

// Wait blocks until wake is signalled (true) or d passes (false: the
// caller retires its writer after checking, under its own lock, that
// nothing was queued meanwhile). *t is the caller's timer, made on first
// use and reused after, so a busy writer allocates none per wait.
func Wait(wake <-chan struct{}, t **time.Timer, d time.Duration) bool {
	if *t == nil {
		*t = time.NewTimer(d)
	} else {
		(*t).Reset(d)
	}
	select {
	case <-wake:
		(*t).Stop()
		return true
	case <-(*t).C:
		return false
	}
}
