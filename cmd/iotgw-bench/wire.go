package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Protocols accepted by -proto, -pub-proto and -sub-proto.
const (
	protoMQTT    = "mqtt"     // MQTT 3.1.1 over TCP
	protoMQTT5   = "mqtt5"    // MQTT 5 over TCP, no properties
	protoMQTTWS  = "mqtt-ws"  // MQTT 3.1.1 over WebSocket (subprotocol "mqtt")
	protoMQTT5WS = "mqtt5-ws" // MQTT 5 over WebSocket
	protoMQTTSN  = "mqttsn"   // MQTT-SN 1.2 over UDP
	protoCoAP    = "coap"     // CoAP over UDP, EMQX-style /ps/{topic}
	protoSTOMP   = "stomp"    // STOMP 1.2 over TCP
	protoSTOMPWS = "stomp-ws" // STOMP 1.2 over WebSocket (subprotocol "v12.stomp")
)

var protocols = []string{protoMQTT, protoMQTT5, protoMQTTWS, protoMQTT5WS, protoMQTTSN, protoCoAP, protoSTOMP, protoSTOMPWS}

func knownProto(p string) bool {
	for _, q := range protocols {
		if p == q {
			return true
		}
	}
	return false
}

// isUDP reports protocols whose messages can be lost in transit, so that
// publishers retransmit unacknowledged QoS 1/2 messages themselves.
func isUDP(p string) bool { return p == protoMQTTSN || p == protoCoAP }

// wire is one client connection of any protocol, as the scenarios drive it.
//
// subscribe and preparePublish run before the connection's reader goroutine
// starts and may read the connection themselves. After that, reading belongs
// to readLoop, while the publisher goroutine and the reader (acks) both
// write: writes happen between lock and unlock.
type wire interface {
	// subscribe subscribes to filter and waits for the broker's answer
	// (SUBACK, RECEIPT, the 2.05 of an observe); it returns the granted QoS
	// where the protocol has one, else the requested one.
	subscribe(filter string, qos byte) (byte, error)
	// preparePublish readies the connection to publish p's messages on
	// topic (MQTT-SN: REGISTER; everyone: precomputed headers).
	preparePublish(p *publisher, topic string) error
	lock()
	unlock()
	// writePublishLocked sends or buffers message seq, payload body
	// (already stamped at sentAt).
	writePublishLocked(seq, sentAt int64, body []byte) error
	// flushLocked writes what writePublishLocked buffered.
	flushLocked() error
	// readLoop receives until the connection fails or is closed, acking
	// deliveries and accounting them to r.sub, and acks to r.pub.
	readLoop(r *reader) error
	// ping keeps an idle connection alive if nothing was sent for idle.
	ping(idle time.Duration) error
	// disconnect ends the connection politely, best effort, and closes it.
	disconnect()
}

// bufSizes picks per-connection buffer sizes. Publishers need big write
// buffers, subscribers big read buffers, and idle connections almost nothing
// (15,000 of them must not cost the load generator gigabytes).
type bufSizes struct{ read, write int }

// dialOpts is what every protocol's dialer needs.
type dialOpts struct {
	proto     string
	addr      string // host:port, or a ws:// URL for WebSocket protocols
	wsPath    string // path for WebSocket protocols when addr is host:port; "" = protocol default
	clientID  string
	keepAlive time.Duration
	deadline  time.Time     // hard bound for the connection's whole life
	sz        bufSizes      // buffer sizes by role
	retry     time.Duration // UDP: retransmission timeout
	// forget connects with a clean session even under -persistent: the
	// teardown's way of removing the sessions a run created.
	forget bool
}

// dialWire connects one client and completes the protocol's handshake.
func dialWire(o dialOpts) (wire, error) {
	switch o.proto {
	case protoMQTT, protoMQTT5:
		nc, err := dialTCP(o)
		if err != nil {
			return nil, err
		}
		return newMQTT(nc, o, o.proto == protoMQTT5)
	case protoMQTTWS, protoMQTT5WS:
		nc, err := dialWS(o, "mqtt", "/mqtt")
		if err != nil {
			return nil, err
		}
		return newMQTT(nc, o, o.proto == protoMQTT5WS)
	case protoSTOMP:
		nc, err := dialTCP(o)
		if err != nil {
			return nil, err
		}
		return newSTOMP(nc, o)
	case protoSTOMPWS:
		nc, err := dialWS(o, "v12.stomp", "/stomp")
		if err != nil {
			return nil, err
		}
		return newSTOMP(nc, o)
	case protoMQTTSN:
		return dialMQTTSN(o)
	case protoCoAP:
		return dialCoAP(o)
	}
	return nil, fmt.Errorf("unknown protocol %q", o.proto)
}

func dialTCP(o dialOpts) (net.Conn, error) {
	d := net.Dialer{Deadline: o.deadline}
	nc, err := d.Dial("tcp", o.addr)
	if err != nil {
		return nil, err
	}
	// The handshake and the whole run share one hard deadline so that a
	// stuck broker can never hang the benchmark.
	if err := nc.SetDeadline(o.deadline); err != nil {
		nc.Close()
		return nil, err
	}
	if benchTLS != nil {
		return handshakeTLS(nc, o.addr)
	}
	return nc, nil
}

// wsURL is addr as a WebSocket URL: a ws:// or wss:// addr is kept, a
// host:port gets the path from -ws-path or the protocol's default (and
// wss:// under -tls).
func wsURL(addr, path, def string) string {
	if strings.HasPrefix(addr, "ws://") || strings.HasPrefix(addr, "wss://") {
		return addr
	}
	if path == "" {
		path = def
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	if benchTLS != nil {
		return "wss://" + addr + path
	}
	return "ws://" + addr + path
}

// stream is the shared part of the TCP and WebSocket clients: a buffered
// reader owned by the reader goroutine and a buffered writer under mu.
type stream struct {
	nc net.Conn
	br *bufio.Reader

	mu        sync.Mutex
	bw        *bufio.Writer
	lastWrite atomic.Int64 // benchNow() of the last flush, for keep-alive pings
}

func newStream(nc net.Conn, sz bufSizes) stream {
	return stream{nc: nc, br: bufio.NewReaderSize(nc, sz.read), bw: bufio.NewWriterSize(nc, sz.write)}
}

func (s *stream) lock()   { s.mu.Lock() }
func (s *stream) unlock() { s.mu.Unlock() }

func (s *stream) flushLocked() error {
	s.lastWrite.Store(benchNow())
	return s.bw.Flush()
}

// writeFlush writes b and flushes under the write lock.
func (s *stream) writeFlush(b []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.bw.Write(b); err != nil {
		return err
	}
	return s.flushLocked()
}

// closeWith sends last best-effort and closes the connection.
func (s *stream) closeWith(last []byte) {
	s.mu.Lock()
	// A short deadline: a broker that stopped reading must not delay teardown.
	_ = s.nc.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
	_, _ = s.bw.Write(last)
	_ = s.bw.Flush()
	s.mu.Unlock()
	_ = s.nc.Close()
}

// errRefused marks a broker's explicit refusal (as opposed to a broken
// connection), for messages that name the protocol step.
var errRefused = errors.New("refused")

// udpConn is the shared part of the UDP clients: one connected socket per
// client, so the gateway tells clients apart by source port.
type udpConn struct {
	uc    *net.UDPConn
	ioDL  time.Time
	retry time.Duration
	rbuf  []byte // read buffer, owned by whoever reads (setup, then the reader)

	mu        sync.Mutex
	wbuf      []byte // write scratch, under mu
	lastWrite atomic.Int64
}

// dial opens the client's socket.
func (u *udpConn) dial(o dialOpts) error {
	ra, err := net.ResolveUDPAddr("udp", o.addr)
	if err != nil {
		return err
	}
	uc, err := net.DialUDP("udp", nil, ra)
	if err != nil {
		return err
	}
	// One datagram per read: the buffer must hold the largest message.
	// Idle clients (small buffer sizes) only ever see small ones.
	rbuf := 2048
	if o.sz.read >= 4<<10 {
		rbuf = 64 << 10
		// Bursts of notifications must not overflow our side; the kernel
		// caps this at net.core.rmem_max.
		_ = uc.SetReadBuffer(1 << 20)
	}
	u.uc, u.ioDL, u.retry, u.rbuf = uc, o.deadline, o.retry, make([]byte, rbuf)
	return nil
}

func (u *udpConn) lock()              { u.mu.Lock() }
func (u *udpConn) unlock()            { u.mu.Unlock() }
func (u *udpConn) flushLocked() error { return nil }

// writeLocked sends one datagram; the caller holds mu.
func (u *udpConn) writeLocked(b []byte) error {
	u.lastWrite.Store(benchNow())
	_, err := u.uc.Write(b)
	return err
}

func (u *udpConn) write(b []byte) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.writeLocked(b)
}

// exchange sends req and reads datagrams until match accepts one, resending
// req every resend (UDP may lose either) until the setup deadline. It runs
// only before the reader goroutine starts.
func (u *udpConn) exchange(ctx context.Context, req []byte, resend time.Duration, match func(b []byte) (bool, error)) error {
	dl, _ := ctx.Deadline()
	for {
		if err := u.write(req); err != nil {
			return err
		}
		until := time.Now().Add(resend)
		if until.After(dl) {
			until = dl
		}
		if err := u.uc.SetReadDeadline(until); err != nil {
			return err
		}
		for {
			n, err := u.uc.Read(u.rbuf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break
				}
				return err
			}
			done, err := match(u.rbuf[:n])
			if err != nil {
				return err
			}
			if done {
				return u.uc.SetReadDeadline(u.ioDL)
			}
		}
		if ctx.Err() != nil || !time.Now().Before(dl) {
			return context.DeadlineExceeded
		}
	}
}

// setupCtx bounds a UDP handshake: the connection's deadline, or less.
func (u *udpConn) setupCtx(limit time.Duration) (context.Context, context.CancelFunc) {
	dl := time.Now().Add(limit)
	if u.ioDL.Before(dl) {
		dl = u.ioDL
	}
	return context.WithDeadline(context.Background(), dl)
}

// readTick reads one datagram. Publishers pass a tick: the read then also
// returns (n = 0, nil) every tick so the caller can retransmit; the hard
// deadline still ends the loop.
func (u *udpConn) readTick(tick time.Duration, next *time.Time) (int, error) {
	if tick > 0 && next.IsZero() {
		*next = time.Now().Add(tick)
		d := *next
		if u.ioDL.Before(d) {
			d = u.ioDL
		}
		if err := u.uc.SetReadDeadline(d); err != nil {
			return 0, err
		}
	}
	n, err := u.uc.Read(u.rbuf)
	if err == nil {
		return n, nil
	}
	var ne net.Error
	if tick > 0 && errors.As(err, &ne) && ne.Timeout() && time.Now().Before(u.ioDL) {
		*next = time.Time{}
		return 0, nil
	}
	return 0, err
}

// inflight tracks a UDP publisher's unacknowledged QoS 1/2 messages by
// sequence number, so acks can be matched and lost messages retransmitted.
// The publisher's window bounds the span from the oldest unacknowledged
// message to the newest sent one (acks advance a cumulative low-water mark),
// so a ring of the next power of two above the window never collides.
type inflight struct {
	slots []flightSlot
	mask  int64
	low   int64 // every sequence below is acknowledged
	high  int64 // next sequence to be sent
}

type flightSlot struct {
	seq    int64
	sentAt int64 // the payload's timestamp, kept on retransmission
	lastTx int64
	state  uint8 // flightFree, flightAck (awaiting PUBACK/PUBREC/ACK), flightComp (PUBCOMP)
}

const (
	flightFree uint8 = iota
	flightAck
	flightComp
)

func newInflight(window int) *inflight {
	n := 1
	for n < window {
		n <<= 1
	}
	return &inflight{slots: make([]flightSlot, n), mask: int64(n - 1)}
}

func (f *inflight) add(seq, sentAt int64) {
	s := &f.slots[seq&f.mask]
	*s = flightSlot{seq: seq, sentAt: sentAt, lastTx: sentAt, state: flightAck}
	f.high = seq + 1
}

// get returns the slot of seq while it is in flight.
func (f *inflight) get(seq int64) *flightSlot {
	if seq < f.low || seq >= f.high {
		return nil
	}
	s := &f.slots[seq&f.mask]
	if s.seq != seq || s.state == flightFree {
		return nil
	}
	return s
}

// done frees seq and returns the new low-water mark.
func (f *inflight) done(s *flightSlot) int64 {
	s.state = flightFree
	for f.low < f.high && f.slots[f.low&f.mask].state == flightFree {
		f.low++
	}
	return f.low
}

// due calls fn for every message sent or last retransmitted before cutoff.
func (f *inflight) due(cutoff int64, fn func(s *flightSlot) error) error {
	for seq := f.low; seq < f.high; seq++ {
		s := &f.slots[seq&f.mask]
		if s.state != flightFree && s.seq == seq && s.lastTx < cutoff {
			if err := fn(s); err != nil {
				return err
			}
		}
	}
	return nil
}
