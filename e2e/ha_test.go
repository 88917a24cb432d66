package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/etcd/etcdtest"
)

// haDC is a DC run by several nodes on one etcd cluster, federated with
// a one-node DC on bolt (docs/ha.md).
type haDC struct {
	t     *testing.T
	etcd  *etcdtest.Cluster
	nodes []*daemon // dc-1's nodes n1.. (same DC name, own ports/sockets/data)
	other *daemon   // dc-2, on bolt
}

// haTimers are the federation timers of both DCs: the defaults (200ms
// heartbeats, unreachable after 3 missed: a 600ms window) but a longer
// phase timeout, for a busy CI machine.
var haTimers = []string{"--phase-timeout", "3s"}

func startHA(t *testing.T, nodes int) *haDC { return startHAVia(t, nodes, nil) }

// startHAVia is startHA where node i reaches etcd at endpoints(i) (nil:
// the members' own endpoints).
func startHAVia(t *testing.T, nodes int, endpoints func(c *etcdtest.Cluster, i int) []string) *haDC {
	c := etcdtest.Start(t, etcdtest.Options{Members: 3})
	h := &haDC{t: t, etcd: c}
	for i := range nodes {
		eps := strings.Join(c.Endpoints(), ",")
		if endpoints != nil {
			eps = strings.Join(endpoints(c, i), ",")
		}
		args := append([]string{"--store", "etcd", "--etcd-endpoints", eps, "--node", fmt.Sprintf("n%d", i+1)}, haTimers...)
		h.nodes = append(h.nodes, startDaemon(t, "dc-1", args...))
		if i == 0 {
			h.waitLeader(10 * time.Second)
		}
	}
	h.other = startDaemon(t, "dc-2", haTimers...)
	return h
}

// nodeList is `node list -o json` on d, or an error.
func nodeList(t testing.TB, d *daemon) ([]vipsmart.NodeInfo, error) {
	r := cli(t, d.server(), "node", "list", "-o", "json")
	if r.code != 0 {
		return nil, fmt.Errorf("node list on %s: exit %d: %s", d.sock, r.code, r.stderr)
	}
	var ns []vipsmart.NodeInfo
	if err := json.Unmarshal([]byte(r.stdout), &ns); err != nil {
		return nil, fmt.Errorf("node list: %v: %s", err, r.stdout)
	}
	return ns, nil
}

func (h *haDC) running() []*daemon {
	var out []*daemon
	for _, d := range h.nodes {
		select {
		case <-d.done:
		default:
			out = append(out, d)
		}
	}
	return out
}

// waitLeader waits until every running node lists the same live nodes
// with exactly one leader, and returns the leader's daemon.
func (h *haDC) waitLeader(timeout time.Duration) *daemon {
	h.t.Helper()
	var leader *daemon
	eventually(h.t, timeout, "one leader, seen by every node", func() error {
		run := h.running()
		var lead string
		for _, d := range run {
			ns, err := nodeList(h.t, d)
			if err != nil {
				return err
			}
			if len(ns) != len(run) {
				return fmt.Errorf("%s lists %d nodes, %d run: %+v", d.sock, len(ns), len(run), ns)
			}
			var leaders []string
			for _, n := range ns {
				if n.Role == vipsmart.RoleLeader {
					leaders = append(leaders, n.Name)
				}
			}
			if len(leaders) != 1 {
				return fmt.Errorf("%s lists leaders %v", d.sock, leaders)
			}
			if lead != "" && leaders[0] != lead {
				return fmt.Errorf("nodes disagree on the leader: %s and %s", lead, leaders[0])
			}
			lead = leaders[0]
		}
		for i, d := range h.nodes {
			if fmt.Sprintf("n%d", i+1) == lead {
				leader = d
			}
		}
		// The leader's own API answers as the leader.
		if st, err := leader.client().Status(context.Background()); err != nil || len(st.Announced) == 0 && st.Status == "" {
			return fmt.Errorf("the leader's status: %v", err)
		}
		return nil
	})
	return leader
}

// watchOther polls dc-2's view of dc-1 until stop: it records every GIP
// activation that is not exactly [dc-1] for www.
type otherWatch struct {
	mu    sync.Mutex
	moved []string
	stop  chan struct{}
	done  chan struct{}
}

func (h *haDC) watchOther() *otherWatch {
	w := &otherWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		c := h.other.client()
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			g, err := c.GetGIP(ctx, "www")
			cancel()
			if err == nil && !slices.Equal(g.Active, []string{"dc-1"}) {
				w.mu.Lock()
				w.moved = append(w.moved, fmt.Sprintf("%s: www active at %v", time.Now().Format("15:04:05.000"), g.Active))
				w.mu.Unlock()
			}
		}
	}()
	return w
}

func (w *otherWatch) end() []string {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.moved) > 3 {
		return append(w.moved[:3:3], fmt.Sprintf("... %d more", len(w.moved)-3))
	}
	return w.moved
}

// unreachableEvents are dc-2's events saying dc-1 was unreachable, after
// seq.
func (h *haDC) unreachableEvents(after uint64) ([]string, uint64) {
	evs, err := h.other.client().Events(context.Background(), after, 0)
	if err != nil {
		h.t.Fatalf("events of dc-2: %v", err)
	}
	var out []string
	last := after
	for _, e := range evs {
		last = e.Seq
		if strings.Contains(e.Message, "dc-1 is unreachable") {
			out = append(out, e.Time.Format("15:04:05.000")+" "+e.Message)
		}
	}
	return out, last
}

// TestHAFailover: three nodes of dc-1 on a 3-member etcd, federated with
// dc-2. The CLI works against every node (reads, changes forwarded to the
// leader); kill -9 of the leader, repeated, of a follower, and SIGSTOP of
// the leader: after each, one leader, the same state on every node, no
// GIP moved, and dc-2 never saw dc-1 unreachable.
func TestHAFailover(t *testing.T) {
	h := startHA(t, 3)
	leader := h.waitLeader(20 * time.Second)
	follower := h.nodes[1]
	if follower == leader {
		follower = h.nodes[2]
	}
	// Changes through a follower reach the leader; dc add from it too.
	mustCLI(t, follower.server(), "vip", "add", "web", "192.0.2.10")
	mustDCAdd(t, leader, h.other)
	first := leader
	mustCLI(t, follower.server(), "gip", "add", "www", "203.0.113.10", "--placement", "dc-1:200,dc-2:100")
	h.waitWWWAtDC1()
	want := readState(t, leader)
	for _, d := range h.nodes {
		if got := readState(t, d); !sameConfig(got, want) {
			t.Fatalf("node %s reads %+v, the leader %+v", d.sock, got, want)
		}
	}
	_, seq := h.unreachableEvents(0)
	// node list: every node, with address, identity (the DC's key, the
	// same on every node), role, lease, last seen and version; dc-2, on
	// bolt, says it has no nodes to list.
	ns, err := nodeList(t, follower)
	if err != nil {
		t.Fatal(err)
	}
	st, err := leader.client().Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range ns {
		if n.Identity != st.Identity || n.Address == "" || n.Version == "" || n.LastSeen == nil || n.LeaseRemaining <= 0 || n.PID == 0 {
			t.Fatalf("node list row %+v (the DC's identity is %s)", n, st.Identity)
		}
	}
	if r := cli(t, h.other.server(), "node", "list"); r.code == 0 || !strings.Contains(r.stderr, "bolt store") {
		t.Fatalf("node list on a DC on bolt: exit %d, %s", r.code, r.stderr)
	}

	check := func(what string) {
		t.Helper()
		l := h.waitLeader(20 * time.Second)
		h.waitNodesRecorded(l)
		// A change through any node works with the new leader.
		for _, d := range h.running() {
			if r := cli(t, d.server(), "vip", "list"); r.code != 0 {
				t.Fatalf("%s: vip list on %s: %s", what, d.sock, r.stderr)
			}
		}
		st := readState(t, l)
		for _, d := range h.running() {
			if got := readState(t, d); !sameConfig(got, st) {
				t.Fatalf("%s: node %s reads %+v, the leader %+v", what, d.sock, got, st)
			}
		}
		if !epochMovedByNodes(t, l, want.Epoch, st.Epoch) || !slices.Equal(st.GIPs, want.GIPs) || !slices.Equal(st.VIPs, want.VIPs) || st.Status != "member" {
			t.Fatalf("%s: the DC's state changed (beyond recording its nodes): %+v, was %+v", what, st, want)
		}
		var ev []string
		ev, seq = h.unreachableEvents(seq)
		if len(ev) > 0 {
			t.Fatalf("%s: dc-2 saw dc-1 unreachable: %v", what, ev)
		}
	}

	kills := 10
	if testing.Short() {
		kills = 3
	}
	var took []time.Duration
	for i := range kills {
		w := h.watchOther()
		l := h.waitLeader(20 * time.Second)
		start := time.Now()
		l.kill()
		nl := h.waitLeader(20 * time.Second)
		took = append(took, time.Since(start))
		if nl == l {
			t.Fatalf("kill %d: the killed node leads", i)
		}
		if moved := w.end(); len(moved) > 0 {
			t.Fatalf("kill -9 %d of the leader: www moved, as dc-2 saw it: %v", i, moved)
		}
		check(fmt.Sprintf("kill -9 %d of the leader", i))
		l.start() // its supervisor restarts it: it follows
	}
	t.Logf("kill -9 of the leader to one leader seen by every node (node list, polled): %v", took)

	// kill -9 of a follower changes nothing.
	w := h.watchOther()
	l := h.waitLeader(20 * time.Second)
	f := h.running()[0]
	if f == l {
		f = h.running()[1]
	}
	f.kill()
	if l2 := h.waitLeader(20 * time.Second); l2 != l {
		t.Fatalf("killing a follower moved the leadership")
	}
	if moved := w.end(); len(moved) > 0 {
		t.Fatalf("kill -9 of a follower: www moved: %v", moved)
	}
	check("kill -9 of a follower")
	f.start()

	// SIGSTOP of the leader for 5s: another node leads; the frozen one,
	// thawed, finds its lease gone and stops (its supervisor restarts it).
	w = h.watchOther()
	l = h.waitLeader(20 * time.Second)
	_ = l.cmd.Process.Signal(syscall.SIGSTOP)
	time.Sleep(5 * time.Second)
	_ = l.cmd.Process.Signal(syscall.SIGCONT)
	select {
	case <-l.done:
		if !strings.Contains(l.Logs(), "lost the leadership") {
			t.Fatalf("the thawed former leader did not say it lost the leadership:\n%s", l.Logs())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("the thawed former leader still runs")
	}
	if moved := w.end(); len(moved) > 0 {
		t.Fatalf("SIGSTOP of the leader: www moved: %v", moved)
	}
	check("SIGSTOP of the leader")
	l.start()
	check("the former leader back")

	// dc-2 knows dc-1 by the address of the node that led at dc add.
	// With that node down, a change still commits on both DCs: dc-2
	// reaches dc-1's leader through the nodes it learned.
	first.kill()
	h.waitLeader(20 * time.Second)
	mustCLI(t, h.running()[0].server(), "gip", "add", "api", "203.0.113.11", "--placement", "dc-2:100")
	eventually(t, 15*time.Second, "gip api on dc-2", func() error {
		gips, err := h.other.client().ListGIPs(context.Background())
		if err != nil {
			return err
		}
		if len(gips) != 2 {
			return fmt.Errorf("dc-2 has %d GIPs", len(gips))
		}
		return nil
	})
}

// sameConfig compares what every node must read alike (events differ in
// what is still being written, so they are left out).
func sameConfig(a, b dcState) bool {
	return a.Status == b.Status && a.FedID == b.FedID && a.Epoch == b.Epoch && slices.Equal(a.VIPs, b.VIPs) && slices.Equal(a.GIPs, b.GIPs)
}

// TestHAEtcdTrouble: one etcd member killed changes nothing; with etcd's
// quorum lost, every node keeps answering reads, dc-2 keeps hearing dc-1
// and no GIP moves, and changes are refused with "store unavailable";
// once quorum is back, changes work again with no operator action.
func TestHAEtcdTrouble(t *testing.T) {
	h := startHA(t, 3)
	leader := h.waitLeader(20 * time.Second)
	mustCLI(t, h.nodes[1].server(), "vip", "add", "web", "192.0.2.10")
	mustDCAdd(t, leader, h.other)
	mustCLI(t, h.nodes[2].server(), "gip", "add", "www", "203.0.113.10", "--placement", "dc-1:200,dc-2:100")
	h.waitWWWAtDC1()
	want := readState(t, leader)
	_, seq := h.unreachableEvents(0)

	// One member down: nothing changes; changes work.
	w := h.watchOther()
	m := h.etcd.Members
	m[0].Kill()
	// The next changes wait until etcd answers a linearizable read again
	// (it has a leader), so that they test the changes, not the
	// election: a change in flight over etcd's election is
	// TestHAEtcdLeaderKilledMidChange's. Without writes, the kill moves
	// nothing, which the watch above checks.
	ec := h.etcd.Client()
	eventually(t, 20*time.Second, "etcd has a leader again", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := ec.Get(ctx, "/vipsmart/health-probe")
		return err
	})
	// A change in flight while etcd elects a new leader (if the killed
	// member led) may fail with "store unavailable" and is safe to repeat.
	retry := func(i int, ok string, args ...string) {
		eventually(t, 20*time.Second, strings.Join(args, " "), func() error {
			d := h.nodes[i]
			select {
			case <-d.done: // a leader that lost its lease and found another leading stops; its supervisor restarts it
				d.start()
			default:
			}
			r := cli(t, d.server(), args...)
			if r.code != 0 && !strings.Contains(r.stderr, ok) {
				return fmt.Errorf("exit %d: %s", r.code, r.stderr)
			}
			return nil
		})
	}
	retry(0, "already", "vip", "add", "db", "192.0.2.11")
	retry(1, "does not exist", "vip", "remove", "db")
	l := h.waitLeader(20 * time.Second)
	if moved := w.end(); len(moved) > 0 {
		t.Fatalf("one etcd member killed: www moved: %v", moved)
	}

	// Quorum lost: two of three members down.
	w = h.watchOther()
	m[1].Kill()
	time.Sleep(6 * time.Second) // longer than the nodes' leases (4s)
	for _, d := range h.running() {
		vips, err := d.client().ListVIPs(context.Background())
		if err != nil || len(vips) != 1 || vips[0].Name != "web" {
			t.Fatalf("quorum lost: vip list on %s: %v %v", d.sock, vips, err)
		}
		r := cli(t, d.server(), "vip", "add", "db", "192.0.2.11")
		if r.code == 0 || !strings.Contains(r.stderr, "store unavailable") {
			t.Fatalf("quorum lost: vip add on %s: exit %d, %s; want a refusal saying store unavailable", d.sock, r.code, r.stderr)
		}
	}
	if moved := w.end(); len(moved) > 0 {
		t.Fatalf("quorum lost: www moved: %v", moved)
	}
	if ev, _ := h.unreachableEvents(seq); len(ev) > 0 {
		t.Fatalf("quorum lost: dc-2 saw dc-1 unreachable: %v", ev)
	}

	// Quorum back: work resumes with no operator action.
	w = h.watchOther()
	if err := m[0].Start(); err != nil {
		t.Fatal(err)
	}
	if err := m[1].Start(); err != nil {
		t.Fatal(err)
	}
	for _, d := range h.nodes {
		select {
		case <-d.done: // a former leader that found another leading stops; its supervisor restarts it
			d.start()
		default:
		}
	}
	eventually(t, 30*time.Second, "changes work again", func() error {
		for _, d := range h.nodes {
			select {
			case <-d.done:
				d.start()
			default:
			}
		}
		r := cli(t, h.nodes[0].server(), "vip", "add", "db", "192.0.2.11")
		if r.code != 0 && !strings.Contains(r.stderr, "already exists") {
			return fmt.Errorf("vip add: %s", r.stderr)
		}
		return nil
	})
	l = h.waitLeader(30 * time.Second)
	h.waitNodesRecorded(l)
	st := readState(t, l)
	if !epochMovedByNodes(t, l, want.Epoch, st.Epoch) || !slices.Equal(st.GIPs, want.GIPs) || st.Status != "member" || len(st.VIPs) != 2 {
		t.Fatalf("after quorum came back: %+v, was %+v", st, want)
	}
	for _, d := range h.running() {
		if got := readState(t, d); !sameConfig(got, st) {
			t.Fatalf("node %s reads %+v, the leader %+v", d.sock, got, st)
		}
	}
	if moved := w.end(); len(moved) > 0 {
		t.Fatalf("quorum back: www moved: %v", moved)
	}
	if ev, _ := h.unreachableEvents(seq); len(ev) > 0 {
		t.Fatalf("dc-2 saw dc-1 unreachable: %v", ev)
	}
}

// TestHALeaderCutFromEtcd: the leader loses etcd (its connections to
// every member hang) but not its peers. Its lease ends, another node
// leads; the former leader, seeing a node answer as the leader while etcd
// does not answer it, stops. Meanwhile dc-2 keeps hearing dc-1 and
// nothing moves, and the DC's state is whole.
func TestHALeaderCutFromEtcd(t *testing.T) {
	var proxies []*etcdtest.Proxy
	h := startHAVia(t, 3, func(c *etcdtest.Cluster, i int) []string {
		if i != 0 {
			return c.Endpoints()
		}
		var eps []string
		for _, e := range c.Endpoints() {
			p := etcdtest.NewProxy(t, strings.TrimPrefix(e, "http://"))
			proxies = append(proxies, p)
			eps = append(eps, "http://"+p.Addr())
		}
		return eps
	})
	leader := h.waitLeader(20 * time.Second)
	if leader != h.nodes[0] {
		t.Fatalf("n1 does not lead")
	}
	mustDCAdd(t, leader, h.other)
	mustCLI(t, h.nodes[1].server(), "gip", "add", "www", "203.0.113.10", "--placement", "dc-1:200,dc-2:100")
	h.waitWWWAtDC1()
	want := readState(t, leader)
	_, seq := h.unreachableEvents(0)
	w := h.watchOther()
	for _, p := range proxies {
		p.Freeze()
	}
	select {
	case <-leader.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("the leader cut from etcd still runs")
	}
	// It stops when it finds another node answering as the leader, or
	// earlier, when it must store a change the new leader committed
	// (the new leader records the DC's live nodes: docs/ha.md) and its
	// write is fenced.
	if logs := leader.Logs(); !strings.Contains(logs, "which answers as the leader, while this node cannot reach etcd") && !strings.Contains(logs, "node n1 lost the leadership of DC dc-1: it could not store a change, its write fenced") {
		t.Fatalf("the former leader did not say why it stopped:\n%s", leader.Logs())
	}
	l := h.waitLeader(20 * time.Second)
	if moved := w.end(); len(moved) > 0 {
		t.Fatalf("leader cut from etcd: www moved: %v", moved)
	}
	if ev, _ := h.unreachableEvents(seq); len(ev) > 0 {
		t.Fatalf("leader cut from etcd: dc-2 saw dc-1 unreachable: %v", ev)
	}
	h.waitNodesRecorded(l)
	st := readState(t, l)
	if !epochMovedByNodes(t, l, want.Epoch, st.Epoch) || !slices.Equal(st.GIPs, want.GIPs) || st.Status != "member" {
		t.Fatalf("after the leader was cut from etcd: %+v, was %+v", st, want)
	}
	mustCLI(t, l.server(), "vip", "add", "web", "192.0.2.10")
}
