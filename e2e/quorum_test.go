package e2e

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
)

// TestWitnessAndPartitionPolicy runs two DCs and a witness over loopback
// (state-only announcer): the witness joins with dc add and shows in dc
// list; it refuses VIPs and placements; --partition is validated at the
// edge, stored and changed by update; a consistent GIP is active only in
// the majority: with the witness and dc-2 gone, dc-1 alone is not, and
// gip show and the events say why. (The data plane is e2e/dataplane's
// TestQuorumPartition.)
func TestWitnessAndPartitionPolicy(t *testing.T) {
	d1 := startDaemon(t, "dc-1", fedTimers...)
	d2 := startDaemon(t, "dc-2", fedTimers...)
	w := startDaemon(t, "w", append([]string{"--witness"}, fedTimers...)...)
	mustDCAdd(t, d1, d2)
	mustDCAdd(t, d1, w)
	expectFederation(t, []*daemon{d1, d2, w}, nil)

	if out := mustCLI(t, d2.server(), "dc", "list"); !strings.Contains(out, "member (witness)") {
		t.Fatalf("dc list does not show the witness:\n%s", out)
	}
	var dcs []vipsmart.DCInfo
	cliJSON(t, d1.server(), &dcs, "dc", "list")
	for _, d := range dcs {
		if d.Witness != (d.Name == "w") {
			t.Fatalf("dc list -o json: %s witness=%t", d.Name, d.Witness)
		}
	}

	cases := []struct {
		at   *daemon
		args []string
		code int
		msgs []string
	}{
		{d1, []string{"gip", "add", "a", "203.0.113.40", "--placement", "dc-1:100", "--partition", "strict"}, 2, []string{"--partition", "available or consistent"}},
		{d1, []string{"gip", "add", "a", "203.0.113.40", "--placement", "dc-1:100", "--partition", "consistent", "--mode", "anycast"}, 2, []string{"--partition", "anycast"}},
		{d1, []string{"gip", "add", "a", "203.0.113.40", "--placement", "dc-1:100,w:50"}, 2, []string{"w is a witness"}},
		{w, []string{"vip", "add", "web", "192.0.2.20"}, 1, []string{"witness"}},
	}
	for _, c := range cases {
		r := cli(t, c.at.server(), c.args...)
		if r.code != c.code {
			t.Errorf("%s: vipsmart %s: exit %d; want %d (stderr %q)", c.at.name, strings.Join(c.args, " "), r.code, c.code, r.stderr)
		}
		for _, m := range c.msgs {
			if !strings.Contains(r.stderr, m) {
				t.Errorf("%s: vipsmart %s: stderr %q does not say %q", c.at.name, strings.Join(c.args, " "), r.stderr, m)
			}
		}
	}
	// serve --witness with an announcer is bad usage.
	cmd := exec.Command(bin, "serve", "--name", "x", "--witness", "--announcer", "netlink", "--data-dir", filepath.Join(t.TempDir(), "x"), "--socket", filepath.Join(t.TempDir(), "x.sock"))
	var se bytes.Buffer
	cmd.Stderr = &se
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(se.String(), "--witness announces nothing") {
		t.Errorf("serve --witness --announcer netlink: %v, stderr %q; want exit 2 naming --witness", err, se.String())
	}

	mustCLI(t, d1.server(), "gip", "add", "db", "203.0.113.50", "--placement", "dc-1:200,dc-2:100", "--partition", "consistent")
	mustCLI(t, d1.server(), "gip", "add", "av", "203.0.113.51", "--placement", "dc-1:200,dc-2:100")
	show := func(d *daemon, name string) vipsmart.GIPInfo {
		var g vipsmart.GIPInfo
		cliJSON(t, d.server(), &g, "gip", "show", name)
		return g
	}
	eventually(t, 10*time.Second, "db active on dc-1, in the majority", func() error {
		for _, d := range []*daemon{d1, d2, w} {
			g := show(d, "db")
			if g.Partition != vipsmart.PartitionConsistent || g.Quorum == nil || !g.Quorum.InMajority || g.Quorum.Members != 3 {
				return fmt.Errorf("%s: partition %q quorum %+v", d.name, g.Partition, g.Quorum)
			}
		}
		g := show(d1, "db")
		if len(g.Active) != 1 || g.Active[0] != "dc-1" || !strings.Contains(g.Quorum.Why, "active here") {
			return fmt.Errorf("dc-1: active %v, quorum %+v", g.Active, g.Quorum)
		}
		if g := show(d2, "av"); g.Partition != vipsmart.PartitionAvailable || g.Quorum != nil {
			return fmt.Errorf("av: partition %q quorum %+v", g.Partition, g.Quorum)
		}
		return nil
	})
	if out := mustCLI(t, d2.server(), "gip", "show", "db"); !strings.Contains(out, "Partition: consistent") || !strings.Contains(out, "in majority true") {
		t.Errorf("gip show db:\n%s", out)
	}

	// dc-1 alone (dc-2 and the witness gone) is not in the majority: db
	// goes inactive there; av (available) stays active.
	d2.kill()
	w.kill()
	eventually(t, 10*time.Second, "dc-1 out of the majority, db inactive", func() error {
		g := show(d1, "db")
		if g.Quorum == nil || g.Quorum.InMajority || len(g.Active) != 0 || !strings.Contains(g.Quorum.Why, "not in the majority") {
			return fmt.Errorf("db on dc-1: active %v quorum %+v", g.Active, g.Quorum)
		}
		if g := show(d1, "av"); len(g.Active) != 1 || g.Active[0] != "dc-1" {
			return fmt.Errorf("av on dc-1: active %v", g.Active)
		}
		return nil
	})
	out := mustCLI(t, d1.server(), "events", "-o", "json")
	if !strings.Contains(out, `"kind": "quorum"`) || !strings.Contains(out, "not in the majority") {
		t.Errorf("no quorum event for leaving the majority:\n%s", out)
	}
	// The witness's return gives dc-1 its majority back.
	w.start()
	eventually(t, 10*time.Second, "dc-1 back in the majority with the witness, db active", func() error {
		g := show(d1, "db")
		if g.Quorum == nil || !g.Quorum.InMajority || len(g.Active) != 1 {
			return fmt.Errorf("db on dc-1: active %v quorum %+v", g.Active, g.Quorum)
		}
		// The restarted witness read the policy back from its store.
		if g := show(w, "db"); g.Partition != vipsmart.PartitionConsistent {
			return fmt.Errorf("db on the restarted witness: partition %q", g.Partition)
		}
		return nil
	})

	// update --partition changes the stored policy everywhere.
	d2.start()
	expectFederation(t, []*daemon{d1, d2, w}, nil)
	mustCLI(t, d1.server(), "gip", "update", "db", "--partition", "available")
	if g := show(w, "db"); g.Partition != vipsmart.PartitionAvailable {
		eventually(t, 5*time.Second, "db available on the witness", func() error {
			if g := show(w, "db"); g.Partition != vipsmart.PartitionAvailable {
				return fmt.Errorf("partition %q", g.Partition)
			}
			return nil
		})
	}
}
