// Package rxtime reads the kernel's receive time of each packet
// (SO_TIMESTAMPNS on Linux) from the control messages of recvmsg, for the
// core's arrival order (core.Message.Arrived, core.Session.SubscribeAt).
//
// Use: Enable on the socket once, read with an out-of-band buffer of at
// least OOBSize bytes (net.UDPConn.ReadMsgUDP, x/net's ReadBatch) and Parse
// what the kernel put in it. Elsewhere than on Linux, Enable reports
// errors.ErrUnsupported, OOBSize is 0 and Parse returns 0: arrivals stay
// unknown and the core behaves as without them.
package rxtime
