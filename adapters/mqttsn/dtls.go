package mqttsn

import (
	"errors"
	"net"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/iotgw/iotgw/internal/dtlsnet"
)

// dtlsListenerName is the Listener of MQTT-SN clients over DTLS in
// core.ClientInfo (ACL rules and logs tell them from plain UDP ones).
const dtlsListenerName = "dtls"

// MQTT-SN over DTLS runs the same virtual connections as the UDP socket:
// each DTLS session (one per peer, see internal/dtlsnet) is read by a
// goroutine of its own that hands its plaintext datagrams to datagram,
// as the UDP read loop does, with a peer that writes back through the
// session. Only the layer under the peer differs: the handlers, limits
// and pacing above it are the UDP ones.

// startDTLS binds mqttsn.dtls when it is on.
func (s *Server) startDTLS() error {
	if s.cfg.DTLS == "" || s.cfg.DTLSSecure == nil {
		return nil
	}
	ln, err := dtlsnet.Listen("mqttsn.dtls", s.cfg.DTLS, s.cfg.DTLSSecure, s.log.Named("dtls"), s.serveDTLS)
	if err != nil {
		return err
	}
	s.dtls = ln
	s.log.Info("listening", zap.String("transport", "dtls"), zap.Stringer("addr", ln.Addr()))
	return nil
}

// DTLSAddr returns the DTLS listener's address (nil when off).
func (s *Server) DTLSAddr() net.Addr {
	if s.dtls == nil {
		return nil
	}
	return s.dtls.Addr()
}

// DTLSStats returns the DTLS listener's counters (nil when off).
func (s *Server) DTLSStats() *dtlsnet.Stats {
	if s.dtls == nil {
		return nil
	}
	return s.dtls.Stats()
}

// closeDTLS closes the DTLS listener and its sessions.
func (s *Server) closeDTLS() {
	if s.dtls != nil {
		_ = s.dtls.Close()
	}
}

// stopDTLSReaders unblocks every session's reader (Stop); the sessions
// stay open for the DISCONNECTs.
func (s *Server) stopDTLSReaders() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.sessions {
		_ = c.SetReadDeadline(time.Now())
	}
}

// serveDTLS reads one DTLS session until it fails, is idle too long or
// the adapter stops.
func (s *Server) serveDTLS(c *dtlsnet.Conn) {
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		_ = c.Close()
		return
	}
	// Under s.mu and before stopping is set: Stop's Wait sees this Add.
	s.loops.Add(1)
	s.sessions[c] = struct{}{}
	s.mu.Unlock()
	defer s.loops.Done()
	src := peer{addr: c.Addr, dc: c, key: "dtls:" + c.Addr.String() + "#" + strconv.FormatUint(c.ID, 10)}
	buf := make([]byte, 8192) // pion refuses a read into a smaller buffer than a record
	stats := s.b.Stats()
	for {
		// A session no virtual connection uses is dropped after
		// connect_timeout of silence; one that a client (awake or
		// asleep) uses lasts as long as that client.
		_ = c.SetReadDeadline(time.Now().Add(s.cfg.ConnectTimeout))
		n, err := c.Read(buf)
		if err != nil {
			select {
			case <-s.stop:
				s.dropSession(c, false) // Stop closes it after the DISCONNECTs
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && s.inUse(src.key) {
				continue
			}
			s.dropSession(c, true)
			return
		}
		stats.WireBytesReceived.Add(uint64(n))
		s.dispatchMu.Lock()
		s.datagram(append([]byte(nil), buf[:n]...), src, time.Now().UnixNano())
		s.dispatchMu.Unlock()
	}
}

// inUse reports whether a virtual connection is bound to the session
// key (forwarded nodes behind it included).
func (s *Server) inUse(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byAddr[key] != nil {
		return true
	}
	for k := range s.byAddr {
		if len(k) > len(key) && k[:len(key)] == key && k[len(key)] == '/' {
			return true
		}
	}
	return false
}

func (s *Server) dropSession(c *dtlsnet.Conn, closeIt bool) {
	s.mu.Lock()
	delete(s.sessions, c)
	s.mu.Unlock()
	if closeIt {
		_ = c.Close()
	}
}
