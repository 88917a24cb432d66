package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
)

// startFails runs `vipsmart serve` for d as start does and expects it to
// exit with an error before answering; it returns what it printed.
func (d *daemon) startFails() string {
	d.t.Helper()
	args := d.serveArgs()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), d.env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err == nil || ctx.Err() != nil {
		d.t.Fatalf("vipsmart serve for %s did not fail at start (err %v):\n%s", d.name, err, out.String())
	}
	return out.String()
}

func mustContain(t *testing.T, what, s string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(s, p) {
			t.Errorf("%s does not say %q:\n%s", what, p, s)
		}
	}
}

// TestEmptiedStoreIsRefusedAtStart is finding 1: kill -9, truncate the
// store to 0 bytes, restart. The daemon must refuse to start (not come
// back as a fresh standalone DC) and say what it found and what to do;
// `vipsmart store check` says the same offline.
func TestEmptiedStoreIsRefusedAtStart(t *testing.T) {
	ds := startFederation(t, 2, fedTimers...)
	d := ds[1]
	for i := range 5 {
		mustCLI(t, d.server(), "vip", "add", fmt.Sprintf("v%d", i), fmt.Sprintf("192.0.2.%d", 10+i))
	}
	st := status(t, d)
	fed := st.Federation.ID
	d.kill()
	db := filepath.Join(d.dataDir, "vipsmart.db")
	if err := os.Truncate(db, 0); err != nil {
		t.Fatal(err)
	}
	out := d.startFails()
	mustContain(t, "the refusal", out, db, "empty (0 bytes)", "DC dc-2", "federation "+fed, fmt.Sprintf("epoch %d", st.Epoch),
		"--rebuild-federation "+fed, "vipsmart restore", "docs/operations.md")
	if fi, err := os.Stat(db); err != nil || fi.Size() != 0 {
		t.Errorf("the refused start changed the store file: %v %v", fi, err)
	}
	r := cli(t, d.server(), "store", "check", "--data-dir", d.dataDir)
	if r.code != 1 {
		t.Errorf("store check of the emptied store: exit %d, want 1", r.code)
	}
	mustContain(t, "store check", r.stderr, "empty (0 bytes)", "--rebuild-federation "+fed)

	// Random bytes over the middle of the file: refused as damaged, no
	// Go panic.
	if err := os.WriteFile(db, bytes.Repeat([]byte{0xA5}, 64*1024), 0o600); err != nil {
		t.Fatal(err)
	}
	out = d.startFails()
	mustContain(t, "the refusal of a damaged store", out, db, "damaged", "vipsmart store check")
	if strings.Contains(out, "panic") || strings.Contains(out, "goroutine ") {
		t.Errorf("a damaged store made the daemon panic:\n%s", out)
	}
}

// TestBackupDuringWritesRestoresAnAcknowledgedState takes a backup while
// VIPs are being added, restores it into a new data directory and starts
// the DC there: it holds exactly the first k VIPs added, for a k between
// the VIPs acknowledged before the backup began and those asked for before
// it ended.
func TestBackupDuringWritesRestoresAnAcknowledgedState(t *testing.T) {
	d := startDaemon(t, "dc-1")
	c := d.client()
	var mu sync.Mutex
	acked, started := 0, 0
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			mu.Lock()
			started = i + 1
			mu.Unlock()
			v := vipsmart.VIP{Name: fmt.Sprintf("v%05d", i), Address: netip.AddrFrom4([4]byte{10, 9, byte(i >> 8), byte(i)})}
			if _, err := c.AddVIP(context.Background(), v); err != nil {
				done <- err
				return
			}
			mu.Lock()
			acked = i + 1
			mu.Unlock()
		}
	}()
	eventually(t, 10*time.Second, "some VIPs written", func() error {
		mu.Lock()
		defer mu.Unlock()
		if acked < 20 {
			return fmt.Errorf("%d VIPs", acked)
		}
		return nil
	})
	backup := filepath.Join(t.TempDir(), "dc-1.backup")
	mu.Lock()
	lo := acked
	mu.Unlock()
	out := mustCLI(t, d.server(), "backup", backup)
	mu.Lock()
	hi := started
	mu.Unlock()
	time.Sleep(200 * time.Millisecond) // writes go on after the backup
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mustContain(t, "backup's answer", out, "Backup written to "+backup, "checksum ok")
	d.kill()

	r := newDaemon(t, "dc-1")
	if err := os.MkdirAll(r.dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	out = mustCLI(t, r.server(), "restore", backup, "--data-dir", r.dataDir)
	mustContain(t, "restore's answer", out, "Restored DC dc-1", "--name dc-1")
	r.start()
	var vs []vipInfo
	cliJSON(t, r.server(), &vs, "vip", "list")
	k := len(vs)
	if k < lo || k > hi {
		t.Fatalf("the restored DC holds %d VIPs; %d were acknowledged before the backup and %d asked for before it ended", k, lo, hi)
	}
	for i, v := range vs {
		if v.Name != fmt.Sprintf("v%05d", i) {
			t.Fatalf("restored VIP %d is %s: not the first %d VIPs added", i, v.Name, k)
		}
	}
	t.Logf("restored %d VIPs (acknowledged before the backup: %d, asked for before it ended: %d)", k, lo, hi)
	r2 := cli(t, r.server(), "restore", backup, "--data-dir", r.dataDir)
	if r2.code == 0 || !strings.Contains(r2.stderr, "in use") {
		t.Fatalf("restore into the data directory of a running daemon: exit %d, %s", r2.code, r2.stderr)
	}
}

// TestLostStoreRebuiltFromTheFederation loses a member's store and
// rebuilds it from the federation: refused without the rebuild flags,
// back as a member at its epoch with them, and the other members never see
// it at a lower epoch or as standalone on the way.
func TestLostStoreRebuiltFromTheFederation(t *testing.T) {
	ds := startFederation(t, 3, fedTimers...)
	d1, d3 := ds[0], ds[2]
	mustCLI(t, d1.server(), "gip", "add", "www", "203.0.113.10", "--placement", "dc-1:200,dc-3:100")
	mustCLI(t, d3.server(), "gip", "add", "api", "203.0.113.11", "--placement", "dc-3:200,dc-2:100")
	want := expectFederation(t, ds, nil)
	fed, epoch := want.Federation.ID, want.Federation.Epoch

	// Watch dc-3 as dc-1 sees it for the whole test.
	var seen []string
	var bad []string
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		c := d1.client()
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			dcs, err := c.ListDCs(context.Background())
			if err != nil {
				continue
			}
			for _, x := range dcs {
				if x.Name != "dc-3" || x.LastSeen == nil {
					continue
				}
				s := fmt.Sprintf("%s@%d", x.Status, x.LastEpoch)
				if len(seen) == 0 || seen[len(seen)-1] != s {
					seen = append(seen, s)
				}
				if x.LastEpoch < epoch || x.Status == vipsmart.StatusStandalone || x.Status == vipsmart.StatusInvited {
					bad = append(bad, s)
				}
			}
		}
	}()

	d3.kill()
	if err := os.Remove(filepath.Join(d3.dataDir, "vipsmart.db")); err != nil {
		t.Fatal(err)
	}
	out := d3.startFails()
	mustContain(t, "the refusal", out, "the file is missing", "--rebuild-federation "+fed)

	extra := d3.extra
	d3.extra = append(append([]string{}, extra...), "--rebuild-federation", fed, "--rebuild-from", d1.spec(), "--rebuild-identity", statusOf(t, d1).Identity)
	d3.start()
	got := expectFederation(t, ds, nil)
	if got.Federation.ID != fed || got.Federation.Epoch != epoch {
		t.Fatalf("after the rebuild: federation %s at epoch %d; want %s at %d", got.Federation.ID, got.Federation.Epoch, fed, epoch)
	}
	if st := status(t, d3); st.GIPs != 2 {
		t.Fatalf("the rebuilt DC holds %d GIPs, want 2", st.GIPs)
	}
	mustContain(t, "dc-3's logs", d3.Logs(), "rebuilt from dc-1")

	// It is a member like any other: a change it coordinates commits
	// everywhere.
	mustCLI(t, d3.server(), "gip", "add", "new", "203.0.113.12", "--placement", "dc-3:100")
	after := expectFederation(t, ds, nil)
	if after.Federation.Epoch != epoch+1 {
		t.Fatalf("after a change from the rebuilt DC: epoch %d, want %d", after.Federation.Epoch, epoch+1)
	}
	close(stop)
	<-watched
	if len(bad) > 0 {
		t.Fatalf("dc-1 saw dc-3 go back (epoch below %d or standalone): %v (all it saw: %v)", epoch, bad, seen)
	}
	t.Logf("dc-1 saw dc-3 as: %v", seen)

	// A later restart with the flags still given is harmless.
	d3.kill()
	d3.start()
	mustContain(t, "dc-3's logs", d3.Logs(), "--rebuild-federation ignored")
}
