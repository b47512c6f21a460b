package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	neturl "net/url"
	"time"

	"github.com/gorilla/websocket"
)

// wsConn presents a client WebSocket as a byte stream, so the MQTT and
// STOMP clients run unchanged over it. Reading crosses message boundaries
// (MQTT over WebSocket allows packets split or batched across messages, and
// iotgw's STOMP listener reads the same way); each Write, one flush of the
// client's bufio.Writer, is one binary message, so a burst of packets
// shares a message just as it shares a TCP write.
type wsConn struct {
	ws *websocket.Conn
	r  io.Reader
}

// dialWS opens a WebSocket with the given subprotocol; the broker must
// agree to it.
func dialWS(o dialOpts, subprotocol, defPath string) (net.Conn, error) {
	d := websocket.Dialer{
		Subprotocols:     []string{subprotocol},
		HandshakeTimeout: time.Until(o.deadline),
		ReadBufferSize:   o.sz.read,
		WriteBufferSize:  o.sz.write,
	}
	ctx, cancel := context.WithDeadline(context.Background(), o.deadline)
	defer cancel()
	url := wsURL(o.addr, o.wsPath, defPath)
	if u, err := neturl.Parse(url); err == nil && u.Scheme == "wss" && benchTLS != nil {
		d.TLSClientConfig = tlsFor(u.Host)
	}
	ws, resp, err := d.DialContext(ctx, url, nil)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("websocket %s: %w (HTTP %s)", url, err, resp.Status)
		}
		return nil, fmt.Errorf("websocket %s: %w", url, err)
	}
	if ws.Subprotocol() != subprotocol {
		ws.Close()
		return nil, fmt.Errorf("websocket %s: server chose subprotocol %q, want %q", url, ws.Subprotocol(), subprotocol)
	}
	c := &wsConn{ws: ws}
	if err := c.SetDeadline(o.deadline); err != nil {
		ws.Close()
		return nil, err
	}
	return c, nil
}

func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			_, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

func (c *wsConn) Write(p []byte) (int, error) {
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *wsConn) Close() error                       { return c.ws.Close() }
func (c *wsConn) LocalAddr() net.Addr                { return c.ws.LocalAddr() }
func (c *wsConn) RemoteAddr() net.Addr               { return c.ws.RemoteAddr() }
func (c *wsConn) SetReadDeadline(t time.Time) error  { return c.ws.SetReadDeadline(t) }
func (c *wsConn) SetWriteDeadline(t time.Time) error { return c.ws.SetWriteDeadline(t) }
func (c *wsConn) SetDeadline(t time.Time) error {
	if err := c.ws.SetReadDeadline(t); err != nil {
		return err
	}
	return c.ws.SetWriteDeadline(t)
}
