package app

import (
	"github.com/iotgw/iotgw/core"
	"github.com/iotgw/iotgw/internal/auth/passwd"
)

// reloader is an authentication backend that reads files: Reload on
// SIGHUP, Close when the gateway stops (it watches them).
type reloader interface {
	Reload() error
	Close() error
}

// authReloaders returns the chain's backends that read files, and adds
// their $SYS topics to b (nil: none).
func authReloaders(chain *core.Chain, b *core.Broker) []reloader {
	if chain == nil {
		return nil
	}
	var rs []reloader
	for _, l := range chain.Links() {
		if r, ok := l.Backend.(reloader); ok {
			rs = append(rs, r)
		}
		if pf, ok := l.Backend.(*passwd.Backend); ok && b != nil {
			b.AddSysSource(sysPasswordFile(pf))
		}
	}
	return rs
}

// closeAuth stops watching the authentication backends' files.
func closeAuth(chain *core.Chain) {
	for _, r := range authReloaders(chain, nil) {
		_ = r.Close()
	}
}
