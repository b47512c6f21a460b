package core

import (
	"sync"
	"sync/atomic"
)

// Stats are the broker's counters. They live in the core (not in adapters'
// private state) so that $SYS, and later metrics endpoints, read one place.
// Every field is updated atomically and may be read at any time.
type Stats struct {
	ClientsConnected    atomic.Int64  // connections with an attached session now
	ClientsMaximum      atomic.Int64  // high-water mark of ClientsConnected
	ClientsTotal        atomic.Uint64 // connections ever accepted by Connect
	MessagesReceived    atomic.Uint64 // messages published into the core
	MessagesSent        atomic.Uint64 // deliveries handed to sinks
	BytesReceived       atomic.Uint64 // payload+topic bytes of MessagesReceived
	BytesSent           atomic.Uint64 // payload+topic bytes of MessagesSent
	WireBytesReceived   atomic.Uint64 // bytes read from sockets, all protocols
	WireBytesSent       atomic.Uint64 // bytes written to sockets, all protocols
	DroppedQoS0         atomic.Uint64 // QoS 0 deliveries a full sink refused
	DroppedQueueFull    atomic.Uint64 // QoS 1/2 messages dropped by a full session queue
	DroppedOffline      atomic.Uint64 // QoS 0 messages for offline sessions
	DroppedExpired      atomic.Uint64 // messages that expired before delivery
	DroppedNoSubscriber atomic.Uint64 // published messages no subscriber matched
	WillsPublished      atomic.Uint64
	DelayedPending      atomic.Int64 // $delayed messages waiting for their time
	// BackpressureTimeouts counts publishers released by the timeout
	// while a subscriber was still congested.
	BackpressureTimeouts atomic.Uint64
	// MessagesReplayed counts deliveries of recent publications to a
	// subscription whose SUBSCRIBE arrived before them (order.go);
	// ReplaysUnresolved, publications left out because their routing
	// could not be told in time.
	MessagesReplayed  atomic.Uint64
	ReplaysUnresolved atomic.Uint64

	packetsMu sync.Mutex
	packets   []*PacketCounters
}

// PacketCounters counts one protocol's control packets by type.
type PacketCounters struct {
	Protocol string
	Names    []string
	in, out  []atomic.Uint64
}

// In counts one received packet of type index i (an index into Names).
func (p *PacketCounters) In(i int) {
	if i >= 0 && i < len(p.in) {
		p.in[i].Add(1)
	}
}

// Out counts one sent packet of type index i.
func (p *PacketCounters) Out(i int) {
	if i >= 0 && i < len(p.out) {
		p.out[i].Add(1)
	}
}

// Received returns the count of received packets of type index i.
func (p *PacketCounters) Received(i int) uint64 { return p.in[i].Load() }

// Sent returns the count of sent packets of type index i.
func (p *PacketCounters) Sent(i int) uint64 { return p.out[i].Load() }

// Packets registers (or returns the already registered) packet counters of
// a protocol. names are indexed by the adapter's own packet type numbers; an
// empty name leaves that index unreported.
func (s *Stats) Packets(protocol string, names []string) *PacketCounters {
	s.packetsMu.Lock()
	defer s.packetsMu.Unlock()
	for _, p := range s.packets {
		if p.Protocol == protocol {
			return p
		}
	}
	p := &PacketCounters{Protocol: protocol, Names: names,
		in: make([]atomic.Uint64, len(names)), out: make([]atomic.Uint64, len(names))}
	s.packets = append(s.packets, p)
	return p
}

// AllPackets returns every registered protocol's counters.
func (s *Stats) AllPackets() []*PacketCounters {
	s.packetsMu.Lock()
	defer s.packetsMu.Unlock()
	return append([]*PacketCounters(nil), s.packets...)
}

func (s *Stats) connected() {
	n := s.ClientsConnected.Add(1)
	s.ClientsTotal.Add(1)
	for {
		max := s.ClientsMaximum.Load()
		if n <= max || s.ClientsMaximum.CompareAndSwap(max, n) {
			return
		}
	}
}
