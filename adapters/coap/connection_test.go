package coap_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/iotgw/iotgw/adapters/coap"
	"github.com/iotgw/iotgw/core"
	"github.com/iotgw/iotgw/internal/testutil"
)

// passwords accepts password "secret" (or none at all, for clients that
// send no credentials).
type passwords struct{}

func (passwords) Authenticate(_ context.Context, c *core.ClientInfo) error {
	if c.Username == "" || string(c.Password) == "secret" {
		return nil
	}
	return core.ErrBadCredentials
}

func connect(t testing.TB, g *gateway, clientID string) string {
	t.Helper()
	cc := g.coapClient(t)
	r := post(t, cc, "/mqtt/connection", message.TextPlain, "", "clientid="+clientID, "username=u", "password=secret")
	if r.Code != codes.Created || len(r.Payload) == 0 {
		t.Fatalf("connect %s: %v %q", clientID, r.Code, r.Payload)
	}
	return r.Payload
}

// TestConnectionMode: POST /mqtt/connection returns a token; requests
// carry clientid and token; PUT is the heartbeat and DELETE closes; a new
// connection for the same client id takes over and ends the old
// observations with a final 5.03 notification.
func TestConnectionMode(t *testing.T) {
	acl := &core.ACL{DefaultAllow: true, Rules: []core.ACLRule{{Allow: false, Action: "all", Topic: "secret/#"}}}
	g := startGateway(t, nil, core.WithAuthenticator(passwords{}), core.WithAuthorizer(acl))
	sub := g.mqttClient(t)
	sub.subscribe("cm/#", 1)
	cc := g.coapClient(t)
	if r := post(t, cc, "/mqtt/connection", message.TextPlain, "", "clientid=cm1", "username=u", "password=wrong"); r.Code != codes.Unauthorized {
		t.Fatalf("bad password: %v", r.Code)
	}
	if r := post(t, cc, "/mqtt/connection", message.TextPlain, "", "username=u"); r.Code != codes.BadRequest {
		t.Fatalf("no clientid: %v", r.Code)
	}
	tok := connect(t, g, "cm1")
	base := g.b.SessionCount()
	if r := post(t, cc, "/ps/cm/a", message.TextPlain, "hello", "c=cm1", "t="+tok); r.Code != codes.Changed {
		t.Fatalf("publish in connection mode: %v %q", r.Code, r.Payload)
	}
	if m := sub.next(); m.Topic != "cm/a" || m.Payload != "hello" {
		t.Fatalf("got %+v", m)
	}
	if r := post(t, cc, "/ps/cm/a", message.TextPlain, "x", "clientid=cm1", "token=nope"); r.Code != codes.Unauthorized {
		t.Fatalf("wrong token: %v", r.Code)
	}
	if r := post(t, cc, "/ps/secret/a", message.TextPlain, "x", "clientid=cm1", "token="+tok); r.Code != codes.Forbidden {
		t.Fatalf("ACL denied publish: %v", r.Code)
	}
	put := func(qs ...string) codes.Code {
		req, err := cc.NewPutRequest(ctxTimeout(t), "/mqtt/connection", message.TextPlain, bytes.NewReader(nil), queries(qs...)...)
		return do(t, cc, req, err).Code
	}
	if c := put("clientid=cm1", "token="+tok); c != codes.Changed {
		t.Fatalf("heartbeat: %v", c)
	}
	if c := put("clientid=cm1"); c != codes.BadRequest {
		t.Fatalf("heartbeat without token: %v", c)
	}

	// An observation of the connection, then a takeover.
	o := newObserver(t)
	if _, err := cc.Observe(ctxTimeout(t), "/ps/cm/#", o.fn, queries("clientid=cm1", "token="+tok)...); err != nil {
		t.Fatalf("observe: %v", err)
	}
	o.next()
	if g.b.SessionCount() != base {
		t.Fatalf("observe in connection mode made a session: %d, want %d", g.b.SessionCount(), base)
	}
	if _, err := cc.Observe(ctxTimeout(t), "/ps/secret/#", newObserver(t).fn, queries("clientid=cm1", "token="+tok)...); err == nil {
		t.Fatal("observe of a denied filter succeeded")
	}
	sub.publish("cm/b", 1, false, "to-cm1")
	if r := o.next(); r.Payload != "to-cm1" || r.Loc != "ps/cm/b" {
		t.Fatalf("notification: %+v", r)
	}
	tok2 := connect(t, g, "cm1")
	if r := o.next(); r.Code != codes.ServiceUnavailable {
		t.Fatalf("after takeover: %+v", r)
	}
	if c := put("clientid=cm1", "token="+tok); c != codes.Unauthorized {
		t.Fatalf("old token after takeover: %v", c)
	}
	req, err := cc.NewDeleteRequest(ctxTimeout(t), "/mqtt/connection", queries("clientid=cm1", "token="+tok2)...)
	if r := do(t, cc, req, err); r.Code != codes.Deleted {
		t.Fatalf("close: %v", r.Code)
	}
	testutil.Eventually(t, waitTimeout, func() bool { return g.b.SessionCount() == base-1 }, "connection closed")
	if c := put("clientid=cm1", "token="+tok2); c != codes.Unauthorized {
		t.Fatalf("heartbeat after close: %v", c)
	}
}

// TestConnectionRequired: with coap.connection_required, requests without
// a connection get 4.01; a connection's session ends when its heartbeat
// stops.
func TestConnectionRequired(t *testing.T) {
	g := startGateway(t, func(c *coap.Config) {
		c.ConnectionRequired = true
		c.Heartbeat = 100 * time.Millisecond
	})
	cc := g.coapClient(t)
	if r := post(t, cc, "/ps/req/a", message.TextPlain, "x"); r.Code != codes.Unauthorized || !strings.Contains(r.Payload, "token") {
		t.Fatalf("connectionless publish: %v %q", r.Code, r.Payload)
	}
	if r := get(t, cc, "/ps/req/a"); r.Code != codes.Unauthorized {
		t.Fatalf("connectionless read: %v", r.Code)
	}
	base := g.b.SessionCount()
	tok := connect(t, g, "hb1")
	if r := post(t, cc, "/ps/req/a", message.TextPlain, "x", "clientid=hb1", "token="+tok, "retain=true"); r.Code != codes.Changed {
		t.Fatalf("publish with connection: %v", r.Code)
	}
	if r := get(t, cc, "/ps/req/a", "clientid=hb1", "token="+tok); r.Code != codes.Content || r.Payload != "x" {
		t.Fatalf("read with connection: %+v", r)
	}
	testutil.Eventually(t, waitTimeout, func() bool { return g.b.SessionCount() == base }, "heartbeat expiry")
	if r := post(t, cc, "/ps/req/a", message.TextPlain, "x", "clientid=hb1", "token="+tok); r.Code != codes.Unauthorized {
		t.Fatalf("publish after expiry: %v", r.Code)
	}
}

// TestConnectionlessAuth: connectionless requests are authenticated from
// their query and authorized per topic.
func TestConnectionlessAuth(t *testing.T) {
	acl := &core.ACL{DefaultAllow: true, Rules: []core.ACLRule{{Allow: false, Action: "all", Topic: "secret/#"}}}
	g := startGateway(t, nil, core.WithAuthenticator(passwords{}), core.WithAuthorizer(acl))
	cc := g.coapClient(t)
	if r := post(t, cc, "/ps/open/a", message.TextPlain, "x", "username=u", "password=bad"); r.Code != codes.Unauthorized {
		t.Fatalf("bad password publish: %v", r.Code)
	}
	if r := post(t, cc, "/ps/open/a", message.TextPlain, "x", "username=u", "password=secret", "retain=1"); r.Code != codes.Changed {
		t.Fatalf("good password publish: %v", r.Code)
	}
	if r := get(t, cc, "/ps/open/a", "u=u", "p=bad"); r.Code != codes.Unauthorized {
		t.Fatalf("bad password read: %v", r.Code)
	}
	if r := get(t, cc, "/ps/secret/a"); r.Code != codes.Forbidden {
		t.Fatalf("denied read: %v", r.Code)
	}
	if r := post(t, cc, "/ps/secret/a", message.TextPlain, "x"); r.Code != codes.Forbidden {
		t.Fatalf("denied publish: %v", r.Code)
	}
	rc := g.raw(t)
	m := request(codes.GET, message.Confirmable, rc.nextMID(), []byte{1}, "/ps/open/#", "username=u", "password=bad")
	m.Options = m.Options.Add(message.Option{ID: message.Observe})
	rc.send(m)
	if r := rc.mustRecv(); r.Code != codes.Unauthorized {
		t.Fatalf("bad password observe: %v", r.Code)
	}
	m = request(codes.GET, message.Confirmable, rc.nextMID(), []byte{2}, "/ps/secret/#")
	m.Options = m.Options.Add(message.Option{ID: message.Observe})
	rc.send(m)
	if r := rc.mustRecv(); r.Code != codes.Forbidden {
		t.Fatalf("denied observe: %v", r.Code)
	}
}

// slowAuth blocks the credential check of user "slow" until release is
// closed, as a password hash or an HTTP hook would take time.
type slowAuth struct{ entered, release chan struct{} }

func (a slowAuth) Authenticate(ctx context.Context, c *core.ClientInfo) error {
	if c.Username == "slow" {
		a.entered <- struct{}{}
		select {
		case <-a.release:
		case <-ctx.Done():
		}
	}
	return nil
}

// TestSlowCredentialCheckStallsNoOtherPeer: a connectionless publish with
// credentials is checked on its peer's goroutine, not on the socket's
// read loop: while its check hangs, another peer's publish is answered.
func TestSlowCredentialCheckStallsNoOtherPeer(t *testing.T) {
	t.Parallel()
	a := slowAuth{entered: make(chan struct{}, 1), release: make(chan struct{})}
	g := startGateway(t, nil, core.WithAuthenticator(a))
	slow, fast := g.coapClient(t), g.coapClient(t)
	done := make(chan codes.Code, 1)
	go func() {
		done <- post(t, slow, "/ps/slow/t", message.TextPlain, "x", "u=slow", "p=pw").Code
	}()
	<-a.entered
	if r := post(t, fast, "/ps/fast/t", message.TextPlain, "y", "u=other", "p=pw"); r.Code != codes.Changed {
		t.Errorf("other peer while a check hangs: %v", r.Code)
	}
	if r := post(t, fast, "/ps/fast/t", message.TextPlain, "z"); r.Code != codes.Changed {
		t.Errorf("anonymous publish while a check hangs: %v", r.Code)
	}
	close(a.release)
	if c := <-done; c != codes.Changed {
		t.Errorf("slow peer: %v", c)
	}
}
