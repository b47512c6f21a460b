package httphook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/iotgw/iotgw/core"
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
// qos and retain conditions, "eq " topics and the placeholders
// ${clientid}, ${username} and ${cert_cn} map onto core.ACLRule as they
// are.
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
				r, err := mapRule(true, kv[1], t)
				if err != nil {
					return nil, err
				}
				rules = append(rules, r)
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
		qos, retain, err := conditions(rj.QoS, rj.Retain)
		if err != nil {
			return nil, fmt.Errorf("[%d]: %w", i, err)
		}
		topics := rj.Topics
		if rj.Topic != "" {
			topics = append([]string{rj.Topic}, topics...)
		}
		if len(topics) == 0 {
			return nil, fmt.Errorf("[%d]: no topic", i)
		}
		for _, t := range topics {
			r, err := mapRule(allow, action, t)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			r.QoS, r.Retain = qos, retain
			if retain != nil && action == "subscribe" {
				r.Retain = nil // a subscribe has no retain flag to restrict
			}
			rules = append(rules, r)
		}
	}
	return rules, nil
}

// conditions parses a rule's qos (one or a list) and retain (true,
// false, 1, 0 or "all") into the core's conditions; nil means any.
func conditions(qos, retain json.RawMessage) ([]byte, *bool, error) {
	var qs []byte
	if q := bytes.TrimSpace(qos); len(q) > 0 && string(q) != "null" {
		var list []int
		if err := json.Unmarshal(q, &list); err != nil {
			var one int
			if err := json.Unmarshal(q, &one); err != nil {
				return nil, nil, fmt.Errorf("qos %s: want a QoS or a list of them", q)
			}
			list = []int{one}
		}
		for _, n := range list {
			if n < 0 || n > 2 {
				return nil, nil, fmt.Errorf("qos %d is not 0, 1 or 2", n)
			}
			qs = append(qs, byte(n))
		}
	}
	var rp *bool
	switch r := string(bytes.TrimSpace(retain)); r {
	case "", "null", `"all"`:
	case "true", "1":
		t := true
		rp = &t
	case "false", "0":
		f := false
		rp = &f
	default:
		return nil, nil, fmt.Errorf("retain %s: want true, false or \"all\"", r)
	}
	return qs, rp, nil
}

// mapRule makes one core rule: the core takes "eq " and ${clientid},
// ${username}, ${cert_cn} as they are.
func mapRule(allow bool, action, t string) (core.ACLRule, error) {
	r := core.ACLRule{Allow: allow, Action: action, Topic: t}
	if err := core.ValidateRules("acl", []core.ACLRule{r}); err != nil {
		return core.ACLRule{}, err
	}
	return r, nil
}
