package main

import (
	_ "embed"
	"html/template"
	"net"
	"net/http"
	"time"
)

//go:embed index.html
var indexHTML string

var page = template.Must(template.New("index").Parse(indexHTML))

// webServer serves the STOMP-over-WebSocket page.
type webServer struct {
	srv *http.Server
	ln  net.Listener
}

// serveWeb serves the page on addr, telling it the gateway's STOMP
// WebSocket URL.
func serveWeb(addr, stompWS string) (*webServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = page.Execute(w, stompWS)
	})
	ws := &webServer{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, ln: ln}
	go func() { _ = ws.srv.Serve(ln) }()
	return ws, nil
}

func (ws *webServer) Addr() net.Addr { return ws.ln.Addr() }

func (ws *webServer) Close() { _ = ws.srv.Close() }
