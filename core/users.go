package core

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
)

// User is one configured account.
type User struct {
	Username string
	Password string
}

// Users is the backend of plaintext accounts in the configuration
// (auth.users): it allows a matching password, denies a wrong one and
// leaves a client without a user name, or with one not in the list, to
// the rest of the chain (core.Chain decides about anonymous clients).
type Users struct {
	byName map[string]string
}

var _ Backend = (*Users)(nil)

// NewUsers builds the backend; duplicate or empty names are errors.
func NewUsers(users []User) (*Users, error) {
	u := &Users{byName: make(map[string]string, len(users))}
	var errs []error
	for i, x := range users {
		if x.Username == "" {
			errs = append(errs, fmt.Errorf("auth.users[%d].username: empty", i))
			continue
		}
		if _, dup := u.byName[x.Username]; dup {
			errs = append(errs, fmt.Errorf("auth.users[%d].username: %q appears twice", i, x.Username))
		}
		u.byName[x.Username] = x.Password
	}
	return u, errors.Join(errs...)
}

// Authenticate checks the user name and password in constant time.
func (u *Users) Authenticate(_ context.Context, c *ClientInfo) (AuthResult, error) {
	if c.Username == "" {
		return AuthResult{Decision: Ignore}, nil
	}
	want, ok := u.byName[c.Username]
	if !ok {
		// Compare anyway so a wrong name costs what a wrong password does.
		subtle.ConstantTimeCompare([]byte("x"), c.Password)
		return AuthResult{Decision: Ignore}, nil
	}
	if subtle.ConstantTimeCompare([]byte(want), c.Password) != 1 {
		return AuthResult{Decision: Deny, Err: ErrBadCredentials}, nil
	}
	return AuthResult{Decision: Allow}, nil
}
