package stomp_test

// An ERROR frame that arrives (issue 14 item 3): the gateway's last frame
// to a client must reach a client that keeps writing while the gateway
// closes. Closing a socket with unread input makes the kernel reset the
// connection, which can destroy the ERROR frame in the client's receive
// buffer or fail the client's next write before it has read it; the
// engine therefore closes gracefully (internal/streamconn): the ERROR
// frame, the end of its sending side, then it discards input until the
// client closes. The MQTT side of this is adapters/mqtt's
// close_blackbox_test.go.

import (
	"bufio"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/iotgw/iotgw/internal/testutil"
)

// closeYAML: small frames, and logins checked against a user list.
const closeYAML = "stomp:\n  max_frame_size: 4096\n" +
	"auth:\n  allow_anonymous: false\n  users: [{username: alice, password: secret}]\n"

// Units the client keeps writing: SEND frames once connected (valid ones,
// to a topic nobody reads), heart-beat EOLs before.
const (
	closeSend = "SEND\ndestination:close/ok\n\nx\x00"
	closeEOL  = "\n"
)

// closeFrame is one way to get an ERROR frame.
type closeFrame struct {
	name string
	// connect, before provoke: the client logs in (as alice, with
	// client-id id).
	connect bool
	// frames provoke the ERROR (nil for the cases of provoke).
	frames  string
	provoke func(t *testing.T, g *testutil.Gateway, id string)
	fresh   bool // a gateway of its own for each repetition
	message string
}

// closeFrames are the ways to get an ERROR frame: the frame reader's
// refusals, the handlers', the core's (login, takeover) and the adapter's
// Stop.
var closeFrames = []closeFrame{
	{name: "malformed_frame", connect: true, frames: "SEND\ndestination:a\ncontent-length:1\n\nxy\x00", message: "malformed frame"},
	{name: "unknown_command", connect: true, frames: "FLY\n\n\x00", message: "unknown command"},
	{name: "frame_too_large", connect: true, frames: "SEND\ndestination:a\n\n" + strings.Repeat("x", 5000) + "\x00", message: "frame too large"},
	{name: "invalid_destination", connect: true, frames: "SEND\ndestination:close/+\n\nx\x00", message: "invalid destination"},
	{name: "bad_login", frames: "CONNECT\naccept-version:1.2\nhost:x\nlogin:alice\npasscode:wrong\n\n\x00", message: "login failed"},
	{name: "anonymous", frames: "CONNECT\naccept-version:1.2\nhost:x\n\n\x00", message: "not authorized"},
	{name: "frame_before_connect", frames: "SEND\ndestination:a\n\nx\x00", message: "not connected"},
	{name: "unsupported_version", frames: "CONNECT\naccept-version:2.0\nhost:x\n\n\x00", message: "unsupported protocol version"},
	{name: "session_taken_over", connect: true,
		provoke: func(t *testing.T, g *testutil.Gateway, id string) {
			dialRaw(t, g.STOMPAddr()).connect("login:alice", "passcode:secret", "client-id:"+id)
		},
		message: "session taken over"},
	{name: "server_shutting_down", connect: true, fresh: true,
		provoke: func(t *testing.T, g *testutil.Gateway, _ string) {
			stopped := make(chan error, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
				defer cancel()
				stopped <- g.STOMP.Stop(ctx)
			}()
			t.Cleanup(func() {
				if err := <-stopped; err != nil {
					t.Errorf("STOMP adapter stop: %v", err)
				}
			})
		},
		message: "server shutting down"},
}

// TestErrorArrivesWhileClientWrites: for each ERROR the gateway sends,
// over TCP and WebSocket, a client that keeps writing reads the ERROR
// with its message header, then the graceful end of the connection.
func TestErrorArrivesWhileClientWrites(t *testing.T) {
	t.Parallel()
	transports := []struct {
		name string
		dial func(t *testing.T, g *testutil.Gateway) *rawStomp
	}{
		{"tcp", func(t *testing.T, g *testutil.Gateway) *rawStomp { return dialRaw(t, g.STOMPAddr()) }},
		{"ws", func(t *testing.T, g *testutil.Gateway) *rawStomp {
			nc := testutil.DialWS(t, g.STOMPWSURL(), "v12.stomp", true)
			return &rawStomp{t: t, nc: nc, r: frame.NewReader(bufio.NewReader(nc))}
		}},
	}
	for _, cf := range closeFrames {
		for _, tp := range transports {
			t.Run(cf.name+"/"+tp.name, func(t *testing.T) {
				t.Parallel()
				cf.run(t, closeYAML, tp.dial)
			})
		}
	}
}

// run provokes cf's ERROR five times on gateways configured by yaml,
// over connections made by dial.
func (cf closeFrame) run(t *testing.T, yaml string, dial func(t *testing.T, g *testutil.Gateway) *rawStomp) {
	var g *testutil.Gateway
	for rep := 1; rep <= 5; rep++ {
		what := fmt.Sprintf("%s #%d", cf.name, rep)
		if g == nil || cf.fresh {
			g = testutil.Start(t, yaml)
		}
		r := dial(t, g)
		unit, id := closeEOL, uniqueID("close")
		if cf.connect {
			r.connect("login:alice", "passcode:secret", "client-id:"+id)
			unit = closeSend
		}
		w := testutil.KeepWriting(r.nc, []byte(unit))
		if cf.frames != "" {
			r.write(cf.frames)
		}
		if cf.provoke != nil {
			cf.provoke(t, g, id)
		}
		f, err := nextFrame(r)
		if err != nil {
			w.Stop(t, what)
			t.Fatalf("%s: waiting for ERROR: %v", what, err)
		}
		if f.Command != frame.ERROR || !strings.Contains(f.Header.Get(frame.Message), cf.message) {
			t.Errorf("%s: got %s %v, want ERROR with message %q", what, f.Command, f.Header, cf.message)
		}
		// The gateway reads on after the ERROR frame ...
		w.More(t, 3, what)
		w.Stop(t, what)
		// ... and ends the connection gracefully.
		if f, err := nextFrame(r); !testutil.GracefulEnd(err) {
			t.Errorf("%s: after ERROR: %v %v, want the end of the stream (TCP FIN, WebSocket close 1000)", what, f, err)
		}
		r.nc.Close()
	}
}

// nextFrame reads the next frame, skipping heart-beats.
func nextFrame(r *rawStomp) (*frame.Frame, error) {
	for {
		f, err := r.read()
		if f != nil || err != nil {
			return f, err
		}
	}
}
