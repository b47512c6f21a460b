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

// Users authenticates against a configured account list. A client that
// presents no user name is accepted only when AllowAnonymous is set; one
// that presents a name must match an account.
type Users struct {
	AllowAnonymous bool
	byName         map[string]string
}

var _ Authenticator = (*Users)(nil)

// NewUsers builds the authenticator; duplicate or empty names are errors.
func NewUsers(users []User, allowAnonymous bool) (*Users, error) {
	u := &Users{AllowAnonymous: allowAnonymous, byName: make(map[string]string, len(users))}
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
func (u *Users) Authenticate(_ context.Context, c *ClientInfo) error {
	if c.Username == "" {
		if u.AllowAnonymous && len(c.Password) == 0 {
			return nil
		}
		return ErrNotAuthorized
	}
	want, ok := u.byName[c.Username]
	if !ok {
		// Compare anyway so a wrong name costs what a wrong password does.
		subtle.ConstantTimeCompare([]byte("x"), c.Password)
		return ErrBadCredentials
	}
	if subtle.ConstantTimeCompare([]byte(want), c.Password) != 1 {
		return ErrBadCredentials
	}
	return nil
}

// Password returns a user's password, for challenge-response methods.
func (u *Users) Password(name string) (string, bool) {
	p, ok := u.byName[name]
	return p, ok
}
