package tlsconf

import (
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// servedSerial connects a new client and returns the serial of the
// server certificate it was shown (upper-case hex, as Status has it).
func servedSerial(t *testing.T, srv *tlsServer, p *testPKI) string {
	t.Helper()
	c, err := srv.dial(t, clientTLS(p))
	if err != nil {
		t.Fatal(err)
	}
	srv.result(t)
	return fmt.Sprintf("%X", c.ConnectionState().PeerCertificates[0].SerialNumber)
}

// serveAndConnect starts a TLS listener on s and connects a client, the
// connection that must survive a reload.
func serveAndConnect(t *testing.T, s *Source, p *testPKI) (*tlsServer, *tls.Conn) {
	t.Helper()
	cfg, err := s.ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	srv := startTLSServer(t, cfg)
	c, err := srv.dial(t, clientTLS(p))
	if err != nil {
		t.Fatal(err)
	}
	srv.result(t)
	return srv, c
}

// writeAtomically replaces path the way renewal tools do: a new file
// renamed over the old one.
func writeAtomically(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestReloadInPlace: the files are rewritten where they are (in place, and
// replaced by rename); the file events bring the new certificate to the
// next handshake while a connection made before keeps working.
func TestReloadInPlace(t *testing.T) {
	for _, replace := range []struct {
		name  string
		write func(t *testing.T, path string, data []byte)
	}{
		{"overwrite", func(t *testing.T, path string, data []byte) {
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"rename", writeAtomically},
	} {
		t.Run(replace.name, func(t *testing.T) {
			p := newPKI(t)
			c := p.config(p.server(0x11))
			s, _ := newTestSource(t, c, sourceOptions{}) // file events only: reload_interval 0
			srv, old := serveAndConnect(t, s, p)

			next := p.server(0x22)
			replace.write(t, c.CertFile, next.certPEM())
			replace.write(t, c.KeyFile, next.keyPEM())
			waitFor(t, "the reload after the file events", func() bool { return s.Status().Serial == "22" })
			if got := servedSerial(t, srv, p); got != "22" {
				t.Fatalf("new handshake got serial %s, want 22", got)
			}
			if err := echo(old); err != nil {
				t.Fatalf("connection made before the reload: %v", err)
			}
			if st := s.Status(); st.Reloads != 1 || st.LastError != "" {
				t.Fatalf("status %+v", st)
			}
		})
	}
}

// TestReloadSymlinkSwap: files published as Kubernetes publishes a
// secret (dir/tls.crt -> ..data/tls.crt, ..data -> ..v1, the swap renames
// a new ..data link over the old one). Both the file events and, alone,
// the periodic hash check pick the new pair up.
func TestReloadSymlinkSwap(t *testing.T) {
	for _, mode := range []struct {
		name string
		opts sourceOptions
		poll time.Duration
	}{
		{"file events", sourceOptions{}, 0},
		{"hash check", sourceOptions{noEvents: true}, 20 * time.Millisecond},
	} {
		t.Run(mode.name, func(t *testing.T) {
			p := newPKI(t)
			first := p.server(0x31)
			p.write("..v1/tls.crt", first.certPEM())
			p.write("..v1/tls.key", first.keyPEM())
			mustSymlink(t, "..v1", filepath.Join(p.dir, "..data"))
			mustSymlink(t, "..data/tls.crt", filepath.Join(p.dir, "tls.crt"))
			mustSymlink(t, "..data/tls.key", filepath.Join(p.dir, "tls.key"))
			c := DefaultConfig()
			c.CertFile, c.KeyFile = filepath.Join(p.dir, "tls.crt"), filepath.Join(p.dir, "tls.key")
			c.ReloadInterval = mode.poll
			s, _ := newTestSource(t, c, mode.opts)
			srv, old := serveAndConnect(t, s, p)

			second := p.server(0x32)
			p.write("..v2/tls.crt", second.certPEM())
			p.write("..v2/tls.key", second.keyPEM())
			mustSymlink(t, "..v2", filepath.Join(p.dir, "..data_tmp"))
			if err := os.Rename(filepath.Join(p.dir, "..data_tmp"), filepath.Join(p.dir, "..data")); err != nil {
				t.Fatal(err)
			}
			if err := os.RemoveAll(filepath.Join(p.dir, "..v1")); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the reload after the symlink swap", func() bool { return s.Status().Serial == "32" })
			if got := servedSerial(t, srv, p); got != "32" {
				t.Fatalf("new handshake got serial %s, want 32", got)
			}
			if err := echo(old); err != nil {
				t.Fatalf("connection made before the swap: %v", err)
			}
		})
	}
}

func mustSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// TestBrokenFileKeepsOldMaterial: a new file that does not load is
// reported (Reload's error, Status, the log) and the old certificate goes
// on serving; the periodic check does not count the same failure again,
// and fixing the file brings the new one in.
func TestBrokenFileKeepsOldMaterial(t *testing.T) {
	p := newPKI(t)
	c := p.config(p.server(0x41))
	s, logs := newTestSource(t, c, sourceOptions{noEvents: true})
	cfg, err := s.ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	srv := startTLSServer(t, cfg)

	next := p.server(0x42)
	p.write("server.pem", next.certPEM()) // the key is still the old one's
	wantErr(t, s.Reload(), "tls.key_file", "not the private key")
	if got := servedSerial(t, srv, p); got != "41" {
		t.Fatalf("serial %s after a failed reload, want the old 41", got)
	}
	_ = s.reload(false) // the periodic check meets the same problem
	st := s.Status()
	if st.Serial != "41" || st.Failures != 1 || st.Reloads != 0 || st.LastError == "" {
		t.Fatalf("status %+v", st)
	}
	if n := logs.FilterMessage("TLS reload failed; the material in use is kept").Len(); n != 1 {
		t.Fatalf("%d failure log lines, want 1", n)
	}

	p.write("server.pem", []byte("garbage"))
	wantErr(t, s.Reload(), "tls.cert_file")

	p.write("server.pem", next.certPEM())
	p.write("server-key.pem", next.keyPEM())
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := servedSerial(t, srv, p); got != "42" {
		t.Fatalf("serial %s, want 42", got)
	}
	if st := s.Status(); st.Reloads != 1 || st.Failures != 2 || st.LastError != "" {
		t.Fatalf("status %+v", st)
	}
}

// TestReloadUnchangedIsNoop: a SIGHUP without a change swaps nothing.
func TestReloadUnchangedIsNoop(t *testing.T) {
	p := newPKI(t)
	s, _ := newTestSource(t, p.config(p.server(5)), sourceOptions{noEvents: true})
	m := s.cur.Load()
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if s.cur.Load() != m || s.Status().Reloads != 0 {
		t.Fatal("an unchanged reload swapped the material")
	}
}

// TestReloadMissingFileKeepsOld: a file removed mid-renewal is an error
// naming the key, and the old material stays.
func TestReloadMissingFileKeepsOld(t *testing.T) {
	p := newPKI(t)
	c := p.config(p.server(6))
	s, _ := newTestSource(t, c, sourceOptions{noEvents: true})
	if err := os.Remove(c.KeyFile); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.Reload(), "tls.key_file", "no such file")
	if s.Status().Serial != "6" {
		t.Fatal("material lost")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil { // twice is fine
		t.Fatal(err)
	}
}
