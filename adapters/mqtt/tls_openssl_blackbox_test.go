package mqtt_test

// The secured listeners seen by openssl s_client (issue 15): TLS 1.0 and
// 1.1 and the weak cipher suites are refused, TLS 1.2 and 1.3 are
// served, mqtt.tls offers "mqtt" by ALPN, and cipher_suites restricts
// what TLS 1.2 negotiates. The suites this openssl build cannot offer at
// all (RC4, 3DES) are offered by a Go client instead.

import (
	"context"
	"crypto/tls"
	"net"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/iotgw/iotgw/internal/testutil"
)

func needOpenSSL(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not on PATH (Debian package openssl)")
	}
}

// sClient runs openssl s_client against addr, trusting caFile and
// checking the server's certificate, with extra args; stdin is empty, so
// it ends after the handshake. It returns the output and whether it
// exited 0 (a completed handshake).
func sClient(t *testing.T, addr, caFile string, args ...string) (string, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	all := append([]string{"s_client", "-connect", addr, "-CAfile", caFile, "-servername", "localhost",
		"-verify_return_error"}, args...)
	cmd := exec.CommandContext(ctx, "openssl", all...)
	cmd.Stdin = strings.NewReader("")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("openssl %s: still running after 30 s:\n%s", strings.Join(args, " "), out)
	}
	return string(out), err == nil
}

// offeredNothing reports whether openssl refused to start the handshake
// because it cannot offer what it was asked to (a suite this build
// lacks), rather than the server refusing it.
func offeredNothing(out string) bool {
	return strings.Contains(out, "no cipher match") || strings.Contains(out, "no protocols available")
}

var negotiatedRE = regexp.MustCompile(`New, (TLSv[0-9.]+|\(NONE\)), Cipher is (\S+)`)

func TestTLSVersionsSuitesALPNWithOpenSSL(t *testing.T) {
	t.Parallel()
	needOpenSSL(t)
	pki := testutil.NewPKI(t, "openssl")
	g := testutil.Start(t, pki.TLSYAML(pki.Server("server")))
	for _, l := range []struct{ name, addr string }{{"mqtt.tls", g.MQTTTLSAddr()}, {"stomp.tls", g.STOMPTLSAddr()}} {
		t.Run(l.name, func(t *testing.T) {
			for _, v := range []string{"-tls1", "-tls1_1"} {
				out, ok := sClient(t, l.addr, pki.CAFile, v, "-cipher", "DEFAULT@SECLEVEL=0")
				if ok || offeredNothing(out) || !strings.Contains(out, "alert protocol version") {
					t.Errorf("openssl s_client %s: handshake completed %v, want the server's protocol_version alert:\n%s", v, ok, out)
				}
			}
			for v, want := range map[string]string{"-tls1_2": "TLSv1.2", "-tls1_3": "TLSv1.3"} {
				out, ok := sClient(t, l.addr, pki.CAFile, v)
				m := negotiatedRE.FindStringSubmatch(out)
				if !ok || !strings.Contains(out, "Verification: OK") || m == nil || !strings.Contains(out, "Protocol  : "+want) {
					t.Errorf("openssl s_client %s: completed %v, want a verified %s session:\n%s", v, ok, want, out)
				}
			}
			// CBC with SHA-256 MACs (Lucky13) is in Go's insecure list; RC4
			// and 3DES too, which Debian's OpenSSL 3 no longer offers.
			for _, suite := range []string{"ECDHE-ECDSA-AES128-SHA256", "ECDHE-ECDSA-AES256-SHA384", "RC4-SHA", "ECDHE-ECDSA-RC4-SHA", "DES-CBC3-SHA"} {
				out, ok := sClient(t, l.addr, pki.CAFile, "-tls1_2", "-cipher", suite+":@SECLEVEL=0")
				switch {
				case offeredNothing(out):
					t.Logf("openssl cannot offer %s here; the Go client below offers the weak suites Go implements", suite)
				case ok || !strings.Contains(out, "alert handshake failure"):
					t.Errorf("openssl s_client -tls1_2 -cipher %s: completed %v, want the server's handshake_failure alert:\n%s", suite, ok, out)
				}
			}
		})
	}
	// Every suite Go lists as insecure, offered alone by a Go client.
	for _, s := range tls.InsecureCipherSuites() {
		if !supports12(s) {
			continue
		}
		cfg := pki.ClientConfig(nil)
		cfg.MinVersion, cfg.MaxVersion, cfg.CipherSuites = tls.VersionTLS12, tls.VersionTLS12, []uint16{s.ID}
		nc, err := tls.DialWithDialer(&net.Dialer{Timeout: waitTimeout}, "tcp", g.MQTTTLSAddr(), cfg)
		if err == nil {
			nc.Close()
			t.Errorf("%s: the handshake completed", s.Name)
		} else if !strings.Contains(err.Error(), "handshake failure") {
			t.Errorf("%s: %v, want the server's handshake_failure alert", s.Name, err)
		}
	}

	// ALPN: mqtt.tls offers "mqtt" (AWS IoT and Mosquitto clients ask for
	// it), and answers a client that asks for nothing else.
	out, ok := sClient(t, g.MQTTTLSAddr(), pki.CAFile, "-alpn", "mqtt")
	if !ok || !strings.Contains(out, "ALPN protocol: mqtt") {
		t.Errorf("openssl s_client -alpn mqtt on mqtt.tls: completed %v, want \"ALPN protocol: mqtt\":\n%s", ok, out)
	}
	out, ok = sClient(t, g.MQTTTLSAddr(), pki.CAFile)
	if !ok || !strings.Contains(out, "No ALPN negotiated") {
		t.Errorf("openssl s_client without ALPN on mqtt.tls: completed %v, want a session without ALPN:\n%s", ok, out)
	}
}

func supports12(s *tls.CipherSuite) bool {
	for _, v := range s.SupportedVersions {
		if v == tls.VersionTLS12 {
			return true
		}
	}
	return false
}

// TestTLSCipherSuitesKeyRestrictsTLS12: with cipher_suites set, TLS 1.2
// negotiates only those; a suite of Go's defaults left out is refused.
// TLS 1.3 is unaffected (Go does not let its suites be configured).
func TestTLSCipherSuitesKeyRestrictsTLS12(t *testing.T) {
	t.Parallel()
	needOpenSSL(t)
	pki := testutil.NewPKI(t, "suites")
	g := testutil.Start(t, pki.TLSYAML(pki.Server("server"), "cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384]"))
	out, ok := sClient(t, g.MQTTTLSAddr(), pki.CAFile, "-tls1_2")
	if m := negotiatedRE.FindStringSubmatch(out); !ok || m == nil || m[2] != "ECDHE-ECDSA-AES256-GCM-SHA384" {
		t.Errorf("TLS 1.2 with openssl's default offer: completed %v, want ECDHE-ECDSA-AES256-GCM-SHA384:\n%s", ok, out)
	}
	// A Go default (CBC with SHA-1), not listed: refused.
	if out, ok := sClient(t, g.MQTTTLSAddr(), pki.CAFile, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA"); ok || !strings.Contains(out, "alert handshake failure") {
		t.Errorf("ECDHE-ECDSA-AES128-SHA not in cipher_suites: completed %v, want the server's handshake_failure alert:\n%s", ok, out)
	}
	if out, ok := sClient(t, g.MQTTTLSAddr(), pki.CAFile, "-tls1_3"); !ok || !strings.Contains(out, "Protocol  : TLSv1.3") {
		t.Errorf("TLS 1.3: completed %v:\n%s", ok, out)
	}
}
