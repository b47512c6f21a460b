package stomp

import (
	"github.com/go-stomp/stomp/v3/frame"
	"go.uber.org/zap"

	"github.com/iotgw/iotgw/core"
	"github.com/iotgw/iotgw/internal/streamconn"
)

// RECEIPTs with a store: pipelined like MQTT's acknowledgements. A SEND's
// RECEIPT confirms that the message is routed and, with a store, durable
// (the crash tests hold us to it); waiting for the disk frame by frame
// would cost every connection one sync per SEND. So every SEND takes a
// slot in the connection's ordered pipe (streamconn.Pipe) and the reader
// goes on; the store's commit goroutine completes slots as their groups
// are synced, and RECEIPTs leave in frame order, each after what it
// confirms. Other frames' RECEIPTs (SUBSCRIBE, ACK, ...) take a slot that
// is complete at once, so they still follow the SENDs before them
// [STOMP 1.2 "Header receipt": a RECEIPT acknowledges all frames before it].
// Without a store, Publish routes synchronously and RECEIPTs are replies.

// receiptPipe returns the connection's pipe, made on first use.
func (c *conn) receiptPipe() *streamconn.Pipe[outItem] {
	if c.acks == nil {
		c.acks = streamconn.NewPipe(&c.eng, c.emitReceipt)
	}
	return c.acks
}

// publish routes a SEND's message and arranges its RECEIPT (if asked
// for); it returns the core's refusal, for which the frame gets an ERROR
// (with the receipt-id) instead.
func (c *conn) publish(f *frame.Frame, msg *core.Message) error {
	if !c.srv.b.Durable() {
		return c.sess.Publish(msg) // handle sends the RECEIPT as a reply
	}
	var it outItem
	r, asked := f.Header.Contains(frame.Receipt)
	if asked {
		it.f = frame.New(frame.RECEIPT, frame.ReceiptId, r)
	}
	slot := c.receiptPipe().Reserve(it)
	if err := c.sess.PublishAsync(msg, slot.Done); err != nil {
		slot.Item = outItem{} // refused before routing: no RECEIPT, the ERROR names it
		slot.Done(nil)
		slot.Release()
		return err
	}
	if asked {
		f.Header.Del(frame.Receipt) // handled here: handle must not send another
	}
	slot.Release()
	return nil
}

// receipt answers a frame's receipt header [STOMP 1.2 "Header receipt"].
func (c *conn) receipt(f *frame.Frame) {
	r, ok := f.Header.Contains(frame.Receipt)
	if !ok {
		return
	}
	it := outItem{f: frame.New(frame.RECEIPT, frame.ReceiptId, r)}
	if c.acks == nil {
		c.eng.Reply(it)
		return
	}
	slot := c.acks.Reserve(it)
	slot.Done(nil)
	slot.Release()
}

// emitReceipt sends one RECEIPT once what it confirms is durable; a store
// failure closes the connection with an ERROR frame, and nothing after it
// is confirmed.
func (c *conn) emitReceipt(it *outItem, err error, byReader bool) bool {
	if err != nil {
		c.logAt(zap.WarnLevel, "closing: store write failed", zap.Error(err))
		c.Close(err) // err wraps core.ErrStore: "server unavailable"
		return false
	}
	if it.f != nil {
		c.eng.Emit(*it, byReader)
	}
	return true
}

// awaitReceipts blocks until every RECEIPT in the pipe has been sent
// (DISCONNECT: its RECEIPT comes after all the frames before it, and the
// connection closes only then).
func (c *conn) awaitReceipts() {
	if c.acks != nil {
		c.acks.Wait()
	}
}
