package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/iotgw/iotgw/internal/mgmt"
)

// TestAuthRoles: no credentials or wrong ones get 401, a weak role 403,
// per role for a read, a publish and an admin call; Bearer works like
// Basic.
func TestAuthRoles(t *testing.T) {
	g, k := startAPI(t, "")
	none := newClient(t, g, nil)
	if code, _ := none.do("GET", "/api/v1/clients", nil); code != http.StatusUnauthorized {
		t.Fatalf("no credentials: %d", code)
	}
	wrong := newClient(t, g, basic("ops", "not-the-secret"))
	if code, _ := wrong.do("GET", "/api/v1/clients", nil); code != http.StatusUnauthorized {
		t.Fatalf("wrong secret: %d", code)
	}
	if code, _ := newClient(t, g, bearer("nope")).do("GET", "/api/v1/clients", nil); code != http.StatusUnauthorized {
		t.Fatalf("wrong bearer: %d", code)
	}
	pub := map[string]any{"topic": "t/auth", "payload": "x"}
	calls := []struct {
		method, path string
		body         any
		need         mgmt.Role
	}{
		{"GET", "/api/v1/clients", nil, mgmt.RoleViewer},
		{"GET", "/api/v1/listeners", nil, mgmt.RoleViewer},
		{"POST", "/api/v1/publish", pub, mgmt.RolePublisher},
		{"DELETE", "/api/v1/clients/nobody", nil, mgmt.RoleAdmin},
		{"GET", "/api/v1/config", nil, mgmt.RoleAdmin},
		{"POST", "/api/v1/reload", nil, mgmt.RoleAdmin},
	}
	creds := []struct {
		role mgmt.Role
		auth func(*http.Request)
	}{
		{mgmt.RoleViewer, basic("view", k.viewer)},
		{mgmt.RolePublisher, bearer(k.publisher)},
		{mgmt.RoleAdmin, basic("ops", k.admin)},
	}
	for _, c := range calls {
		for _, cr := range creds {
			code, body := newClient(t, g, cr.auth).do(c.method, c.path, c.body)
			if cr.role < c.need {
				if code != http.StatusForbidden {
					t.Errorf("%s %s as %s: %d, want 403: %s", c.method, c.path, cr.role, code, body)
				}
			} else if code == http.StatusForbidden || code == http.StatusUnauthorized {
				t.Errorf("%s %s as %s: %d: %s", c.method, c.path, cr.role, code, body)
			}
		}
	}
	var who map[string]string
	newClient(t, g, bearer(k.admin)).json("GET", "/api/v1/whoami", nil, 200, &who)
	if who["name"] != "ops" || who["role"] != "admin" {
		t.Fatalf("whoami: %v", who)
	}
}

// TestLoginTokenAndCookie: a login gives a token (Bearer) and a cookie;
// a changing call by cookie needs X-Requested-With; logout ends both.
func TestLoginTokenAndCookie(t *testing.T) {
	g, k := startAPI(t, "")
	c := newClient(t, g, nil)
	code, body := c.do("POST", "/api/v1/login", map[string]string{"username": "ops", "password": k.admin})
	if code != 200 {
		t.Fatalf("login: %d %s", code, body)
	}
	var lr struct {
		Token, Role string
	}
	if err := json.Unmarshal(body, &lr); err != nil || lr.Token == "" || lr.Role != "admin" {
		t.Fatalf("login answer %s: %v", body, err)
	}
	if code, _ := newClient(t, g, bearer(lr.Token)).do("GET", "/api/v1/stats", nil); code != 200 {
		t.Fatalf("token as Bearer: %d", code)
	}
	cookie := func(extra bool) func(*http.Request) {
		return func(r *http.Request) {
			r.AddCookie(&http.Cookie{Name: mgmt.CookieName, Value: lr.Token})
			if extra {
				r.Header.Set("X-Requested-With", "iotgw")
			}
		}
	}
	if code, _ := newClient(t, g, cookie(false)).do("GET", "/api/v1/stats", nil); code != 200 {
		t.Fatalf("cookie read: %d", code)
	}
	pub := map[string]any{"topic": "t/cookie", "payload": "x"}
	if code, _ := newClient(t, g, cookie(false)).do("POST", "/api/v1/publish", pub); code != http.StatusForbidden {
		t.Fatalf("cookie publish without X-Requested-With: %d", code)
	}
	if code, _ := newClient(t, g, cookie(true)).do("POST", "/api/v1/publish", pub); code != http.StatusAccepted {
		t.Fatalf("cookie publish with X-Requested-With: %d", code)
	}
	if code, _ := newClient(t, g, bearer(lr.Token)).do("POST", "/api/v1/logout", nil); code != http.StatusNoContent {
		t.Fatalf("logout: %d", code)
	}
	if code, _ := newClient(t, g, cookie(false)).do("GET", "/api/v1/stats", nil); code != http.StatusUnauthorized {
		t.Fatalf("cookie after logout: %d", code)
	}
	if code, _ := c.do("POST", "/api/v1/login", map[string]string{"username": "ops", "password": "bad"}); code != http.StatusUnauthorized {
		t.Fatalf("bad login: %d", code)
	}
}

// TestFailedLoginsThrottled: after http.auth_failures failures an address
// gets 429 with Retry-After, even with good credentials, until the window
// passes.
func TestFailedLoginsThrottled(t *testing.T) {
	g, k := startAPI(t, "  auth_failures: 3\n  auth_failure_window: 1h\n")
	wrong := newClient(t, g, basic("ops", "bad"))
	for i := 0; i < 3; i++ {
		if code, _ := wrong.do("GET", "/api/v1/clients", nil); code != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d", i, code)
		}
	}
	req, _ := http.NewRequest("GET", g.HTTPURL()+"/api/v1/clients", nil)
	req.SetBasicAuth("ops", k.admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("after 3 failures: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// The OpenAPI document needs no credentials.
	if code, body := newClient(t, g, nil).do("GET", "/api/v1/openapi.json", nil); code != 200 || !strings.Contains(string(body), `"openapi"`) {
		t.Fatalf("openapi.json: %d", code)
	}
}

// TestNoKeysNoAccess: with no keys file every call is refused.
func TestNoKeysNoAccess(t *testing.T) {
	g := testutilStart(t, "http:\n  listen: 127.0.0.1:0\n")
	if code, _ := newClient(t, g, basic("admin", "public")).do("GET", "/api/v1/clients", nil); code != http.StatusUnauthorized {
		t.Fatalf("no keys: %d", code)
	}
}
