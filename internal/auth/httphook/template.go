package httphook

import (
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/iotgw/iotgw/core"
)

// segment is a literal run of a template value, or a placeholder.
type segment struct {
	lit string
	ph  string // placeholder name; "" for a literal
}

// value is one compiled template value: parsed once, rendered per request
// without scanning the text again.
type value []segment

// compileValue splits v into literals and ${name} placeholders; an
// unknown placeholder or a "${" without its "}" is an error (a typo would
// otherwise send the text itself to the hook).
func compileValue(v string, k Kind) (value, error) {
	var out value
	known := Placeholders(k)
	for v != "" {
		i := strings.Index(v, "${")
		if i < 0 {
			out = append(out, segment{lit: v})
			break
		}
		if i > 0 {
			out = append(out, segment{lit: v[:i]})
		}
		j := strings.IndexByte(v[i:], '}')
		if j < 0 {
			return nil, fmt.Errorf("%q: unterminated ${", v)
		}
		name := v[i+2 : i+j]
		if !slices.Contains(known, name) {
			return nil, fmt.Errorf("unknown placeholder ${%s} (known: %s)", name, strings.Join(known, ", "))
		}
		out = append(out, segment{ph: name})
		v = v[i+j+1:]
	}
	return out, nil
}

// field is one compiled template entry.
type field struct {
	name string
	val  value
}

// template is a compiled request body, its fields sorted by name so the
// same request always renders to the same bytes (the cache key).
type template []field

func compileTemplate(body map[string]string, k Kind) (template, error) {
	if len(body) == 0 {
		body = DefaultBody(k)
	}
	t := make(template, 0, len(body))
	for name, v := range body {
		val, err := compileValue(v, k)
		if err != nil {
			return nil, fmt.Errorf("body.%s: %w", name, err)
		}
		t = append(t, field{name: name, val: val})
	}
	sort.Slice(t, func(i, j int) bool { return t[i].name < t[j].name })
	return t, nil
}

// vars are the values of the placeholders for one request.
type vars struct {
	c *core.ClientInfo
	a *core.Access // nil for authentication
}

func (v vars) get(name string) string {
	c := v.c
	switch name {
	case "clientid":
		return c.ClientID
	case "username":
		return c.Username
	case "password":
		return string(c.Password)
	case "peerhost":
		if host, _, err := net.SplitHostPort(c.Remote); err == nil {
			return host
		}
		return c.Remote
	case "protocol":
		return c.Protocol
	case "cert_common_name":
		return c.CertCN
	case "listener":
		return c.Listener
	}
	if v.a == nil {
		return ""
	}
	switch name {
	case "topic":
		return v.a.Topic
	case "action":
		return v.a.Action.String()
	case "qos":
		return strconv.Itoa(int(v.a.QoS))
	case "retain":
		return strconv.FormatBool(v.a.Retain)
	}
	return ""
}

// render fills the template: name/value pairs in the template's order.
func (t template) render(v vars) [][2]string {
	out := make([][2]string, len(t))
	var b strings.Builder
	for i, f := range t {
		var s string
		if len(f.val) == 1 {
			s = f.val[0].lit
			if f.val[0].ph != "" {
				s = v.get(f.val[0].ph)
			}
		} else {
			b.Reset()
			for _, seg := range f.val {
				if seg.ph != "" {
					b.WriteString(v.get(seg.ph))
				} else {
					b.WriteString(seg.lit)
				}
			}
			s = b.String()
		}
		out[i] = [2]string{f.name, s}
	}
	return out
}
