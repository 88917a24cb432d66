package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
)

// cliIn is cli with stdin.
func cliIn(t testing.TB, server, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--server", server}, args...)...)
	var so, se bytes.Buffer
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running vipsmart %v: %v", args, err)
	}
	return result{so.String(), se.String(), code}
}

func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// applyState is what a test compares across DCs: epoch, GIP names and
// VIP names.
type applyState struct {
	epoch uint64
	gips  map[string]vipsmart.GIP
	vips  map[string]bool
}

func applyStateOf(t testing.TB, d *daemon) applyState {
	t.Helper()
	ctx := context.Background()
	c := d.client()
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatalf("status of %s: %v", d.name, err)
	}
	gs, err := c.ListGIPs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	vs, err := c.ListVIPs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s := applyState{epoch: st.Epoch, gips: map[string]vipsmart.GIP{}, vips: map[string]bool{}}
	for _, g := range gs {
		s.gips[g.Name] = g.GIP
	}
	for _, v := range vs {
		s.vips[v.Name] = true
	}
	return s
}

const applyFile = `# addresses of dc-1 and the federation
kind: VIP
name: web
address: 192.0.2.10
check:
  url: tcp://127.0.0.1:1
  interval: 2s
---
kind: VIP
name: api
address: 192.0.2.11
---
kind: GIP
name: www
address: 203.0.113.10
placements:
  - {dc: dc-1, priority: 200, vip: web}
  - {dc: dc-2, priority: 150}
  - {dc: dc-3, priority: 100}
---
- kind: GIP
  name: mail
  address: 203.0.113.11
  mode: anycast
  placements: [{dc: dc-2, priority: 100}, {dc: dc-3, priority: 100}]
- kind: GIP
  name: old
  address: 203.0.113.12
  preempt: false
  placements: [{dc: dc-1, priority: 10}]
`

// TestApply: apply of a file with VIPs and GIPs commits every GIP change
// in one federation change on every member (one epoch step) and the VIPs
// on the local DC; applying it again changes nothing; export | apply
// changes nothing (YAML and JSON); --prune removes what the files leave
// out, and only with --prune.
func TestApply(t *testing.T) {
	ds := startFederation(t, 3)
	dir := t.TempDir()
	f := writeFile(t, dir, "addresses.yaml", applyFile)
	before := applyStateOf(t, ds[0])

	r := cli(t, ds[0].server(), "diff", "-f", f)
	if r.code != 1 || !strings.Contains(r.stdout, "+ vip web 192.0.2.10") || !strings.Contains(r.stdout, "+ gip www 203.0.113.10 dc-1:200:web,dc-2:150,dc-3:100") || !strings.Contains(r.stdout, "5 to add, 0 to change, 0 to remove") {
		t.Fatalf("diff before apply: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	out := mustCLI(t, ds[0].server(), "apply", "-f", f)
	if !strings.Contains(out, "committed by operation") {
		t.Fatalf("apply printed:\n%s", out)
	}
	after := applyStateOf(t, ds[0])
	if after.epoch != before.epoch+1 || len(after.gips) != 3 || !after.vips["web"] || !after.vips["api"] {
		t.Fatalf("after apply on dc-1: epoch %d (before %d), GIPs %v, VIPs %v: want one epoch step, 3 GIPs, 2 VIPs", after.epoch, before.epoch, after.gips, after.vips)
	}
	if g := after.gips["old"]; g.Preempt || g.Mode != vipsmart.ModeFailover || after.gips["mail"].Mode != vipsmart.ModeAnycast {
		t.Fatalf("GIP fields not as the file says: %+v %+v", g, after.gips["mail"])
	}
	for _, d := range ds[1:] {
		eventually(t, 5*time.Second, d.name+" has the applied GIPs", func() error {
			s := applyStateOf(t, d)
			if s.epoch != after.epoch || len(s.gips) != 3 || len(s.vips) != 0 {
				return errorf("%s at epoch %d with GIPs %d and VIPs %v", d.name, s.epoch, len(s.gips), s.vips)
			}
			return nil
		})
	}

	// Idempotence: the same file again makes no federation change.
	out = mustCLI(t, ds[0].server(), "apply", "-f", f)
	if !strings.Contains(out, "nothing to change") {
		t.Fatalf("second apply printed:\n%s", out)
	}
	if r := cli(t, ds[0].server(), "diff", "-f", dir); r.code != 0 || !strings.Contains(r.stdout, "0 to add, 0 to change, 0 to remove") {
		t.Fatalf("diff of the directory after apply: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if s := applyStateOf(t, ds[0]); s.epoch != after.epoch {
		t.Fatalf("the second apply moved the epoch from %d to %d", after.epoch, s.epoch)
	}

	// Export round trip, YAML and JSON.
	yml := mustCLI(t, ds[0].server(), "export")
	if r := cliIn(t, ds[0].server(), yml, "apply", "-f", "-"); r.code != 0 || !strings.Contains(r.stdout, "nothing to change") {
		t.Fatalf("export | apply -f -: exit %d\n%s%s\nexport was:\n%s", r.code, r.stdout, r.stderr, yml)
	}
	js := mustCLI(t, ds[0].server(), "export", "-o", "json")
	if r := cliIn(t, ds[0].server(), js, "diff", "--prune", "-f", "-"); r.code != 0 {
		t.Fatalf("export -o json | diff --prune -f -: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	var objs []map[string]any
	if err := json.Unmarshal([]byte(js), &objs); err != nil || len(objs) != 5 {
		t.Fatalf("export -o json: %d objects, %v\n%s", len(objs), err, js)
	}

	// A change and a leave-out: without --prune the left-out objects stay.
	small := writeFile(t, t.TempDir(), "small.yaml", `
kind: VIP
name: web
address: 192.0.2.10
check: {url: "tcp://127.0.0.1:1", interval: 2s}
---
kind: GIP
name: www
address: 203.0.113.20
placements: [{dc: dc-1, priority: 200, vip: web}]
`)
	r = cli(t, ds[0].server(), "diff", "-f", small)
	if r.code != 1 || !strings.Contains(r.stdout, "~ gip www") || !strings.Contains(r.stdout, "address: 203.0.113.10 -> 203.0.113.20") || !strings.Contains(r.stdout, "0 to add, 1 to change, 0 to remove") {
		t.Fatalf("diff without --prune: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = cli(t, ds[0].server(), "diff", "--prune", "-f", small)
	if r.code != 1 || !strings.Contains(r.stdout, "- vip api 192.0.2.11") || !strings.Contains(r.stdout, "- gip old") || !strings.Contains(r.stdout, "0 to add, 1 to change, 3 to remove") {
		t.Fatalf("diff --prune: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	mustCLI(t, ds[0].server(), "apply", "--prune", "-f", small)
	s := applyStateOf(t, ds[0])
	if s.epoch != after.epoch+1 || len(s.gips) != 1 || s.gips["www"].Address.String() != "203.0.113.20" || len(s.vips) != 1 || !s.vips["web"] {
		t.Fatalf("after apply --prune: epoch %d (want %d), GIPs %v, VIPs %v", s.epoch, after.epoch+1, s.gips, s.vips)
	}
	eventually(t, 5*time.Second, "dc-3 pruned", func() error {
		if s3 := applyStateOf(t, ds[2]); s3.epoch != s.epoch || len(s3.gips) != 1 {
			return errorf("dc-3 at epoch %d with %d GIPs", s3.epoch, len(s3.gips))
		}
		return nil
	})
	// --dry-run changes nothing.
	mustCLI(t, ds[0].server(), "apply", "--dry-run", "-f", f)
	if s2 := applyStateOf(t, ds[0]); s2.epoch != s.epoch || len(s2.gips) != 1 {
		t.Fatalf("apply --dry-run changed something: epoch %d, GIPs %v", s2.epoch, s2.gips)
	}
}

// TestApplyRefusedWhole: a file with one invalid document is refused
// before anything is sent, naming the file, the document and the field;
// a file the federation refuses (a placement names a VIP dc-2 lacks) is
// refused whole: the VIPs it added on dc-1 are undone and no member
// changed.
func TestApplyRefusedWhole(t *testing.T) {
	ds := startFederation(t, 3)
	dir := t.TempDir()
	bad := writeFile(t, dir, "bad.yaml", `kind: VIP
name: web
address: 192.0.2.10
---
kind: GIP
name: www
address: 203.0.113.10
placements: [{dc: dc-1, priority: 300}]
---
kind: GIP
name: ok
address: 203.0.113.11
`)
	before := applyStateOf(t, ds[0])
	for _, cmd := range []string{"apply", "diff"} {
		r := cli(t, ds[0].server(), cmd, "-f", bad)
		if r.code != 2 || !strings.Contains(r.stderr, "bad.yaml: document 2 (line 5), GIP www") || !strings.Contains(r.stderr, `field "placements"`) || !strings.Contains(r.stderr, "priority 300") {
			t.Fatalf("%s of a bad file: exit %d\n%s%s", cmd, r.code, r.stdout, r.stderr)
		}
	}
	unknown := writeFile(t, dir, "unknown.json", `[{"kind": "GIP", "name": "a", "address": "203.0.113.1"},
 {"kind": "GIP", "name": "b", "address": "203.0.113.2", "priorty": 3}]`)
	if r := cli(t, ds[0].server(), "apply", "-f", unknown); r.code != 2 || !strings.Contains(r.stderr, "unknown.json: document 2 (line 2)") || !strings.Contains(r.stderr, `field "priorty"`) {
		t.Fatalf("apply of a file with an unknown field: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	dup := writeFile(t, t.TempDir(), "dup.yaml", "kind: GIP\nname: a\naddress: 203.0.113.1\n---\nkind: GIP\nname: b\naddress: 203.0.113.1\n")
	if r := cli(t, ds[0].server(), "apply", "-f", dup); r.code != 2 || !strings.Contains(r.stderr, "dup.yaml: document 2") || !strings.Contains(r.stderr, "203.0.113.1") {
		t.Fatalf("apply of a file with one address twice: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	refused := writeFile(t, t.TempDir(), "refused.yaml", `kind: VIP
name: web
address: 192.0.2.10
---
kind: GIP
name: www
address: 203.0.113.10
placements: [{dc: dc-1, priority: 200, vip: web}, {dc: dc-2, priority: 100, vip: web}]
`)
	r := cli(t, ds[0].server(), "apply", "-f", refused)
	if r.code == 0 || !strings.Contains(r.stderr, "dc-2") || !strings.Contains(r.stderr, "no VIP named web") {
		t.Fatalf("apply the federation refuses: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, d := range ds {
		s := applyStateOf(t, d)
		if s.epoch != before.epoch || len(s.gips) != 0 || len(s.vips) != 0 {
			t.Fatalf("%s changed by refused applies: epoch %d (was %d), GIPs %v, VIPs %v", d.name, s.epoch, before.epoch, s.gips, s.vips)
		}
	}
}

// TestApplyMemberDownRollsBack: with a member down the apply fails, says
// which member, and nothing changed on any DC (the VIPs it added on dc-1
// are undone).
func TestApplyMemberDownRollsBack(t *testing.T) {
	ds := startFederation(t, 3)
	f := writeFile(t, t.TempDir(), "a.yaml", applyFile)
	before := applyStateOf(t, ds[0])
	ds[2].kill()
	r := cli(t, ds[0].server(), "apply", "-f", f)
	if r.code != 1 || !strings.Contains(r.stderr, "dc-3") || !strings.Contains(r.stderr, "rolled back") {
		t.Fatalf("apply with dc-3 down: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, d := range ds[:2] {
		eventually(t, 15*time.Second, d.name+" unlocked and unchanged", func() error {
			st, err := d.client().Status(context.Background())
			if err != nil {
				return err
			}
			s := applyStateOf(t, d)
			if st.Status != vipsmart.StatusMember || s.epoch != before.epoch || len(s.gips) != 0 || len(s.vips) != 0 {
				return errorf("%s %s at epoch %d (was %d), GIPs %v, VIPs %v", d.name, st.Status, s.epoch, before.epoch, s.gips, s.vips)
			}
			return nil
		})
	}
}

// TestApplyConcurrent: two pipelines apply different files based on the
// same diff (its resource version), from two DCs at once: one wins, the
// other is refused, says why, and changed nothing.
func TestApplyConcurrent(t *testing.T) {
	ds := startFederation(t, 3)
	dir := t.TempDir()
	a := writeFile(t, dir, "a.yaml", "kind: GIP\nname: a\naddress: 203.0.113.1\nplacements: [{dc: dc-1, priority: 100}]\n")
	b := writeFile(t, dir, "b.yaml", "kind: GIP\nname: b\naddress: 203.0.113.2\nplacements: [{dc: dc-2, priority: 100}]\n")
	var plan vipsmart.ApplyResult
	r := cli(t, ds[0].server(), "diff", "-f", a, "-o", "json")
	if r.code != 1 || json.Unmarshal([]byte(r.stdout), &plan) != nil || plan.ResourceVersion == "" {
		t.Fatalf("diff -o json: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	before := applyStateOf(t, ds[0])
	var wg sync.WaitGroup
	res := make([]result, 2)
	for i, job := range []struct {
		d *daemon
		f string
	}{{ds[0], a}, {ds[1], b}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i] = cli(t, job.d.server(), "apply", "-f", job.f, "--expect-version", plan.ResourceVersion)
		}()
	}
	wg.Wait()
	won, lost := res[0], res[1]
	if won.code != 0 {
		won, lost = lost, won
	}
	if won.code != 0 || lost.code != 1 || !strings.Contains(lost.stderr, "changed since the diff this apply is based on") || !strings.Contains(lost.stderr, "run vipsmart diff again") {
		t.Fatalf("concurrent applies: want one to win and one refused saying why\nfirst: exit %d %s%s\nsecond: exit %d %s%s", res[0].code, res[0].stdout, res[0].stderr, res[1].code, res[1].stdout, res[1].stderr)
	}
	s := applyStateOf(t, ds[0])
	if s.epoch != before.epoch+1 || len(s.gips) != 1 {
		t.Fatalf("after concurrent applies: epoch %d (was %d), GIPs %v: want one change", s.epoch, before.epoch, s.gips)
	}
	// A stale --expect-version is refused at once, naming both versions.
	r = cli(t, ds[0].server(), "apply", "-f", a, "--expect-version", plan.ResourceVersion)
	if r.code != 1 || !strings.Contains(r.stderr, plan.ResourceVersion) || !strings.Contains(r.stderr, "federation went from epoch") {
		t.Fatalf("apply with a stale --expect-version: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := cli(t, ds[0].server(), "apply", "-f", a, "--expect-version", "seven"); r.code != 2 || !strings.Contains(r.stderr, "--expect-version") {
		t.Fatalf("apply with a malformed --expect-version: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }
