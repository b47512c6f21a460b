package app

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestHTTPHookConfig(t *testing.T) {
	doc := []byte(`
auth:
  http:
    url: http://127.0.0.1:9/auth
    method: get
    headers: {Authorization: "Bearer x"}
    body:
      clientId: "${clientid}"
      user: "${username}"
    timeout: 2s
    cache_ttl: 30
acl:
  http:
    url: https://hooks.example/acl
    on_error: ignore
`)
	cfg, err := Load(doc, []string{`IOTGW_ACL_HTTP_BODY={"Topic":"${topic}","who":"${clientid}"}`})
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.AuthHTTP
	if a.URL != "http://127.0.0.1:9/auth" || a.Method != "get" || a.Timeout != 2*time.Second || a.CacheTTL != 30*time.Second ||
		a.MaxConcurrency != 32 || a.OnError != "deny" {
		t.Fatalf("auth.http %+v", a)
	}
	// Field names keep their case (the hook's contract); header names do
	// not matter.
	if !reflect.DeepEqual(a.Body, map[string]string{"clientId": "${clientid}", "user": "${username}"}) {
		t.Fatalf("body %v", a.Body)
	}
	if len(a.Headers) != 1 || !strings.EqualFold(firstKey(a.Headers), "authorization") {
		t.Fatalf("headers %v", a.Headers)
	}
	z := cfg.ACLHTTP
	if z.OnError != "ignore" || !reflect.DeepEqual(z.Body, map[string]string{"Topic": "${topic}", "who": "${clientid}"}) {
		t.Fatalf("acl.http %+v", z)
	}
	if names, _ := cfg.chainNames(); !reflect.DeepEqual(names, []string{"http"}) {
		t.Fatalf("chain %v", names)
	}

	for _, tc := range []struct{ doc, want string }{
		{"auth:\n  http:\n    url: http://x/\n    nope: 1\n", "auth.http.nope: unknown configuration key"},
		{"auth:\n  http:\n    url: ftp://x/\n", "auth.http.url"},
		{"acl:\n  http:\n    url: http://x/\n    body: {p: \"${password}\"}\n", "acl.http.body.p: unknown placeholder ${password}"},
		{"acl:\n  http:\n    url: http://x/\n    on_error: allow\n", "acl.http.on_error"},
	} {
		if _, err := Load([]byte(tc.doc), nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.doc, err, tc.want)
		}
	}
}

func firstKey(m map[string]string) string {
	for k := range m {
		return k
	}
	return ""
}
