package store

import (
	"errors"
	"fmt"
	"time"
)

// Engines.
const (
	EngineMemory = "memory" // nothing survives the process; for tests
	EnginePebble = "pebble" // on disk, the default
)

// Fsync modes: when a durable Commit returns.
const (
	// FsyncAlways syncs the WAL for every group of commits, with no added
	// wait: commits arriving during a sync share the next one.
	FsyncAlways = "always"
	// FsyncBatch starts at most one WAL sync per BatchWindow; a commit
	// after a quiet period syncs at once, under load commits wait up to
	// the window to share a sync. Still durable before Commit returns.
	FsyncBatch = "batch"
	// FsyncOff never syncs while running. Pebble hands its WAL buffer to
	// the OS from a background goroutine, so even a process crash may
	// lose the last milliseconds of commits (measured: up to a few
	// hundred messages under load), a power loss the last seconds; what
	// survives is always a prefix of the commits, each one whole. Close
	// still syncs.
	FsyncOff = "off"
)

// Config holds the `store` configuration section.
type Config struct {
	// Engine is EnginePebble or EngineMemory.
	Engine string
	// Dir is the pebble engine's directory, created if missing; a relative
	// path is relative to the working directory.
	Dir string
	// Fsync is FsyncAlways, FsyncBatch or FsyncOff.
	Fsync string
	// BatchWindow is the minimum time between WAL syncs in FsyncBatch
	// mode, so the most a durable commit waits beyond its own sync.
	BatchWindow time.Duration
}

// DefaultConfig returns the defaults documented in configs/iotgw.yaml.
func DefaultConfig() Config {
	return Config{
		Engine:      EnginePebble,
		Dir:         "data",
		Fsync:       FsyncAlways,
		BatchWindow: 2 * time.Millisecond,
	}
}

// maxBatchWindow keeps a misconfigured window from stalling every
// acknowledgement for seconds.
const maxBatchWindow = time.Second

// Validate reports every problem in c, joined.
func (c Config) Validate() error {
	var errs []error
	switch c.Engine {
	case EngineMemory, EnginePebble:
	default:
		errs = append(errs, fmt.Errorf("store.engine: %q is not %s or %s", c.Engine, EnginePebble, EngineMemory))
	}
	if c.Engine == EnginePebble && c.Dir == "" {
		errs = append(errs, errors.New("store.dir: empty, but the pebble engine needs a directory"))
	}
	switch c.Fsync {
	case FsyncAlways, FsyncBatch, FsyncOff:
	default:
		errs = append(errs, fmt.Errorf("store.fsync: %q is not %s, %s or %s", c.Fsync, FsyncAlways, FsyncBatch, FsyncOff))
	}
	if c.BatchWindow < 0 || c.BatchWindow > maxBatchWindow {
		errs = append(errs, fmt.Errorf("store.batch_window: %v is not within 0..%v", c.BatchWindow, maxBatchWindow))
	} else if c.Fsync == FsyncBatch && c.BatchWindow == 0 {
		errs = append(errs, errors.New("store.batch_window: must be positive with store.fsync: batch (or use always)"))
	}
	return errors.Join(errs...)
}
