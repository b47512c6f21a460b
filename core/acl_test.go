package core

import "testing"

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
		if got := a.Authorize(tc.c, tc.action, tc.topic); got != tc.want {
			t.Errorf("%s %s %s: got %v want %v", tc.c.Username, tc.action, tc.topic, got, tc.want)
		}
	}
	if (&ACL{Rules: []ACLRule{{Action: "read", Topic: "a/#/b"}}}).Validate() == nil {
		t.Error("bad rule accepted")
	}
}
