package core

import "context"

// Adapter is one protocol front end. cmd/iotgw wires each of them
// explicitly; there is no init()-time registration.
type Adapter interface {
	// Name returns a short name for logs ("mqtt", "stomp", ...).
	Name() string
	// Start binds the adapter's listeners and returns once it is serving.
	Start(ctx context.Context, b *Broker) error
	// Stop stops accepting, closes connections and waits for goroutines.
	Stop(ctx context.Context) error
}

// Sink is one connection as the core sees it: the core's only way out.
// Implementations must be safe for concurrent use.
type Sink interface {
	// Deliver hands a delivery to the connection's writer. It must never
	// block. It returns false when the delivery could not be queued: a QoS 0
	// delivery is then dropped (and counted); a QoS 1/2 delivery stays
	// inflight in its session and is resent on the next connection. The
	// core bounds QoS 1/2 deliveries to the session's inflight window, so a
	// sink should only refuse those when it is closing.
	Deliver(d Delivery) bool
	// Close asks the connection to close (takeover, kick, shutdown). It
	// must not call back into the session synchronously.
	Close(reason error)
}

// Pacer is a Sink that can slow the publishers of its QoS 0 deliveries
// instead of dropping them (session.queue_full_policy: backpressure).
// After a QoS 0 delivery the core asks Room: a non-nil channel means the
// sink's queue is past its bound (the delivery was still accepted, up to
// a hard bound of the sink's own) and is closed once the queue drains;
// the publisher then waits on it like on a congested QoS 1/2 queue
// (Session.MustWait, Session.WaitForRoom). It is called with the
// subscriber's session locked, so it must not block either.
type Pacer interface {
	Room() <-chan struct{}
}
