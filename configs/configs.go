// Package configs holds iotgw's documented configuration, iotgw.yaml,
// embedded in the binary so that `iotgw --print-keys` shows the defaults
// and descriptions of this very file: they cannot drift apart.
package configs

import (
	_ "embed"
	"fmt"
	"strings"
)

// YAML is configs/iotgw.yaml: every key with its default and a comment.
//
//go:embed iotgw.yaml
var YAML []byte

// Key is one documented key of a YAML document.
type Key struct {
	Name        string // dotted: "mqtt.tcp", "auth.jwt.secret"
	Default     string // the value as written in the file
	Description string // its comment, continuation lines joined
}

// Parse reads the keys of a document written in iotgw.yaml's style: a key
// per line, indented two spaces a level, its comment after the value; a
// comment-only line whose # is in the same column as the last key's #
// continues that description. Sections (a key with no value) are not
// returned. Comment-only lines elsewhere (the header, examples) are
// ignored.
func Parse(doc []byte) ([]Key, error) {
	var keys []Key
	var path []string // the sections enclosing the current line
	hashCol := -1     // column of the last key's (or section's) comment
	last := -1        // index in keys of the key a continuation extends; -1: a section's
	for n, line := range strings.Split(string(doc), "\n") {
		trimmed := strings.TrimLeft(line, " ")
		indent := len(line) - len(trimmed)
		if trimmed == "" {
			hashCol = -1
			continue
		}
		if strings.HasPrefix(trimmed, "#") {
			if indent == hashCol && last >= 0 {
				k := &keys[last]
				k.Description = strings.TrimSpace(k.Description + " " + strings.TrimSpace(trimmed[1:]))
			}
			continue
		}
		if indent%2 != 0 {
			return nil, fmt.Errorf("line %d: indentation is not a multiple of two spaces", n+1)
		}
		name, rest, ok := strings.Cut(trimmed, ":")
		if !ok || strings.ContainsAny(name, " \"'{[") {
			return nil, fmt.Errorf("line %d: not a key: %q", n+1, line)
		}
		level := indent / 2
		if level > len(path) {
			return nil, fmt.Errorf("line %d: %s is indented deeper than its section", n+1, name)
		}
		path = path[:level]
		value, comment, col := splitComment(rest)
		hashCol = -1
		if col >= 0 {
			hashCol = indent + len(name) + 1 + col
		}
		if value == "" {
			path = append(path, name) // a section
			last = -1
			continue
		}
		last = len(keys)
		keys = append(keys, Key{
			Name:        strings.Join(append(append([]string(nil), path...), name), "."),
			Default:     value,
			Description: comment,
		})
	}
	return keys, nil
}

// splitComment splits what follows a key's colon into the value and the
// comment, and says in which column of s the comment's # is (-1: none).
// A # starts a comment only after a space and outside quotes, as in YAML.
func splitComment(s string) (value, comment string, col int) {
	var quote rune
	for i, r := range s {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case r == '"' || r == '\'':
			quote = r
		case r == '#' && (i == 0 || s[i-1] == ' '):
			return strings.TrimSpace(s[:i]), strings.TrimSpace(s[i+1:]), i
		}
	}
	return strings.TrimSpace(s), "", -1
}
