package e2e

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
)

// applyUnchanged waits until every DC of ds is a member again at epoch
// with no GIP and no VIP (what applyFile's apply leaves when it fails).
func applyUnchanged(t *testing.T, ds []*daemon, epoch uint64) {
	t.Helper()
	for _, d := range ds {
		eventually(t, 20*time.Second, d.name+" unlocked and unchanged", func() error {
			st, err := d.client().Status(context.Background())
			if err != nil {
				return err
			}
			s := applyStateOf(t, d)
			if st.Status != vipsmart.StatusMember || s.epoch != epoch || len(s.gips) != 0 || len(s.vips) != 0 {
				return errorf("%s %s at epoch %d (was %d), GIPs %v, VIPs %v", d.name, st.Status, s.epoch, epoch, s.gips, s.vips)
			}
			return nil
		})
	}
}

// TestApplyMemberStoppedRollsBack: a member frozen (SIGSTOP: its socket
// still takes connections, it answers nothing) during an apply fails the
// apply, which says which member and that it was rolled back; nothing
// changed anywhere. The same when the CLI gave up waiting first
// (--timeout): the operation fails later, and the VIPs the apply added on
// its DC are undone then too (they used to stay: half an apply).
func TestApplyMemberStoppedRollsBack(t *testing.T) {
	ds := startFederation(t, 3)
	f := writeFile(t, t.TempDir(), "a.yaml", applyFile)
	before := applyStateOf(t, ds[0])
	p := ds[2].cmd.Process
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer p.Signal(syscall.SIGCONT)
	r := cli(t, ds[0].server(), "apply", "-f", f)
	if r.code != 1 || !strings.Contains(r.stderr, "dc-3") || !strings.Contains(r.stderr, "rolled back") {
		t.Fatalf("apply with dc-3 stopped: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	applyUnchanged(t, ds[:2], before.epoch)

	r = cli(t, ds[0].server(), "apply", "-f", f, "--timeout", "500ms")
	if r.code != 1 || !strings.Contains(r.stderr, "is still running") {
		t.Fatalf("apply --timeout 500ms with dc-3 stopped: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	applyUnchanged(t, ds[:2], before.epoch)
	if err := p.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	applyUnchanged(t, ds, before.epoch)
	// dc-3 back: the same file applies.
	if r := cli(t, ds[0].server(), "apply", "-f", f); r.code != 0 {
		t.Fatalf("apply once dc-3 is back: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// bigGIPFile writes n GIPs (from number from) with names of 63
// characters, IPv6 addresses and placements on dc-1 and dc-2 naming the
// VIP vip: about 400 bytes each in a peer message.
func bigGIPFile(t *testing.T, dir, name string, from, n int, vip string) string {
	t.Helper()
	var b strings.Builder
	for i := from; i < from+n; i++ {
		nm := fmt.Sprintf("g%d-", i)
		nm += strings.Repeat("x", 63-len(nm))
		fmt.Fprintf(&b, "- {kind: GIP, name: %s, address: \"2001:db8:ffff:ffff:ffff:ffff:%x:%x\", placements: [{dc: dc-1, priority: 200, vip: %s}, {dc: dc-2, priority: 100, vip: %s}]}\n", nm, i>>16, i&0xffff, vip, vip)
	}
	return writeFile(t, dir, name, b.String())
}

// TestApplyKeepsTheFederationJoinable: each apply of 26,000 large GIPs is
// within a batch's limits, but two of them made a federation whose state
// (52,000 GIPs, 21 MB of JSON) no longer fits a peer message: dc add then
// failed in its prepare ("could not be reached ... connection reset by
// peer"), and a member that missed a commit could not catch up. The
// second apply is refused, saying why and changing nothing, and a DC can
// still be added, with every GIP.
func TestApplyKeepsTheFederationJoinable(t *testing.T) {
	ds := startFederation(t, 2)
	vip := strings.Repeat("v", 63)
	mustCLI(t, ds[0].server(), "vip", "add", vip, "192.0.2.10")
	mustCLI(t, ds[1].server(), "vip", "add", vip, "192.0.2.11")
	dir := t.TempDir()
	const n = 26000
	f := bigGIPFile(t, dir, "a.yaml", 0, n, vip)
	if r, _ := runCLI(t, 120*time.Second, ds[0].server(), "apply", "-f", f, "-o", "json"); r.code != 0 {
		t.Fatalf("apply of %d GIPs: exit %d\n%.2000s", n, r.code, r.stderr)
	}
	before := applyStateOf(t, ds[0])
	f = bigGIPFile(t, dir, "b.yaml", n, n, vip)
	r, _ := runCLI(t, 120*time.Second, ds[0].server(), "apply", "-f", f)
	if r.code == 0 || !strings.Contains(r.stderr, "adding a DC or a member catching up") || !strings.Contains(r.stderr, "apply fewer") {
		t.Fatalf("second apply of %d GIPs: exit %d, want a refusal saying why\n%.2000s", n, r.code, r.stderr)
	}
	t.Logf("second apply: exit %d: %s", r.code, r.stderr)
	if s := applyStateOf(t, ds[1]); s.epoch != before.epoch || len(s.gips) != n {
		t.Fatalf("dc-2 after the refused apply: epoch %d (was %d), %d GIPs (want %d)", s.epoch, before.epoch, len(s.gips), n)
	}
	d3 := startDaemon(t, "dc-3")
	mustDCAdd(t, ds[0], d3)
	eventually(t, 20*time.Second, "dc-3 holds every GIP", func() error {
		if s := applyStateOf(t, d3); len(s.gips) != n {
			return errorf("dc-3 holds %d GIPs, want %d", len(s.gips), n)
		}
		return nil
	})
}
