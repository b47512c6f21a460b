package app

import (
	"fmt"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/iotgw/iotgw/core"
	"github.com/iotgw/iotgw/internal/auth/passwd"
)

// The password file backend (auth.password_file): Mosquitto's format,
// first in the default chain since it is the operator's own list.
func init() {
	registerAuthBackend(authBackend{
		name: "password_file", order: 10,
		configured: func(c *Config) bool { return c.PasswordFile.File != "" },
		build: func(c *Config, log *zap.Logger) (core.ChainLink, error) {
			b, err := passwd.New(c.PasswordFile, log.Named("password_file"))
			if err != nil {
				return core.ChainLink{}, fmt.Errorf("auth.password_file: %w", err)
			}
			return core.ChainLink{Name: "password_file", Backend: b}, nil
		},
	})
}

// sysPasswordFile adds the file in use to $SYS beside the chain's
// counters: $SYS/broker/auth/password_file/{users,reloads,
// reload_failures,last_error}.
func sysPasswordFile(b *passwd.Backend) core.SysSource {
	return func(add func(topic, value string)) {
		st := b.Status()
		p := "$SYS/broker/auth/password_file/"
		add(p+"users", strconv.Itoa(st.Users))
		add(p+"reloads", strconv.FormatUint(st.Reloads, 10))
		add(p+"reload_failures", strconv.FormatUint(st.Failures, 10))
		add(p+"last_error", strings.TrimSpace(st.LastError))
	}
}
