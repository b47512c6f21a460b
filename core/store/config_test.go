package store

import (
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

func zapNop() *zap.Logger { return zap.NewNop() }

func TestConfig(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	mem := Config{Engine: EngineMemory, Fsync: FsyncOff}
	if err := mem.Validate(); err != nil {
		t.Fatalf("memory without a directory: %v", err)
	}
	bad := Config{Engine: "bolt", Fsync: "sometimes", BatchWindow: -time.Second}
	err := bad.Validate()
	for _, key := range []string{"store.engine", "store.fsync", "store.batch_window"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s not reported in %v", key, err)
		}
	}
	noDir := Config{Engine: EnginePebble, Fsync: FsyncBatch}
	if err := noDir.Validate(); err == nil || !strings.Contains(err.Error(), "store.dir") ||
		!strings.Contains(err.Error(), "store.batch_window") {
		t.Errorf("pebble without dir and window: %v", err)
	}
	if _, err := Open(bad, nil); err == nil {
		t.Error("Open accepted an invalid config")
	}
}
