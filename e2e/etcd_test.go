package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/etcd/etcdtest"
)

// dcState is what an operator reads from a DC, less what changes by
// itself (health, time left).
type dcState struct {
	Status string
	FedID  string
	Epoch  uint64
	VIPs   []string
	GIPs   []string
	Events []string
}

func readState(t *testing.T, d *daemon) dcState {
	t.Helper()
	ctx := context.Background()
	c := d.client()
	var s dcState
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatalf("status of %s: %v", d.name, err)
	}
	s.Status = string(st.Status)
	if st.Federation != nil {
		s.FedID, s.Epoch = st.Federation.ID, st.Federation.Epoch
	}
	vips, err := c.ListVIPs(ctx)
	if err != nil {
		t.Fatalf("vip list of %s: %v", d.name, err)
	}
	for _, v := range vips {
		s.VIPs = append(s.VIPs, v.Name+"="+v.Address.String())
	}
	gips, err := c.ListGIPs(ctx)
	if err != nil {
		t.Fatalf("gip list of %s: %v", d.name, err)
	}
	for _, g := range gips {
		s.GIPs = append(s.GIPs, fmt.Sprintf("%s=%s %v", g.Name, g.Address, g.Placements))
	}
	evs, err := c.Events(ctx, 0, 0)
	if err != nil {
		t.Fatalf("events of %s: %v", d.name, err)
	}
	for _, e := range evs {
		s.Events = append(s.Events, fmt.Sprintf("%d %s", e.Seq, e.Message))
	}
	return s
}

// TestEtcdStore runs a DC on a real etcd next to a DC on bolt: VIPs, a
// federation, GIPs; a restart (clean, then kill -9) keeps all of it, and
// the federation works on.
func TestEtcdStore(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	eps := strings.Join(c.Endpoints(), ",")
	d1 := startDaemon(t, "dc-1", append([]string{"--store", "etcd", "--etcd-endpoints", eps, "--node", "n1"}, fedTimers...)...)
	d2 := startDaemon(t, "dc-2", fedTimers...)

	mustCLI(t, d1.server(), "vip", "add", "web", "192.0.2.10")
	mustCLI(t, d1.server(), "vip", "add", "db", "2001:db8::10")
	mustDCAdd(t, d1, d2)
	mustCLI(t, d1.server(), "gip", "add", "www", "203.0.113.10", "--placement", "dc-1:200:web,dc-2:100")
	expectFederation(t, []*daemon{d1, d2}, nil)
	before := readState(t, d1)
	if before.Status != "member" || len(before.VIPs) != 2 || len(before.GIPs) != 1 || len(before.Events) == 0 {
		t.Fatalf("state of dc-1 before the restart: %+v", before)
	}
	// The state is in etcd under the default prefix, not in the data dir.
	resp, err := c.Client().Get(context.Background(), "/vipsmart/dc-1/vips/web")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("VIP web is not at /vipsmart/dc-1/vips/web in etcd: %v %v", resp, err)
	}

	sameAfter := func(how string) {
		t.Helper()
		after := readState(t, d1)
		if after.Status != before.Status || after.FedID != before.FedID || after.Epoch != before.Epoch ||
			!reflect.DeepEqual(after.VIPs, before.VIPs) || !reflect.DeepEqual(after.GIPs, before.GIPs) {
			t.Fatalf("after %s:\n got %+v\nwant %+v", how, after, before)
		}
		if len(after.Events) < len(before.Events) || !reflect.DeepEqual(after.Events[:len(before.Events)], before.Events) {
			t.Fatalf("after %s the event log lost events:\n got %v\nwant a continuation of %v", how, after.Events, before.Events)
		}
	}
	if err := d1.stop(); err != nil {
		t.Fatal(err)
	}
	d1.start()
	sameAfter("a clean restart")

	// kill -9: the old process's lease lives on for its TTL; the new
	// process waits for it, then leads again.
	d1.kill()
	start := time.Now()
	d1.start()
	t.Logf("restart after kill -9 answered after %s", time.Since(start).Round(10*time.Millisecond))
	sameAfter("kill -9 and a restart")

	// The federation works on: a change commits on both DCs.
	mustCLI(t, d1.server(), "gip", "add", "api", "203.0.113.11", "--placement", "dc-2:100")
	eventually(t, 15*time.Second, "gip api on dc-2", func() error {
		gips, err := d2.client().ListGIPs(context.Background())
		if err != nil {
			return err
		}
		if len(gips) != 2 {
			return fmt.Errorf("dc-2 has %d GIPs", len(gips))
		}
		return nil
	})
	if st := readState(t, d1); len(st.GIPs) != 2 || st.Epoch != before.Epoch+1 {
		t.Fatalf("after gip add: %+v", st)
	}

	// The node's lease ends (as when etcd loses it for longer than its
	// TTL): its term ends; no other node leads, so it takes a new lease,
	// leads again with the same daemon, and changes work on.
	cli := c.Client()
	claim, err := cli.Get(context.Background(), "/vipsmart/dc-1/nodes/n1")
	if err != nil || len(claim.Kvs) != 1 || claim.Kvs[0].Lease == 0 {
		t.Fatalf("the claim of node n1: %v %v", claim, err)
	}
	if _, err := cli.Revoke(context.Background(), clientv3.LeaseID(claim.Kvs[0].Lease)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "dc-1 leads again", func() error {
		if !strings.Contains(d1.Logs(), "leading the DC again") {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	mustCLI(t, d1.server(), "vip", "add", "db2", "192.0.2.20")
	if st := readState(t, d1); len(st.VIPs) != len(before.VIPs)+1 || st.Epoch != before.Epoch+1 {
		t.Fatalf("after leading again: %+v", st)
	}
}

// TestEtcdStoreFlags refuses bad store flags with exit status 2 and a
// message naming the flag, and refuses a second process with the same
// node name.
func TestEtcdStoreFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--store", "zk"}, `--store "zk" is unknown`},
		{[]string{"--store", "etcd"}, "--store etcd needs --etcd-endpoints"},
		{[]string{"--etcd-endpoints", "http://127.0.0.1:2379"}, "--etcd-endpoints is only used with --store etcd"},
		{[]string{"--store", "etcd", "--etcd-endpoints", "127.0.0.1:2379"}, "is not an etcd client URL"},
		{[]string{"--store", "etcd", "--etcd-endpoints", "http://127.0.0.1:2379,https://127.0.0.2:2379"}, "mixes http:// and https://"},
		{[]string{"--store", "etcd", "--etcd-endpoints", "https://127.0.0.1:2379", "--etcd-cert", "c.pem"}, "--etcd-cert and --etcd-key go together"},
		{[]string{"--store", "etcd", "--etcd-endpoints", "http://127.0.0.1:2379", "--etcd-ca", "ca.pem"}, "need https:// endpoints"},
		{[]string{"--store", "etcd", "--etcd-endpoints", "https://127.0.0.1:2379", "--etcd-ca", "/nonexistent/ca.pem"}, "--etcd-ca /nonexistent/ca.pem"},
		{[]string{"--store", "etcd", "--etcd-endpoints", "http://127.0.0.1:2379", "--etcd-prefix", "vipsmart"}, "--etcd-prefix \"vipsmart\" must start and end with /"},
		{[]string{"--store", "etcd", "--etcd-endpoints", "http://127.0.0.1:2379", "--node", "a/b"}, `--node "a/b" has the character '/'`},
		{[]string{"--store", "etcd", "--etcd-endpoints", "http://127.0.0.1:2379", "--unsafe-no-fsync"}, "--unsafe-no-fsync applies to the bolt store only"},
	} {
		d := newDaemon(t, "dc-1", tc.args...)
		r := serveOnce(t, d)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("serve %v: exit %d, stderr %q; want exit 2 and %q", tc.args, r.code, r.stderr, tc.want)
		}
	}

	c := etcdtest.Start(t, etcdtest.Options{})
	eps := strings.Join(c.Endpoints(), ",")
	d1 := startDaemon(t, "dc-1", "--store", "etcd", "--etcd-endpoints", eps, "--node", "n1")
	mustCLI(t, d1.server(), "vip", "add", "web", "192.0.2.10")
	// Another DC on the same prefix is refused; so is a second process
	// with the node name n1 (after waiting out the lease, 5s).
	other := newDaemon(t, "dc-2", "--store", "etcd", "--etcd-endpoints", eps, "--etcd-prefix", "/vipsmart/dc-1/")
	if r := serveOnce(t, other); r.code != 1 || !strings.Contains(r.stderr, "holds the state of DC dc-1, not of DC dc-2") {
		t.Errorf("a DC on another DC's prefix: exit %d, stderr %q", r.code, r.stderr)
	}
	held := holderOf(t, d1, "web", 10*time.Second, "web held by n1", func(v vipsmart.VIPInfo) error { return nil }) // vipmove_test.go
	dup := newDaemon(t, "dc-1", "--store", "etcd", "--etcd-endpoints", eps, "--node", "n1")
	if r := serveOnce(t, dup); r.code != 1 || !strings.Contains(r.stderr, "node name n1 is already claimed") {
		t.Errorf("a second node n1: exit %d, stderr %q", r.code, r.stderr)
	}
	// The second process did not touch n1's claim to its VIPs.
	if v, err := vipShow(t, d1, "web"); err != nil || v.Holder == nil || v.Holder.Node != "n1" || !v.Holder.Since.Equal(held.Holder.Since) {
		t.Errorf("web's holder after a second process n1 was refused: %+v (was %+v) %v", v.Holder, held.Holder, err)
	}
	// None of it changed the DC.
	vips, err := d1.client().ListVIPs(context.Background())
	if err != nil || len(vips) != 1 || vips[0].Name != "web" {
		t.Fatalf("dc-1's VIPs after the refusals: %v %v", vips, err)
	}
	if st, err := d1.client().Status(context.Background()); err != nil || st.Status != vipsmart.StatusStandalone {
		t.Fatalf("dc-1's status after the refusals: %+v %v", st, err)
	}
}

// serveOnce runs `vipsmart serve` for d in the foreground and returns how
// it ended (for serves that must refuse to start).
func serveOnce(t *testing.T, d *daemon) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := append([]string{"serve", "--name", d.name, "--listen", d.addr(), "--data-dir", d.dataDir}, d.extra...)
	cmd := exec.CommandContext(ctx, bin, args...)
	var so, se bytes.Buffer
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

// TestEtcdStandby: a second node of a DC follows while the first leads
// (it answers, passing the operator API on to the leader); SIGTERM stops
// it cleanly and frees its name at once; after kill -9 of the leader, a
// follower takes over with the DC's state. (TestHAFailover covers three
// nodes in a federation.)
func TestEtcdStandby(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	eps := strings.Join(c.Endpoints(), ",")
	d1 := startDaemon(t, "dc-1", "--store", "etcd", "--etcd-endpoints", eps, "--node", "n1")
	mustCLI(t, d1.server(), "vip", "add", "web", "192.0.2.10")
	ec := c.Client()
	claimed := func(node string) bool {
		resp, err := ec.Get(context.Background(), "/vipsmart/dc-1/nodes/"+node)
		if err != nil {
			t.Fatal(err)
		}
		return len(resp.Kvs) == 1
	}

	d2 := startDaemon(t, "dc-1", "--store", "etcd", "--etcd-endpoints", eps, "--node", "n2")
	eventually(t, 10*time.Second, "n2 follows", func() error {
		if !strings.Contains(d2.Logs(), "follower: the DC has a leader") || !claimed("n2") {
			return fmt.Errorf("n2 does not follow: %s", d2.Logs())
		}
		return nil
	})
	if out := mustCLI(t, d2.server(), "vip", "list"); !strings.Contains(out, "web") {
		t.Fatalf("vip list through the follower: %s", out)
	}
	if err := d2.stop(); err != nil {
		t.Fatal(err)
	}
	if claimed("n2") {
		t.Error("the follower's claim outlived its process: its lease was not revoked")
	}

	d3 := startDaemon(t, "dc-1", "--store", "etcd", "--etcd-endpoints", eps, "--node", "n3")
	d1.kill()
	eventually(t, 20*time.Second, "n3 takes over", func() error {
		if !strings.Contains(d3.Logs(), "leading the DC") {
			return fmt.Errorf("n3 does not lead yet")
		}
		vips, err := d3.client().ListVIPs(context.Background())
		if err != nil {
			return err
		}
		if len(vips) != 1 || vips[0].Name != "web" {
			return fmt.Errorf("VIPs %v, want web", vips)
		}
		return nil
	})
	mustCLI(t, d3.server(), "vip", "add", "db", "192.0.2.11")
}
