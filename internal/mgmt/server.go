package mgmt

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/iotgw/iotgw/internal/ratelimit"
)

// Config is the management listener's configuration (the http section).
type Config struct {
	// Listen is host:port ("" : off).
	Listen string
	// TLS, when set, serves HTTPS.
	TLS *tls.Config
	// KeysFile is the API keys file (http.api_keys_file; "" : no keys).
	KeysFile string
	// AdminUsers may log in with their password-file password, with role
	// admin, checked by Password.
	AdminUsers []string
	Password   PasswordCheck
	// TokenTTL is how long a login token (and its cookie) lasts.
	TokenTTL time.Duration
	// AuthFailures failed authentications from one address within
	// AuthFailureWindow make it wait out the rest of the window (429);
	// 0: no limit.
	AuthFailures      int
	AuthFailureWindow time.Duration
	// MaxBody bounds a request body (413 beyond it).
	MaxBody int64
}

// Server is the management HTTP listener.
type Server struct {
	cfg  Config
	log  *zap.Logger
	auth *auth
	mux  *http.ServeMux
	srv  *http.Server
	ln   net.Listener
	done chan struct{}

	rmu    sync.Mutex
	routes []string // "GET /api/v1/clients", for the OpenAPI check
}

// New returns a server with its keys file read (an error names it). The
// login endpoints are registered; add the API with Handle and other
// handlers with Mount, then Start.
func New(cfg Config, log *zap.Logger) (*Server, error) {
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = time.Hour
	}
	if cfg.AuthFailureWindow <= 0 {
		cfg.AuthFailureWindow = time.Minute
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 1 << 20
	}
	s := &Server{cfg: cfg, log: log, auth: newAuth(&cfg), mux: http.NewServeMux(), done: make(chan struct{})}
	keys, err := LoadKeys(cfg.KeysFile)
	if err != nil {
		return nil, err
	}
	s.auth.keys.Store(keys)
	if keys.Len() == 0 && len(cfg.AdminUsers) == 0 {
		log.Warn("management API has no credentials: every call is refused (401); add a key with `iotgw apikey add NAME ROLE` and set http.api_keys_file",
			zap.String("http.listen", cfg.Listen))
	}
	s.Handle("POST /api/v1/login", RoleNone, s.handleLogin)
	s.Handle("POST /api/v1/logout", RoleNone, s.handleLogout)
	s.Handle("GET /api/v1/whoami", RoleViewer, func(w http.ResponseWriter, r *http.Request) {
		id := IdentityFrom(r.Context())
		WriteJSON(w, http.StatusOK, map[string]string{"name": id.Name, "role": id.Role.String()})
	})
	return s, nil
}

// LoadKeys reads the keys file at path (no keys for ""), without
// applying it: a reload checks every file before it changes anything.
func LoadKeys(path string) (*Keys, error) {
	if path == "" {
		return &Keys{}, nil
	}
	ks, err := ReadKeys(path)
	if err != nil {
		return nil, fmt.Errorf("http.api_keys_file: %w", err)
	}
	return ks, nil
}

// SetKeys puts keys in use; login tokens of keys that are gone or whose
// role changed end.
func (s *Server) SetKeys(ks *Keys) {
	s.auth.keys.Store(ks)
	s.auth.dropTokensOf(func(id Identity) bool {
		if strings.HasPrefix(id.Name, "user:") {
			return (*s.auth.adminUsers.Load())[strings.TrimPrefix(id.Name, "user:")]
		}
		k := ks.byName[id.Name]
		return k != nil && k.Role == id.Role
	})
}

// SetAdminUsers replaces http.admin_users (a reload).
func (s *Server) SetAdminUsers(users []string) { s.auth.setAdminUsers(users) }

// KeyCount returns the number of API keys in use.
func (s *Server) KeyCount() int { return s.auth.keys.Load().Len() }

type ctxKey struct{}

// IdentityFrom returns who made a request (inside a handler).
func IdentityFrom(ctx context.Context) Identity {
	id, _ := ctx.Value(ctxKey{}).(Identity)
	return id
}

// Handle registers an API handler for a method and path pattern
// (net/http's "GET /api/v1/clients/{id}") that needs role (RoleNone: no
// credentials).
func (s *Server) Handle(pattern string, role Role, h http.HandlerFunc) {
	s.rmu.Lock()
	s.routes = append(s.routes, pattern)
	s.rmu.Unlock()
	s.mux.Handle(pattern, s.guard(role, h))
}

// Mount serves h at path (a net/http pattern such as "/metrics" or
// "GET /healthz"), at any time, also after Start. With auth, a viewer key
// is needed; without, anyone who reaches the listener may call it (health
// checks of a load balancer).
func (s *Server) Mount(path string, h http.Handler, auth bool) {
	if !auth {
		s.mux.Handle(path, h)
		return
	}
	s.mux.Handle(path, s.guard(RoleViewer, h.ServeHTTP))
}

// Routes returns the patterns registered with Handle, sorted.
func (s *Server) Routes() []string {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	out := append([]string(nil), s.routes...)
	sort.Strings(out)
	return out
}

// statusWriter records the status for the audit log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush passes through, for streamed responses.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func mutating(method string) bool {
	return method != http.MethodGet && method != http.MethodHead && method != http.MethodOptions
}

// guard authenticates and authorizes a request, bounds its body, and
// logs it when it changes something.
func (s *Server) guard(role Role, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		addr, _ := ratelimit.ParseAddr(r.RemoteAddr)
		r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBody)
		if role != RoleNone {
			if wait := s.auth.throttled(addr); wait > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
				WriteError(w, http.StatusTooManyRequests, "too many failed logins from this address; retry later")
				return
			}
			id, present, ok := s.auth.identify(r)
			if !ok {
				if present {
					s.auth.failed(addr)
				}
				// No Basic challenge for the dashboard's own calls, or the
				// browser would pop up its login box.
				if r.Header.Get("X-Requested-With") == "" {
					w.Header().Set("WWW-Authenticate", `Basic realm="iotgw", charset="UTF-8"`)
				}
				WriteError(w, http.StatusUnauthorized, "credentials missing or wrong (an API key as Basic name:secret or Bearer secret, or a login token)")
				return
			}
			if id.Role < role {
				WriteError(w, http.StatusForbidden, fmt.Sprintf("key %q has role %s; this call needs %s", id.Name, id.Role, role))
				return
			}
			if mutating(r.Method) && viaCookie(r) && r.Header.Get("X-Requested-With") == "" {
				WriteError(w, http.StatusForbidden, "a call authenticated by the session cookie must carry an X-Requested-With header")
				return
			}
			r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, id))
		}
		if !mutating(r.Method) {
			h(w, r)
			return
		}
		sw := &statusWriter{ResponseWriter: w}
		h(sw, r)
		// Every change is logged with who made it (the audit trail).
		s.log.Info("management call", zap.String("key", IdentityFrom(r.Context()).Name), zap.String("method", r.Method),
			zap.String("path", r.URL.RequestURI()), zap.Int("status", sw.status), zap.String("remote", r.RemoteAddr))
	})
}

// Start binds the listener and serves in the background.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("http.listen: %w", err)
	}
	if s.cfg.TLS != nil {
		ln = tls.NewListener(ln, s.cfg.TLS)
	}
	s.ln = ln
	s.srv = &http.Server{Handler: s.mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: zap.NewStdLog(s.log.Named("http"))}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Warn("management listener stopped", zap.Error(err))
		}
	}()
	s.log.Info("management API on", zap.String("addr", ln.Addr().String()), zap.Bool("tls", s.cfg.TLS != nil),
		zap.Int("api_keys", s.KeyCount()))
	return nil
}

// Addr returns the listener's address (nil before Start).
func (s *Server) Addr() net.Addr {
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Close stops the listener, letting calls in progress finish until ctx
// ends.
func (s *Server) Close(ctx context.Context) error {
	if s.srv == nil {
		return nil
	}
	err := s.srv.Shutdown(ctx)
	if err != nil {
		_ = s.srv.Close()
	}
	<-s.done
	return err
}

// loginRequest is the JSON form of a login (the Basic header works too).
type loginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	addr, _ := ratelimit.ParseAddr(r.RemoteAddr)
	if wait := s.auth.throttled(addr); wait > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
		WriteError(w, http.StatusTooManyRequests, "too many failed logins from this address; retry later")
		return
	}
	user, pass, ok := r.BasicAuth()
	if !ok {
		var req loginRequest
		if err := DecodeJSON(w, r, &req); err != nil {
			return
		}
		user, pass = req.Username, req.Password
	}
	id, ok := s.auth.checkPassword(r.Context(), user, pass)
	if !ok {
		s.auth.failed(addr)
		WriteError(w, http.StatusUnauthorized, "wrong name or secret")
		return
	}
	tok, exp := s.auth.login(id)
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: tok, Path: "/", Expires: exp, HttpOnly: true,
		Secure: s.cfg.TLS != nil, SameSite: http.SameSiteStrictMode})
	s.log.Info("management login", zap.String("key", id.Name), zap.String("remote", r.RemoteAddr))
	WriteJSON(w, http.StatusOK, map[string]any{"token": tok, "name": id.Name, "role": id.Role.String(), "expires": exp.UTC()})
}

func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(CookieName); err == nil {
		s.auth.logout(c.Value)
	}
	if scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		s.auth.logout(strings.TrimSpace(tok))
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		Secure: s.cfg.TLS != nil, SameSite: http.SameSiteStrictMode})
	w.WriteHeader(http.StatusNoContent)
}

// WriteJSON writes v as a JSON response with status code.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// Error is the body of every error response.
type Error struct {
	Error string `json:"error"`
}

// WriteError writes an error response.
func WriteError(w http.ResponseWriter, code int, msg string) {
	WriteJSON(w, code, Error{Error: msg})
}

// DecodeJSON reads a request's JSON body into v; on failure it writes
// the error response (413 for a body over http.max_body, 400 otherwise)
// and returns the error.
func DecodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("more than one JSON value")
	}
	if err == nil {
		return nil
	}
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		WriteError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body over %d bytes (http.max_body)", tooBig.Limit))
		return err
	}
	WriteError(w, http.StatusBadRequest, "bad JSON: "+err.Error())
	return err
}
