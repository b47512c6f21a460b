package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iotgw/iotgw/internal/mgmt"
	"github.com/iotgw/iotgw/internal/testutil"
)

// keys are the API keys of a test gateway, one per role.
type keys struct {
	file                     string
	viewer, publisher, admin string // secrets
}

// makeKeys writes a keys file with a viewer, a publisher and an admin
// key, as `iotgw apikey add` does.
func makeKeys(t *testing.T) keys {
	t.Helper()
	k := keys{file: filepath.Join(t.TempDir(), "apikeys")}
	for _, x := range []struct {
		name string
		role mgmt.Role
		dst  *string
	}{{"view", mgmt.RoleViewer, &k.viewer}, {"pub", mgmt.RolePublisher, &k.publisher}, {"ops", mgmt.RoleAdmin, &k.admin}} {
		s, err := mgmt.AddKey(k.file, x.name, x.role)
		if err != nil {
			t.Fatal(err)
		}
		*x.dst = s
	}
	return k
}

// startAPI starts a gateway with the keys and extra YAML; the http
// section is added by the caller's YAML or this one.
func startAPI(t *testing.T, extra string) (*testutil.Gateway, keys) {
	t.Helper()
	k := makeKeys(t)
	g := testutil.Start(t, "http:\n  listen: 127.0.0.1:0\n  api_keys_file: "+k.file+"\n"+extra)
	return g, k
}

// apiClient calls the API as one credential.
type apiClient struct {
	t    testing.TB
	base string
	// auth sets the request's credentials (nil: none).
	auth func(*http.Request)
	hc   *http.Client
}

func basic(name, secret string) func(*http.Request) {
	return func(r *http.Request) { r.SetBasicAuth(name, secret) }
}

func bearer(tok string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
}

func newClient(t testing.TB, g *testutil.Gateway, auth func(*http.Request)) *apiClient {
	return &apiClient{t: t, base: g.HTTPURL(), auth: auth, hc: &http.Client{Timeout: 30 * time.Second}}
}

// do calls method path with body (a string is sent as is, anything else
// as JSON; nil: none) and returns the status and the body.
func (c *apiClient) do(method, path string, body any) (int, []byte) {
	c.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.auth != nil {
		c.auth(req)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp.StatusCode, data
}

// json calls and decodes the answer into out, failing unless the status
// is want.
func (c *apiClient) json(method, path string, body any, want int, out any) {
	c.t.Helper()
	code, data := c.do(method, path, body)
	if code != want {
		c.t.Fatalf("%s %s: status %d, want %d: %s", method, path, code, want, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			c.t.Fatalf("%s %s: %v: %s", method, path, err, data)
		}
	}
}

var testutilStart = testutil.Start
