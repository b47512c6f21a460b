package testutil

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
)

// DialDTLS opens a pion/dtls client session to addr over pc (a plain
// socket, or a RebindConn), sending RFC 9146 connection IDs when the
// server offers them, with opts for the credentials; wait bounds the
// handshake. A failed handshake closes the session (and pc).
func DialDTLS(t testing.TB, pc net.PacketConn, addr string, wait time.Duration, opts ...dtls.ClientOption) (*dtls.Conn, error) {
	t.Helper()
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	opts = append([]dtls.ClientOption{dtls.WithConnectionIDGenerator(dtls.OnlySendCIDGenerator())}, opts...)
	c, err := dtls.ClientWithOptions(pc, ua, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := c.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// PSKOptions are a client's options for a pre-shared key: its identity,
// the key and the PSK suite every DTLS listener offers.
func PSKOptions(identity, key string) []dtls.ClientOption {
	return []dtls.ClientOption{
		dtls.WithPSK(func([]byte) ([]byte, error) { return []byte(key), nil }),
		dtls.WithPSKIdentityHint([]byte(identity)),
		dtls.WithCipherSuites(dtls.TLS_PSK_WITH_AES_128_CCM_8),
	}
}
