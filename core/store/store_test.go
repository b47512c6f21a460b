package store_test

import (
	"testing"

	"github.com/iotgw/iotgw/core/store"
	"github.com/iotgw/iotgw/core/store/storetest"
)

func TestMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return store.NewMemory() })
}

func pebbleOpener(fsync string) func(t *testing.T, dir string) store.Store {
	return func(t *testing.T, dir string) store.Store {
		cfg := store.DefaultConfig()
		cfg.Dir, cfg.Fsync = dir, fsync
		s, err := store.Open(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
}

func TestPebble(t *testing.T) {
	for _, mode := range []string{store.FsyncAlways, store.FsyncBatch, store.FsyncOff} {
		t.Run(mode, func(t *testing.T) {
			open := pebbleOpener(mode)
			storetest.Run(t, func(t *testing.T) store.Store { return open(t, t.TempDir()) })
			storetest.RunPersistent(t, open)
		})
	}
}
