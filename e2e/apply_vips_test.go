package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/vipsmart/vipsmart"
)

// vipAddrs returns the VIPs of d: name -> address.
func vipAddrs(t testing.TB, d *daemon) map[string]string {
	t.Helper()
	vs, err := d.client().ListVIPs(context.Background())
	if err != nil {
		t.Fatalf("VIPs of %s: %v", d.name, err)
	}
	out := map[string]string{}
	for _, v := range vs {
		out[v.Name] = v.Address.String()
	}
	return out
}

func sameVIPs(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestApplyVIPAddresses: an apply whose end state is sound applies whole
// even when VIPs pass addresses on (two VIPs swap theirs; a VIP renamed
// with --prune keeps its address), and one whose end state has an
// address twice is refused whole, naming both VIPs, with nothing changed
// (before, a swap was refused after the first VIP had been deleted: a
// refused apply that lost a VIP); and apply --prune of no object at all
// is refused (it removed everything).
func TestApplyVIPAddresses(t *testing.T) {
	d := startDaemon(t, "dc-1")
	dir := t.TempDir()
	two := writeFile(t, dir, "two.yaml", "kind: VIP\nname: v1\naddress: 192.0.2.51\n---\nkind: VIP\nname: v2\naddress: 192.0.2.52\n")
	mustCLI(t, d.server(), "apply", "-f", two)

	swap := writeFile(t, dir, "swap.yaml", "kind: VIP\nname: v1\naddress: 192.0.2.52\n---\nkind: VIP\nname: v2\naddress: 192.0.2.51\n")
	if r := cli(t, d.server(), "apply", "-f", swap); r.code != 0 {
		t.Fatalf("apply of two VIPs swapping addresses: exit %d\n%s%s\nVIPs now: %v", r.code, r.stdout, r.stderr, vipAddrs(t, d))
	}
	if got, want := vipAddrs(t, d), map[string]string{"v1": "192.0.2.52", "v2": "192.0.2.51"}; !sameVIPs(got, want) {
		t.Fatalf("after the swap: VIPs %v, want %v", got, want)
	}

	// v3 takes v1's address while v1 keeps it: refused, nothing changed.
	before := vipAddrs(t, d)
	clash := writeFile(t, dir, "clash.yaml", "kind: VIP\nname: v1\naddress: 192.0.2.53\n---\nkind: VIP\nname: v3\naddress: 192.0.2.51\n")
	r := cli(t, d.server(), "apply", "-f", clash)
	if r.code == 0 || !strings.Contains(r.stderr, "192.0.2.51") || !strings.Contains(r.stderr, "v2") || !strings.Contains(r.stderr, "v3") {
		t.Fatalf("apply of a VIP with the address of another: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got := vipAddrs(t, d); !sameVIPs(got, before) {
		t.Fatalf("a refused apply changed the VIPs: %v, were %v", got, before)
	}

	// A rename with --prune: v2 goes, web takes its address.
	rename := writeFile(t, dir, "rename.yaml", "kind: VIP\nname: v1\naddress: 192.0.2.52\n---\nkind: VIP\nname: web\naddress: 192.0.2.51\n")
	if r := cli(t, d.server(), "apply", "--prune", "-f", rename); r.code != 0 {
		t.Fatalf("apply --prune renaming a VIP: exit %d\n%s%s\nVIPs now: %v", r.code, r.stdout, r.stderr, vipAddrs(t, d))
	}
	if got, want := vipAddrs(t, d), map[string]string{"v1": "192.0.2.52", "web": "192.0.2.51"}; !sameVIPs(got, want) {
		t.Fatalf("after the rename: VIPs %v, want %v", got, want)
	}
	if r := cli(t, d.server(), "diff", "--prune", "-f", rename); r.code != 0 {
		t.Fatalf("diff after the rename: exit %d (want 0: nothing to change)\n%s%s", r.code, r.stdout, r.stderr)
	}

	// GIPs on a standalone DC: refused whole, saying what to do.
	before = vipAddrs(t, d)
	withGIP := writeFile(t, dir, "gip.yaml", "kind: VIP\nname: new\naddress: 192.0.2.54\n---\nkind: GIP\nname: g\naddress: 203.0.113.5\n")
	if r := cli(t, d.server(), "apply", "-f", withGIP); r.code != 1 || !strings.Contains(r.stderr, "standalone") || !strings.Contains(r.stderr, "vipsmart dc add") {
		t.Fatalf("apply of GIPs on a standalone DC: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got := vipAddrs(t, d); !sameVIPs(got, before) {
		t.Fatalf("a refused apply changed the VIPs: %v, were %v", got, before)
	}

	// The answer shows an added VIP as written (its creation time was
	// the zero time).
	var res vipsmart.ApplyResult
	out := mustCLI(t, d.server(), "apply", "-o", "json", "-f", writeFile(t, dir, "more.yaml", "kind: VIP\nname: more\naddress: 192.0.2.55\n"))
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Changes) != 1 || res.Changes[0].VIP == nil || res.Changes[0].VIP.Created.IsZero() {
		t.Fatalf("apply -o json of a new VIP: %v\n%s", err, out)
	}

	// An empty standard input (an export that failed before the pipe)
	// with --prune is refused, not taken as "remove everything".
	before = vipAddrs(t, d)
	if r := cliIn(t, d.server(), "", "apply", "--prune", "-f", "-"); r.code != 2 || !strings.Contains(r.stderr, "declare no object") {
		t.Fatalf("apply --prune of an empty standard input: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got := vipAddrs(t, d); !sameVIPs(got, before) {
		t.Fatalf("apply --prune of nothing changed the VIPs: %v, were %v", got, before)
	}
}

// TestApplyVIPOnWitness: apply refuses VIPs on a witness as vip add does
// (it added them, on a DC that holds no VIPs and announces nothing).
func TestApplyVIPOnWitness(t *testing.T) {
	w := startDaemon(t, "w", "--witness")
	f := writeFile(t, t.TempDir(), "v.yaml", "kind: VIP\nname: v\naddress: 192.0.2.51\n")
	if r := cli(t, w.server(), "apply", "-f", f); r.code != 1 || !strings.Contains(r.stderr, "witness") {
		t.Fatalf("apply of a VIP on a witness: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got := vipAddrs(t, w); len(got) != 0 {
		t.Fatalf("the witness holds VIPs after a refused apply: %v", got)
	}
	if r := cli(t, w.server(), "diff", "-f", f); r.code != 1 {
		t.Fatalf("diff on a witness: exit %d (want 1: it shows what the file asks)\n%s%s", r.code, r.stdout, r.stderr)
	}
}
