package e2e

import (
	"context"
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
