package core

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/iotgw/iotgw/core/topic"
)

// ACLRule is one access rule. Topic is a topic filter in which "%c" or
// "${clientid}" stands for the client id, "%u" or "${username}" for the
// user name and "${cert_cn}" for the verified TLS client certificate's
// common name, anywhere (also inside a level: "dev-%c/up"); a rule with a
// placeholder the client has no value for (an anonymous client and "%u")
// does not match. "eq " before the filter matches it literally: "eq t/#"
// is about subscribing to exactly "t/#", not to what "t/#" covers. The
// other fields, when set, restrict the rule.
type ACLRule struct {
	Allow    bool
	Action   string // "publish", "subscribe" or "all"
	Topic    string
	ClientID string
	Username string
	// Protocol ("mqtt", "mqttsn", "coap", "stomp") and Listener ("tcp",
	// "ws", "tls", "wss", "udp", ...) restrict the rule to clients coming
	// that way.
	Protocol string
	Listener string
	// QoS restricts the rule to these QoS levels (of a publish, or the
	// maximum asked by a subscribe); nil: any.
	QoS []byte
	// Retain restricts a publish rule to retained (true) or not retained
	// (false) messages; nil: either.
	Retain *bool
}

// eqPrefix marks a rule's filter as literal.
const eqPrefix = "eq "

// placeholders a rule's topic may hold, and the value each stands for.
var placeholders = []struct {
	name  string
	value func(c *ClientInfo) string
}{
	{"%c", func(c *ClientInfo) string { return c.ClientID }},
	{"${clientid}", func(c *ClientInfo) string { return c.ClientID }},
	{"%u", func(c *ClientInfo) string { return c.Username }},
	{"${username}", func(c *ClientInfo) string { return c.Username }},
	{"${cert_cn}", func(c *ClientInfo) string { return c.CertCN }},
}

// expand replaces a rule filter's placeholders by the client's values;
// ok is false when one of them has no value for this client.
func expand(filter string, c *ClientInfo) (string, bool) {
	if !strings.ContainsAny(filter, "%$") {
		return filter, true
	}
	for _, p := range placeholders {
		if !strings.Contains(filter, p.name) {
			continue
		}
		v := p.value(c)
		if v == "" {
			return "", false
		}
		filter = strings.ReplaceAll(filter, p.name, v)
	}
	return filter, true
}

// ACL is an ordered rule list applied to every protocol: the first rule
// that matches decides; Default decides when none does.
type ACL struct {
	Rules        []ACLRule
	DefaultAllow bool
}

var _ Authorizer = (*ACL)(nil)

// Validate reports every malformed rule, joined.
func (a *ACL) Validate() error { return ValidateRules("acl.rules", a.Rules) }

// ValidateRules reports every malformed rule of a list, naming each by
// key[index] (rules from acl.file are checked the same way).
func ValidateRules(key string, rules []ACLRule) error {
	var errs []error
	probe := &ClientInfo{ClientID: "c", Username: "u", CertCN: "n"}
	for i, r := range rules {
		switch r.Action {
		case "publish", "subscribe", "all":
		default:
			errs = append(errs, fmt.Errorf("%s[%d].action: %q is not publish, subscribe or all", key, i, r.Action))
		}
		for _, q := range r.QoS {
			if q > 2 {
				errs = append(errs, fmt.Errorf("%s[%d].qos: %d is not 0, 1 or 2", key, i, q))
			}
		}
		if r.Retain != nil && r.Action == "subscribe" {
			errs = append(errs, fmt.Errorf("%s[%d].retain: only publish rules have a retain flag", key, i))
		}
		switch r.Protocol {
		case "", ProtoMQTT, ProtoMQTTSN, ProtoCoAP, ProtoSTOMP:
		default:
			errs = append(errs, fmt.Errorf("%s[%d].protocol: %q is not mqtt, mqttsn, coap or stomp", key, i, r.Protocol))
		}
		filter, _ := expand(strings.TrimPrefix(r.Topic, eqPrefix), probe)
		if r.Topic == "" {
			errs = append(errs, fmt.Errorf("%s[%d].topic: missing", key, i))
		} else if err := topic.ValidateFilter(filter); err != nil {
			errs = append(errs, fmt.Errorf("%s[%d].topic: %v", key, i, err))
		}
	}
	return errors.Join(errs...)
}

// Authorize applies the rules. For a publish the topic name must match the
// rule's filter; for a subscribe the client's filter (shared prefix
// removed) is matched as if it were a name, so "+" and "#" in it only match
// the same or broader wildcards in the rule.
func (a *ACL) Authorize(c *ClientInfo, acc Access) bool {
	if r := matchRules(a.Rules, c, acc); r != nil {
		return r.Allow
	}
	return a.DefaultAllow
}

// matchRules returns the first rule of rules that matches, nil when none
// does.
func matchRules(rules []ACLRule, c *ClientInfo, acc Access) *ACLRule {
	t := acc.Topic
	if acc.Action == ActionSubscribe {
		if _, inner, shared, err := topic.ParseShared(t); err == nil && shared {
			t = inner
		}
	}
	for i := range rules {
		r := &rules[i]
		if r.Action != "all" && r.Action != acc.Action.String() {
			continue
		}
		if r.ClientID != "" && r.ClientID != c.ClientID ||
			r.Username != "" && r.Username != c.Username ||
			r.Protocol != "" && r.Protocol != c.Protocol ||
			r.Listener != "" && r.Listener != c.Listener {
			continue
		}
		if r.QoS != nil && !slices.Contains(r.QoS, acc.QoS) {
			continue
		}
		if r.Retain != nil && (acc.Action != ActionPublish || *r.Retain != acc.Retain) {
			continue
		}
		literal := strings.HasPrefix(r.Topic, eqPrefix)
		filter, ok := expand(strings.TrimPrefix(r.Topic, eqPrefix), c)
		if !ok {
			continue
		}
		if filter == t || !literal && topic.Matches(filter, t) {
			return r
		}
	}
	return nil
}

// AccessControl is the gateway's live access rules: the configured
// acl.rules, then the rules of acl.file (replaced on reload without a
// restart), then the hook (acl.http), then acl.default. Refusals are counted ($SYS/broker/acl/...)
// and logged at debug level with the rule that decided.
type AccessControl struct {
	cfg  atomic.Pointer[ACL] // acl.rules and acl.default, replaced by a reload
	file atomic.Pointer[[]ACLRule]
	hook AccessHook // acl.http; set before the broker starts
	log  *zap.Logger

	deniedByRule    atomic.Uint64
	deniedByHook    atomic.Uint64
	deniedByDefault atomic.Uint64
}

var _ Authorizer = (*AccessControl)(nil)

// NewAccessControl makes the live rules from the configured ones.
func NewAccessControl(acl ACL, log *zap.Logger) *AccessControl {
	if log == nil {
		log = zap.NewNop()
	}
	a := &AccessControl{log: log}
	a.cfg.Store(&acl)
	return a
}

// AccessHook is asked about what no rule matched, before acl.default
// (acl.http); decided false leaves it to acl.default.
type AccessHook interface {
	Decide(c *ClientInfo, a Access) (allow, decided bool)
}

// SetHook puts h between the rules and acl.default; call it before the
// broker serves clients.
func (a *AccessControl) SetHook(h AccessHook) { a.hook = h }

// SetConfig replaces acl.rules and acl.default (validated by the caller):
// new checks use them, connected clients included.
func (a *AccessControl) SetConfig(acl ACL) { a.cfg.Store(&acl) }

// SetFileRules replaces the rules of acl.file (validated by the caller).
func (a *AccessControl) SetFileRules(rules []ACLRule) { a.file.Store(&rules) }

// Authorize applies acl.rules, then acl.file's rules, then acl.default.
func (a *AccessControl) Authorize(c *ClientInfo, acc Access) bool {
	cfg := a.cfg.Load()
	r := matchRules(cfg.Rules, c, acc)
	source := "acl.rules"
	if r == nil {
		if fr := a.file.Load(); fr != nil {
			r = matchRules(*fr, c, acc)
			source = "acl.file"
		}
	}
	if r != nil {
		if !r.Allow {
			a.deniedByRule.Add(1)
			if ce := a.log.Check(zap.DebugLevel, "access denied by rule"); ce != nil {
				ce.Write(zap.String("client_id", c.ClientID), zap.String("username", c.Username), zap.Stringer("action", acc.Action),
					zap.String("topic", acc.Topic), zap.String("source", source), zap.String("rule", r.Topic))
			}
		}
		return r.Allow
	}
	if a.hook != nil {
		if allow, decided := a.hook.Decide(c, acc); decided {
			if !allow {
				a.deniedByHook.Add(1)
				if ce := a.log.Check(zap.DebugLevel, "access denied by acl.http"); ce != nil {
					ce.Write(zap.String("client_id", c.ClientID), zap.String("username", c.Username), zap.Stringer("action", acc.Action), zap.String("topic", acc.Topic))
				}
			}
			return allow
		}
	}
	if !cfg.DefaultAllow {
		a.deniedByDefault.Add(1)
		if ce := a.log.Check(zap.DebugLevel, "access denied by acl.default"); ce != nil {
			ce.Write(zap.String("client_id", c.ClientID), zap.String("username", c.Username), zap.Stringer("action", acc.Action), zap.String("topic", acc.Topic))
		}
	}
	return cfg.DefaultAllow
}

// SysSource returns the refusal counters for $SYS:
// $SYS/broker/acl/denied/{rule,hook,default}.
func (a *AccessControl) SysSource() SysSource {
	return func(add func(topic, value string)) {
		add("$SYS/broker/acl/denied/rule", strconv.FormatUint(a.deniedByRule.Load(), 10))
		add("$SYS/broker/acl/denied/hook", strconv.FormatUint(a.deniedByHook.Load(), 10))
		add("$SYS/broker/acl/denied/default", strconv.FormatUint(a.deniedByDefault.Load(), 10))
	}
}
