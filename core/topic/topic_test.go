package topic

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestValidateName(t *testing.T) {
	long := strings.Repeat("a", MaxLength)
	cases := []struct {
		name string
		ok   bool
	}{
		{"a", true},
		{"/", true},
		{"//", true},
		{"a/b/c", true},
		{"/a", true},
		{"a/", true},
		{"$SYS/broker/uptime", true},
		{"a b", true},
		{"ü/日本/\U0001F600", true},
		{"\u00a0", true},
		{"\uffff", true}, // a non-character: SHOULD NOT, not MUST NOT
		{long, true},

		{"", false},
		{long + "a", false},
		{"+", false},
		{"#", false},
		{"a/+", false},
		{"a/#", false},
		{"a+b", false},
		{"a#b", false},
		{"a\x00b", false},
		{"\x00", false},
		{"\xff", false},
		{"a/\xc0\xaf", false},   // overlong '/'
		{"\xed\xa0\x80", false}, // encoded surrogate U+D800
		{"\xe6\x97", false},     // truncated sequence
		{"\x80", false},         // lone continuation byte
	}
	for _, c := range cases {
		err := ValidateName(c.name)
		if (err == nil) != c.ok {
			t.Errorf("ValidateName(%.20q) = %v, want ok=%v", c.name, err, c.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidTopic) {
			t.Errorf("ValidateName(%.20q) error %v does not wrap ErrInvalidTopic", c.name, err)
		}
	}
}

func TestValidateFilter(t *testing.T) {
	long := strings.Repeat("a/", MaxLength/2) + "#"
	cases := []struct {
		filter string
		ok     bool
	}{
		{"a", true},
		{"#", true},
		{"+", true},
		{"a/#", true},
		{"a/+", true},
		{"+/+", true},
		{"+/#", true},
		{"/#", true},
		{"/+", true},
		{"+/", true},
		{"a//+", true},
		{"//", true},
		{"a/+/b/#", true},
		{"$SYS/#", true},
		{"$share/g/a", true}, // syntactically a plain filter
		{"ü/+/日本", true},
		{long, true},

		{"", false},
		{long + "/a", false},
		{"a#", false},
		{"#a", false},
		{"a/#/b", false},
		{"#/a", false},
		{"a/b#", false},
		{"a/#/", false},
		{"##", false},
		{"a+", false},
		{"+a", false},
		{"a/+b", false},
		{"a/b+/c", false},
		{"++", false},
		{"a/\x00", false},
		{"\xff/#", false},
		{"\xed\xbf\xbf", false}, // encoded surrogate U+DFFF
	}
	for _, c := range cases {
		err := ValidateFilter(c.filter)
		if (err == nil) != c.ok {
			t.Errorf("ValidateFilter(%.20q) = %v, want ok=%v", c.filter, err, c.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidFilter) {
			t.Errorf("ValidateFilter(%.20q) error %v does not wrap ErrInvalidFilter", c.filter, err)
		}
	}
}

func TestLevelsAndHasWildcard(t *testing.T) {
	levels := map[string]int{"a": 1, "a/b": 2, "/": 2, "//": 3, "/a/": 3, "a/b/c/#": 4}
	for s, want := range levels {
		if got := Levels(s); got != want {
			t.Errorf("Levels(%q) = %d, want %d", s, got, want)
		}
	}
	wild := map[string]bool{"a": false, "a/b": false, "+": true, "a/#": true, "$share/g/a": false}
	for s, want := range wild {
		if got := HasWildcard(s); got != want {
			t.Errorf("HasWildcard(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestIsSysAndIsDollar(t *testing.T) {
	cases := []struct {
		topic       string
		sys, dollar bool
	}{
		{"$SYS", true, true},
		{"$SYS/", true, true},
		{"$SYS/broker/uptime", true, true},
		{"$SYSTEM/x", false, true}, // another $ tree, not the broker's
		{"$sys/x", false, true},    // case sensitive
		{"$share/g/a", false, true},
		{"a/$SYS", false, false},
		{"", false, false},
		{"SYS/x", false, false},
	}
	for _, c := range cases {
		if got := IsSys(c.topic); got != c.sys {
			t.Errorf("IsSys(%q) = %v, want %v", c.topic, got, c.sys)
		}
		if got := IsDollar(c.topic); got != c.dollar {
			t.Errorf("IsDollar(%q) = %v, want %v", c.topic, got, c.dollar)
		}
	}
}

func TestParseShared(t *testing.T) {
	cases := []struct {
		in            string
		group, filter string
		shared        bool
		err           error // nil, ErrInvalidShare, or ErrInvalidFilter (implies share)
	}{
		{"$share/g/a/b", "g", "a/b", true, nil},
		{"$share/g/#", "g", "#", true, nil},
		{"$share/g/+/x", "g", "+/x", true, nil},
		{"$share/g//", "g", "/", true, nil},
		{"$share/g/$SYS/#", "g", "$SYS/#", true, nil},
		{"$share/group-1.x/a", "group-1.x", "a", true, nil},
		{"$queue/a/b", QueueGroup, "a/b", true, nil},
		{"$queue/#", QueueGroup, "#", true, nil},

		{"$share/g/", "", "", true, ErrInvalidShare},
		{"$share//a", "", "", true, ErrInvalidShare},
		{"$share/g", "", "", true, ErrInvalidShare},
		{"$share/", "", "", true, ErrInvalidShare},
		{"$share/g+/a", "", "", true, ErrInvalidShare},
		{"$share/+/a", "", "", true, ErrInvalidShare},
		{"$share/g#/a", "", "", true, ErrInvalidShare},
		{"$share/\xff/a", "", "", true, ErrInvalidShare},
		{"$share/g\x00/a", "", "", true, ErrInvalidShare},
		{"$share/g/a#", "", "", true, ErrInvalidFilter},
		{"$share/g/a/#/b", "", "", true, ErrInvalidFilter},
		{"$share/g/a\x00", "", "", true, ErrInvalidFilter},
		{"$queue/", "", "", true, ErrInvalidShare},
		{"$queue/a+", "", "", true, ErrInvalidFilter},

		{"$share", "", "$share", false, nil},
		{"$queue", "", "$queue", false, nil},
		{"a/b", "", "a/b", false, nil},
		{"$SHARE/g/a", "", "$SHARE/g/a", false, nil},
		{"share/g/a", "", "share/g/a", false, nil},
		{"$sharex/g/a", "", "$sharex/g/a", false, nil},
	}
	for _, c := range cases {
		g, f, shared, err := ParseShared(c.in)
		if g != c.group || f != c.filter || shared != c.shared {
			t.Errorf("ParseShared(%q) = (%q, %q, %v), want (%q, %q, %v)", c.in, g, f, shared, c.group, c.filter, c.shared)
		}
		switch {
		case c.err == nil && err != nil:
			t.Errorf("ParseShared(%q) unexpected error %v", c.in, err)
		case c.err != nil && !errors.Is(err, c.err):
			t.Errorf("ParseShared(%q) error %v, want %v", c.in, err, c.err)
		case c.err != nil && !errors.Is(err, ErrInvalidShare):
			t.Errorf("ParseShared(%q) error %v does not wrap ErrInvalidShare", c.in, err)
		}
	}
}

// matchCases is shared by the Matches and Trie tests.
var matchCases = []struct {
	filter, topic string
	want          bool
}{
	// exact
	{"a/b/c", "a/b/c", true},
	{"a/b/c", "a/b", false},
	{"a/b", "a/b/c", false},
	{"a/b/c/d", "a/b/c", false},
	{"/finance", "/finance", true},
	// '+'
	{"a/+/c", "a/b/c", true},
	{"a/+/c", "a/b/d", false},
	{"a/+", "a/b", true},
	{"a/+", "a/b/c", false},
	{"a/+", "a", false},
	{"+", "a", true},
	{"+", "a/b", false},
	{"+/+", "a/b", true},
	{"sport/tennis/+", "sport/tennis/player1", true},
	{"sport/tennis/+", "sport/tennis/player1/ranking", false},
	{"sport/+", "sport", false},
	// '#', including the parent level
	{"#", "a", true},
	{"#", "a/b/c", true},
	{"#", "/", true},
	{"a/#", "a", true},
	{"a/#", "a/b", true},
	{"a/#", "a/b/c", true},
	{"a/#", "ab", false},
	{"a/#", "b/a", false},
	{"a/b/#", "a", false},
	{"sport/#", "sport", true},
	{"sport/tennis/player1/#", "sport/tennis/player1", true},
	{"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
	{"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
	{"+/#", "a", true},
	{"+/#", "a/b/c", true},
	{"+/+/#", "a", false},
	{"+/+/#", "a/b", true},
	{"a/+/#", "a/b", true},
	{"a/+/#", "a", false},
	// '$' topics [MQTT-4.7.2-1]
	{"#", "$SYS/x", false},
	{"#", "$", false},
	{"+/x", "$SYS/x", false},
	{"+", "$SYS", false},
	{"+/#", "$SYS/x", false},
	{"+/monitor/Clients", "$SYS/monitor/Clients", false},
	{"$SYS/#", "$SYS/broker/load", true},
	{"$SYS/#", "$SYS", true},
	{"$SYS/+", "$SYS/uptime", true},
	{"$SYS/monitor/+", "$SYS/monitor/Clients", true},
	{"$", "$", true},
	{"a/$b", "a/$b", true},
	{"a/+", "a/$b", true}, // the rule is about the first level only
	{"a/#", "a/$b", true},
	{"a$/#", "a$/b", true},
	// empty levels and leading '/'
	{"a/+", "a/", true},
	{"a/#", "a/", true},
	{"sport/+", "sport/", true},
	{"+", "/a", false},
	{"+", "/finance", false},
	{"+/+", "/a", true},
	{"/+", "/a", true},
	{"+/a", "/a", true},
	{"/#", "/a", true},
	{"/#", "a", false},
	{"/", "/", true},
	{"/", "a", false},
	{"+/+", "/", true},
	{"//", "//", true},
	{"a//b", "a//b", true},
	{"a/+/b", "a//b", true},
	{"a//b", "a/b", false},
	{"a/b", "a//b", false},
	{"a/#", "a//b", true},
	{"+//+", "a//b", true},
	{"a/b", "a/b/", false},
	{"a/b/", "a/b/", true},
	{"a/b/+", "a/b/", true},
	// case and non-ASCII
	{"A/b", "a/b", false},
	{"a/B", "a/b", false},
	{"a/b", "a/b", true},
	{"ü/+", "ü/x", true},
	{"ü/+", "u/x", false},
}

func TestMatches(t *testing.T) {
	for _, c := range matchCases {
		if got := Matches(c.filter, c.topic); got != c.want {
			t.Errorf("Matches(%q, %q) = %v, want %v", c.filter, c.topic, got, c.want)
		}
		if got := refMatch(c.filter, c.topic); got != c.want {
			t.Errorf("refMatch(%q, %q) = %v, want %v (test oracle broken)", c.filter, c.topic, got, c.want)
		}
	}
}

// refMatch is an obviously-correct, allocation-heavy matcher used as the
// oracle for Matches.
func refMatch(filter, topic string) bool {
	if topic[0] == '$' && (filter[0] == '+' || filter[0] == '#') {
		return false
	}
	f, tp := strings.Split(filter, "/"), strings.Split(topic, "/")
	for i, fl := range f {
		if fl == "#" {
			return true
		}
		if i >= len(tp) || (fl != "+" && fl != tp[i]) {
			return false
		}
	}
	return len(f) == len(tp)
}

var randLevels = []string{"a", "b", "c", "", "$x", "ü"}

func randTopic(r *rand.Rand) string {
	n := 1 + r.IntN(5)
	parts := make([]string, n)
	for i := range parts {
		parts[i] = randLevels[r.IntN(len(randLevels))]
	}
	if s := strings.Join(parts, "/"); s != "" {
		return s
	}
	return "/" // a lone empty level is not a valid name; keep the empties
}

func randFilter(r *rand.Rand) string {
	n := 1 + r.IntN(4)
	parts := make([]string, n)
	for i := range parts {
		if r.IntN(3) == 0 {
			parts[i] = "+"
		} else {
			parts[i] = randLevels[r.IntN(len(randLevels))]
		}
	}
	if r.IntN(4) == 0 {
		parts[n-1] = "#"
	}
	if s := strings.Join(parts, "/"); s != "" {
		return s
	}
	return "/"
}

func TestMatchesRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		f, tp := randFilter(r), randTopic(r)
		if err := ValidateFilter(f); err != nil {
			t.Fatalf("generator made invalid filter %q: %v", f, err)
		}
		if Matches(f, tp) != refMatch(f, tp) {
			t.Fatalf("Matches(%q, %q) = %v, oracle disagrees", f, tp, Matches(f, tp))
		}
	}
}

func TestMatchesNoAlloc(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		Matches("site/+/dev/#", "site/1/dev/2/temp")
	})
	if allocs != 0 {
		t.Fatalf("Matches allocates %v times", allocs)
	}
}
