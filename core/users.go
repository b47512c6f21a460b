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

// Authenticate checks the user name and password in constant time, as a
// whole authenticator (a chain of this one backend).
func (u *Users) Authenticate(ctx context.Context, c *ClientInfo) error {
	r, _ := u.Check(c)
	switch r.Decision {
	case Allow:
		return nil
	case Deny:
		return r.Err
	}
	if c.Username == "" && len(c.Password) == 0 && u.AllowAnonymous {
		return nil
	}
	if c.Username == "" {
		return ErrNotAuthorized
	}
	return ErrBadCredentials
}

// Check is the backend answer: ignore a client without a user name or
// with one not in the list (another backend may know it), allow a
// matching password, deny a wrong one.
func (u *Users) Check(c *ClientInfo) (AuthResult, error) {
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

// Backend returns the list as a chain link's backend.
func (u *Users) Backend() Backend { return usersBackend{u} }

type usersBackend struct{ u *Users }

func (b usersBackend) Authenticate(_ context.Context, c *ClientInfo) (AuthResult, error) {
	return b.u.Check(c)
}

// Password returns a user's password, for challenge-response methods.
func (u *Users) Password(name string) (string, bool) {
	p, ok := u.byName[name]
	return p, ok
}
