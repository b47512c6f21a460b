package mqtt

import (
	"errors"
	"fmt"

	"go.uber.org/zap"

	"github.com/iotgw/iotgw/adapters/mqtt/codec"
	"github.com/iotgw/iotgw/internal/streamconn"
)

// MQTT's acknowledgements (PUBACK, PUBREC, PUBREL, PUBCOMP) go through
// the engine's ordered pipe (streamconn.Pipe): in the order their packets
// arrived [MQTT-4.6.0-2], [MQTT-4.6.0-3], [MQTT-4.6.0-4], each only once
// what it confirms is durable, while the reader goes on reading.

// pipe returns the connection's ack pipe, made on first use so that a
// connection that never publishes at QoS > 0 does not pay for it.
func (c *conn) pipe() *streamconn.Pipe[outItem] {
	if c.acks == nil {
		c.acks = streamconn.NewPipe(&c.eng, c.emitAck)
	}
	return c.acks
}

// reserve queues a slot for an acknowledgement of kind for packet id,
// waiting while the pipe is full. Reader only. The caller must see the
// slot's Done called exactly once (or hand it to the core, which calls
// it) and then call release.
func (c *conn) reserve(kind codec.PacketType, id uint16) *streamconn.Slot[outItem] {
	return c.pipe().Reserve(outItem{ack: ackItem{kind: kind, id: id}})
}

// release is the reader's part of a slot: rc is the reason code to send
// (MQTT 5 only; 3.1.1 acknowledgements carry none).
func release(s *streamconn.Slot[outItem], rc codec.ReasonCode) {
	s.Item.ack.rc = rc
	s.Release()
}

// emitAck sends one acknowledgement, or closes the connection when its
// store write failed and the protocol has no way to say so.
func (c *conn) emitAck(it *outItem, err error, byReader bool) bool {
	if err != nil {
		// The message (or release) is not durable, so it must not be
		// acknowledged as if it were. MQTT 5 can refuse a publication in
		// its PUBACK/PUBREC; otherwise the connection ends unacknowledged
		// and the client resends on its next connection.
		kind := it.ack.kind
		if c.version == codec.V5 && (kind == codec.TypePuback || kind == codec.TypePubrec) {
			it.ack.rc = codec.UnspecifiedError
		} else {
			c.logAt(zap.WarnLevel, "closing: store write failed", zap.Error(err))
			c.Close(fmt.Errorf("%w: %v", errStoreFailed, err))
			return false
		}
	}
	c.eng.Emit(*it, byReader)
	return true
}

var errStoreFailed = errors.New("store write failed")

// ignoreOutcome is the done callback of a QoS 0 publication: nothing is
// acknowledged, so there is nothing to wait for.
func ignoreOutcome(error) {}
