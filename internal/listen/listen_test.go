package listen

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"

	"go.uber.org/zap"
)

func TestCheckAddr(t *testing.T) {
	for addr, ok := range map[string]bool{":1883": true, "127.0.0.1:0": true, "[::1]:65535": true,
		"localhost:65536": false, "nonsense": false, "host:port": false} {
		if err := CheckAddr(addr); (err == nil) != ok {
			t.Errorf("%q: %v", addr, err)
		}
	}
}

func TestStartServeClose(t *testing.T) {
	got := make(chan net.Conn, 1)
	ls, err := Start(context.Background(), Config{Section: "x", TCP: "127.0.0.1:0", WS: "127.0.0.1:0", WSPath: "/ws",
		Log: zap.NewNop(), ServeTCP: func(nc net.Conn) { got <- nc },
		ServeWS: func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) }})
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", ls.TCPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	(<-got).Close()
	c.Close()
	resp, err := http.Get("http://" + ls.WSAddr().String() + "/ws")
	if err != nil || resp.StatusCode != http.StatusTeapot {
		t.Fatalf("ws handler: %v %v", resp, err)
	}
	resp.Body.Close()
	ls.Close()
	if _, err := net.Dial("tcp", ls.TCPAddr().String()); err == nil {
		t.Fatal("still accepting after Close")
	}
	// A busy address fails with the key's name.
	busy, _ := net.Listen("tcp", "127.0.0.1:0")
	defer busy.Close()
	if _, err := Start(context.Background(), Config{Section: "x", WS: busy.Addr().String(), Log: zap.NewNop()}); err == nil || !strings.HasPrefix(err.Error(), "x.ws:") {
		t.Fatalf("busy address: %v", err)
	}
}

type fakeConn struct{ closed *error }

func (f fakeConn) Close(reason error) { *f.closed = reason }

func TestConnsCloseAllRefusesNew(t *testing.T) {
	var r Conns[fakeConn]
	var e1, e2, e3 error
	a, b := fakeConn{&e1}, fakeConn{&e2}
	started := 0
	r.Add(a, func() { started++ })
	r.Add(b, func() { started++ })
	r.Remove(b)
	stop := errors.New("stop")
	r.CloseAll(stop)
	if e1 != stop || e2 != nil || started != 2 {
		t.Fatalf("closed %v %v, started %d", e1, e2, started)
	}
	if r.Add(fakeConn{&e3}, func() { started++ }) || started != 2 {
		t.Fatal("a connection was accepted after CloseAll")
	}
}
