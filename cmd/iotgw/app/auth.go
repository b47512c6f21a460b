package app

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"go.uber.org/zap"

	"github.com/iotgw/iotgw/core"
)

// authBackend is one kind of authentication backend the chain can hold:
// its name in auth.chain, its place in the default order, whether the
// configuration turns it on, and how it is built. Each backend registers
// itself (registerAuthBackend, from its own file's init), so adding one
// touches no shared list.
type authBackend struct {
	name string
	// order places it in the default chain (auth.chain unset): lower
	// first.
	order      int
	configured func(c *Config) bool
	build      func(c *Config, log *zap.Logger) (core.ChainLink, error)
	// methods are MQTT 5 enhanced authentication methods the backend
	// offers while it is in the chain (JWT: the token as Authentication
	// Data, for re-authentication).
	methods []core.AuthMethod
}

var authBackendKinds = map[string]authBackend{}

func registerAuthBackend(b authBackend) {
	if _, dup := authBackendKinds[b.name]; dup {
		panic("auth backend registered twice: " + b.name)
	}
	authBackendKinds[b.name] = b
}

func init() {
	// Plaintext users in the configuration: last by default, so that a
	// password file or a token service is asked first.
	registerAuthBackend(authBackend{
		name: "users", order: 100,
		configured: func(c *Config) bool { return len(c.Users) > 0 },
		build: func(c *Config, log *zap.Logger) (core.ChainLink, error) {
			users, err := core.NewUsers(c.Users)
			if err != nil {
				return core.ChainLink{}, err
			}
			log.Warn("auth.users holds plaintext passwords in the configuration; prefer auth.password_file (iotgw passwd)")
			return core.ChainLink{Name: "users", Backend: users}, nil
		},
	})
}

// chainNames returns the backends of the chain in order: auth.chain as
// written, or every configured backend in the default order.
func (c *Config) chainNames() ([]string, error) {
	if len(c.AuthChain) > 0 {
		var errs []string
		for i, name := range c.AuthChain {
			b, ok := authBackendKinds[name]
			switch {
			case !ok:
				errs = append(errs, fmt.Sprintf("auth.chain[%d]: %q is not a backend (%s)", i, name, strings.Join(authBackendNames(), ", ")))
			case !b.configured(c):
				errs = append(errs, fmt.Sprintf("auth.chain[%d]: %q is not configured", i, name))
			case slices.Index(c.AuthChain, name) != i:
				errs = append(errs, fmt.Sprintf("auth.chain[%d]: %q appears twice", i, name))
			}
		}
		if len(errs) > 0 {
			return nil, fmt.Errorf("%s", strings.Join(errs, "\n"))
		}
		return c.AuthChain, nil
	}
	var kinds []authBackend
	for _, b := range authBackendKinds {
		if b.configured(c) {
			kinds = append(kinds, b)
		}
	}
	sort.Slice(kinds, func(i, j int) bool { return kinds[i].order < kinds[j].order })
	names := make([]string, len(kinds))
	for i, b := range kinds {
		names[i] = b.name
	}
	return names, nil
}

func authBackendNames() []string {
	var names []string
	for n := range authBackendKinds {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// buildAuth makes the authentication chain of every protocol, or nil
// when nothing restricts who connects (no backend, anonymous allowed).
func buildAuth(c *Config, log *zap.Logger) (*core.Chain, error) {
	names, err := c.chainNames()
	if err != nil {
		return nil, err
	}
	if len(names) == 0 && c.AllowAnonymous {
		log.Info("authentication: open — every client may connect (no auth backend configured, auth.allow_anonymous: true)")
		return nil, nil
	}
	links := make([]core.ChainLink, 0, len(names))
	for _, name := range names {
		l, err := authBackendKinds[name].build(c, log)
		if err != nil {
			return nil, err
		}
		links = append(links, l)
	}
	chain, err := core.NewChain(links, c.AllowAnonymous, log)
	if err != nil {
		return nil, err
	}
	fields := []zap.Field{zap.Strings("backends", names), zap.Bool("allow_anonymous", c.AllowAnonymous)}
	if c.anonymousOffBecause != "" {
		fields = append(fields, zap.String("anonymous_off_because", c.anonymousOffBecause+" are configured (set auth.allow_anonymous: true to allow anonymous clients anyway)"))
	}
	log.Info("authentication chain", fields...)
	return chain, nil
}

// chainMethods returns the enhanced authentication methods of the
// backends in the chain.
func chainMethods(c *Config) []core.AuthMethod {
	names, err := c.chainNames()
	if err != nil {
		return nil
	}
	var ms []core.AuthMethod
	for _, name := range names {
		ms = append(ms, authBackendKinds[name].methods...)
	}
	return ms
}
