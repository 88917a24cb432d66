package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/etcd/etcdtest"
)

// dcNodes is what `dc list -o json` on d says of DC name: its address
// and node addresses.
func dcNodes(t *testing.T, d *daemon, name string) (string, []string) {
	t.Helper()
	var ds []vipsmart.DCInfo
	cliJSON(t, d.server(), &ds, "dc", "list", "-o", "json")
	for _, x := range ds {
		if x.Name == name {
			var out []string
			for _, a := range x.Nodes {
				out = append(out, a.String())
			}
			return x.AddrPort().String(), out
		}
	}
	t.Fatalf("dc list on %s does not list %s: %+v", d.name, name, ds)
	return "", nil
}

// addrsOf are the federation addresses of ds, sorted as a member record
// keeps them.
func addrsOf(ds ...*daemon) []string {
	var aps []netip.AddrPort
	for _, d := range ds {
		aps = append(aps, netip.MustParseAddrPort(d.addr()))
	}
	slices.SortFunc(aps, func(a, b netip.AddrPort) int { return a.Compare(b) })
	out := make([]string, len(aps))
	for i, a := range aps {
		out[i] = a.String()
	}
	return out
}

// eventsWith are the events of d after seq whose message contains s.
func eventsWith(t *testing.T, d *daemon, after uint64, s string) []string {
	t.Helper()
	evs, err := d.client().Events(context.Background(), after, 0)
	if err != nil {
		t.Fatalf("events of %s: %v", d.name, err)
	}
	var out []string
	for _, e := range evs {
		if strings.Contains(e.Message, s) {
			out = append(out, e.Time.Format("15:04:05.000")+" "+e.Message)
		}
	}
	return out
}

func lastSeq(t *testing.T, d *daemon) uint64 {
	t.Helper()
	evs, err := d.client().Events(context.Background(), 0, 0)
	if err != nil {
		t.Fatalf("events of %s: %v", d.name, err)
	}
	if len(evs) == 0 {
		return 0
	}
	return evs[len(evs)-1].Seq
}

// TestHANodesRecorded: dc-2 (bolt) adds dc-1 (3 nodes on etcd) naming a
// follower of dc-1; dc-2's member record of dc-1 lists all three node
// addresses (the candidate's invite answer). When that node dies, dc-1's
// leader records the two left (a federation change). dc-2, restarted
// while the node it was given at dc add is down, reaches dc-1 through the
// committed addresses: dc-1 hears it again, dc-2 never sees dc-1
// unreachable, and a change dc-2 coordinates (which needs dc-1's answers)
// commits.
func TestHANodesRecorded(t *testing.T) {
	h := startHA(t, 3)
	leader := h.waitLeader(20 * time.Second)
	var named *daemon // a follower: dc add names it
	for _, d := range h.nodes {
		if d != leader {
			named = d
			break
		}
	}
	mustCLI(t, leader.server(), "vip", "add", "web", "192.0.2.10")
	mustDCAdd(t, h.other, named)
	addr, nodes := dcNodes(t, h.other, "dc-1")
	if addr != named.addr() || !slices.Equal(nodes, addrsOf(h.nodes...)) {
		t.Fatalf("dc-2 lists dc-1 at %s with nodes %v right after dc add; want %s with %v", addr, nodes, named.addr(), addrsOf(h.nodes...))
	}
	// Every node of dc-1 reads the same record.
	for _, d := range h.nodes {
		if _, got := dcNodes(t, d, "dc-1"); !slices.Equal(got, addrsOf(h.nodes...)) {
			t.Fatalf("node %s of dc-1 lists dc-1's nodes %v", d.sock, got)
		}
	}
	mustCLI(t, h.other.server(), "gip", "add", "www", "203.0.113.10", "--placement", "dc-1:200,dc-2:100")
	h.waitWWWAtDC1()

	// The named node dies: once its lease ends, dc-1's leader records
	// the two nodes left.
	named.kill()
	var live []*daemon
	for _, d := range h.nodes {
		if d != named {
			live = append(live, d)
		}
	}
	eventually(t, 20*time.Second, "dc-2's record of dc-1 lists the two live nodes", func() error {
		if _, got := dcNodes(t, h.other, "dc-1"); !slices.Equal(got, addrsOf(live...)) {
			return fmt.Errorf("dc-2 lists dc-1's nodes %v, want %v", got, addrsOf(live...))
		}
		return nil
	})
	if ev := eventsWith(t, h.other, 0, "record the node addresses of dc-1"); len(ev) == 0 {
		t.Fatal("dc-2's events show no change recording dc-1's nodes")
	}

	// dc-2 restarts while the node named at dc add is still down.
	if err := h.other.stop(); err != nil {
		t.Fatal(err)
	}
	h.other.start()
	seq2 := lastSeq(t, h.other)
	lead := h.waitLeader(20 * time.Second)
	restarted := time.Now()
	eventually(t, 10*time.Second, "dc-1 hears dc-2 again", func() error {
		var ds []vipsmart.DCInfo
		cliJSON(t, lead.server(), &ds, "dc", "list", "-o", "json")
		for _, x := range ds {
			if x.Name == "dc-2" && x.Reachable {
				return nil
			}
		}
		return fmt.Errorf("dc-1 lists %+v", ds)
	})
	t.Logf("dc-1 heard the restarted dc-2 %s after it answered", time.Since(restarted).Round(time.Millisecond))
	// A change coordinated by dc-2 needs dc-1's answers.
	mustCLI(t, h.other.server(), "gip", "update", "www", "--placement", "dc-1:210,dc-2:100")
	time.Sleep(2 * time.Second) // a few detection windows
	if ev := eventsWith(t, h.other, seq2, "dc-1 is unreachable"); len(ev) > 0 {
		t.Fatalf("the restarted dc-2 saw dc-1 unreachable: %v", ev)
	}
	g, err := h.other.client().GetGIP(context.Background(), "www")
	if err != nil || !slices.Equal(g.Active, []string{"dc-1"}) {
		t.Fatalf("www after dc-2's restart: %+v %v", g, err)
	}
}

// etcdLeader returns the member of c that leads etcd.
func etcdLeader(t *testing.T, c *etcdtest.Cluster) *etcdtest.Member {
	t.Helper()
	ec := c.Client()
	var leader *etcdtest.Member
	eventually(t, 10*time.Second, "etcd has a leader", func() error {
		for _, m := range c.Members {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			st, err := ec.Status(ctx, m.ClientURL)
			cancel()
			if err == nil && st.Leader != 0 && st.Header.MemberId == st.Leader {
				leader = m
				return nil
			}
		}
		return fmt.Errorf("no member says it leads")
	})
	return leader
}

// TestHAEtcdLeaderKilledMidChange: changes run one after another on dc-1
// (VIP changes and federation changes it coordinates) while the etcd
// leader is killed: a change in flight waits for etcd's election (about
// a second), and meanwhile dc-1's leader keeps sending heartbeats (from
// its stored record) and taking dc-2's (docs/ha.md, "A store write in
// flight"). dc-2 never sees dc-1 unreachable nor the GIP elsewhere, and
// dc-1 never sees dc-2 unreachable. With one node, nothing but the
// leader's keeper keeps dc-1 heard; with three, the followers' standby
// heartbeats help too.
func TestHAEtcdLeaderKilledMidChange(t *testing.T) {
	for _, n := range []int{1, 3} {
		t.Run(fmt.Sprintf("%d nodes", n), func(t *testing.T) { etcdLeaderKilledMidChange(t, n) })
	}
}

func etcdLeaderKilledMidChange(t *testing.T, nodes int) {
	h := startHA(t, nodes)
	leader := h.waitLeader(20 * time.Second)
	mustCLI(t, leader.server(), "vip", "add", "web", "192.0.2.10")
	mustDCAdd(t, leader, h.other)
	mustCLI(t, leader.server(), "gip", "add", "www", "203.0.113.10", "--placement", "dc-1:200,dc-2:100")
	h.waitWWWAtDC1()
	_, seq2 := h.unreachableEvents(0)
	seq1 := lastSeq(t, leader)
	w := h.watchOther()

	// Changes back to back through the leader, before, during and after
	// the kill.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var done, failed int
	wg.Add(1)
	go func() {
		defer wg.Done()
		steps := [][]string{
			{"vip", "add", "db", "192.0.2.11"},
			{"gip", "add", "api", "203.0.113.11", "--placement", "dc-1:100,dc-2:200"},
			{"vip", "remove", "db"},
			{"gip", "remove", "api"},
		}
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			r := cli(t, leader.server(), steps[i%len(steps)]...)
			mu.Lock()
			if r.code == 0 {
				done++
			} else {
				failed++
				if failed <= 8 {
					t.Logf("%s %v: %s", time.Now().Format("15:04:05.000"), steps[i%len(steps)], strings.TrimSpace(r.stderr))
				}
			}
			mu.Unlock()
		}
	}()
	time.Sleep(time.Second)
	m := etcdLeader(t, h.etcd)
	t.Logf("%s killing etcd's leader %s", time.Now().Format("15:04:05.000"), m.Name)
	m.Kill()
	time.Sleep(5 * time.Second)
	close(stop)
	wg.Wait()
	t.Logf("changes during the test: %d done, %d refused or failed", done, failed)
	if moved := w.end(); len(moved) > 0 {
		t.Fatalf("etcd leader killed mid-change: www moved: %v", moved)
	}
	if ev, _ := h.unreachableEvents(seq2); len(ev) > 0 {
		t.Fatalf("etcd leader killed mid-change: dc-2 saw dc-1 unreachable: %v", ev)
	}
	select {
	case <-leader.done:
		t.Fatalf("dc-1's leader stopped:\n%s", leader.Logs())
	default:
	}
	if ev := eventsWith(t, leader, seq1, "dc-2 is unreachable"); len(ev) > 0 {
		t.Fatalf("etcd leader killed mid-change: dc-1 saw dc-2 unreachable: %v", ev)
	}
	// The scenario happened: the leader's loop did wait for the store,
	// and the keeper sent its heartbeats meanwhile.
	if !strings.Contains(leader.Logs(), "heartbeats go out from the stored record") {
		t.Fatalf("dc-1's leader never waited for the store longer than a heartbeat interval: the test did not hold a change in flight over etcd's election")
	}
	if done == 0 {
		t.Fatal("no change succeeded")
	}
	// Changes work on.
	eventually(t, 20*time.Second, "a change after etcd's election", func() error {
		r := cli(t, leader.server(), "vip", "add", "cache", "192.0.2.12")
		if r.code != 0 && !strings.Contains(r.stderr, "already exists") {
			return fmt.Errorf("exit %d: %s", r.code, r.stderr)
		}
		return nil
	})
}

// nodeChangeRe matches the event of a committed change that recorded a
// DC's node addresses.
var nodeChangeRe = regexp.MustCompile(`^operation (\S+) committed at epoch (\d+): record the node addresses of `)

// nodeChanges counts the changes recording dc-1's node addresses
// (federation set-nodes, which the DC makes itself as its nodes come and
// go: docs/ha.md) that d's event log shows committed above epoch from.
// A test that expects the epoch unchanged by a failure expects it moved
// by these (epochMovedByNodes).
func nodeChanges(t testing.TB, d *daemon, from uint64) uint64 {
	t.Helper()
	evs, err := d.client().Events(context.Background(), 0, 0)
	if err != nil {
		t.Fatalf("events of %s: %v", d.name, err)
	}
	ops := map[string]bool{}
	for _, e := range evs {
		m := nodeChangeRe.FindStringSubmatch(e.Message)
		if m == nil {
			continue
		}
		if ep, _ := strconv.ParseUint(m[2], 10, 64); ep > from {
			ops[m[1]] = true
		}
	}
	return uint64(len(ops))
}

// waitNodesRecorded waits until leader's record of dc-1 lists the
// running nodes (so no change recording them is pending).
func (h *haDC) waitNodesRecorded(leader *daemon) {
	h.t.Helper()
	eventually(h.t, 20*time.Second, "dc-1's record lists its running nodes", func() error { return h.nodesRecorded(leader) })
}

// nodesRecorded says whether leader's record of dc-1 lists the running
// nodes (none when the one running node is the recorded address), or
// that dc-1 is in no federation.
func (h *haDC) nodesRecorded(leader *daemon) error {
	ds, err := leader.client().ListDCs(context.Background())
	if err != nil {
		return err
	}
	for _, x := range ds {
		if x.Name != "dc-1" {
			continue
		}
		run := h.running()
		want := addrsOf(run...)
		if len(run) == 1 && run[0].addr() == x.AddrPort().String() {
			want = nil
		}
		var got []string
		for _, a := range x.Nodes {
			got = append(got, a.String())
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("dc-1's record lists nodes %v, %d run: %v", got, len(run), want)
		}
	}
	return nil
}

// epochMovedByNodes says whether epoch, read after a failure, is from
// moved only by changes recording dc-1's node addresses: at least by those
// d's event log shows (nodeChanges). It may be more: a node whose store
// answered slowly skips storing events for 2 s (docs/ha.md), so a set-nodes
// change committed then is in no event log; the callers check separately
// that the DC's GIPs, VIPs and status are unchanged, which no set-nodes
// change touches.
func epochMovedByNodes(t testing.TB, d *daemon, from, epoch uint64) bool {
	t.Helper()
	n := nodeChanges(t, d, from)
	if epoch > from+n {
		t.Logf("epoch %d -> %d, %d set-nodes changes in %s's events (others went unrecorded while its event writes paused)", from, epoch, n, d.name)
	}
	return epoch >= from+n
}

// waitWWWAtDC1 waits until dc-2 sees GIP www active at dc-1 alone.
func (h *haDC) waitWWWAtDC1() {
	h.t.Helper()
	eventually(h.t, 20*time.Second, "www active at dc-1, seen from dc-2", func() error {
		g, err := h.other.client().GetGIP(context.Background(), "www")
		if err != nil {
			return err
		}
		if !slices.Equal(g.Active, []string{"dc-1"}) {
			return fmt.Errorf("www active at %v", g.Active)
		}
		return nil
	})
}
