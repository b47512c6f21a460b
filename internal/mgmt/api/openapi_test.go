package api_test

import (
	"encoding/json"
	"sort"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/iotgw/iotgw/internal/mgmt"
	"github.com/iotgw/iotgw/internal/mgmt/api"
)

// TestOpenAPIMatchesRoutes: every route registered is in openapi.json,
// and every operation there is a route.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	s, err := mgmt.New(mgmt.Config{Listen: "127.0.0.1:0"}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	api.Register(s, nil, nil)
	routes := map[string]bool{}
	for _, r := range s.Routes() {
		routes[strings.ReplaceAll(r, "...}", "}")] = true
	}
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(api.OpenAPI(), &doc); err != nil || !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi.json: %v %q", err, doc.OpenAPI)
	}
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method := range ops {
			documented[strings.ToUpper(method)+" "+path] = true
		}
	}
	var missing, extra []string
	for r := range routes {
		if !documented[r] {
			missing = append(missing, r)
		}
	}
	for d := range documented {
		if !routes[d] {
			extra = append(extra, d)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 || len(extra) > 0 {
		t.Fatalf("routes not documented: %v; documented, not routes: %v", missing, extra)
	}
}
