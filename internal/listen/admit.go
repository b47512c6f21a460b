package listen

import (
	"net"

	"go.uber.org/zap"

	"github.com/iotgw/iotgw/core"
)

// Admitter is Config.Admit for an adapter of protocol: the broker's
// ban list and connection rates (core.Broker.AdmitConnection), the
// refusal logged at debug. Closing at accept, rather than reading CONNECT
// to answer MQTT 5's 0x9F, keeps a connection flood from costing a
// handshake, a goroutine and a read per connection.
func Admitter(b *core.Broker, protocol string, log *zap.Logger) func(string, net.Conn) bool {
	return func(listener string, nc net.Conn) bool {
		err := b.AdmitConnection(protocol, listener, nc.RemoteAddr())
		if err == nil {
			return true
		}
		if ce := log.Check(zap.DebugLevel, "connection refused at accept"); ce != nil {
			ce.Write(zap.String("listener", listener), zap.Stringer("remote", nc.RemoteAddr()), zap.Error(err))
		}
		return false
	}
}
