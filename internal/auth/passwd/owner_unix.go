//go:build unix

package passwd

import (
	"os"
	"syscall"
)

// keepOwner gives f the owner and group of the file it replaces; only
// root may give a file away, so a failure is no error (the file is then
// the editor's, as any new file).
func keepOwner(f *os.File, old os.FileInfo) {
	if st, ok := old.Sys().(*syscall.Stat_t); ok {
		_ = f.Chown(int(st.Uid), int(st.Gid))
	}
}
