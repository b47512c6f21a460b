package app

import (
	"fmt"

	"github.com/spf13/cast"
	"go.uber.org/zap"

	"github.com/iotgw/iotgw/core"
	jwtauth "github.com/iotgw/iotgw/internal/auth/jwt"
)

// JWTMethod is the MQTT 5 enhanced authentication method whose
// Authentication Data is a JWT: a client may send it in CONNECT instead
// of the password, and only a client that did can send a fresh token in
// AUTH 0x19 later [MQTT-4.12.1-1].
const JWTMethod = "JWT"

func init() {
	// Tokens before passwords: a JWT is recognised by its shape and
	// ignored otherwise, so asking it first costs a password client
	// nothing.
	registerAuthBackend(authBackend{
		name: "jwt", order: 20,
		configured: func(c *Config) bool { return c.JWT.Configured() },
		build: func(c *Config, log *zap.Logger) (core.ChainLink, error) {
			b, err := jwtauth.New(c.JWT, log.Named("jwt"))
			if err != nil {
				return core.ChainLink{}, err
			}
			onError := core.OnErrorDeny
			if c.JWT.OnError == "ignore" {
				onError = core.OnErrorIgnore
			}
			return core.ChainLink{Name: "jwt", Backend: b, OnError: onError, Timeout: c.JWT.Timeout}, nil
		},
		methods: []core.AuthMethod{core.PasswordMethod(JWTMethod)},
	})
}

// jwtVerifyClaims parses auth.jwt.verify_claims, a map of claim names to
// expected values (strings, with ${clientid} and ${username}).
func jwtVerifyClaims(c *Config, v any) error {
	m, err := cast.ToStringMapE(v)
	if err != nil {
		return err
	}
	c.JWT.VerifyClaims = nil
	for name, val := range m {
		s, err := cast.ToStringE(val)
		if err != nil {
			return fmt.Errorf("%s: %v", name, err)
		}
		if c.JWT.VerifyClaims == nil {
			c.JWT.VerifyClaims = make(map[string]string, len(m))
		}
		c.JWT.VerifyClaims[name] = s
	}
	return nil
}
