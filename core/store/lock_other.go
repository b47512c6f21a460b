//go:build !(darwin || dragonfly || freebsd || linux || netbsd || openbsd)

package store

import (
	"io"
	"os"
	"path/filepath"
)

// lockDir on systems without flock relies on Pebble's own LOCK file, which
// refuses a second opener with Pebble's less specific error.
func lockDir(dir string) (io.Closer, error) {
	return os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o640)
}
