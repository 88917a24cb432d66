// Package manifest reads and writes the declarative files of vipsmart
// apply, diff and export: VIP and GIP objects in YAML (go.yaml.in/yaml/v3)
// or JSON, one or many per file, files or a directory of them.
//
// Invariants: every object read is validated as the operator API would
// validate it (defaults filled: a VIP's check, a GIP's mode failover and
// preempt true); an error names the file, the document (its number and
// line) and the field; a set of files with any error yields no objects at
// all. Write then Read gives the same objects back.
package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/internal/jsondup"
)

// The kinds of objects.
const (
	KindVIP = "VIP"
	KindGIP = "GIP"
)

// Object is one document of a file: a VIP or a GIP, as the files spell it.
type Object struct {
	Kind       string      `yaml:"kind" json:"kind"`
	Name       string      `yaml:"name" json:"name"`
	Address    string      `yaml:"address" json:"address"`
	Interface  string      `yaml:"interface,omitempty" json:"interface,omitempty"`
	Check      *Check      `yaml:"check,omitempty" json:"check,omitempty"`
	Mode       string      `yaml:"mode,omitempty" json:"mode,omitempty"`
	Preempt    *bool       `yaml:"preempt,omitempty" json:"preempt,omitempty"`
	Partition  string      `yaml:"partition,omitempty" json:"partition,omitempty"`
	Placements []Placement `yaml:"placements,omitempty" json:"placements,omitempty"`
	// Nodes: a VIP's nodes as NODE:PRIORITY (docs/ha.md, "VIPs that move
	// between nodes"); Preempt above serves VIPs too.
	Nodes []string `yaml:"nodes,omitempty" json:"nodes,omitempty"`
}

// Check is a VIP's health check as the files spell it.
type Check struct {
	URL          string `yaml:"url" json:"url"`
	Interval     string `yaml:"interval,omitempty" json:"interval,omitempty"`
	Timeout      string `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	Rise         int    `yaml:"rise,omitempty" json:"rise,omitempty"`
	Fall         int    `yaml:"fall,omitempty" json:"fall,omitempty"`
	ExpectStatus int    `yaml:"expect_status,omitempty" json:"expect_status,omitempty"`
}

// Placement is a GIP's placement as the files spell it.
type Placement struct {
	DC       string `yaml:"dc" json:"dc"`
	Priority int    `yaml:"priority" json:"priority"`
	VIP      string `yaml:"vip,omitempty" json:"vip,omitempty"`
}

var (
	vipKeys   = []string{"kind", "name", "address", "interface", "check", "nodes", "preempt"}
	gipKeys   = []string{"kind", "name", "address", "mode", "preempt", "partition", "placements"}
	checkKeys = []string{"url", "interval", "timeout", "rise", "fall", "expect_status"}
	placeKeys = []string{"dc", "priority", "vip"}
)

// Set is what a set of files declares: validated VIPs and GIPs.
type Set struct {
	VIPs []vipsmart.VIP
	GIPs []vipsmart.GIP
	// origin of each object ("vip/NAME", "gip/NAME"): where it was read.
	origin map[string]string
	// more is how many objects the file being read still holds, at
	// most (readFast knows): GIPs grows once by as much, not by doubling.
	more int
}

// Error is an error in a file: where, and what (a *vipsmart.Error with
// code invalid, whose message starts with the place).
func wrongAt(where, field, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if field != "" {
		msg = fmt.Sprintf("field %q: %s", field, msg)
	}
	return vipsmart.Errorf(vipsmart.EINVALID, field, "%s: %s", where, msg)
}

// ReadPaths reads every path: "-" is standard input (in), a directory
// is its *.yaml, *.yml and *.json files (not its subdirectories), in name
// order. The objects of every file form one Set.
func ReadPaths(paths []string, in io.Reader) (*Set, error) {
	if len(paths) == 0 {
		return nil, vipsmart.Errorf(vipsmart.EINVALID, "-f", "no file given: give -f FILE, -f DIR or -f - (standard input)")
	}
	s := &Set{origin: map[string]string{}}
	stdin := false
	for _, p := range paths {
		if p == "-" {
			if stdin {
				// Standard input reads once: a second -f - would
				// read nothing, silently.
				return nil, vipsmart.Errorf(vipsmart.EINVALID, "-f", "-f - (standard input) is given twice: give it once")
			}
			stdin = true
			b, err := readAtMost(in, "-f - (standard input)")
			if err != nil {
				return nil, err
			}
			if err := s.read("<stdin>", b); err != nil {
				return nil, err
			}
			continue
		}
		fi, err := os.Stat(p)
		if err != nil {
			return nil, vipsmart.Errorf(vipsmart.EINVALID, "-f", "-f %s: %v", p, errors.Unwrap(err))
		}
		files := []string{p}
		if fi.IsDir() {
			files = nil
			ents, err := os.ReadDir(p)
			if err != nil {
				return nil, vipsmart.Errorf(vipsmart.EINVALID, "-f", "-f %s: %v", p, err)
			}
			for _, e := range ents {
				ext := strings.ToLower(filepath.Ext(e.Name()))
				if !e.IsDir() && (ext == ".yaml" || ext == ".yml" || ext == ".json") {
					files = append(files, filepath.Join(p, e.Name()))
				}
			}
			if len(files) == 0 {
				return nil, vipsmart.Errorf(vipsmart.EINVALID, "-f", "-f %s: the directory holds no .yaml, .yml or .json file", p)
			}
		}
		for _, f := range files {
			b, err := readFile(f)
			if err != nil {
				return nil, err
			}
			if err := s.read(f, b); err != nil {
				return nil, err
			}
		}
	}
	return s, nil
}

// MaxFile bounds what one file (or standard input) may hold: -f
// /dev/zero, or a generator that never ends, is refused once it has
// given this much instead of filling the memory. A set of files is sent
// as one request of at most 32 MiB of JSON; a file of its GIPs in YAML,
// with comments, is a few times that at most.
var MaxFile int64 = 256 << 20

// readAtMost reads r to its end, refusing more than MaxFile bytes.
func readAtMost(r io.Reader, what string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxFile+1))
	if err != nil {
		return nil, vipsmart.Errorf(vipsmart.EINVALID, "-f", "%s: %v", what, err)
	}
	if int64(len(b)) > MaxFile {
		return nil, vipsmart.Errorf(vipsmart.EINVALID, "-f", "%s holds more than %d MiB: a set of files is applied in one request of at most 32 MiB; give a smaller file (or apply it in parts)", what, MaxFile>>20)
	}
	return b, nil
}

func readFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, vipsmart.Errorf(vipsmart.EINVALID, "-f", "-f %s: %v", name, err)
	}
	defer f.Close()
	return readAtMost(f, "-f "+name)
}

// Read reads the objects of one file's content (name is for messages).
func Read(name string, b []byte) (*Set, error) {
	s := &Set{origin: map[string]string{}}
	if err := s.read(name, b); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Set) read(name string, b []byte) error {
	if !utf8.Valid(b) {
		// encoding/json would read each bad byte as U+FFFD: a value
		// other than the file's.
		off := 0
		for off < len(b) {
			r, n := utf8.DecodeRune(b[off:])
			if r == utf8.RuneError && n <= 1 {
				break
			}
			off += n
		}
		return wrongAt(fmt.Sprintf("%s: line %d", name, 1+bytes.Count(b[:off], []byte("\n"))), "", "byte %d is not UTF-8: save the file as UTF-8", off+1)
	}
	t := bytes.TrimSpace(b)
	if len(t) > 0 && (t[0] == '{' || t[0] == '[') {
		return s.readJSON(name, b)
	}
	return s.readYAML(name, b)
}

// readJSON reads a JSON object or an array of objects, strictly: by
// readFast if it can (readfast.go), else decoded in one pass of
// encoding/json, the places (lines) and keys of the
// objects found by one scan of the bytes. A file the decoder refuses is
// read again by readJSONEach, object by object, for the message that
// names the object; a file it accepts gives the same objects and errors
// as readJSONEach (TestReadJSONIsReadJSONEach), at a third of the cost
// for 10,000 objects (BenchmarkReadJSON).
func (s *Set) readJSON(name string, b []byte) error {
	if done, err := s.readFast(name, b); done {
		return err
	}
	start := len(b) - len(bytes.TrimLeft(b, " \t\r\n"))
	array := start < len(b) && b[start] == '['
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var objs []Object
	var err error
	if array {
		err = dec.Decode(&objs)
	} else {
		objs = make([]Object, 1)
		err = dec.Decode(&objs[0])
	}
	if err != nil || dec.More() {
		return s.readJSONEach(name, b)
	}
	if dup, _ := jsondup.Find(b); dup != "" {
		return s.readJSONEach(name, b) // which names the object
	}
	items := scanItems(b, start, array)
	if len(items) != len(objs) {
		return s.readJSONEach(name, b) // cannot be: the decoder read the same bytes
	}
	line, counted := 1, 0
	for i, it := range items {
		line += bytes.Count(b[counted:it.off], []byte("\n"))
		counted = it.off
		where := fmt.Sprintf("%s: document %d (line %d)", name, i+1, line)
		sort.Strings(it.keys)
		if err := s.add(where, objs[i], it.keys); err != nil {
			return err
		}
	}
	return nil
}

// item is where an object of a JSON file starts and its own keys.
type item struct {
	off  int
	keys []string
}

// scanItems returns the items of the valid JSON value at b[start:]: the
// elements of an array, or the value itself; for each, its offset and,
// if it is an object, its keys (not those of the objects inside it).
func scanItems(b []byte, start int, array bool) []item {
	i := start
	if !array {
		it, _ := scanValue(b, i)
		return []item{it}
	}
	var out []item
	i++ // [
	for i < len(b) {
		i = skipSpace(b, i)
		if i >= len(b) || b[i] == ']' {
			break
		}
		it, end := scanValue(b, i)
		out = append(out, it)
		i = skipSpace(b, end)
		if i < len(b) && b[i] == ',' {
			i++
		}
	}
	return out
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// scanValue reads the valid JSON value at b[i:], returning where it ends
// and, for an object, its keys.
func scanValue(b []byte, i int) (item, int) {
	it := item{off: i}
	depth := 0
	expectKey := false
	for ; i < len(b); i++ {
		switch c := b[i]; c {
		case '"':
			j, escaped := jsondup.StringEnd(b, i)
			if depth == 1 && expectKey {
				if escaped {
					var k string
					_ = json.Unmarshal(b[i:j+1], &k)
					it.keys = append(it.keys, k)
				} else {
					it.keys = append(it.keys, string(b[i+1:j]))
				}
				expectKey = false
			}
			i = j
			if depth == 0 {
				return it, i + 1
			}
		case '{', '[':
			depth++
			if depth == 1 {
				expectKey = c == '{'
			}
		case '}', ']':
			depth--
			if depth == 0 {
				return it, i + 1
			}
		case ',':
			if depth == 1 && b[it.off] == '{' {
				expectKey = true
			}
		default:
			if depth == 0 && c != ' ' && c != '\t' && c != '\r' && c != '\n' {
				// A number, true, false or null at the top.
				j := i
				for j < len(b) && !strings.ContainsRune(" \t\r\n,]}", rune(b[j])) {
					j++
				}
				return it, j
			}
		}
	}
	return it, i
}

// readJSONEach reads a JSON object or an array of objects, strictly, one
// object at a time (the messages of readJSON).
func (s *Set) readJSONEach(name string, b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	var top json.RawMessage
	if err := dec.Decode(&top); err != nil {
		return wrongAt(name, "", "not valid JSON: %v", err)
	}
	if dec.More() {
		return wrongAt(name, "", "data after the JSON value: give one object or one array of objects")
	}
	base := bytes.Index(b, top)
	var items []json.RawMessage
	if bytes.TrimSpace(top)[0] == '[' {
		if err := json.Unmarshal(top, &items); err != nil {
			return wrongAt(name, "", "%v", err)
		}
	} else {
		items = []json.RawMessage{top}
	}
	off, line, counted := base, 1+bytes.Count(b[:base], []byte("\n")), base
	for i, raw := range items {
		if j := bytes.Index(b[off:], raw); j >= 0 {
			off += j
		}
		line += bytes.Count(b[counted:off], []byte("\n")) // each byte counted once
		counted = off
		where := fmt.Sprintf("%s: document %d (line %d)", name, i+1, line)
		var o Object
		d := json.NewDecoder(bytes.NewReader(raw))
		d.DisallowUnknownFields()
		if err := d.Decode(&o); err != nil {
			msg := strings.TrimPrefix(err.Error(), "json: ")
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				return wrongAt(where, jsondup.TypeErrorField(raw, te), "must be %s, not %s", jsonKind(te.Type.Kind()), te.Value)
			}
			if f, ok := strings.CutPrefix(msg, "unknown field "); ok {
				return wrongAt(where, strings.Trim(f, `"`), "unknown field: a VIP has %s; a GIP has %s", strings.Join(vipKeys, ", "), strings.Join(gipKeys, ", "))
			}
			return wrongAt(where, "", "%s", msg)
		}
		if dup, _ := jsondup.Find(raw); dup != "" {
			return wrongAt(where, dup, "given twice: give each field once")
		}
		var keys map[string]json.RawMessage
		_ = json.Unmarshal(raw, &keys)
		if err := s.add(where, o, sortedKeys(keys)); err != nil {
			return err
		}
	}
	return nil
}

// jsonKind says what a value of kind k is written as in JSON.
func jsonKind(k reflect.Kind) string {
	switch k {
	case reflect.Struct, reflect.Map:
		return "an object ({...})"
	case reflect.Slice, reflect.Array:
		return "an array ([...])"
	case reflect.Int, reflect.Int64, reflect.Uint8, reflect.Uint16:
		return "a whole number written in digits"
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	}
	return "a JSON " + k.String()
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// readYAML reads one or many YAML documents, each an object or a list of
// objects; empty documents are skipped.
func (s *Set) readYAML(name string, b []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for doc := 1; ; doc++ {
		var n yaml.Node
		err := dec.Decode(&n)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return wrongAt(fmt.Sprintf("%s: document %d", name, doc), "", "not valid YAML: %v", strings.TrimPrefix(err.Error(), "yaml: "))
		}
		root := &n
		if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
			root = root.Content[0]
		}
		items := []*yaml.Node{root}
		switch {
		case root.Kind == yaml.ScalarNode && root.Tag == "!!null":
			continue
		case root.Kind == yaml.SequenceNode:
			items = root.Content
		case root.Kind != yaml.MappingNode:
			return wrongAt(fmt.Sprintf("%s: document %d (line %d)", name, doc, root.Line), "", "a document is an object (kind: VIP or kind: GIP, with its fields) or a list of objects")
		}
		for i, it := range items {
			where := fmt.Sprintf("%s: document %d (line %d)", name, doc, it.Line)
			if root.Kind == yaml.SequenceNode {
				where = fmt.Sprintf("%s: document %d, item %d (line %d)", name, doc, i+1, it.Line)
			}
			if it.Kind != yaml.MappingNode {
				return wrongAt(where, "", "an object is a mapping (kind: VIP or kind: GIP, with its fields)")
			}
			var keys []string
			allowed, kind := append(slices.Clip(vipKeys), gipKeys...), ""
			for k := 0; k+1 < len(it.Content); k += 2 {
				if it.Content[k].Value == "kind" {
					switch kind = strings.ToUpper(resolve(it.Content[k+1]).Value); kind {
					case KindVIP:
						allowed = vipKeys
					case KindGIP:
						allowed = gipKeys
					}
				}
			}
			for k := 0; k+1 < len(it.Content); k += 2 {
				keys = append(keys, it.Content[k].Value)
				if !slices.Contains(allowed, it.Content[k].Value) {
					if kind == KindVIP || kind == KindGIP {
						// Before decoding, which would say only
						// that a value does not fit.
						return wrongAt(where, it.Content[k].Value, "unknown field for a %s: a %s has %s", kind, kind, strings.Join(allowed, ", "))
					}
					continue // add says what is wrong
				}
				if err := checkNested(where, it.Content[k].Value, it.Content[k+1]); err != nil {
					return err
				}
			}
			var o Object
			if err := it.Decode(&o); err != nil {
				return wrongAt(where, "", "%s", strings.TrimPrefix(err.Error(), "yaml: unmarshal errors:\n  "))
			}
			if err := s.add(where, o, keys); err != nil {
				return err
			}
		}
	}
}

// checkNested checks the value of one key of an object before it is
// decoded: unknown keys inside check and placements are refused, and
// every field must have its type (a priority 1.5 is not truncated to 1,
// a string is not taken for a list), each error naming the field
// (placements[1].priority) and its line.
func checkNested(where, key string, v *yaml.Node) error {
	at := func(n *yaml.Node) string { return fmt.Sprintf("%s, line %d", where, n.Line) }
	check := func(n *yaml.Node, allowed []string, field, label string) error {
		if n.Kind != yaml.MappingNode {
			return nil // checked by checkType
		}
		for k := 0; k+1 < len(n.Content); k += 2 {
			if !slices.Contains(allowed, n.Content[k].Value) {
				return wrongAt(at(n.Content[k]), field+"."+n.Content[k].Value, "unknown field: %s has %s", label, strings.Join(allowed, ", "))
			}
			if err := checkType(at, field+"."+n.Content[k].Value, n.Content[k].Value, n.Content[k+1]); err != nil {
				return err
			}
		}
		return nil
	}
	if err := checkType(at, key, key, v); err != nil {
		return err
	}
	v = resolve(v)
	switch key {
	case "check":
		return check(v, checkKeys, "check", "check")
	case "placements":
		if v.Kind == yaml.SequenceNode {
			for i, p := range v.Content {
				p = resolve(p)
				if p.Kind != yaml.MappingNode && !isNull(p) {
					return wrongAt(at(p), fmt.Sprintf("placements[%d]", i), "must be a mapping ({dc: DC, priority: N, vip: VIP}), not %s", describe(p))
				}
				if err := check(p, placeKeys, fmt.Sprintf("placements[%d]", i), "a placement"); err != nil {
					return err
				}
			}
		}
	case "nodes":
		if v.Kind == yaml.SequenceNode {
			for i, n := range v.Content {
				if err := checkType(at, fmt.Sprintf("nodes[%d]", i), "node", n); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// checkType checks that n, the value of the field named path whose key
// is key, has the YAML type of that key; null is absent.
func checkType(at func(*yaml.Node) string, path, key string, n *yaml.Node) error {
	n = resolve(n)
	if isNull(n) {
		return nil
	}
	switch key {
	case "kind", "name", "address", "interface", "mode", "partition", "dc", "vip", "url", "interval", "timeout", "node":
		if n.Kind != yaml.ScalarNode {
			return wrongAt(at(n), path, "must be a string, not %s", describe(n))
		}
	case "priority", "rise", "fall", "expect_status":
		var i int
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || n.Decode(&i) != nil {
			return wrongAt(at(n), path, "must be a whole number written in digits, not %s", describe(n))
		}
	case "preempt":
		var b bool
		if n.Kind != yaml.ScalarNode || n.Decode(&b) != nil {
			return wrongAt(at(n), path, "must be true or false, not %s", describe(n))
		}
	case "placements", "nodes":
		if n.Kind != yaml.SequenceNode {
			return wrongAt(at(n), path, "must be a list (one item a line after \"- \", or [a, b]), not %s", describe(n))
		}
	case "check":
		if n.Kind != yaml.MappingNode {
			return wrongAt(at(n), path, "must be a mapping (url: ..., interval: ...), not %s", describe(n))
		}
	}
	return nil
}

// resolve follows aliases.
func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

// describe says what a value is, for a message.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	}
	v := n.Value
	if len(v) > 40 {
		v = v[:40] + "..."
	}
	if n.Tag == "!!str" {
		return fmt.Sprintf("the string %q", v)
	}
	return v
}

// add validates one object and adds it to s.
func (s *Set) add(where string, o Object, keys []string) error {
	kind := strings.ToUpper(o.Kind)
	switch kind {
	case KindVIP, KindGIP:
	case "":
		return wrongAt(where, "kind", "missing: give kind: VIP or kind: GIP")
	default:
		return wrongAt(where, "kind", "%q is unknown: give VIP or GIP", o.Kind)
	}
	allowed := vipKeys
	if kind == KindGIP {
		allowed = gipKeys
	}
	for _, k := range keys {
		if !slices.Contains(allowed, k) {
			return wrongAt(where, k, "unknown field for a %s: a %s has %s", kind, kind, strings.Join(allowed, ", "))
		}
	}
	where = where + ", " + kind + " " + o.Name // fmt's "%s, %s %s", without its cost per object
	fail := func(err error) error {
		var e *vipsmart.Error
		if errors.As(err, &e) {
			return wrongAt(where, e.Field, "%s", e.Message)
		}
		return wrongAt(where, "", "%v", err)
	}
	if err := vipsmart.ValidateName("name", o.Name); err != nil {
		return fail(err)
	}
	a, err := vipsmart.ParseHostAddr("address", o.Address)
	if err != nil {
		return fail(err)
	}
	key := "vip/" + o.Name // strings.ToLower(kind) + "/" + o.Name
	if kind == KindGIP {
		key = "gip/" + o.Name
	}
	if prev, ok := s.origin[key]; ok {
		return wrongAt(where, "name", "%s %s is declared twice (first in %s): declare each object once", kind, o.Name, prev)
	}
	if kind == KindVIP {
		v := vipsmart.VIP{Name: o.Name, Address: a, Interface: o.Interface, Preempt: o.Preempt != nil && *o.Preempt}
		for i, n := range o.Nodes {
			vn, err := vipsmart.ParseVIPNode(fmt.Sprintf("nodes[%d]", i), n)
			if err != nil {
				return fail(err)
			}
			v.Nodes = append(v.Nodes, vn)
		}
		if c := o.Check; c != nil {
			v.Check = &vipsmart.Check{URL: c.URL, Rise: c.Rise, Fall: c.Fall, ExpectStatus: c.ExpectStatus}
			for _, f := range []struct {
				s   string
				d   *vipsmart.Duration
				fld string
			}{{c.Interval, &v.Check.Interval, "check.interval"}, {c.Timeout, &v.Check.Timeout, "check.timeout"}} {
				if f.s == "" {
					continue
				}
				d, err := time.ParseDuration(f.s)
				if err != nil {
					return wrongAt(where, f.fld, "%q is not a duration: give e.g. 1s or 250ms", f.s)
				}
				*f.d = vipsmart.Duration(d)
			}
		}
		if err := v.Validate(); err != nil {
			return fail(err)
		}
		s.VIPs = append(s.VIPs, v)
	} else {
		g := vipsmart.GIP{Name: o.Name, Address: a, Mode: vipsmart.GIPMode(o.Mode), Preempt: true, Partition: vipsmart.PartitionPolicy(o.Partition), Placements: make([]vipsmart.Placement, 0, len(o.Placements))}
		if o.Preempt != nil {
			g.Preempt = *o.Preempt
		}
		for i, p := range o.Placements {
			// The names first, each error naming its placement
			// (placements[1].dc; GIP.Validate says "placement dc").
			if err := vipsmart.ValidateName("placement dc", p.DC); err != nil {
				return wrongAt(where, "placements["+strconv.Itoa(i)+"].dc", "%s", err.(*vipsmart.Error).Message)
			}
			if p.VIP != "" {
				if err := vipsmart.ValidateName("placement vip", p.VIP); err != nil {
					return wrongAt(where, "placements["+strconv.Itoa(i)+"].vip", "%s", err.(*vipsmart.Error).Message)
				}
			}
			g.Placements = append(g.Placements, vipsmart.Placement{DC: p.DC, Priority: p.Priority, VIP: p.VIP})
		}
		if err := g.Validate(); err != nil {
			return fail(err)
		}
		vipsmart.SortPlacements(g.Placements)
		if len(s.GIPs) == cap(s.GIPs) && s.more > 0 {
			s.GIPs = slices.Grow(s.GIPs, s.more)
		}
		s.GIPs = append(s.GIPs, g)
	}
	s.origin[key] = where
	return nil
}

// Request returns the ApplyRequest of s, checked as a whole (each address
// once); an error names where the objects were read.
func (s *Set) Request() (vipsmart.ApplyRequest, error) {
	req := vipsmart.ApplyRequest{VIPs: slices.Clone(s.VIPs), GIPs: slices.Clone(s.GIPs)}
	if req.VIPs == nil {
		req.VIPs = []vipsmart.VIP{}
	}
	if req.GIPs == nil {
		req.GIPs = []vipsmart.GIP{}
	}
	if err := req.Validate(); err != nil {
		var e *vipsmart.Error
		if errors.As(err, &e) {
			var i int
			var kind string
			if _, err := fmt.Sscanf(strings.ReplaceAll(e.Field, "[", " "), "%s %d", &kind, &i); err == nil {
				where := ""
				switch {
				case strings.HasPrefix(kind, "vips") && i < len(req.VIPs):
					where = s.origin["vip/"+req.VIPs[i].Name]
				case strings.HasPrefix(kind, "gips") && i < len(req.GIPs):
					where = s.origin["gip/"+req.GIPs[i].Name]
				}
				if where != "" {
					return req, wrongAt(where, "address", "%s", e.Message)
				}
			}
		}
		return req, err
	}
	return req, nil
}

// Objects returns the file objects of VIPs and GIPs (VIPs then GIPs, each
// by name), as Write writes them.
func Objects(vips []vipsmart.VIP, gips []vipsmart.GIP) []Object {
	vs, gs := slices.Clone(vips), slices.Clone(gips)
	sort.Slice(vs, func(i, j int) bool { return vs[i].Name < vs[j].Name })
	sort.Slice(gs, func(i, j int) bool { return gs[i].Name < gs[j].Name })
	out := make([]Object, 0, len(vs)+len(gs))
	for _, v := range vs {
		o := Object{Kind: KindVIP, Name: v.Name, Address: v.Address.String(), Interface: v.Interface}
		for _, n := range v.Nodes {
			o.Nodes = append(o.Nodes, fmt.Sprintf("%s:%d", n.Node, n.Priority))
		}
		if v.Preempt {
			t := true
			o.Preempt = &t
		}
		if c := v.Check; c != nil {
			o.Check = &Check{URL: c.URL, Rise: c.Rise, Fall: c.Fall, ExpectStatus: c.ExpectStatus}
			if c.Interval != 0 {
				o.Check.Interval = time.Duration(c.Interval).String()
			}
			if c.Timeout != 0 {
				o.Check.Timeout = time.Duration(c.Timeout).String()
			}
		}
		out = append(out, o)
	}
	for _, g := range gs {
		p := g.Preempt
		o := Object{Kind: KindGIP, Name: g.Name, Address: g.Address.String(), Mode: string(g.Mode), Preempt: &p, Partition: string(g.PartitionOrDefault()), Placements: []Placement{}}
		for _, pl := range g.Placements {
			o.Placements = append(o.Placements, Placement{DC: pl.DC, Priority: pl.Priority, VIP: pl.VIP})
		}
		out = append(out, o)
	}
	return out
}

// WriteYAML writes objects as YAML documents, one per object.
func WriteYAML(w io.Writer, objs []Object) error {
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	for _, o := range objs {
		if err := enc.Encode(o); err != nil {
			return err
		}
	}
	return enc.Close()
}

// WriteJSON writes objects as one JSON array.
func WriteJSON(w io.Writer, objs []Object) error {
	if objs == nil {
		objs = []Object{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(objs)
}
