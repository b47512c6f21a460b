package httphook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/iotgw/iotgw/core"
	"github.com/iotgw/iotgw/core/topic"
)

// answer is a hook's decision, as cached.
type answer struct {
	decision core.Decision
	// grant is what an allowing authentication hook gave the client
	// (nil: nothing beyond entry).
	grant *core.Grant
}

// reply is EMQX's reply object (emqx_authn_http.erl); unknown fields
// (clientid_override, zone) are ignored.
type reply struct {
	Result      *string           `json:"result"`
	IsSuperuser json.RawMessage   `json:"is_superuser"`
	ExpireAt    json.RawMessage   `json:"expire_at"`
	ACL         json.RawMessage   `json:"acl"`
	ClientAttrs map[string]string `json:"client_attrs"`
}

// latestExpireAt tells seconds from milliseconds: 5138 in seconds, 1973
// in milliseconds. EMQX refuses a millisecond expire_at as well.
const latestExpireAt = 1e11

// parseReply turns a reply into an answer: 204 allows; 200 carries a JSON
// object whose missing result means ignore (EMQX); any other status or a
// body that is not such an object is an error (a failure of the hook).
func parseReply(status int, body []byte, k Kind, now time.Time) (answer, error) {
	switch status {
	case 204:
		return answer{decision: core.Allow}, nil
	case 200:
	default:
		return answer{}, fmt.Errorf("http hook: status %d", status)
	}
	var r reply
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	if err := d.Decode(&r); err != nil {
		return answer{}, fmt.Errorf("http hook: reply is not a JSON object: %w", err)
	}
	var a answer
	result := "ignore"
	if r.Result != nil {
		result = *r.Result
	}
	switch result {
	case "allow":
		a.decision = core.Allow
	case "deny":
		return answer{decision: core.Deny}, nil
	case "ignore":
		return answer{decision: core.Ignore}, nil
	default:
		return answer{}, fmt.Errorf("http hook: result %q is not allow, deny or ignore", result)
	}
	if k == ACLKind {
		return a, nil
	}
	var g core.Grant
	super, err := boolField(r.IsSuperuser)
	if err != nil {
		return answer{}, fmt.Errorf("http hook: is_superuser: %w", err)
	}
	g.Superuser = super
	if len(r.ExpireAt) > 0 && string(r.ExpireAt) != "null" {
		var n json.Number
		if err := json.Unmarshal(r.ExpireAt, &n); err != nil {
			return answer{}, fmt.Errorf("http hook: expire_at is not a number of seconds: %s", r.ExpireAt)
		}
		secs, err := n.Float64()
		if err != nil || secs <= 0 || secs >= latestExpireAt {
			return answer{}, fmt.Errorf("http hook: expire_at %s is not a Unix time in seconds", n)
		}
		g.ExpireAt = time.Unix(int64(secs), 0)
		if !g.ExpireAt.After(now) {
			return answer{}, fmt.Errorf("http hook: expire_at %s has passed", n)
		}
	}
	if g.Rules, err = parseRules(r.ACL); err != nil {
		return answer{}, fmt.Errorf("http hook: acl: %w", err)
	}
	if len(r.ClientAttrs) > 0 {
		g.Attrs = r.ClientAttrs
	}
	if g.Superuser || !g.ExpireAt.IsZero() || len(g.Rules) > 0 || len(g.Attrs) > 0 {
		a.grant = &g
	}
	return a, nil
}

// boolField reads a JSON boolean, also spelled as a string ("true").
func boolField(raw json.RawMessage) (bool, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return false, nil
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return false, err
	}
	switch x := v.(type) {
	case bool:
		return x, nil
	case string:
		switch x {
		case "true":
			return true, nil
		case "false", "":
			return false, nil
		}
	}
	return false, fmt.Errorf("%s is not a boolean", raw)
}

// ruleJSON is one rule of EMQX's acl array (the JWT acl format).
type ruleJSON struct {
	Permission string          `json:"permission"`
	Action     string          `json:"action"`
	Topic      string          `json:"topic"`
	Topics     []string        `json:"topics"`
	QoS        json.RawMessage `json:"qos"`
	Retain     json.RawMessage `json:"retain"`
}

// parseRules maps the acl of a reply onto core rules. Two forms:
//
//   - the array [{permission, action, topic | topics, qos, retain}]: rules
//     in order, falling through to the configured ones when none matches;
//   - the object {"pub": [...], "sub": [...], "all": [...]}: topics
//     allowed, anything else denied (EMQX's meaning of that form).
//
// What core.ACLRule cannot hold is mapped so the client never gets more
// than the hook meant: an allow rule with a qos or retain condition, or an
// "eq" topic with wildcards, is dropped; a deny rule with them applies
// without the condition (to every qos, to the topic as a filter).
// ${clientid} and ${username} in topics become the core's %c and %u.
func parseRules(raw json.RawMessage) ([]core.ACLRule, error) {
	s := bytes.TrimSpace(raw)
	if len(s) == 0 || string(s) == "null" {
		return nil, nil
	}
	if s[0] == '{' {
		var obj map[string][]string
		if err := json.Unmarshal(s, &obj); err != nil {
			return nil, err
		}
		var rules []core.ACLRule
		for _, kv := range [][2]string{{"pub", "publish"}, {"sub", "subscribe"}, {"all", "all"}} {
			for _, t := range obj[kv[0]] {
				r, keep, err := mapRule(true, kv[1], t, false)
				if err != nil {
					return nil, err
				}
				if keep {
					rules = append(rules, r)
				}
			}
		}
		return append(rules, core.ACLRule{Allow: false, Action: "all", Topic: "#"}), nil
	}
	var list []ruleJSON
	if err := json.Unmarshal(s, &list); err != nil {
		return nil, err
	}
	var rules []core.ACLRule
	for i, rj := range list {
		var allow bool
		switch rj.Permission {
		case "allow":
			allow = true
		case "deny":
		default:
			return nil, fmt.Errorf("[%d].permission: %q is not allow or deny", i, rj.Permission)
		}
		action := rj.Action
		switch action {
		case "", "all", "pubsub":
			action = "all"
		case "pub":
			action = "publish"
		case "sub":
			action = "subscribe"
		case "publish", "subscribe":
		default:
			return nil, fmt.Errorf("[%d].action: %q is not publish, subscribe or all", i, rj.Action)
		}
		conditional := hasCondition(rj.QoS, rj.Retain)
		topics := rj.Topics
		if rj.Topic != "" {
			topics = append([]string{rj.Topic}, topics...)
		}
		if len(topics) == 0 {
			return nil, fmt.Errorf("[%d]: no topic", i)
		}
		for _, t := range topics {
			r, keep, err := mapRule(allow, action, t, conditional)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			if keep {
				rules = append(rules, r)
			}
		}
	}
	return rules, nil
}

// hasCondition reports whether qos or retain restrict a rule: qos not
// covering 0, 1 and 2, retain other than "all".
func hasCondition(qos, retain json.RawMessage) bool {
	if q := bytes.TrimSpace(qos); len(q) > 0 && string(q) != "null" {
		var list []int
		if err := json.Unmarshal(q, &list); err != nil {
			return true // a single qos
		}
		seen := map[int]bool{}
		for _, n := range list {
			seen[n] = true
		}
		if !seen[0] || !seen[1] || !seen[2] {
			return true
		}
	}
	if r := bytes.TrimSpace(retain); len(r) > 0 && string(r) != "null" && string(r) != `"all"` {
		return true
	}
	return false
}

var placeholderToCore = strings.NewReplacer("${clientid}", "%c", "${username}", "%u")

// mapRule makes one core rule; keep is false for a rule dropped (see
// parseRules).
func mapRule(allow bool, action, t string, conditional bool) (core.ACLRule, bool, error) {
	eq := false
	if rest, ok := strings.CutPrefix(t, "eq "); ok {
		eq, t = true, rest
	}
	t = placeholderToCore.Replace(t)
	if strings.Contains(t, "${") {
		return core.ACLRule{}, false, fmt.Errorf("topic %q: only ${clientid} and ${username} are known", t)
	}
	if err := topic.ValidateFilter(strings.NewReplacer("%c", "c", "%u", "u").Replace(t)); err != nil {
		return core.ACLRule{}, false, fmt.Errorf("topic %q: %v", t, err)
	}
	wild := strings.ContainsAny(t, "+#")
	if allow && (conditional || (eq && wild)) {
		return core.ACLRule{}, false, nil
	}
	return core.ACLRule{Allow: allow, Action: action, Topic: t}, true, nil
}
