package jwt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/iotgw/iotgw/core"
	"github.com/iotgw/iotgw/core/topic"
)

// Config is the auth.jwt section. Exactly one key source is set: Secret,
// SecretFile, PublicKeyFile or JWKSURL.
type Config struct {
	// Secret is an HMAC key (HS256/384/512), at least 32 bytes.
	Secret string
	// SecretFile holds the HMAC key (one trailing newline is dropped).
	SecretFile string
	// PublicKeyFile is a PEM file of RSA, ECDSA or Ed25519 public keys or
	// certificates (RS*, PS*, ES*, EdDSA).
	PublicKeyFile string
	// JWKSURL is an identity provider's key set (RFC 7517), selected by
	// the token's kid.
	JWKSURL string
	// JWKSRefresh is how old a fetched set may get before its next use
	// fetches it again.
	JWKSRefresh time.Duration
	// JWKSMinInterval is the least time between two fetches an unknown
	// kid triggers.
	JWKSMinInterval time.Duration
	// From is where the client puts its token: "password" or "username".
	From string
	// Leeway allows for clock skew in exp, nbf and iat.
	Leeway time.Duration
	// RequireExp refuses tokens without exp.
	RequireExp bool
	// VerifyClaims maps claim names to the values they must have, with
	// ${clientid} and ${username} replaced by the client's.
	VerifyClaims map[string]string
	// ACLClaim names the claim holding the client's access rules ("": no
	// rules from the token).
	ACLClaim string
	// SuperuserClaim names a boolean claim that, true, makes the client a
	// superuser ("": none).
	SuperuserClaim string
	// OnError is what a backend failure (the JWKS cannot be fetched)
	// means: "deny" or "ignore".
	OnError string
	// Timeout bounds the backend's answer and each JWKS fetch.
	Timeout time.Duration
}

// DefaultConfig returns the defaults: the token in the password, 30 s of
// leeway, exp required, rules from the "acl" claim, a JWKS refreshed
// hourly and at most once a minute for an unknown kid.
func DefaultConfig() Config {
	return Config{
		JWKSRefresh:     time.Hour,
		JWKSMinInterval: time.Minute,
		From:            "password",
		Leeway:          30 * time.Second,
		RequireExp:      true,
		ACLClaim:        "acl",
		OnError:         "deny",
		Timeout:         5 * time.Second,
	}
}

// Configured reports whether a key source is set, which turns the backend
// on.
func (c Config) Configured() bool {
	return c.Secret != "" || c.SecretFile != "" || c.PublicKeyFile != "" || c.JWKSURL != ""
}

// Validate reports every problem of the section, joined; an unconfigured
// section is valid.
func (c Config) Validate() error {
	if !c.Configured() {
		return nil
	}
	var errs []error
	sources := 0
	for _, s := range []string{c.Secret, c.SecretFile, c.PublicKeyFile, c.JWKSURL} {
		if s != "" {
			sources++
		}
	}
	if sources > 1 {
		errs = append(errs, errors.New("auth.jwt: set only one of secret, secret_file, public_key_file and jwks_url"))
	}
	if c.Secret != "" && len(c.Secret) < MinHMACBytes {
		errs = append(errs, fmt.Errorf("auth.jwt.secret: %d bytes; HMAC keys need at least %d (RFC 7518 3.2)", len(c.Secret), MinHMACBytes))
	}
	if c.JWKSURL != "" {
		if u, err := url.Parse(c.JWKSURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, fmt.Errorf("auth.jwt.jwks_url: %q is not an http(s) URL", c.JWKSURL))
		}
		if c.JWKSRefresh <= 0 {
			errs = append(errs, errors.New("auth.jwt.jwks_refresh: must be positive"))
		}
		if c.JWKSMinInterval < 0 {
			errs = append(errs, errors.New("auth.jwt.jwks_min_interval: must not be negative"))
		}
	}
	if c.From != "password" && c.From != "username" {
		errs = append(errs, fmt.Errorf("auth.jwt.from: %q is not password or username", c.From))
	}
	if c.Leeway < 0 {
		errs = append(errs, errors.New("auth.jwt.leeway: must not be negative"))
	}
	if c.OnError != "deny" && c.OnError != "ignore" {
		errs = append(errs, fmt.Errorf("auth.jwt.on_error: %q is not deny or ignore", c.OnError))
	}
	if c.Timeout <= 0 {
		errs = append(errs, errors.New("auth.jwt.timeout: must be positive"))
	}
	for name := range c.VerifyClaims {
		if name == "" {
			errs = append(errs, errors.New("auth.jwt.verify_claims: empty claim name"))
		}
	}
	return errors.Join(errs...)
}

// Backend is the JWT link of the authentication chain.
type Backend struct {
	cfg    Config
	static []Key // secret or public key file
	jwks   *JWKS // jwks_url
	claims []verifyClaim
	log    *zap.Logger
	now    func() time.Time
}

type verifyClaim struct{ name, want string }

var _ core.Backend = (*Backend)(nil)

// New builds the backend, reading its key files (and starting the first
// JWKS fetch).
func New(cfg Config, log *zap.Logger) (*Backend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	b := &Backend{cfg: cfg, log: log, now: time.Now}
	switch {
	case cfg.Secret != "":
		k, err := HMACKey([]byte(cfg.Secret))
		if err != nil {
			return nil, fmt.Errorf("auth.jwt.secret: %w", err)
		}
		b.static = []Key{k}
	case cfg.SecretFile != "":
		data, err := os.ReadFile(cfg.SecretFile)
		if err != nil {
			return nil, fmt.Errorf("auth.jwt.secret_file: %w", err)
		}
		data = []byte(strings.TrimSuffix(strings.TrimSuffix(string(data), "\n"), "\r"))
		k, err := HMACKey(data)
		if err != nil {
			return nil, fmt.Errorf("auth.jwt.secret_file %s: %w", cfg.SecretFile, err)
		}
		b.static = []Key{k}
	case cfg.PublicKeyFile != "":
		data, err := os.ReadFile(cfg.PublicKeyFile)
		if err != nil {
			return nil, fmt.Errorf("auth.jwt.public_key_file: %w", err)
		}
		if b.static, err = ParsePEM(data); err != nil {
			return nil, fmt.Errorf("auth.jwt.public_key_file %s: %w", cfg.PublicKeyFile, err)
		}
	case cfg.JWKSURL != "":
		if strings.HasPrefix(cfg.JWKSURL, "http:") {
			log.Warn("auth.jwt.jwks_url is plain http: whoever can change the answer can sign tokens", zap.String("url", cfg.JWKSURL))
		}
		b.jwks = NewJWKS(cfg.JWKSURL, cfg.JWKSRefresh, cfg.JWKSMinInterval, cfg.Timeout, log.Named("jwks"))
	default:
		return nil, errors.New("auth.jwt: no key (secret, secret_file, public_key_file or jwks_url)")
	}
	for name, want := range cfg.VerifyClaims {
		b.claims = append(b.claims, verifyClaim{name, want})
	}
	// A fixed order, so that the refusal a client gets does not vary.
	sort.Slice(b.claims, func(i, j int) bool { return b.claims[i].name < b.claims[j].name })
	return b, nil
}

// JWKS returns the backend's key set (nil unless jwks_url is set).
func (b *Backend) JWKS() *JWKS { return b.jwks }

func deny(reason error, detail error) core.AuthResult {
	return core.AuthResult{Decision: core.Deny, Err: fmt.Errorf("%w: %v", reason, detail)}
}

// Authenticate answers for one client. No token, or something that is not
// a JWT, is ignored (the next backend may know a password). A broken
// token, a signature that does not verify, an expired or not yet valid
// token are bad credentials (MQTT 5 CONNACK 0x86: the client should get a
// new token); a good token whose verify_claims do not match this client,
// or whose acl claim is unusable, is not authorized (0x87). A valid token
// allows, with its expiry, rules and superuser flag as the Grant. An error
// means the key set could not be had.
func (b *Backend) Authenticate(ctx context.Context, c *core.ClientInfo) (core.AuthResult, error) {
	raw := string(c.Password)
	if b.cfg.From == "username" {
		raw = c.Username
	}
	tok, err := Parse(raw)
	if errors.Is(err, ErrNotJWT) {
		return core.AuthResult{Decision: core.Ignore}, nil
	}
	if err != nil {
		return deny(core.ErrBadCredentials, err), nil
	}
	keys := matching(b.static, Header{Alg: tok.Header.Alg})
	if b.jwks != nil {
		if keys, err = b.jwks.Keys(ctx, tok.Header); err != nil {
			return core.AuthResult{}, err
		}
	}
	if len(keys) == 0 {
		return deny(core.ErrBadCredentials, fmt.Errorf("jwt: no key verifies alg %q kid %q", tok.Header.Alg, tok.Header.Kid)), nil
	}
	err = ErrSignature
	for _, k := range keys {
		if err = tok.Verify(k); err == nil {
			break
		}
	}
	if err != nil {
		return deny(core.ErrBadCredentials, err), nil
	}
	until, err := tok.CheckTimes(b.now(), b.cfg.Leeway, b.cfg.RequireExp)
	if err != nil {
		return deny(core.ErrBadCredentials, err), nil
	}
	if len(b.claims) > 0 {
		expand := strings.NewReplacer("${clientid}", c.ClientID, "${username}", c.Username)
		for _, vc := range b.claims {
			want := expand.Replace(vc.want)
			if !claimEquals(tok.Claims[vc.name], want) {
				return deny(core.ErrNotAuthorized, fmt.Errorf("jwt: claim %s is not %q", vc.name, want)), nil
			}
		}
	}
	g := &core.Grant{ExpireAt: until}
	if b.cfg.ACLClaim != "" {
		if v, ok := tok.Claims[b.cfg.ACLClaim]; ok {
			if g.Rules, err = rulesFromClaim(v); err != nil {
				return deny(core.ErrNotAuthorized, fmt.Errorf("jwt: claim %s: %v", b.cfg.ACLClaim, err)), nil
			}
		}
	}
	if b.cfg.SuperuserClaim != "" {
		g.Superuser = tok.Claims[b.cfg.SuperuserClaim] == true
	}
	if sub, ok := tok.Claims["sub"].(string); ok {
		g.Attrs = map[string]string{"sub": sub}
	}
	return core.AuthResult{Decision: core.Allow, Grant: g}, nil
}

// claimEquals compares a claim with the expected text: a string exactly,
// a number or boolean by its JSON spelling, an array (aud) when one of its
// strings is equal.
func claimEquals(v any, want string) bool {
	switch x := v.(type) {
	case string:
		return x == want
	case json.Number:
		return x.String() == want
	case bool:
		return strconv.FormatBool(x) == want
	case []any:
		for _, e := range x {
			if s, ok := e.(string); ok && s == want {
				return true
			}
		}
	}
	return false
}

// maxClaimRules bounds the rules one token may carry (each is checked on
// every publish).
const maxClaimRules = 256

// placeholders turns the ${...} spelling of the client's id and name into
// the %c/%u the access rules expand when they are checked.
var placeholders = strings.NewReplacer("${clientid}", "%c", "${username}", "%u")

// rulesFromClaim reads the acl claim: a list of {permission, action,
// topic} objects as in acl.rules. Topics may hold %c/%u or
// ${clientid}/${username}, replaced by the client's id and name when a
// rule is checked. Anything unexpected refuses the whole claim: ignoring a
// key we do not know (a condition, say) could grant more than the issuer
// meant.
func rulesFromClaim(v any) ([]core.ACLRule, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, errors.New("not a list of rules")
	}
	if len(list) > maxClaimRules {
		return nil, fmt.Errorf("%d rules, at most %d", len(list), maxClaimRules)
	}
	rules := make([]core.ACLRule, 0, len(list))
	for i, item := range list {
		m, ok := item.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("[%d]: not an object", i)
		}
		r := core.ACLRule{Action: "all"}
		hasPermission := false
		for k, val := range m {
			s, ok := val.(string)
			if !ok {
				return nil, fmt.Errorf("[%d].%s: not a string", i, k)
			}
			switch k {
			case "permission":
				switch s {
				case "allow":
					r.Allow = true
				case "deny":
				default:
					return nil, fmt.Errorf("[%d].permission: %q is not allow or deny", i, s)
				}
				hasPermission = true
			case "action":
				if s != "publish" && s != "subscribe" && s != "all" {
					return nil, fmt.Errorf("[%d].action: %q is not publish, subscribe or all", i, s)
				}
				r.Action = s
			case "topic":
				r.Topic = placeholders.Replace(s)
			default:
				return nil, fmt.Errorf("[%d].%s: unknown rule key", i, k)
			}
		}
		if !hasPermission {
			return nil, fmt.Errorf("[%d].permission: missing", i)
		}
		if r.Topic == "" {
			return nil, fmt.Errorf("[%d].topic: missing", i)
		}
		if err := topic.ValidateFilter(strings.NewReplacer("%c", "c", "%u", "u").Replace(r.Topic)); err != nil {
			return nil, fmt.Errorf("[%d].topic: %v", i, err)
		}
		rules = append(rules, r)
	}
	return rules, nil
}
