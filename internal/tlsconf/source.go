package tlsconf

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/iotgw/iotgw/internal/filewatch"
)

// Source is the current TLS material of one configuration (the shared
// section or a listener's merged one), renewed without a restart. It
// re-reads the files on file events, on a periodic hash check
// (reload_interval; it catches symlink swaps as Kubernetes and certbot
// make them, which file events on the file itself miss) and on Reload
// (SIGHUP). New handshakes take the new material; live connections keep
// the one they were made with. A file that does not load is logged and
// the old material kept.
//
// Make one Source per distinct configuration: listeners whose merged
// configurations are equal may share one (each takes its own
// ServerConfig or DTLSConfig from it), and Close it when they stop.
type Source struct {
	cfg Config
	log *zap.Logger
	cur atomic.Pointer[material]

	mu       sync.Mutex // serialises reloads; guards the fields below
	reloads  uint64
	failures uint64
	lastErr  error

	// watch re-reads the files on file events (settled: renewal tools
	// write the certificate and the key one after the other) and on the
	// periodic check.
	watch *filewatch.Watcher
}

// Status describes a Source's material in use and its reloads, for $SYS
// and metrics.
type Status struct {
	// Subject, Serial (upper-case hex, as openssl prints it), NotBefore
	// and NotAfter are the server certificate's (zero without cert_file).
	Subject   string
	Serial    string
	NotBefore time.Time
	NotAfter  time.Time
	// Loaded is when the material in use was read.
	Loaded time.Time
	// Reloads counts material swaps after the first load; Failures counts
	// reloads that failed (the same failure found again by the periodic
	// check is not counted twice).
	Reloads  uint64
	Failures uint64
	// LastError is the last reload's error, "" once the files load again.
	LastError string
}

// sourceOptions are knobs for tests.
type sourceOptions struct {
	noEvents bool // rely on the hash check and Reload only
}

// NewSource validates c, loads its files and starts watching them. An
// error names the key at fault; the caller exits (status 2) on it. log
// gets warnings (a certificate outside its validity period) and every
// reload.
func NewSource(c Config, log *zap.Logger) (*Source, error) {
	return newSource(c, log, sourceOptions{})
}

func newSource(c Config, log *zap.Logger, opts sourceOptions) (*Source, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.CertFile == "" && c.PSKFile == "" {
		return nil, c.errorf("cert_file", "not set (nor %s): a secured listener needs a certificate or pre-shared keys", c.Key("psk_file"))
	}
	m, warns, err := load(c, time.Now())
	if err != nil {
		return nil, err
	}
	s := &Source{cfg: c, log: log}
	s.cur.Store(m)
	for _, w := range warns {
		log.Warn(w)
	}
	log.Info("TLS material loaded", s.fields(m)...)
	s.watch = filewatch.Start(filewatch.Options{
		Paths:    []string{c.CertFile, c.KeyFile, c.CAFile, c.CRLFile, c.PSKFile},
		Interval: c.ReloadInterval, NoEvents: opts.noEvents,
		Log: log, What: "TLS files", Fields: []zap.Field{zap.String("section", c.Section)},
	}, func() { _ = s.reload(false) })
	return s, nil
}

// Config returns the configuration the source was made from.
func (s *Source) Config() Config { return s.cfg }

// Reload re-reads the files now (main calls it on SIGHUP). It returns nil
// when they load (or did not change); otherwise the error, which is also
// logged, and the material in use stays.
func (s *Source) Reload() error { return s.reload(true) }

// Check reads and parses the files as Reload would, without putting them
// in use: a reload of the whole configuration checks everything before
// it changes anything.
func (s *Source) Check() error {
	f, err := readFiles(s.cfg)
	if err == nil {
		_, _, err = parse(s.cfg, f, time.Now())
	}
	return err
}

// Close stops watching the files. Configurations built from the source
// keep serving the last material.
func (s *Source) Close() error {
	s.watch.Close()
	return nil
}

// Status returns the material in use and the reload counters.
func (s *Source) Status() Status {
	m := s.cur.Load()
	st := Status{Loaded: m.loaded}
	if m.leaf != nil {
		st.Subject = m.leaf.Subject.String()
		st.Serial = fmt.Sprintf("%X", m.leaf.SerialNumber)
		st.NotBefore, st.NotAfter = m.leaf.NotBefore, m.leaf.NotAfter
	}
	s.mu.Lock()
	st.Reloads, st.Failures = s.reloads, s.failures
	if s.lastErr != nil {
		st.LastError = s.lastErr.Error()
	}
	s.mu.Unlock()
	return st
}

// reload reads the files and swaps the material in if they changed and
// load. explicit (Reload) logs every failure; the periodic and event
// checks log a failure once until the files change again.
func (s *Source) reload(explicit bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.cur.Load()
	f, err := readFiles(s.cfg)
	if err == nil && f.hash == old.hash {
		if s.lastErr != nil {
			s.log.Info("TLS files are back to the material in use", zap.String("section", s.cfg.Section))
			s.lastErr = nil
		}
		return nil
	}
	var m *material
	var warns []string
	if err == nil {
		m, warns, err = parse(s.cfg, f, time.Now())
	}
	if err != nil {
		repeated := s.lastErr != nil && s.lastErr.Error() == err.Error()
		s.lastErr = err
		if !repeated || explicit {
			s.failures++
			s.log.Error("TLS reload failed; the material in use is kept", append(s.fields(old), zap.Error(err))...)
		}
		return err
	}
	for _, w := range warns {
		s.log.Warn(w)
	}
	s.cur.Store(m)
	s.reloads++
	s.lastErr = nil
	fields := s.fields(m)
	if old.leaf != nil {
		fields = append(fields, zap.String("old_serial", fmt.Sprintf("%X", old.leaf.SerialNumber)))
	}
	s.log.Info("TLS material reloaded; new handshakes use it", fields...)
	return nil
}

// fields describes material m for the log.
func (s *Source) fields(m *material) []zap.Field {
	fs := []zap.Field{zap.String("section", s.cfg.Section)}
	if m.leaf != nil {
		fs = append(fs, zap.String("cert_file", s.cfg.CertFile), zap.String("subject", m.leaf.Subject.String()),
			zap.String("serial", fmt.Sprintf("%X", m.leaf.SerialNumber)), zap.Time("not_after", m.leaf.NotAfter))
	}
	if m.psk != nil {
		fs = append(fs, zap.Int("psk_identities", len(m.psk)))
	}
	if m.revoked != nil {
		fs = append(fs, zap.Int("revoked", len(m.revoked)))
	}
	return fs
}
