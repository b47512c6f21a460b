package configs

import "testing"

func TestParse(t *testing.T) {
	doc := []byte(`# header: ignored
a:
  x: ":1" # first
          # second line
  y: "#not a comment"  # why
  # - an example, ignored
  sub:               # a section's comment
                     # and its continuation
    z: 5   # zed
b:
  w: []
`)
	keys, err := Parse(doc)
	if err != nil {
		t.Fatal(err)
	}
	want := []Key{
		{"a.x", `":1"`, "first second line"},
		{"a.y", `"#not a comment"`, "why"},
		{"a.sub.z", "5", "zed"},
		{"b.w", "[]", ""},
	}
	if len(keys) != len(want) {
		t.Fatalf("got %+v", keys)
	}
	for i := range want {
		if keys[i] != want[i] {
			t.Errorf("key %d: %+v, want %+v", i, keys[i], want[i])
		}
	}
	if _, err := Parse([]byte("a:\n      b: 1\n")); err == nil {
		t.Error("no error for a key indented past its section")
	}
}

func TestEmbedded(t *testing.T) {
	keys, err := Parse(YAML)
	if err != nil || len(keys) < 100 {
		t.Fatalf("%d keys, %v", len(keys), err)
	}
}
