package federation

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
)

// cluster is a small deterministic harness: messages are queued and
// delivered on demand, drop decides which are lost.
type cluster struct {
	t       *testing.T
	now     time.Time
	names   []string
	nodes   map[string]*Node
	rec     map[string][]byte
	gips    map[string]map[string]vipsmart.GIP
	queue   []Message
	results map[string]Result
	events  []vipsmart.Event
	drop    func(m Message) bool
	tamper  func(m *Message)   // if set, may change a message before it is delivered
	cuts    map[[2]string]bool // links cut (both directions)
	seen    map[skey]string    // invariant 2: the first state persisted at each (fed, epoch)
}

func scDC(name string) vipsmart.DC {
	var i int
	fmt.Sscanf(name, "dc-%d", &i)
	return vipsmart.DC{Name: name, Address: netip.AddrFrom4([4]byte{127, 0, 0, byte(i)}), Port: uint16(9610 + i)}
}

func scConfig(name string) Config {
	return Config{Self: scDC(name), InviteTTL: 10 * time.Second, ReviewTTL: 10 * time.Second, HeartbeatInterval: 200 * time.Millisecond, HeartbeatMisses: 3, PhaseTimeout: 3 * time.Second}
}

func newCluster(t *testing.T, n int) *cluster {
	c := &cluster{t: t, now: simEpoch, nodes: map[string]*Node{}, rec: map[string][]byte{}, gips: map[string]map[string]vipsmart.GIP{}, results: map[string]Result{}, cuts: map[[2]string]bool{}, seen: map[skey]string{}}
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("dc-%d", i)
		c.names = append(c.names, name)
		c.gips[name] = map[string]vipsmart.GIP{}
		c.restart(name)
	}
	return c
}

func (c *cluster) restart(name string) {
	var gips []vipsmart.GIP
	for _, k := range sortedKeys(c.gips[name]) {
		gips = append(gips, c.gips[name][k])
	}
	n, err := NewNode(scConfig(name), c.rec[name], gips, c.now)
	if err != nil {
		c.t.Fatalf("NewNode(%s): %v", name, err)
	}
	c.nodes[name] = n
	c.flush()
}

func (c *cluster) crash(name string) { c.nodes[name] = nil }

func (c *cluster) flush() {
	for _, name := range c.names {
		n := c.nodes[name]
		for n != nil && n.HasReady() {
			rd := n.Ready()
			if u := rd.Update; u != nil {
				c.rec[name] = u.Record
				if u.ReplaceGIPs {
					c.gips[name] = map[string]vipsmart.GIP{}
				}
				for _, g := range u.PutGIPs {
					c.gips[name][g.Name] = g
				}
				for _, k := range u.DeleteGIPs {
					delete(c.gips[name], k)
				}
				c.checkState(name)
			}
			for _, m := range rd.Messages {
				b, err := json.Marshal(m)
				if err != nil {
					c.t.Fatal(err)
				}
				var mm Message
				if err := json.Unmarshal(b, &mm); err != nil {
					c.t.Fatal(err)
				}
				c.queue = append(c.queue, mm)
			}
			for _, r := range rd.Results {
				c.results[r.OpID] = r
			}
			c.events = append(c.events, rd.Events...)
			n.Advance(rd)
		}
	}
}

// deliver delivers queued messages (and the ones they cause) until the
// queue is empty or max messages were handled.
func (c *cluster) deliver(max int) {
	for i := 0; len(c.queue) > 0 && i < max; i++ {
		m := c.queue[0]
		c.queue = c.queue[1:]
		n := c.nodes[c.byAddr(m.To)]
		if n == nil || (c.drop != nil && c.drop(m)) || c.isCut(m.From.Name, c.byAddr(m.To)) {
			continue
		}
		if c.tamper != nil {
			c.tamper(&m)
		}
		if err := n.Step(c.now, m); err != nil {
			c.t.Fatalf("Step(%s %s->%s): %v", m.Type, m.From.Name, m.To.Name, err)
		}
		c.flush()
	}
}

// cut cuts the links between a and each of others (both directions);
// heal restores them.
func (c *cluster) cut(a string, others ...string) {
	for _, b := range others {
		c.cuts[[2]string{a, b}], c.cuts[[2]string{b, a}] = true, true
	}
}

func (c *cluster) heal(a string, others ...string) {
	for _, b := range others {
		delete(c.cuts, [2]string{a, b})
		delete(c.cuts, [2]string{b, a})
	}
}

func (c *cluster) isCut(a, b string) bool { return c.cuts[[2]string{a, b}] }

// checkState checks invariant 2 on what name just persisted: the first
// state seen at a (federation, epoch) is the only one.
func (c *cluster) checkState(name string) {
	c.t.Helper()
	n := c.nodes[name]
	if n == nil || !n.h.memberish() {
		return
	}
	k := skey{n.h.FedID, n.h.Epoch}
	_, str := stateHash(&n.h, n.gips)
	if old, ok := c.seen[k]; !ok {
		c.seen[k] = str
	} else if old != str {
		c.t.Fatalf("invariant 2 broken: two states at %s: %s holds %q, first seen %q", k, name, str, old)
	}
}

// byAddr finds the DC listening at d's address (names may be wrong).
func (c *cluster) byAddr(d vipsmart.DC) string {
	for _, name := range c.names {
		if scDC(name).AddrPort() == d.AddrPort() {
			return name
		}
	}
	return ""
}

func (c *cluster) settle() { c.deliver(1 << 20) }

// run lets d pass in heartbeat-sized steps, delivering everything.
func (c *cluster) run(d time.Duration) {
	end := c.now.Add(d)
	for c.now.Before(end) {
		c.now = c.now.Add(100 * time.Millisecond)
		for _, name := range c.names {
			if n := c.nodes[name]; n != nil {
				n.Tick(c.now)
			}
		}
		c.flush()
		c.settle()
	}
}

func (c *cluster) propose(at string, p Proposal) (string, error) {
	id, err := c.nodes[at].Propose(c.now, p)
	c.flush()
	return id, err
}

func (c *cluster) add(at, cand string) error {
	id, err := c.propose(at, Proposal{Kind: AddDC, DC: scDC(cand)})
	if err != nil {
		return err
	}
	c.settle()
	return c.result(id)
}

func (c *cluster) result(id string) error {
	r, ok := c.results[id]
	if !ok {
		c.t.Fatalf("no result for %s yet", id)
	}
	return r.Err
}

func (c *cluster) h(name string) *hardState { return &c.nodes[name].h }

func (c *cluster) status(name string) vipsmart.Status { return c.h(name).Status }

// federate makes dc-1..dc-k one federation.
func (c *cluster) federate(k int) {
	for i := 2; i <= k; i++ {
		if err := c.add("dc-1", fmt.Sprintf("dc-%d", i)); err != nil {
			c.t.Fatalf("add dc-%d: %v", i, err)
		}
	}
	c.run(time.Second)
	c.converged(c.names[:k]...)
}

// converged checks that the named DCs are members at one epoch with one
// state, and that no temporary status is left anywhere.
func (c *cluster) converged(want ...string) {
	c.t.Helper()
	var first *hardState
	var fx uint64
	for _, name := range c.names {
		if n := c.nodes[name]; n != nil && (n.h.Lock != nil || n.h.Status.Temporary()) {
			c.t.Fatalf("%s still %s (lock %+v)", name, n.h.Status, n.h.Lock)
		}
	}
	for _, name := range want {
		h := c.h(name)
		x, str := stateHash(h, c.nodes[name].gips)
		if h.Status != vipsmart.StatusMember {
			c.t.Fatalf("%s is %s, want member", name, h.Status)
		}
		if first == nil {
			first, fx = h, x
			continue
		}
		if h.FedID != first.FedID || h.Epoch != first.Epoch || x != fx {
			c.t.Fatalf("%s at %s@%d %s differs from %s@%d", name, h.FedID, h.Epoch, str, first.FedID, first.Epoch)
		}
	}
	if len(want) > 0 && len(first.Members) != len(want) {
		c.t.Fatalf("members %v, want %v", names(first.Members), want)
	}
}

func wantErr(t *testing.T, err error, code vipsmart.ErrorCode, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s %q", code, parts)
	}
	if vipsmart.ErrorCodeOf(err) != code {
		t.Fatalf("got %s error %q, want %s", vipsmart.ErrorCodeOf(err), err, code)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("error %q does not contain %q", err, p)
		}
	}
}

func TestAddDeclaresFederationAndGrows(t *testing.T) {
	c := newCluster(t, 4)
	if err := c.add("dc-1", "dc-2"); err != nil {
		t.Fatal(err)
	}
	c.converged("dc-1", "dc-2")
	if err := c.add("dc-2", "dc-3"); err != nil {
		t.Fatal(err)
	}
	c.run(time.Second)
	c.converged("dc-1", "dc-2", "dc-3")
	e := c.h("dc-1").Epoch
	id, err := c.propose("dc-3", Proposal{Kind: PutGIP, GIP: vipsmart.GIP{Name: "web", Address: netip.MustParseAddr("192.0.2.1"), Placements: []vipsmart.Placement{{DC: "dc-1", Priority: 100}}}})
	if err != nil {
		t.Fatal(err)
	}
	c.settle()
	if err := c.result(id); err != nil {
		t.Fatal(err)
	}
	c.run(time.Second)
	c.converged("dc-1", "dc-2", "dc-3")
	if got := c.nodes["dc-2"].GIPs(); len(got) != 1 || got[0].Name != "web" || c.h("dc-2").Epoch != e+1 {
		t.Fatalf("dc-2 GIPs %v at epoch %d", got, c.h("dc-2").Epoch)
	}
	// A fourth DC gets the whole state, GIPs included.
	if err := c.add("dc-1", "dc-4"); err != nil {
		t.Fatal(err)
	}
	c.run(time.Second)
	c.converged("dc-1", "dc-2", "dc-3", "dc-4")
	if len(c.gips["dc-4"]) != 1 {
		t.Fatalf("dc-4 persisted GIPs %v", c.gips["dc-4"])
	}
	st := c.nodes["dc-4"].Status(c.now)
	if st.Federation == nil || len(st.Federation.Members) != 4 || st.GIPs != 1 {
		t.Fatalf("status %+v", st)
	}
	dcs := c.nodes["dc-4"].DCs(c.now)
	if len(dcs) != 4 || !dcs[3].Self || !dcs[0].Reachable {
		t.Fatalf("DCs %+v", dcs)
	}
}

func TestInviteRefusals(t *testing.T) {
	c := newCluster(t, 5)
	c.federate(2)
	// dc-3 declares its own federation with dc-4.
	if err := c.add("dc-3", "dc-4"); err != nil {
		t.Fatal(err)
	}
	before := c.h("dc-1").Epoch
	// A federated candidate.
	wantErr(t, c.add("dc-1", "dc-3"), vipsmart.ESTATE, "dc-3 (127.0.0.3:9613) refused the invite: it is already a member of federation f-dc-3-1 (leave it first or pick another DC)")
	// A name that does not match the DC at that address.
	wrong := scDC("dc-5")
	wrong.Name = "dc-7"
	id, err := c.propose("dc-1", Proposal{Kind: AddDC, DC: wrong})
	if err != nil {
		t.Fatal(err)
	}
	c.settle()
	wantErr(t, c.result(id), vipsmart.EINVALID, "dc-5", "dc-7", "refused the invite")
	// A candidate that holds GIP objects.
	c.gips["dc-5"]["old"] = vipsmart.GIP{Name: "old", Address: netip.MustParseAddr("192.0.2.9"), Mode: vipsmart.ModeFailover}
	c.restart("dc-5")
	wantErr(t, c.add("dc-1", "dc-5"), vipsmart.ESTATE, "holds 1 GIP objects")
	// Nothing changed.
	c.run(time.Second)
	if c.h("dc-1").Epoch != before || c.status("dc-5") != vipsmart.StatusStandalone {
		t.Fatalf("a refused add changed something: epoch %d, dc-5 %s", c.h("dc-1").Epoch, c.status("dc-5"))
	}
	c.converged("dc-1", "dc-2")
	// Immediate refusals.
	_, err = c.propose("dc-1", Proposal{Kind: AddDC, DC: scDC("dc-2")})
	wantErr(t, err, vipsmart.ECONFLICT, "dc-2 is already a member")
	_, err = c.propose("dc-1", Proposal{Kind: AddDC, DC: scDC("dc-1")})
	wantErr(t, err, vipsmart.EINVALID, "this DC")
	_, err = c.propose("dc-1", Proposal{Kind: RemoveDC, Name: "dc-9"})
	wantErr(t, err, vipsmart.ENOTFOUND, "dc-9 is not a member")
	_, err = c.propose("dc-5", Proposal{Kind: Leave})
	wantErr(t, err, vipsmart.ESTATE, "standalone")
	_, err = c.propose("dc-1", Proposal{Kind: DeleteGIP, Name: "nope"})
	wantErr(t, err, vipsmart.ENOTFOUND, "GIP nope does not exist")
	_, err = c.propose("dc-1", Proposal{Kind: PutGIP, GIP: vipsmart.GIP{Name: "g", Address: netip.MustParseAddr("192.0.2.1"), Placements: []vipsmart.Placement{{DC: "dc-4", Priority: 1}}}})
	wantErr(t, err, vipsmart.EINVALID, "placement dc-4 is not a member")
}

// holdAfter drops every message of type t (and what would follow it).
func dropType(types ...MsgType) func(Message) bool {
	return func(m Message) bool {
		for _, t := range types {
			if m.Type == t {
				return true
			}
		}
		return false
	}
}

func TestInvitedRefusesChangesAndRequests(t *testing.T) {
	c := newCluster(t, 4)
	c.federate(2)
	var id string
	c.drop = func(m Message) bool { return m.Type == MsgInviteResp && m.OpID == id } // dc-3 stays invited
	id, err := c.propose("dc-1", Proposal{Kind: AddDC, DC: scDC("dc-3")})
	if err != nil {
		t.Fatal(err)
	}
	c.settle()
	if c.status("dc-3") != vipsmart.StatusInvited {
		t.Fatalf("dc-3 is %s", c.status("dc-3"))
	}
	wantErr(t, c.nodes["dc-3"].LocalChangeAllowed(), vipsmart.ESTATE, "dc-3 is invited", "refuses VIP and GIP changes")
	_, err = c.propose("dc-3", Proposal{Kind: AddDC, DC: scDC("dc-4")})
	wantErr(t, err, vipsmart.ESTATE, "invited to federation")
	// Another coordinator's invite is refused as busy.
	id2, err := c.propose("dc-4", Proposal{Kind: AddDC, DC: scDC("dc-3")})
	if err != nil {
		t.Fatal(err)
	}
	c.settle()
	wantErr(t, c.result(id2), vipsmart.EBUSY, "federation busy, retry: dc-3 is invited to federation", "by dc-1 (operation "+id)
	// Reads are allowed: a heartbeat gets an answer.
	st := c.nodes["dc-3"].Status(c.now)
	if st.Status != vipsmart.StatusInvited || st.OpID != id || st.TimeLeft == nil {
		t.Fatalf("status %+v", st)
	}
	// The coordinator gives up after PhaseTimeout and aborts: dc-3 is
	// standalone again at once.
	c.run(4 * time.Second)
	wantErr(t, c.result(id), vipsmart.ETIMEOUT, "dc-3 (127.0.0.3:9613) did not answer the invite within 3s")
	if c.status("dc-3") != vipsmart.StatusStandalone {
		t.Fatalf("dc-3 is %s after the abort", c.status("dc-3"))
	}
	if err := c.nodes["dc-3"].LocalChangeAllowed(); err != nil {
		t.Fatal(err)
	}
}

func TestCandidateReviewRefuses(t *testing.T) {
	c := newCluster(t, 4)
	c.federate(3)
	c.drop = dropType(MsgLockResp) // dc-2 and dc-3 stay in candidate-review
	id, err := c.propose("dc-1", Proposal{Kind: DeleteGIP, Name: "x"})
	if err == nil {
		t.Fatalf("deleting a missing GIP was accepted: %s", id)
	}
	id, err = c.propose("dc-1", Proposal{Kind: PutGIP, GIP: vipsmart.GIP{Name: "g", Address: netip.MustParseAddr("192.0.2.1")}})
	if err != nil {
		t.Fatal(err)
	}
	c.settle()
	for _, n := range []string{"dc-1", "dc-2", "dc-3"} {
		if c.status(n) != vipsmart.StatusCandidateReview {
			t.Fatalf("%s is %s", n, c.status(n))
		}
	}
	wantErr(t, c.nodes["dc-2"].LocalChangeAllowed(), vipsmart.ESTATE, "dc-2 is candidate-review by operation "+id)
	_, err = c.propose("dc-2", Proposal{Kind: PutGIP, GIP: vipsmart.GIP{Name: "h", Address: netip.MustParseAddr("192.0.2.2")}})
	wantErr(t, err, vipsmart.EBUSY, "federation busy, retry: dc-2 is locked by operation "+id+" of dc-1 (put GIP g, candidate-review): it ends when dc-1 commits or aborts it, at the latest in 10s")
	// A lock of another operation is refused; its coordinator gets EBUSY.
	c.drop = nil
	c.nodes["dc-2"].h.Lock.Deadline = c.now.Add(10 * time.Second) // unchanged; just explicit
	m := Message{Type: MsgLock, From: scDC("dc-3"), To: scDC("dc-2"), FedID: c.h("dc-2").FedID, Epoch: c.h("dc-2").Epoch, OpID: "dc-3-99", Change: &Change{Kind: DeleteGIP, Name: "g"}, SenderFed: c.h("dc-2").FedID, SenderEpoch: c.h("dc-2").Epoch}
	if err := c.nodes["dc-2"].Step(c.now, m); err != nil {
		t.Fatal(err)
	}
	rd := c.nodes["dc-2"].Ready()
	if len(rd.Messages) == 0 || rd.Messages[0].OK || rd.Messages[0].Code != vipsmart.EBUSY || !strings.Contains(rd.Messages[0].Reason, "locked by operation "+id) {
		t.Fatalf("lock of another op answered %+v", rd.Messages)
	}
	c.nodes["dc-2"].Advance(rd)
	c.queue = nil
	// The coordinator times out and aborts; everybody is member again.
	c.drop = dropType(MsgLockResp)
	c.run(4 * time.Second)
	wantErr(t, c.result(id), vipsmart.ETIMEOUT, "did not answer the lock within 3s")
	c.drop = nil
	c.run(time.Second)
	c.converged("dc-1", "dc-2", "dc-3")
}

func TestStaleAndForeignRequestsRefused(t *testing.T) {
	c := newCluster(t, 4)
	c.federate(2)
	if err := c.add("dc-3", "dc-4"); err != nil {
		t.Fatal(err)
	}
	h := c.h("dc-2")
	cases := []struct {
		name  string
		fed   string
		epoch uint64
		code  vipsmart.ErrorCode
		part  string
	}{
		{"foreign", "f-other", h.Epoch, vipsmart.ESTATE, "is not a member of federation f-other (it is a member of federation " + h.FedID + ")"},
		{"stale", h.FedID, h.Epoch - 1, vipsmart.EBUSY, "ahead of the epoch"},
		{"future", h.FedID, h.Epoch + 1, vipsmart.EBUSY, "behind the epoch"},
	}
	for _, tc := range cases {
		m := Message{Type: MsgLock, From: scDC("dc-1"), To: scDC("dc-2"), FedID: tc.fed, Epoch: tc.epoch, OpID: "x-1", Change: &Change{Kind: DeleteGIP, Name: "g"}, SenderFed: tc.fed, SenderEpoch: tc.epoch}
		n := c.nodes["dc-2"]
		if err := n.Step(c.now, m); err != nil {
			t.Fatal(err)
		}
		rd := n.Ready()
		var resp *Message
		for i := range rd.Messages {
			if rd.Messages[i].Type == MsgLockResp {
				resp = &rd.Messages[i]
			}
		}
		n.Advance(rd)
		if resp == nil || resp.OK || resp.Code != tc.code || !strings.Contains(resp.Reason, tc.part) {
			t.Fatalf("%s: answer %+v", tc.name, resp)
		}
		if n.h.Status != vipsmart.StatusMember || n.h.Epoch != h.Epoch {
			t.Fatalf("%s changed dc-2: %s@%d", tc.name, n.h.Status, n.h.Epoch)
		}
	}
	// A malformed message is EINVALID.
	bad := Message{Type: "bogus", From: scDC("dc-1"), To: scDC("dc-2")}
	wantErr(t, c.nodes["dc-2"].Step(c.now, bad), vipsmart.EINVALID, "unknown message type")
	bad = Message{Type: MsgLock, From: scDC("dc-1"), To: scDC("dc-2"), OpID: "x"}
	wantErr(t, c.nodes["dc-2"].Step(c.now, bad), vipsmart.EINVALID, "no change")
	bad = Message{Type: MsgCommit, From: scDC("dc-1"), To: scDC("dc-2"), OpID: "x"}
	wantErr(t, c.nodes["dc-2"].Step(c.now, bad), vipsmart.EINVALID, "no decision")
	bad = Message{Type: MsgHeartbeat, From: scDC("dc-1"), To: scDC("dc-3")}
	wantErr(t, c.nodes["dc-2"].Step(c.now, bad), vipsmart.EINVALID, "delivered to dc-2")
}

func TestConcurrentAddsOneWins(t *testing.T) {
	c := newCluster(t, 5)
	c.federate(3)
	id1, err1 := c.propose("dc-1", Proposal{Kind: AddDC, DC: scDC("dc-4")})
	id2, err2 := c.propose("dc-2", Proposal{Kind: AddDC, DC: scDC("dc-5")})
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	c.settle()
	r1, r2 := c.result(id1), c.result(id2)
	if r1 == nil && r2 == nil {
		t.Fatal("both concurrent adds succeeded")
	}
	for _, r := range []error{r1, r2} {
		if r != nil {
			wantErr(t, r, vipsmart.EBUSY, "federation busy, retry:")
		}
	}
	c.run(time.Second)
	if r1 == nil {
		c.converged("dc-1", "dc-2", "dc-3", "dc-4")
	} else if r2 == nil {
		c.converged("dc-1", "dc-2", "dc-3", "dc-5")
	} else {
		c.converged("dc-1", "dc-2", "dc-3")
	}
	// Retrying works.
	if r1 != nil {
		if err := c.add("dc-1", "dc-4"); err != nil {
			t.Fatal(err)
		}
	}
	if r2 != nil {
		if err := c.add("dc-2", "dc-5"); err != nil {
			t.Fatal(err)
		}
	}
	c.run(time.Second)
	c.converged("dc-1", "dc-2", "dc-3", "dc-4", "dc-5")
}

// TestCoordinatorCrash crashes the coordinator of an add after each step.
func TestCoordinatorCrash(t *testing.T) {
	steps := []struct {
		name     string
		after    MsgType // crash once this many messages of this type were delivered
		count    int
		commits  int // commits let through before the crash (after its own commit)
		wantJoin bool
	}{
		{"after the invite", MsgInvite, 1, -1, false},
		{"after the locks", MsgLock, 2, -1, false},
		{"after the prepare", MsgPrepare, 1, -1, false},
		{"after its own commit", MsgPrepareResp, 1, 0, true},
		{"after some member commits", MsgPrepareResp, 1, 1, true},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			c := newCluster(t, 4)
			c.federate(3)
			seen, commits := 0, 0
			crashed := false
			c.drop = func(m Message) bool {
				if crashed {
					return m.From.Name == "dc-1" || m.To.Name == "dc-1"
				}
				if m.Type == MsgCommit && m.From.Name == "dc-1" {
					if commits >= st.commits {
						return true
					}
					commits++
				}
				return false
			}
			id, err := c.propose("dc-1", Proposal{Kind: AddDC, DC: scDC("dc-4")})
			if err != nil {
				t.Fatal(err)
			}
			for len(c.queue) > 0 && !crashed {
				m := c.queue[0]
				c.deliver(1)
				if m.Type == st.after {
					seen++
					if seen == st.count {
						if m.Type == MsgPrepareResp {
							// dc-1 handled it: it has committed.
							c.deliver(0)
						}
						crashed = true
						c.crash("dc-1")
					}
				}
			}
			if !crashed {
				t.Fatal("never crashed")
			}
			committed := c.results[id].OpID != "" && c.results[id].Err == nil
			if committed != st.wantJoin {
				t.Fatalf("committed=%v, want %v", committed, st.wantJoin)
			}
			c.drop = nil
			c.queue = nil
			c.run(500 * time.Millisecond)
			c.restart("dc-1")
			c.run(12 * time.Second) // a lease plus heartbeats
			if st.wantJoin {
				c.converged("dc-1", "dc-2", "dc-3", "dc-4")
			} else {
				c.converged("dc-1", "dc-2", "dc-3")
				if c.status("dc-4") != vipsmart.StatusStandalone {
					t.Fatalf("dc-4 is %s", c.status("dc-4"))
				}
			}
		})
	}
}

func TestForceRemoveFencesTheReturningDC(t *testing.T) {
	c := newCluster(t, 3)
	c.federate(3)
	c.crash("dc-3")
	c.run(time.Second)
	// A plain remove needs dc-3's lock.
	id, err := c.propose("dc-1", Proposal{Kind: RemoveDC, Name: "dc-3"})
	if err != nil {
		t.Fatal(err)
	}
	c.nodes["dc-1"].ReportUnreachable(c.now, "dc-3", "connection refused")
	c.flush()
	wantErr(t, c.result(id), vipsmart.EUNAVAILABLE, "dc-3 (127.0.0.3:9613) could not be reached during the lock: connection refused; the operation was rolled back")
	c.settle()
	e := c.h("dc-1").Epoch
	id, err = c.propose("dc-1", Proposal{Kind: RemoveDC, Name: "dc-3", Force: true})
	if err != nil {
		t.Fatal(err)
	}
	c.settle()
	if err := c.result(id); err != nil {
		t.Fatal(err)
	}
	if c.h("dc-1").Epoch != e+1 {
		t.Fatalf("forced removal without doubt went to epoch %d, want %d", c.h("dc-1").Epoch, e+1)
	}
	c.run(time.Second)
	c.converged("dc-1", "dc-2")
	// dc-3 returns, still believing it is a member: it is fenced out.
	c.restart("dc-3")
	if c.status("dc-3") != vipsmart.StatusMember {
		t.Fatalf("dc-3 restarted as %s", c.status("dc-3"))
	}
	c.run(time.Second)
	if c.status("dc-3") != vipsmart.StatusStandalone || len(c.h("dc-3").Members) != 0 || len(c.gips["dc-3"]) != 0 {
		t.Fatalf("dc-3 not fenced: %s %v", c.status("dc-3"), names(c.h("dc-3").Members))
	}
	if !hasEvent(c.events, "dc-3", "fenced out of federation") && !hasEvent(c.events, "dc-3", "left federation") {
		t.Fatalf("no fencing event for dc-3")
	}
	c.converged("dc-1", "dc-2")
	// It can be added again.
	if err := c.add("dc-2", "dc-3"); err != nil {
		t.Fatal(err)
	}
	c.run(time.Second)
	c.converged("dc-1", "dc-2", "dc-3")
}

func hasEvent(evs []vipsmart.Event, dc, part string) bool {
	for _, e := range evs {
		if e.DC == dc && strings.Contains(e.Message, part) {
			return true
		}
	}
	return false
}

// TestForcedRemovalEpochRule: dc-3 commits a change alone (every commit
// lost) and vanishes; the others' locks expire in doubt. Force-removing
// dc-3 must skip the epoch dc-3 may have used.
func TestForcedRemovalEpochRule(t *testing.T) {
	c := newCluster(t, 3)
	c.federate(3)
	e := c.h("dc-1").Epoch
	c.drop = dropType(MsgCommit)
	id, err := c.propose("dc-3", Proposal{Kind: PutGIP, GIP: vipsmart.GIP{Name: "g", Address: netip.MustParseAddr("192.0.2.1")}})
	if err != nil {
		t.Fatal(err)
	}
	c.settle()
	if err := c.result(id); err != nil {
		t.Fatal(err)
	}
	c.crash("dc-3")
	c.drop = nil
	c.run(11 * time.Second) // the locks expire: in doubt
	if d := c.h("dc-1").Doubts; len(d) != 1 || d[0].OpID != id || d[0].Coordinator != "dc-3" {
		t.Fatalf("dc-1 doubts %+v", d)
	}
	// The doubts survive a restart of every member that holds them.
	c.restart("dc-1")
	c.restart("dc-2")
	c.run(time.Second)
	c.converged()
	fid, err := c.propose("dc-1", Proposal{Kind: RemoveDC, Name: "dc-3", Force: true})
	if err != nil {
		t.Fatal(err)
	}
	c.settle()
	if err := c.result(fid); err != nil {
		t.Fatal(err)
	}
	if got := c.h("dc-1").Epoch; got != e+2 {
		t.Fatalf("forced removal in doubt committed at epoch %d, want %d", got, e+2)
	}
	c.run(time.Second)
	c.converged("dc-1", "dc-2")
	// dc-3 comes back at e+1 with its lone commit and is fenced out.
	c.restart("dc-3")
	if c.h("dc-3").Epoch != e+1 {
		t.Fatalf("dc-3 at %d", c.h("dc-3").Epoch)
	}
	c.run(time.Second)
	if c.status("dc-3") != vipsmart.StatusStandalone {
		t.Fatalf("dc-3 is %s", c.status("dc-3"))
	}
	c.converged("dc-1", "dc-2")
}

func TestForceRemoveInFederationOfTwoRefounds(t *testing.T) {
	c := newCluster(t, 2)
	c.federate(2)
	old := c.h("dc-1").FedID
	c.crash("dc-2")
	_, err := c.propose("dc-1", Proposal{Kind: RemoveDC, Name: "dc-2", Force: true})
	wantErr(t, err, vipsmart.ESTATE, "dc-2 is reachable (heard 100ms ago): --force is only for a member that cannot be reached; remove it with a plain dc remove dc-2")
	c.run(time.Second)
	id, err := c.propose("dc-1", Proposal{Kind: RemoveDC, Name: "dc-2", Force: true})
	if err != nil {
		t.Fatal(err)
	}
	c.settle()
	if err := c.result(id); err != nil {
		t.Fatal(err)
	}
	if c.h("dc-1").FedID == old || c.h("dc-1").Founding == nil {
		t.Fatalf("federation not re-founded: %s", c.h("dc-1").FedID)
	}
	c.restart("dc-2")
	c.run(time.Second)
	if c.status("dc-2") != vipsmart.StatusStandalone {
		t.Fatalf("dc-2 is %s", c.status("dc-2"))
	}
}

func TestLeaveWithLostCommits(t *testing.T) {
	c := newCluster(t, 3)
	c.federate(3)
	c.drop = dropType(MsgCommit)
	id, err := c.propose("dc-3", Proposal{Kind: Leave})
	if err != nil {
		t.Fatal(err)
	}
	if c.status("dc-3") != vipsmart.StatusLeaving {
		t.Fatalf("dc-3 is %s", c.status("dc-3"))
	}
	c.settle()
	if err := c.result(id); err != nil {
		t.Fatal(err)
	}
	if c.status("dc-3") != vipsmart.StatusStandalone || len(c.gips["dc-3"]) != 0 || c.h("dc-3").Last == nil {
		t.Fatalf("dc-3 is %s", c.status("dc-3"))
	}
	c.drop = nil
	// The others learn it from dc-3's tombstone, answering their heartbeats.
	c.run(time.Second)
	c.converged("dc-1", "dc-2")
	// Even after dc-3 joined another federation meanwhile.
	c2 := newCluster(t, 4)
	c2.federate(3)
	c2.drop = dropType(MsgCommit, MsgHeartbeat)
	id, _ = c2.propose("dc-3", Proposal{Kind: Leave})
	c2.settle()
	if err := c2.add("dc-3", "dc-4"); err != nil {
		t.Fatal(err)
	}
	c2.drop = nil
	c2.run(12 * time.Second)
	c2.converged("dc-1", "dc-2")
	c2.converged("dc-3", "dc-4")
}

func TestRemoveMember(t *testing.T) {
	c := newCluster(t, 3)
	c.federate(3)
	var id string
	c.drop = func(m Message) bool { return m.Type == MsgLockResp && m.From.Name == "dc-3" }
	id, err := c.propose("dc-1", Proposal{Kind: RemoveDC, Name: "dc-2"})
	if err != nil {
		t.Fatal(err)
	}
	c.settle()
	if c.status("dc-2") != vipsmart.StatusLeaving || c.status("dc-3") != vipsmart.StatusCandidateReview {
		t.Fatalf("dc-2 %s, dc-3 %s", c.status("dc-2"), c.status("dc-3"))
	}
	if err := c.nodes["dc-2"].LocalChangeAllowed(); err != nil {
		t.Fatalf("leaving refuses VIP changes: %v", err)
	}
	c.drop = nil
	c.run(300 * time.Millisecond) // the lock is resent; dc-3 answers again
	if err := c.result(id); err != nil {
		t.Fatal(err)
	}
	c.run(time.Second)
	c.converged("dc-1", "dc-3")
	if c.status("dc-2") != vipsmart.StatusStandalone || len(c.h("dc-2").Members) != 0 {
		t.Fatalf("dc-2 is %s", c.status("dc-2"))
	}
	_, err = c.propose("dc-1", Proposal{Kind: RemoveDC, Name: "dc-1"})
	wantErr(t, err, vipsmart.EINVALID, "use dc leave")
}

// TestExpiry checks that each temporary status reverts by itself at its
// deadline, and that a deadline passed while down is applied at start.
func TestExpiry(t *testing.T) {
	c := newCluster(t, 4)
	c.federate(3)
	c.drop = func(m Message) bool { return m.From.Name == "dc-1" && m.Type != MsgLock && m.Type != MsgInvite } // dc-1 goes silent
	// candidate-review and leaving: a remove whose coordinator vanishes.
	_, err := c.propose("dc-1", Proposal{Kind: RemoveDC, Name: "dc-2"})
	if err != nil {
		t.Fatal(err)
	}
	c.settle()
	c.crash("dc-1")
	if c.status("dc-2") != vipsmart.StatusLeaving || c.status("dc-3") != vipsmart.StatusCandidateReview {
		t.Fatalf("dc-2 %s, dc-3 %s", c.status("dc-2"), c.status("dc-3"))
	}
	dl := c.h("dc-3").Lock.Deadline
	c.now = dl.Add(-time.Millisecond)
	c.nodes["dc-3"].Tick(c.now)
	if c.status("dc-3") != vipsmart.StatusCandidateReview {
		t.Fatal("expired early")
	}
	c.now = dl
	c.nodes["dc-2"].Tick(c.now)
	c.nodes["dc-3"].Tick(c.now)
	c.flush()
	if c.status("dc-2") != vipsmart.StatusMember || c.status("dc-3") != vipsmart.StatusMember {
		t.Fatalf("after the deadline: dc-2 %s, dc-3 %s", c.status("dc-2"), c.status("dc-3"))
	}
	if !hasEvent(c.events, "dc-3", "candidate-review -> member") || !hasEvent(c.events, "dc-2", "leaving -> member") {
		t.Fatal("no expiry events")
	}
	// invited: the coordinator vanishes after the invite; dc-4 is
	// restarted after its deadline and is standalone at once.
	c.restart("dc-1")
	c.queue = nil
	c.drop = dropType(MsgInviteResp)
	_, err = c.propose("dc-2", Proposal{Kind: AddDC, DC: scDC("dc-4")})
	if err != nil {
		t.Fatal(err)
	}
	c.settle()
	if c.status("dc-4") != vipsmart.StatusInvited {
		t.Fatalf("dc-4 %s", c.status("dc-4"))
	}
	c.crash("dc-4")
	c.now = c.now.Add(time.Minute)
	n, err := NewNode(scConfig("dc-4"), c.rec["dc-4"], nil, c.now)
	if err != nil {
		t.Fatal(err)
	}
	if n.h.Status != vipsmart.StatusStandalone || !n.HasReady() {
		t.Fatalf("restarted with a passed deadline: %s", n.h.Status)
	}
	rd := n.Ready()
	if rd.Update == nil || len(rd.Events) == 0 || !strings.Contains(rd.Events[0].Message, "invited -> standalone") {
		t.Fatalf("first Ready %+v", rd)
	}
	n.Advance(rd)
	if n.HasReady() {
		t.Fatal("Ready after Advance")
	}
}

func TestLocalVIPsCheckedForGIPs(t *testing.T) {
	c := newCluster(t, 2)
	c.federate(2)
	c.nodes["dc-1"].SetLocalVIPs(map[string]netip.Addr{"web": netip.MustParseAddr("10.1.0.1")})
	c.nodes["dc-2"].SetLocalVIPs(map[string]netip.Addr{})
	g := vipsmart.GIP{Name: "g", Address: netip.MustParseAddr("192.0.2.1"), Placements: []vipsmart.Placement{{DC: "dc-1", Priority: 10, VIP: "web"}, {DC: "dc-2", Priority: 5, VIP: "web"}}}
	id, err := c.propose("dc-1", Proposal{Kind: PutGIP, GIP: g})
	if err != nil {
		t.Fatal(err)
	}
	c.settle()
	wantErr(t, c.result(id), vipsmart.EINVALID, "dc-2 (127.0.0.2:9612) refused the lock: it has no VIP named web to back GIP g")
	g.Placements[1].VIP = ""
	id, _ = c.propose("dc-1", Proposal{Kind: PutGIP, GIP: g})
	c.settle()
	if err := c.result(id); err != nil {
		t.Fatal(err)
	}
	_, err = c.propose("dc-2", Proposal{Kind: PutGIP, GIP: vipsmart.GIP{Name: "h", Address: netip.MustParseAddr("192.0.2.2"), Placements: []vipsmart.Placement{{DC: "dc-2", Priority: 5, VIP: "db"}}}})
	wantErr(t, err, vipsmart.EINVALID, "dc-2 has no VIP named db")
}

func TestMessageJSONRoundTrip(t *testing.T) {
	g := vipsmart.GIP{Name: "g", Address: netip.MustParseAddr("2001:db8::1"), Mode: vipsmart.ModeAnycast, Placements: []vipsmart.Placement{{DC: "dc-1", Priority: 3}}}
	d := scDC("dc-2")
	m := Message{Type: MsgPrepare, From: scDC("dc-1"), To: d, FedID: "f-1", Epoch: 4, OpID: "dc-1-3", ToEpoch: 5,
		Change: &Change{Kind: AddDC, DC: &d}, State: &State{FedID: "f-1", Epoch: 5, Members: []vipsmart.DC{scDC("dc-1"), d}, GIPs: []vipsmart.GIP{g}},
		Doubts: []Doubt{{FedID: "f-1", Epoch: 4, ToEpoch: 5, OpID: "dc-3-1", Coordinator: "dc-3", Change: Change{Kind: RemoveDC, Name: "dc-1", Force: true, Names: []string{"dc-1", "dc-4"}}, Seq: 1}},
		Seq:    3, Running: true}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var back Message
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	b2, _ := json.Marshal(back)
	if string(b) != string(b2) {
		t.Fatalf("round trip changed the message:\n%s\n%s", b, b2)
	}
	if err := back.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestReportTravelsInHeartbeats(t *testing.T) {
	c := newCluster(t, 2)
	c.federate(2)
	c.nodes["dc-1"].SetLocalReport(Report{VIPsDown: []string{"web"}, Holding: []string{"g"}})
	c.run(500 * time.Millisecond)
	for _, d := range c.nodes["dc-2"].DCs(c.now) {
		if d.Name == "dc-1" && (len(d.VIPsDown) != 1 || d.VIPsDown[0] != "web" || len(d.Holding) != 1 || !d.Reachable) {
			t.Fatalf("dc-2 sees dc-1 as %+v", d)
		}
	}
	c.crash("dc-1")
	c.run(time.Second)
	for _, d := range c.nodes["dc-2"].DCs(c.now) {
		if d.Name == "dc-1" && d.Reachable {
			t.Fatalf("dc-1 still reachable after %s", time.Second)
		}
	}
	if !hasEvent(c.events, "dc-2", "dc-1 is unreachable") {
		t.Fatal("no unreachable event")
	}
}
