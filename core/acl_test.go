package core

import (
	"strings"
	"testing"
)

func TestACLFirstMatchWins(t *testing.T) {
	a := &ACL{DefaultAllow: true, Rules: []ACLRule{
		{Allow: false, Action: "subscribe", Topic: "test/nosubscribe"},
		{Allow: true, Action: "all", Topic: "users/%u/#", Username: "bob"},
		{Allow: false, Action: "all", Topic: "users/#"},
		{Allow: true, Action: "publish", Topic: "devices/%c/up"},
		{Allow: false, Action: "publish", Topic: "devices/#"},
	}}
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	bob := &ClientInfo{ClientID: "b1", Username: "bob"}
	eve := &ClientInfo{ClientID: "e1", Username: "eve"}
	cases := []struct {
		c      *ClientInfo
		action Action
		topic  string
		want   bool
	}{
		{eve, ActionSubscribe, "test/nosubscribe", false},
		{eve, ActionSubscribe, "$share/g/test/nosubscribe", false},
		{eve, ActionPublish, "test/nosubscribe", true},
		{eve, ActionSubscribe, "test/+", true},
		{bob, ActionSubscribe, "users/bob/#", true},
		{bob, ActionPublish, "users/bob/x", true},
		{eve, ActionPublish, "users/bob/x", false},
		{eve, ActionSubscribe, "users/eve/x", false},
		{bob, ActionPublish, "devices/b1/up", true},
		{bob, ActionPublish, "devices/e1/up", false},
		{bob, ActionPublish, "other", true},
	}
	for _, tc := range cases {
		if got := a.Authorize(tc.c, Access{Action: tc.action, Topic: tc.topic}); got != tc.want {
			t.Errorf("%s %s %s: got %v want %v", tc.c.Username, tc.action, tc.topic, got, tc.want)
		}
	}
	if (&ACL{Rules: []ACLRule{{Action: "read", Topic: "a/#/b"}}}).Validate() == nil {
		t.Error("bad rule accepted")
	}
}

func TestACLRuleConditions(t *testing.T) {
	yes, no := true, false
	a := &ACL{DefaultAllow: false, Rules: []ACLRule{
		{Allow: true, Action: "publish", Topic: "dev-%c/up"},                        // a placeholder inside a level
		{Allow: true, Action: "subscribe", Topic: "eq fleet/#"},                     // exactly that filter
		{Allow: true, Action: "publish", Topic: "q/#", QoS: []byte{0, 1}},           // not QoS 2
		{Allow: false, Action: "publish", Topic: "r/#", Retain: &yes},               // no retained messages
		{Allow: true, Action: "publish", Topic: "r/#", Retain: &no},                 //
		{Allow: true, Action: "all", Topic: "stomp/#", Protocol: ProtoSTOMP},        // one protocol
		{Allow: true, Action: "all", Topic: "secure/#", Listener: "tls"},            // one listener
		{Allow: true, Action: "all", Topic: "users/${username}/#"},                  // anonymous clients never match
		{Allow: true, Action: "subscribe", Topic: "certs/${cert_cn}/#"},             // the TLS certificate's CN
		{Allow: true, Action: "publish", Topic: "ids/${clientid}", ClientID: "c1"},  //
		{Allow: false, Action: "all", Topic: "#", Username: "never-matches-anyone"}, //
	}}
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	c1 := &ClientInfo{ClientID: "c1", Username: "alice", Protocol: ProtoMQTT, Listener: "tcp"}
	anon := &ClientInfo{ClientID: "c2", Protocol: ProtoMQTT, Listener: "tcp"}
	st := &ClientInfo{ClientID: "s1", Protocol: ProtoSTOMP, Listener: "tls", CertCN: "dev7"}
	pub := func(topic string, qos byte, retain bool) Access {
		return Access{Action: ActionPublish, Topic: topic, QoS: qos, Retain: retain}
	}
	sub := func(filter string) Access { return Access{Action: ActionSubscribe, Topic: filter} }
	for _, tc := range []struct {
		c    *ClientInfo
		acc  Access
		want bool
	}{
		{c1, pub("dev-c1/up", 0, false), true},
		{c1, pub("dev-c2/up", 0, false), false},
		{c1, sub("fleet/#"), true},
		{c1, sub("fleet/a"), false}, // eq: only the literal filter
		{c1, pub("q/x", 1, false), true},
		{c1, pub("q/x", 2, false), false},
		{c1, pub("r/x", 0, true), false},
		{c1, pub("r/x", 0, false), true},
		{st, sub("stomp/x"), true},
		{c1, sub("stomp/x"), false},
		{st, pub("secure/x", 0, false), true},
		{c1, pub("secure/x", 0, false), false},
		{c1, sub("users/alice/#"), true},
		{anon, sub("users//#"), false},
		{st, sub("certs/dev7/#"), true},
		{c1, sub("certs//#"), false},
		{c1, pub("ids/c1", 0, false), true},
	} {
		if got := a.Authorize(tc.c, tc.acc); got != tc.want {
			t.Errorf("%s %+v: got %v, want %v", tc.c.ClientID, tc.acc, got, tc.want)
		}
	}
	bad := &ACL{Rules: []ACLRule{{Action: "subscribe", Topic: "x", Retain: &yes}, {Action: "all", Topic: "x", QoS: []byte{3}}, {Action: "all", Topic: "x", Protocol: "amqp"}}}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "retain") || !strings.Contains(err.Error(), "qos") || !strings.Contains(err.Error(), "protocol") {
		t.Fatalf("validate: %v", err)
	}
}

func TestAccessControlFileRulesAndCounters(t *testing.T) {
	ac := NewAccessControl(ACL{DefaultAllow: false, Rules: []ACLRule{{Allow: false, Action: "all", Topic: "secret/#"}}}, nil)
	c := &ClientInfo{ClientID: "c", Username: "u"}
	if ac.Authorize(c, Access{Action: ActionPublish, Topic: "a/b"}) {
		t.Fatal("allowed before any file rule")
	}
	ac.SetFileRules([]ACLRule{{Allow: true, Action: "all", Topic: "a/#"}, {Allow: true, Action: "all", Topic: "secret/#"}})
	if !ac.Authorize(c, Access{Action: ActionPublish, Topic: "a/b"}) {
		t.Fatal("file rule not applied")
	}
	if ac.Authorize(c, Access{Action: ActionPublish, Topic: "secret/x"}) {
		t.Fatal("acl.rules must come before acl.file")
	}
	m := map[string]string{}
	ac.SysSource()(func(k, v string) { m[k] = v })
	if m["$SYS/broker/acl/denied/rule"] != "1" || m["$SYS/broker/acl/denied/default"] != "1" {
		t.Fatalf("counters %v", m)
	}
}
