package wsconn

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

// pair returns a client WebSocket and the server side wrapped with opts.
func pair(t *testing.T, opts Options) (*websocket.Conn, *Conn) {
	t.Helper()
	srv := make(chan *Conn, 1)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		srv <- New(ws, opts)
	}))
	t.Cleanup(ts.Close)
	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(ts.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, <-srv
}

func TestStreamAcrossMessages(t *testing.T) {
	c, s := pair(t, Options{})
	c.WriteMessage(websocket.BinaryMessage, []byte("hel"))
	c.WriteMessage(websocket.BinaryMessage, []byte("lo"))
	b := make([]byte, 5)
	if _, err := io.ReadFull(s, b); err != nil || string(b) != "hello" {
		t.Fatalf("%q %v", b, err)
	}
	c.WriteMessage(websocket.TextMessage, []byte("x"))
	if _, err := s.Read(b); !errors.Is(err, ErrTextFrame) {
		t.Fatalf("text frame: %v", err)
	}
}

func TestMaxMessageAndTextOut(t *testing.T) {
	tooBig := errors.New("too big")
	c, s := pair(t, Options{AcceptText: true, TextWhenUTF8: true, MaxMessage: 4, TooLarge: tooBig})
	c.WriteMessage(websocket.TextMessage, []byte("123456"))
	b := make([]byte, 16)
	n, err := s.Read(b)
	for err == nil && n < 5 {
		var m int
		m, err = s.Read(b[n:])
		n += m
	}
	if !errors.Is(err, tooBig) {
		t.Fatalf("oversize message: %v", err)
	}
	s.Write([]byte("text"))
	s.Write([]byte{0xff})
	if mt, _, _ := c.ReadMessage(); mt != websocket.TextMessage {
		t.Fatal("valid UTF-8 not sent as text")
	}
	if mt, _, _ := c.ReadMessage(); mt != websocket.BinaryMessage {
		t.Fatal("binary not sent as binary")
	}
}

func TestWriteMessagesOneMessageEach(t *testing.T) {
	c, s := pair(t, Options{TextWhenUTF8: true})
	big := strings.Repeat("x", writeChunk) // a chunk boundary inside the batch
	msgs := []string{"one", "", big, "two", "\xff"}
	var b []byte
	var ends []int
	for _, m := range msgs {
		b = append(b, m...)
		ends = append(ends, len(b))
	}
	if n, err := s.WriteMessages(b, ends); err != nil || n != len(b) {
		t.Fatalf("WriteMessages: %d, %v", n, err)
	}
	for i, want := range msgs {
		mt, got, err := c.ReadMessage()
		if err != nil || string(got) != want {
			t.Fatalf("message %d: %.20q (%v), want %.20q", i, got, err, want)
		}
		if wantType := websocket.TextMessage; i == len(msgs)-1 && mt == wantType {
			t.Fatal("invalid UTF-8 sent as text")
		}
	}
}
