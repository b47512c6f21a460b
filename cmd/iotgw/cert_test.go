package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/iotgw/iotgw/cmd/iotgw/app"
	"github.com/iotgw/iotgw/internal/tlsconf"
)

// TestCertDev: "iotgw cert dev DIR" writes the files, and the
// configuration it prints loads, serves a handshake trusted by ca.pem and
// gives the client certificate's CN as the identity.
func TestCertDev(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	var out, errOut bytes.Buffer
	if code := runCert([]string{"dev", dir}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	text := out.String()
	start := strings.Index(text, "\ntls:\n")
	if start < 0 {
		t.Fatalf("no tls section printed:\n%s", text)
	}
	yamlDoc := text[start+1:]
	yamlDoc = yamlDoc[:strings.Index(yamlDoc, "\n\n")+1]
	cfg, err := app.Load([]byte(yamlDoc), nil)
	if err != nil {
		t.Fatalf("the printed configuration does not load: %v\n%s", err, yamlDoc)
	}
	src, err := tlsconf.NewSource(cfg.TLS, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	serverCfg, err := src.ServerConfig("mqtt")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", serverCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	identity := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		tc := c.(*tls.Conn)
		if err := tc.Handshake(); err != nil {
			identity <- "handshake: " + err.Error()
			return
		}
		name, _ := src.Identity(tc.ConnectionState())
		identity <- name
		_, _ = io.Copy(c, c)
	}()

	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	client, err := tls.LoadX509KeyPair(filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	conn, err := tls.Dial("tcp", net.JoinHostPort("localhost", port), &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{client}, NextProtos: []string{"mqtt"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if got := <-identity; got != "dev-client" {
		t.Fatalf("identity %q", got)
	}

	// A second run keeps the files; -force replaces them.
	out.Reset()
	errOut.Reset()
	if code := runCert([]string{"dev", dir}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "-force") {
		t.Fatalf("second run: exit %d, %q", code, errOut.String())
	}
	if code := runCert([]string{"dev", "-force", dir}, &out, &errOut); code != 0 {
		t.Fatalf("-force: exit %d", code)
	}
}

func TestCertUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"dev", "-h"}, 0},
		{[]string{"-h"}, 0},
		{nil, 2},
		{[]string{"prod"}, 2},
		{[]string{"dev"}, 2},
		{[]string{"dev", "a", "b"}, 2},
	} {
		var out, errOut bytes.Buffer
		code := runCert(tc.args, &out, &errOut)
		if code != tc.code || !strings.Contains(out.String()+errOut.String(), "usage: iotgw cert dev") {
			t.Errorf("%v: exit %d (want %d), output %q", tc.args, code, tc.code, out.String()+errOut.String())
		}
	}
}
