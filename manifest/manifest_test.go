package manifest

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/vipsmart/vipsmart"
)

func TestReadYAMLAndJSON(t *testing.T) {
	yml := `# comment only document
---
kind: VIP
name: web
address: 192.0.2.10
check: {url: "http://127.0.0.1:8080/", interval: 2s}
---
- kind: gip
  name: www
  address: 2001:db8::10
  placements: [{dc: dc-2, priority: 100}, {dc: dc-1, priority: 200, vip: web}]
- kind: GIP
  name: dns
  address: 203.0.113.53
  mode: anycast
  preempt: false
`
	s, err := Read("a.yaml", []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.VIPs) != 1 || len(s.GIPs) != 2 {
		t.Fatalf("read %d VIPs and %d GIPs", len(s.VIPs), len(s.GIPs))
	}
	v := s.VIPs[0]
	if v.Check == nil || v.Check.Interval != vipsmart.Duration(2e9) || v.Check.Rise != 2 || v.Check.ExpectStatus != 200 {
		t.Fatalf("VIP check without defaults: %+v", v.Check)
	}
	www := s.GIPs[0]
	if www.Mode != vipsmart.ModeFailover || !www.Preempt || www.Placements[0].DC != "dc-1" || www.Address != netip.MustParseAddr("2001:db8::10") {
		t.Fatalf("GIP www without defaults or sorted placements: %+v", www)
	}
	if dns := s.GIPs[1]; dns.Preempt || dns.Mode != vipsmart.ModeAnycast {
		t.Fatalf("GIP dns: %+v", dns)
	}
	// Write and read back, YAML and JSON: the same objects.
	for _, w := range []func(*bytes.Buffer) error{
		func(b *bytes.Buffer) error { return WriteYAML(b, Objects(s.VIPs, s.GIPs)) },
		func(b *bytes.Buffer) error { return WriteJSON(b, Objects(s.VIPs, s.GIPs)) },
	} {
		var b bytes.Buffer
		if err := w(&b); err != nil {
			t.Fatal(err)
		}
		s2, err := Read("out", b.Bytes())
		if err != nil {
			t.Fatalf("reading back:\n%s\n%v", b.String(), err)
		}
		r1, _ := s.Request()
		r2, _ := s2.Request()
		sortByName(r1.GIPs)
		sortByName(r2.GIPs)
		if !reflect.DeepEqual(r1, r2) {
			t.Fatalf("round trip differs:\n%+v\n%+v\n%s", r1, r2, b.String())
		}
	}
}

func sortByName(gs []vipsmart.GIP) {
	for i := range gs {
		for j := i + 1; j < len(gs); j++ {
			if gs[j].Name < gs[i].Name {
				gs[i], gs[j] = gs[j], gs[i]
			}
		}
	}
}

func TestReadErrorsNamePlaceAndField(t *testing.T) {
	for _, c := range []struct{ name, in, want string }{
		{"bad-priority.yaml", "kind: VIP\nname: a\naddress: 192.0.2.1\n---\nkind: GIP\nname: g\naddress: 192.0.2.2\nplacements: [{dc: dc-1, priority: 0}]\n", `bad-priority.yaml: document 2 (line 5), GIP g: field "placements": placement dc-1 has priority 0`},
		{"unknown.yaml", "kind: GIP\nname: g\naddress: 192.0.2.2\nmdoe: anycast\n", `unknown.yaml: document 1 (line 1): field "mdoe": unknown field for a GIP`},
		{"vipfield.yaml", "kind: VIP\nname: v\naddress: 192.0.2.2\nmode: anycast\n", `field "mode": unknown field for a VIP`},
		{"nested.yaml", "kind: GIP\nname: g\naddress: 192.0.2.2\nplacements:\n  - {dc: dc-1, prio: 3}\n", `nested.yaml: document 1 (line 1), line 5: field "placements[0].prio": unknown field: a placement has dc, priority, vip`},
		{"nokind.yaml", "name: g\naddress: 192.0.2.2\n", `field "kind": missing`},
		{"addr.json", `[{"kind": "VIP", "name": "v", "address": "192.0.2.0/24"}]`, `addr.json: document 1 (line 1), VIP v: field "address"`},
		{"type.json", "[\n{\"kind\": \"GIP\", \"name\": \"g\", \"address\": \"192.0.2.9\"},\n{\"kind\": \"GIP\", \"name\": \"h\", \"address\": \"192.0.2.8\", \"preempt\": \"yes\"}]", `type.json: document 2 (line 3): field "preempt"`},
		{"dur.yaml", "kind: VIP\nname: v\naddress: 192.0.2.2\ncheck: {url: \"tcp://127.0.0.1:1\", interval: soon}\n", `field "check.interval": "soon" is not a duration`},
		{"twice.yaml", "kind: GIP\nname: g\naddress: 192.0.2.2\n---\nkind: GIP\nname: g\naddress: 192.0.2.3\n", `twice.yaml: document 2 (line 5), GIP g: field "name": GIP g is declared twice (first in twice.yaml: document 1 (line 1), GIP g)`},
		{"scalar.yaml", "just a string\n", `a document is an object`},
		{"broken.yaml", "kind: [\n", `broken.yaml: document 1: not valid YAML`},
	} {
		_, err := Read(c.name, []byte(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) || !vipsmart.IsCode(err, vipsmart.EINVALID) {
			t.Errorf("%s: got %v, want an invalid error containing %q", c.name, err, c.want)
		}
	}
	s, err := Read("addr2.yaml", []byte("kind: VIP\nname: v\naddress: 192.0.2.2\n---\nkind: GIP\nname: g\naddress: 192.0.2.2\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Request(); err == nil || !strings.Contains(err.Error(), "addr2.yaml: document 2 (line 5), GIP g") {
		t.Fatalf("one address for a VIP and a GIP: %v", err)
	}
}

func TestReadPathsDirectory(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "b.yaml"), []byte("kind: GIP\nname: b\naddress: 192.0.2.2\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "a.json"), []byte(`{"kind": "VIP", "name": "a", "address": "192.0.2.1"}`), 0o644)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not read"), 0o644)
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "sub", "c.yaml"), []byte("kind: GIP\nname: c\naddress: 192.0.2.3\n"), 0o644)
	s, err := ReadPaths([]string{dir, "-"}, strings.NewReader("kind: GIP\nname: d\naddress: 192.0.2.4\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.VIPs) != 1 || len(s.GIPs) != 2 || s.GIPs[1].Name != "d" {
		t.Fatalf("read %+v %+v", s.VIPs, s.GIPs)
	}
	if _, err := ReadPaths([]string{filepath.Join(dir, "nope.yaml")}, nil); err == nil || !strings.Contains(err.Error(), "nope.yaml") {
		t.Fatalf("missing file: %v", err)
	}
	if _, err := ReadPaths(nil, nil); err == nil {
		t.Fatal("no -f accepted")
	}
}

// TestPartitionRoundTrip: a GIP's partition policy is read, written by
// export (also when the stored GIP predates the field), read back the
// same, and a change of it alone is a change the diff shows.
func TestPartitionRoundTrip(t *testing.T) {
	s, err := Read("p.yaml", []byte("kind: GIP\nname: db\naddress: 203.0.113.20\npartition: consistent\nplacements: [{dc: dc-1, priority: 200}, {dc: dc-2, priority: 100}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.GIPs) != 1 || s.GIPs[0].Partition != vipsmart.PartitionConsistent {
		t.Fatalf("read %+v, want partition consistent", s.GIPs)
	}
	old := s.GIPs[0]
	old.Partition = "" // stored before the field existed: available
	var b bytes.Buffer
	if err := WriteYAML(&b, Objects(nil, []vipsmart.GIP{old, s.GIPs[0]})); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(b.String(), "partition: available"); n != 1 {
		t.Fatalf("export wrote %d \"partition: available\":\n%s", n, b.String())
	}
	if n := strings.Count(b.String(), "partition: consistent"); n != 1 {
		t.Fatalf("export wrote %d \"partition: consistent\":\n%s", n, b.String())
	}
	if _, err := Read("bad.yaml", []byte("kind: GIP\nname: db\naddress: 203.0.113.20\npartition: strict\nplacements: [{dc: dc-1, priority: 200}]\n")); err == nil || !strings.Contains(err.Error(), "partition") {
		t.Fatalf("partition strict: %v, want a refusal naming the field", err)
	}
	ch := vipsmart.DiffObjects(nil, []vipsmart.GIP{old}, nil, s.GIPs, false)
	if len(ch) != 1 || ch[0].Action != vipsmart.ActionChange || len(ch[0].Fields) != 1 || ch[0].Fields[0] != "partition: available -> consistent" {
		t.Fatalf("diff %+v, want one change of partition", ch)
	}
	if ch := vipsmart.DiffObjects(nil, []vipsmart.GIP{old}, nil, []vipsmart.GIP{func() vipsmart.GIP { g := old; g.Partition = vipsmart.PartitionAvailable; return g }()}, false); len(ch) != 0 {
		t.Fatalf("unset and available differ in the diff: %+v", ch)
	}
}

func TestVIPNodesRoundTrip(t *testing.T) {
	s, err := Read("v.yaml", []byte("kind: VIP\nname: web\naddress: 192.0.2.10\nnodes: [n1:200, n2]\npreempt: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []vipsmart.VIPNode{{Node: "n1", Priority: 200}, {Node: "n2", Priority: vipsmart.DefaultVIPPriority}}
	if len(s.VIPs) != 1 || !s.VIPs[0].Preempt || len(s.VIPs[0].Nodes) != 2 || s.VIPs[0].Nodes[0] != want[0] || s.VIPs[0].Nodes[1] != want[1] {
		t.Fatalf("read %+v", s.VIPs)
	}
	var b bytes.Buffer
	if err := WriteYAML(&b, Objects(s.VIPs, nil)); err != nil {
		t.Fatal(err)
	}
	back, err := Read("back.yaml", b.Bytes())
	if err != nil {
		t.Fatalf("%v:\n%s", err, b.String())
	}
	if ch := vipsmart.DiffObjects(s.VIPs, nil, back.VIPs, nil, false); len(ch) != 0 {
		t.Fatalf("export and read back changed %+v:\n%s", ch, b.String())
	}
	if ch := vipsmart.DiffObjects(s.VIPs, nil, []vipsmart.VIP{{Name: "web", Address: s.VIPs[0].Address}}, nil, false); len(ch) != 1 || len(ch[0].Fields) != 2 {
		t.Fatalf("diff of nodes and preempt: %+v", ch)
	}
	if _, err := Read("bad.yaml", []byte("kind: VIP\nname: web\naddress: 192.0.2.10\nnodes: [n1:0]\n")); err == nil || !strings.Contains(err.Error(), "nodes") {
		t.Fatalf("nodes [n1:0]: %v, want a refusal naming the field", err)
	}
}
