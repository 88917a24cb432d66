package manifest

import (
	"os"
	"strings"
	"testing"

	"github.com/vipsmart/vipsmart"
)

// TestReadYAMLTypes: a YAML value of the wrong type is refused naming its
// field and line, never converted (go-yaml decodes a float into an int
// by truncating it: a priority 1.5 was read as 1, a rise 0.5 as 0 and so
// the default 2).
func TestReadYAMLTypes(t *testing.T) {
	const gip = "kind: GIP\nname: g\naddress: 192.0.2.2\n"
	const vip = "kind: VIP\nname: v\naddress: 192.0.2.1\n"
	for _, c := range []struct{ in, want string }{
		{gip + "placements: [{dc: dc-1, priority: 1.5}]\n", `line 4: field "placements[0].priority": must be a whole number written in digits, not 1.5`},
		{gip + "placements:\n  - {dc: dc-1, priority: 100}\n  - {dc: dc-2, priority: \"100\"}\n", `line 6: field "placements[1].priority": must be a whole number written in digits, not the string "100"`},
		{gip + "placements: [{dc: dc-1, priority: 1e2}]\n", `field "placements[0].priority": must be a whole number`},
		{gip + "placements: [{dc: dc-1, priority: 99999999999999999999}]\n", `field "placements[0].priority": must be a whole number`},
		{gip + "placements: [{dc: [dc-1], priority: 1}]\n", `field "placements[0].dc": must be a string, not a list`},
		{gip + "placements: [dc-1]\n", `field "placements[0]": must be a mapping`},
		{gip + "placements: {dc: dc-1, priority: 100}\n", `line 4: field "placements": must be a list`},
		{gip + "preempt: maybe\n", `line 4: field "preempt": must be true or false, not the string "maybe"`},
		{gip + "name: [a]\n", `field "name": must be a string, not a list`},
		{vip + "check: {url: \"tcp://192.0.2.9:1\", rise: 0.5}\n", `field "check.rise": must be a whole number written in digits, not 0.5`},
		{vip + "check: {url: \"tcp://192.0.2.9:1\", fall: 2.0}\n", `field "check.fall": must be a whole number`},
		{vip + "check: {url: \"http://192.0.2.9:1/\", expect_status: 200.9}\n", `field "check.expect_status": must be a whole number`},
		{vip + "check: tcp://192.0.2.9:1\n", `field "check": must be a mapping`},
		{vip + "nodes: \"n1:100\"\n", `field "nodes": must be a list`},
		{vip + "nodes: [[n1]]\n", `field "nodes[0]": must be a string, not a list`},
		{gip + "placements: [{dc: dc-1, priority: 1}, {priority: 100}]\n", `GIP g: field "placements[1].dc": placement dc is empty`},
		{gip + "placements: [{dc: dc-1, priority: 1, vip: Web}]\n", `GIP g: field "placements[0].vip": placement vip "Web" has upper-case letters`},
		{gip + "check: 5\n", `field "check": unknown field for a GIP`},
		{vip + "placements: 5\n", `field "placements": unknown field for a VIP`},
	} {
		_, err := Read("t.yaml", []byte(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) || !vipsmart.IsCode(err, vipsmart.EINVALID) {
			t.Errorf("%q: got %v, want an invalid error containing %q", c.in, err, c.want)
		}
	}
	// What stays accepted: integers in any YAML form, YAML 1.1 booleans
	// (as go-yaml reads them into a bool), null for absent, aliases.
	s, err := Read("ok.yaml", []byte(gip+"preempt: no\nplacements: [{dc: dc-1, priority: 0x10}, {dc: dc-2, priority: &p 200}, {dc: dc-3, priority: *p, vip: ~}]\n---\n"+vip+"check: {url: \"tcp://192.0.2.9:1\", rise: ~, fall: 3}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if g := s.GIPs[0]; g.Preempt || len(g.Placements) != 3 || g.Placements[0].Priority != 200 || g.Placements[2].Priority != 16 {
		t.Fatalf("GIP read as %+v", g)
	}
	if c := s.VIPs[0].Check; c.Rise != 2 || c.Fall != 3 {
		t.Fatalf("check read as %+v", c)
	}
}

// TestReadJSONDuplicateKeys: a key twice in one object of a JSON file is
// refused naming the document and the field (encoding/json kept the
// last: {"name": "a", ..., "name": "b"} declared b).
func TestReadJSONDuplicateKeys(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{"kind": "GIP", "name": "a", "address": "192.0.2.1", "name": "b"}`, `d.json: document 1 (line 1): field "name": given twice`},
		{"[{\"kind\": \"GIP\", \"name\": \"a\", \"address\": \"192.0.2.1\"},\n {\"kind\": \"GIP\", \"name\": \"b\", \"address\": \"192.0.2.2\", \"placements\": [{\"dc\": \"dc-1\", \"priority\": 1, \"dc\": \"dc-2\"}]}]", `d.json: document 2 (line 2): field "placements[0].dc": given twice`},
		{`{"kind": "VIP", "name": "a", "address": "192.0.2.1", "check": {"url": "tcp://192.0.2.9:1", "rise": 2, "rise": 3}}`, `field "check.rise": given twice`},
	} {
		_, err := Read("d.json", []byte(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) || !vipsmart.IsCode(err, vipsmart.EINVALID) {
			t.Errorf("%s: got %v, want an invalid error containing %q", c.in, err, c.want)
		}
	}
}

// TestReadNotUTF8: a file that is not UTF-8 is refused naming its line
// (encoding/json read a bad byte of a JSON file as U+FFFD: an interface
// "e\xff" became "e\uFFFD").
func TestReadNotUTF8(t *testing.T) {
	for _, in := range []string{
		"{\"kind\": \"VIP\", \"name\": \"a\", \"address\": \"192.0.2.1\",\n \"interface\": \"e\xff\"}",
		"[{\"kind\": \"VIP\", \"name\": \"a\", \"address\": \"192.0.2.1\",\n \"interface\": \"e\xff\", \"check\": {\"url\": \"tcp://192.0.2.9:1\"}}]",
		"kind: VIP\ninterface: \"e\xff\"\nname: a\naddress: 192.0.2.1\n",
	} {
		_, err := Read("u.json", []byte(in))
		if err == nil || !strings.Contains(err.Error(), "u.json: line 2") || !strings.Contains(err.Error(), "not UTF-8") {
			t.Errorf("%q: got %v, want an error naming line 2, not UTF-8", in, err)
		}
	}
}

// TestReadPathsStdinOnce: -f - given twice is refused (the second read
// found standard input empty and passed without a word).
func TestReadPathsStdinOnce(t *testing.T) {
	_, err := ReadPaths([]string{"-", "-"}, strings.NewReader("kind: GIP\nname: g\naddress: 192.0.2.2\n"))
	if err == nil || !strings.Contains(err.Error(), "given twice") || !vipsmart.IsCode(err, vipsmart.EINVALID) {
		t.Fatalf("-f - -f -: %v", err)
	}
}

// TestReadJSONTypeWords: JSON type errors say what to write in JSON's
// words, not Go's ("a JSON struct", "a JSON int").
func TestReadJSONTypeWords(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`[{"kind": "GIP", "name": "a", "address": "192.0.2.1"}, 5]`, `document 2 (line 1): must be an object ({...}), not number`},
		{`{"kind": "GIP", "name": "a", "address": "192.0.2.1", "placements": [{"dc": "dc-1", "priority": 1}, {"dc": "dc-2", "priority": 1.5}]}`, `field "placements[1].priority": must be a whole number written in digits, not number 1.5`},
		{`{"kind": "GIP", "name": "a", "address": "192.0.2.1", "preempt": "yes"}`, `field "preempt": must be true or false, not string`},
	} {
		_, err := Read("w.json", []byte(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.in, err, c.want)
		}
	}
}

// TestReadPathsBounded: a file or standard input that never ends
// (-f /dev/zero) is refused once it has given MaxFile bytes; it hung
// before, filling the memory.
func TestReadPathsBounded(t *testing.T) {
	defer func(m int64) { MaxFile = m }(MaxFile)
	MaxFile = 1 << 20
	if _, err := os.Stat("/dev/zero"); err == nil {
		_, err := ReadPaths([]string{"/dev/zero"}, nil)
		if err == nil || !strings.Contains(err.Error(), "-f /dev/zero holds more than 1 MiB") || !vipsmart.IsCode(err, vipsmart.EINVALID) {
			t.Fatalf("-f /dev/zero: %v", err)
		}
	}
	_, err := ReadPaths([]string{"-"}, endless{})
	if err == nil || !strings.Contains(err.Error(), "standard input") || !strings.Contains(err.Error(), "more than 1 MiB") {
		t.Fatalf("-f - of an endless input: %v", err)
	}
}

// endless is a reader that never ends.
type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = '#'
	}
	return len(p), nil
}
