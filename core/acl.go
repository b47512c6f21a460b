package core

import (
	"errors"
	"fmt"
	"strings"

	"github.com/iotgw/iotgw/core/topic"
)

// ACLRule is one access rule. Topic is a topic filter in which "%c" stands
// for the client id and "%u" for the user name; ClientID and Username,
// when set, restrict the rule to that client or user.
type ACLRule struct {
	Allow    bool
	Action   string // "publish", "subscribe" or "all"
	Topic    string
	ClientID string
	Username string
}

// ACL is an ordered rule list applied to every protocol: the first rule
// that matches decides; Default decides when none does.
type ACL struct {
	Rules        []ACLRule
	DefaultAllow bool
}

var _ Authorizer = (*ACL)(nil)

// Validate reports every malformed rule, joined.
func (a *ACL) Validate() error {
	var errs []error
	for i, r := range a.Rules {
		switch r.Action {
		case "publish", "subscribe", "all":
		default:
			errs = append(errs, fmt.Errorf("acl.rules[%d].action: %q is not publish, subscribe or all", i, r.Action))
		}
		if r.Topic == "" {
			errs = append(errs, fmt.Errorf("acl.rules[%d].topic: missing", i))
		} else if err := topic.ValidateFilter(strings.NewReplacer("%c", "c", "%u", "u").Replace(r.Topic)); err != nil {
			errs = append(errs, fmt.Errorf("acl.rules[%d].topic: %v", i, err))
		}
	}
	return errors.Join(errs...)
}

// Authorize applies the rules. For a publish the topic name must match the
// rule's filter; for a subscribe the client's filter (shared prefix
// removed) is matched as if it were a name, so "+" and "#" in it only match
// the same or broader wildcards in the rule.
func (a *ACL) Authorize(c *ClientInfo, action Action, t string) bool {
	if allow, matched := matchRules(a.Rules, c, action, t); matched {
		return allow
	}
	return a.DefaultAllow
}

// Match applies the rules alone: matched is false when none matches and
// DefaultAllow would decide, so that another authorizer (an HTTP hook)
// can be asked between the rules and the default.
func (a *ACL) Match(c *ClientInfo, action Action, t string) (allow, matched bool) {
	return matchRules(a.Rules, c, action, t)
}

// matchRules finds the first rule of rules that matches; matched is false
// when none does.
func matchRules(rules []ACLRule, c *ClientInfo, action Action, t string) (allow, matched bool) {
	if action == ActionSubscribe {
		if _, inner, shared, err := topic.ParseShared(t); err == nil && shared {
			t = inner
		}
	}
	for i := range rules {
		r := &rules[i]
		if r.Action != "all" && r.Action != action.String() {
			continue
		}
		if r.ClientID != "" && r.ClientID != c.ClientID {
			continue
		}
		if r.Username != "" && r.Username != c.Username {
			continue
		}
		filter := r.Topic
		if strings.Contains(filter, "%") {
			filter = strings.NewReplacer("%c", c.ClientID, "%u", c.Username).Replace(filter)
		}
		if filter == t || topic.Matches(filter, t) {
			return r.Allow, true
		}
	}
	return false, false
}
