// Package topic implements the protocol-agnostic topic rules used by the
// gateway: validation of topic names and topic filters, parsing of shared
// subscriptions, wildcard matching, and a concurrent subscription trie with a
// lock-free match cache.
//
// The rules follow MQTT; normative statements are cited with MQTT 5.0
// numbering (the section 4.7 statements are numbered the same in 3.1.1).
// Adapters for other protocols translate their own addressing into MQTT-style
// topics before reaching this package.
//
// Topics are split into levels by '/'. Empty levels are real levels, so
// "a//b" has three levels and "/a" has two, the first one empty. Matching is
// case sensitive and byte-wise.
package topic

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Sentinel errors returned (wrapped with details) by the validation
// functions. Compare with errors.Is.
var (
	// ErrInvalidTopic reports a topic name that may not be published to.
	ErrInvalidTopic = errors.New("invalid topic name")
	// ErrInvalidFilter reports a topic filter that may not be subscribed to.
	ErrInvalidFilter = errors.New("invalid topic filter")
	// ErrInvalidShare reports a malformed shared subscription
	// ("$share/{group}/{filter}" or "$queue/{filter}").
	ErrInvalidShare = errors.New("invalid shared subscription")
)

// MaxLength is the largest topic name or filter in bytes: the length of an
// MQTT UTF-8 string is a 16-bit integer [MQTT-4.7.3-3].
const MaxLength = 65535

const (
	sharePrefix = "$share/"
	queuePrefix = "$queue/"
	// QueueGroup is the group ParseShared reports for EMQX-style
	// "$queue/{filter}" subscriptions, which behave as one shared group.
	QueueGroup = "$queue"
	// sysRoot is the first level of the broker's own topics (IsSys).
	sysRoot = "$SYS"
)

// ValidateName reports whether name is a valid topic name for a PUBLISH.
// The returned error wraps ErrInvalidTopic.
func ValidateName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty", ErrInvalidTopic) // [MQTT-4.7.3-1]
	}
	if len(name) > MaxLength {
		return fmt.Errorf("%w: %d bytes exceeds %d", ErrInvalidTopic, len(name), MaxLength) // [MQTT-4.7.3-3]
	}
	for i := 0; i < len(name); i++ {
		switch name[i] {
		case '+', '#':
			// [MQTT-3.3.2-2] wildcards are for subscribing only.
			return fmt.Errorf("%w: wildcard %q at byte %d", ErrInvalidTopic, name[i], i)
		case 0:
			return fmt.Errorf("%w: U+0000 at byte %d", ErrInvalidTopic, i) // [MQTT-4.7.3-2]
		}
	}
	if !utf8.ValidString(name) {
		// utf8.ValidString also rejects encoded surrogates, which
		// [MQTT-1.5.4-1] forbids alongside ill-formed sequences.
		return fmt.Errorf("%w: not valid UTF-8", ErrInvalidTopic)
	}
	return nil
}

// ValidateFilter reports whether filter is a valid (non-shared) topic filter.
// Shared subscriptions should be split with ParseShared first; their inner
// filter is validated there. The returned error wraps ErrInvalidFilter.
func ValidateFilter(filter string) error {
	if filter == "" {
		return fmt.Errorf("%w: empty", ErrInvalidFilter) // [MQTT-4.7.3-1]
	}
	if len(filter) > MaxLength {
		return fmt.Errorf("%w: %d bytes exceeds %d", ErrInvalidFilter, len(filter), MaxLength) // [MQTT-4.7.3-3]
	}
	for i := 0; i < len(filter); i++ {
		switch filter[i] {
		case '+':
			// [MQTT-4.7.1-3] '+' must occupy an entire level.
			if (i > 0 && filter[i-1] != '/') || (i+1 < len(filter) && filter[i+1] != '/') {
				return fmt.Errorf("%w: '+' at byte %d is not a whole level", ErrInvalidFilter, i)
			}
		case '#':
			// [MQTT-4.7.1-2] '#' must be on its own or follow a '/',
			// and must be the last character.
			if (i > 0 && filter[i-1] != '/') || i != len(filter)-1 {
				return fmt.Errorf("%w: '#' at byte %d is not the whole last level", ErrInvalidFilter, i)
			}
		case 0:
			return fmt.Errorf("%w: U+0000 at byte %d", ErrInvalidFilter, i) // [MQTT-4.7.3-2]
		}
	}
	if !utf8.ValidString(filter) {
		return fmt.Errorf("%w: not valid UTF-8", ErrInvalidFilter) // [MQTT-1.5.4-1]
	}
	return nil
}

// Levels returns the number of levels in s, which is one more than the
// number of '/' separators; empty levels count, so Levels("/") is 2.
// It is meant for enforcing a broker's maximum-levels limit.
func Levels(s string) int {
	return strings.Count(s, "/") + 1
}

// HasWildcard reports whether s contains a '+' or '#' wildcard character.
func HasWildcard(s string) bool {
	return strings.ContainsAny(s, "+#")
}

// ParseShared splits a shared subscription into its group and inner filter.
//
// "$share/{group}/{filter}" yields (group, filter, true, nil). The group
// must be non-empty [MQTT-4.8.2-1] and must not contain '/', '+' or '#'
// [MQTT-4.8.2-2]; the filter must be non-empty and valid. EMQX's
// "$queue/{filter}" yields group QueueGroup.
//
// Anything else, including a bare "$share" or "$queue", is not a shared
// subscription: ParseShared returns ("", s, false, nil) without validating s,
// so callers must still run ValidateFilter on non-shared filters.
//
// Errors wrap ErrInvalidShare; when the inner filter itself is invalid they
// also wrap ErrInvalidFilter so a broker can pick the matching reason code.
func ParseShared(s string) (group, filter string, shared bool, err error) {
	switch {
	case strings.HasPrefix(s, sharePrefix):
		rest := s[len(sharePrefix):]
		i := strings.IndexByte(rest, '/')
		if i < 0 {
			// [MQTT-4.8.2-2] the group must be followed by '/' and a filter.
			return "", "", true, fmt.Errorf("%w: missing filter after group", ErrInvalidShare)
		}
		group, filter = rest[:i], rest[i+1:]
		if group == "" {
			return "", "", true, fmt.Errorf("%w: empty group", ErrInvalidShare) // [MQTT-4.8.2-1]
		}
		if strings.ContainsAny(group, "+#") {
			return "", "", true, fmt.Errorf("%w: wildcard in group", ErrInvalidShare) // [MQTT-4.8.2-2]
		}
		// The group travels in the same UTF-8 string as the filter, so
		// the string rules apply to it too [MQTT-1.5.4-1], [MQTT-1.5.4-2].
		if strings.IndexByte(group, 0) >= 0 || !utf8.ValidString(group) {
			return "", "", true, fmt.Errorf("%w: group is not valid UTF-8 without U+0000", ErrInvalidShare)
		}
	case strings.HasPrefix(s, queuePrefix):
		group, filter = QueueGroup, s[len(queuePrefix):]
	default:
		return "", s, false, nil
	}
	if filter == "" {
		return "", "", true, fmt.Errorf("%w: empty filter", ErrInvalidShare) // [MQTT-4.8.2-2]
	}
	if err := ValidateFilter(filter); err != nil {
		return "", "", true, fmt.Errorf("%w: %w", ErrInvalidShare, err)
	}
	return group, filter, true, nil
}

// Matches reports whether the topic name matches the topic filter under the
// package's rules. It does not allocate. The filter is assumed to be valid
// (see ValidateFilter); for an invalid filter the result is unspecified but
// Matches does not panic. Shared-subscription prefixes are not understood:
// pass the inner filter from ParseShared.
func Matches(filter, topic string) bool {
	if dollarGuard(filter, topic) {
		return false
	}
	for {
		fl, frest, fmore := cut(filter)
		if fl == "#" {
			// '#' matches the remaining levels, including none: "a/#"
			// matches "a" [MQTT-4.7.1-2].
			return true
		}
		tl, trest, tmore := cut(topic)
		if fl != "+" && fl != tl {
			return false
		}
		if !fmore {
			return !tmore
		}
		if !tmore {
			// The topic ran out first; only a trailing "#" (parent
			// level match) can still succeed.
			return frest == "#"
		}
		filter, topic = frest, trest
	}
}

// IsDollar reports whether topic (or a topic's first level) starts with
// '$', the mark of the server's own topics: filters starting with a
// wildcard never match them, so "#" does not deliver "$SYS/..."
// [MQTT-4.7.2-1].
func IsDollar(topic string) bool {
	return topic != "" && topic[0] == '$'
}

// IsSys reports whether topic is in the broker's own tree, "$SYS" or
// "$SYS/...": clients may not publish there, and the broker never persists
// it (it is published anew from live counters).
func IsSys(topic string) bool {
	return topic == sysRoot || strings.HasPrefix(topic, sysRoot+"/")
}

// dollarGuard reports whether the '$' rule forbids the match (IsDollar).
func dollarGuard(filter, topic string) bool {
	return IsDollar(topic) && filter != "" && (filter[0] == '+' || filter[0] == '#')
}

// cut splits off the first level of s. more reports whether a separator was
// found, i.e. whether rest holds at least one further (possibly empty) level.
// Tracking more separately from rest == "" is what keeps "a/" (two levels,
// the second empty) distinct from "a" (one level).
func cut(s string) (level, rest string, more bool) {
	if i := strings.IndexByte(s, '/'); i >= 0 {
		return s[:i], s[i+1:], true
	}
	return s, "", false
}
