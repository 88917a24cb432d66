package vipmove

import (
	"fmt"
	"math/rand"
	"slices"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
)

// The simulation: a linearizable store with etcd's compare-and-swap
// semantics (as etcd/vipmove.go implements them), nodes that step every
// tick, and a network with delays, lost answers, freezes, kills and cuts.
// After every tick it checks that no VIP is on the wire at two nodes:
// a live node's wire is what it bound at its last step; a killed or frozen
// node's wire keeps its last bound set until its renew deadline (the guard
// removes it then).

const tick = 5 * time.Millisecond

type simBeat struct {
	inc, rev int64
	fenced   bool
	down     []string
}

type simHolder struct {
	node   string
	inc    int64
	rev    int64
	reason string
}

type simStore struct {
	rev     int64
	beats   map[string]simBeat
	holders map[string]simHolder
}

func (s *simStore) snapshot(vips []VIP) View {
	v := View{Rev: s.rev, VIPs: vips, Beats: map[string]Beat{}, Holders: map[string]Holding{}}
	for n, b := range s.beats {
		v.Beats[n] = Beat{Node: n, Inc: b.inc, Rev: b.rev, Fenced: b.fenced, Down: slices.Clone(b.down)}
	}
	for n, h := range s.holders {
		v.Holders[n] = Holding{Node: h.node, Inc: h.inc, Rev: h.rev, Reason: h.reason}
	}
	return v
}

// apply commits a, as etcd would, and returns its result.
func (s *simStore) apply(self string, a Action) Result {
	switch a.Kind {
	case Register:
		s.rev++
		s.beats[self] = simBeat{inc: s.rev, rev: s.rev, down: a.Down}
		return Result{OK: true, Inc: s.rev, Rev: s.rev}
	case Renew:
		b, ok := s.beats[self]
		if ok && b.rev != a.Rev && b.inc == a.Inc && !b.fenced {
			return Result{Rev: b.rev} // an earlier renewal committed
		}
		if !ok || b.rev != a.Rev {
			return Result{Lost: true}
		}
		s.rev++
		b.rev, b.down = s.rev, a.Down
		s.beats[self] = b
		return Result{OK: true, Inc: b.inc, Rev: s.rev}
	case Take:
		h := s.holders[a.VIP]
		if h.rev != a.HolderRev {
			return Result{}
		}
		mine, ok := s.beats[self]
		if !ok || mine.inc != a.Inc {
			return Result{}
		}
		if a.Prev != "" && a.Prev != self || a.PrevBeatInc != 0 || a.PrevBeatRev != 0 {
			pb, ok := s.beats[a.Prev]
			if a.PrevBeatRev != 0 {
				if !ok || pb.rev != a.PrevBeatRev {
					return Result{}
				}
			} else if (ok && pb.inc != a.PrevBeatInc) || (!ok && a.PrevBeatInc != 0) {
				return Result{}
			}
		}
		s.rev++
		s.holders[a.VIP] = simHolder{node: self, inc: a.Inc, rev: s.rev, reason: a.Reason}
		if a.Fence {
			pb := s.beats[a.Prev]
			pb.fenced, pb.rev = true, s.rev
			s.beats[a.Prev] = pb
		}
		return Result{OK: true, Rev: s.rev}
	case Release:
		h, ok := s.holders[a.VIP]
		if !ok || h.rev != a.HolderRev {
			return Result{}
		}
		s.rev++
		if a.Delete {
			delete(s.holders, a.VIP)
		} else {
			s.holders[a.VIP] = simHolder{rev: s.rev, reason: a.Reason}
		}
		return Result{OK: true, Rev: s.rev}
	}
	panic("unknown action")
}

type nodeState int

const (
	running nodeState = iota
	killed
	frozen
	cut // cannot reach the store (nor see it)
)

type inflight struct {
	a        Action
	commitAt time.Time
	ackAt    time.Time
	res      Result
	done     bool // committed (res set)
	lostAck  bool // committed, but the answer is lost
}

type simNode struct {
	name      string
	e         *Engine
	state     nodeState
	wire      map[string]bool // addresses on the wire
	wireUntil time.Time       // killed/frozen: the guard removes them then
	ops       []*inflight
	lag       time.Duration // watch lag
	up        map[string]bool
}

type sim struct {
	t           *testing.T
	rng         *rand.Rand
	now         time.Time
	timers      Timers
	st          *simStore
	hist        []View // snapshot per tick
	vips        []VIP
	nodes       []*simNode
	chaos       bool
	minGap      time.Duration // least time between one node's unbinding and another's binding
	loseAck     func(node string, a Action) bool
	lastOff     map[string]time.Time
	lastOffNode map[string]string
}

func newSim(t *testing.T, seed int64, nodes []string, vips []VIP, timers Timers) *sim {
	s := &sim{t: t, rng: rand.New(rand.NewSource(seed)), now: time.Unix(1000, 0), timers: timers,
		st: &simStore{beats: map[string]simBeat{}, holders: map[string]simHolder{}}, vips: vips,
		minGap: time.Hour, lastOff: map[string]time.Time{}, lastOffNode: map[string]string{}}
	for _, n := range nodes {
		s.nodes = append(s.nodes, s.newNode(n))
	}
	return s
}

func (s *sim) newNode(name string) *simNode {
	n := &simNode{name: name, e: New(name, s.timers), wire: map[string]bool{}, up: map[string]bool{}}
	for _, v := range s.vips {
		n.up[v.Name] = true
		n.e.SetHealth(v.Name, true)
	}
	return n
}

func (s *sim) node(name string) *simNode {
	for _, n := range s.nodes {
		if n.name == name {
			return n
		}
	}
	s.t.Fatalf("no node %s", name)
	return nil
}

// latency is one way to the store.
func (s *sim) latency() time.Duration {
	d := time.Duration(1+s.rng.Intn(10)) * time.Millisecond
	if s.chaos && s.rng.Intn(20) == 0 {
		d += time.Duration(s.rng.Intn(600)) * time.Millisecond
	}
	return d
}

func (s *sim) step() {
	s.now = s.now.Add(tick)
	// Commit and deliver operations.
	for _, n := range s.nodes {
		var keep []*inflight
		for _, op := range n.ops {
			if !op.done && !s.now.Before(op.commitAt) {
				if n.state == cut && !op.commitAt.IsZero() {
					// lost on the way: never commits
					op.done, op.res = true, Result{}
					op.ackAt = op.commitAt.Add(s.timers.Deadline * 3) // a timeout
				} else {
					op.res = s.st.apply(n.name, op.a)
					op.done = true
				}
			}
			if op.done && !s.now.Before(op.ackAt) && (n.state == running || n.state == cut) {
				res := op.res
				if n.state == cut || op.lostAck {
					res = Result{} // the answer is lost: a timeout
				}
				res.At = s.now
				n.e.Done(op.a, res)
				continue
			}
			if n.state == killed {
				continue // a dead process forgets its operations (committed ones stay committed)
			}
			keep = append(keep, op)
		}
		n.ops = keep
	}
	s.hist = append(s.hist, s.st.snapshot(s.vips))
	if len(s.hist) > 400 {
		s.hist = s.hist[1:]
	}
	for _, n := range s.nodes {
		switch n.state {
		case killed, frozen:
			if !s.now.Before(n.wireUntil) {
				s.setWire(n, nil)
			}
			continue
		}
		if n.state == running {
			k := int(n.lag / tick)
			if k >= len(s.hist) {
				k = len(s.hist) - 1
			}
			n.e.Observe(s.now, s.hist[len(s.hist)-1-k])
		}
		acts := n.e.Step(s.now)
		s.setWire(n, n.e.Bound(s.now))
		for _, a := range acts {
			c := s.now.Add(s.latency())
			n.ops = append(n.ops, &inflight{a: a, commitAt: c, ackAt: c.Add(s.latency()), lostAck: (s.chaos && s.rng.Intn(15) == 0) || (s.loseAck != nil && s.loseAck(n.name, a))})
		}
	}
	s.check()
}

func (s *sim) setWire(n *simNode, bound []string) {
	next := map[string]bool{}
	for _, b := range bound {
		next[b] = true
	}
	for v := range n.wire {
		if !next[v] {
			s.lastOff[v], s.lastOffNode[v] = s.now, n.name
		}
	}
	for v := range next {
		if !n.wire[v] {
			if off, ok := s.lastOff[v]; ok && s.lastOffNode[v] != n.name {
				if gap := s.now.Sub(off); gap < s.minGap {
					s.minGap = gap
				}
			}
		}
	}
	n.wire = next
}

func (s *sim) check() {
	for _, v := range s.vips {
		var on []string
		for _, n := range s.nodes {
			if n.wire[v.Name] {
				on = append(on, n.name)
			}
		}
		if len(on) > 1 {
			s.t.Fatalf("at %s: VIP %s is on the wire at %v", s.now.Sub(time.Unix(1000, 0)), v.Name, on)
		}
	}
}

func (s *sim) run(d time.Duration) {
	for end := s.now.Add(d); s.now.Before(end); {
		s.step()
	}
}

// holderOf returns the node with v on the wire ("" if none).
func (s *sim) holderOf(v string) string {
	for _, n := range s.nodes {
		if n.wire[v] {
			return n.name
		}
	}
	return ""
}

// until runs until cond holds, at most d; it returns how long it took.
func (s *sim) until(d time.Duration, cond func() bool) (time.Duration, bool) {
	start := s.now
	for s.now.Sub(start) < d {
		if cond() {
			return s.now.Sub(start), true
		}
		s.step()
	}
	return s.now.Sub(start), cond()
}

func (s *sim) kill(name string) {
	n := s.node(name)
	n.state, n.wireUntil = killed, n.e.Deadline()
}

func (s *sim) freeze(name string) {
	n := s.node(name)
	n.state, n.wireUntil = frozen, n.e.Deadline()
}

func (s *sim) thaw(name string) { s.node(name).state = running }

func (s *sim) restart(name string) {
	n := s.node(name)
	nn := s.newNode(name)
	nn.lag = n.lag
	// The new process removes what its former run left on the wire before
	// anything else (its announcer's first Set).
	s.setWire(n, nil)
	*n = *nn
}

var threeVIPs = []VIP{{Name: "a"}, {Name: "b"}, {Name: "c"}}

func TestEachVIPHeldOnceAndSpread(t *testing.T) {
	s := newSim(t, 1, []string{"n1", "n2", "n3"}, threeVIPs, DefaultTimers())
	s.run(2 * time.Second)
	holders := map[string]bool{}
	for _, v := range s.vips {
		h := s.holderOf(v.Name)
		if h == "" {
			t.Fatalf("VIP %s has no holder after 2s", v.Name)
		}
		holders[h] = true
	}
	t.Logf("holders: a=%s b=%s c=%s", s.holderOf("a"), s.holderOf("b"), s.holderOf("c"))
	if len(holders) < 2 {
		t.Errorf("three VIPs at equal priority all went to one node (%v): expected them spread", holders)
	}
}

// failover runs one failure of the holder of VIP a and returns how long
// until another node bound it.
func failover(t *testing.T, seed int64, fail func(s *sim, holder string)) (time.Duration, *sim) {
	s := newSim(t, seed, []string{"n1", "n2", "n3"}, threeVIPs, DefaultTimers())
	for i, n := range s.nodes {
		n.lag = time.Duration(i*5+s.rng.Intn(20)) * time.Millisecond
	}
	s.run(2*time.Second + time.Duration(s.rng.Intn(200))*time.Millisecond)
	h := s.holderOf("a")
	if h == "" {
		t.Fatal("no holder for a")
	}
	fail(s, h)
	took, ok := s.until(5*time.Second, func() bool { o := s.holderOf("a"); return o != "" && o != h })
	if !ok {
		t.Fatalf("seed %d: VIP a still not moved from %s after %s", seed, h, took)
	}
	return took, s
}

func TestKilledHolderMoves(t *testing.T) {
	var worst time.Duration
	for seed := int64(0); seed < 30; seed++ {
		took, s := failover(t, seed, func(s *sim, h string) { s.kill(h) })
		worst = max(worst, took)
		s.run(2 * time.Second)
	}
	t.Logf("kill -9: worst move %s over 30 runs (takeover %s)", worst, DefaultTakeover)
	if worst > DefaultTakeover+300*time.Millisecond {
		t.Errorf("a killed holder's VIP moved after %s: want at most takeover + 300ms", worst)
	}
}

func TestFrozenHolderMovesAndThawedOneWithdraws(t *testing.T) {
	for seed := int64(0); seed < 15; seed++ {
		var h string
		_, s := failover(t, seed, func(s *sim, x string) { h = x; s.freeze(x) })
		s.run(time.Duration(s.rng.Intn(3000)) * time.Millisecond)
		s.thaw(h)
		s.run(3 * time.Second) // check() runs at every tick
		if s.holderOf("a") == "" {
			t.Fatalf("seed %d: after the thaw VIP a has no holder", seed)
		}
	}
}

func TestCutHolderWithdrawsBeforeTakeover(t *testing.T) {
	for seed := int64(0); seed < 15; seed++ {
		var h string
		took, s := failover(t, seed, func(s *sim, x string) { h = x; s.node(x).state = cut })
		if took > DefaultTakeover+300*time.Millisecond {
			t.Errorf("seed %d: cut holder's VIP moved after %s", seed, took)
		}
		s.run(time.Second)
		s.node(h).state = running
		s.run(3 * time.Second)
	}
}

func TestRestartedHolder(t *testing.T) {
	for seed := int64(0); seed < 10; seed++ {
		var h string
		_, s := failover(t, seed, func(s *sim, x string) { h = x; s.kill(x) })
		s.restart(h)
		s.run(3 * time.Second)
		for _, v := range s.vips {
			if s.holderOf(v.Name) == "" {
				t.Fatalf("seed %d: VIP %s has no holder after %s restarted", seed, v.Name, h)
			}
		}
	}
}

func TestRestartWithinDeadline(t *testing.T) {
	// Killed and restarted at once: the new process registers a new
	// incarnation and takes its VIPs back (or another node does).
	s := newSim(t, 7, []string{"n1", "n2", "n3"}, threeVIPs, DefaultTimers())
	s.run(2 * time.Second)
	h := s.holderOf("a")
	s.kill(h)
	s.run(20 * time.Millisecond)
	s.restart(h)
	if _, ok := s.until(3*time.Second, func() bool { return s.holderOf("a") != "" }); !ok {
		t.Fatal("VIP a has no holder 3s after its holder restarted")
	}
}

func TestHealthFailingMoves(t *testing.T) {
	s := newSim(t, 3, []string{"n1", "n2", "n3"}, threeVIPs, DefaultTimers())
	s.run(2 * time.Second)
	h := s.holderOf("a")
	s.node(h).e.SetHealth("a", false)
	took, ok := s.until(3*time.Second, func() bool { o := s.holderOf("a"); return o != "" && o != h })
	if !ok {
		t.Fatalf("VIP a stayed with %s whose check fails", h)
	}
	t.Logf("health failing: moved from %s to %s in %s", h, s.holderOf("a"), took)
	if took > 500*time.Millisecond {
		t.Errorf("health failing moved the VIP after %s: want an orderly handover within a few renewals", took)
	}
	// Back up, no preempt: it stays where it is.
	now := s.holderOf("a")
	s.node(h).e.SetHealth("a", true)
	s.run(2 * time.Second)
	if s.holderOf("a") != now {
		t.Errorf("without preempt the VIP moved back to %s", s.holderOf("a"))
	}
}

func TestNoEligibleNodeNoHolder(t *testing.T) {
	s := newSim(t, 4, []string{"n1", "n2"}, []VIP{{Name: "a"}}, DefaultTimers())
	s.run(time.Second)
	for _, n := range s.nodes {
		n.e.SetHealth("a", false)
	}
	s.run(time.Second)
	if h := s.holderOf("a"); h != "" {
		t.Fatalf("VIP a is on %s though its check fails everywhere", h)
	}
	s.node("n2").e.SetHealth("a", true)
	if _, ok := s.until(time.Second, func() bool { return s.holderOf("a") == "n2" }); !ok {
		t.Fatalf("VIP a not taken by n2, the one node whose check passes (holder %q)", s.holderOf("a"))
	}
}

func TestPreemptOnReturn(t *testing.T) {
	vips := []VIP{{Name: "a", Preempt: true, Nodes: []vipsmart.VIPNode{{Node: "n1", Priority: 200}, {Node: "n2", Priority: 100}, {Node: "n3", Priority: 50}}}}
	s := newSim(t, 5, []string{"n1", "n2", "n3"}, vips, DefaultTimers())
	s.run(2 * time.Second)
	if h := s.holderOf("a"); h != "n1" {
		t.Fatalf("holder %q: want n1, the node of highest priority", h)
	}
	s.kill("n1")
	if _, ok := s.until(2*time.Second, func() bool { return s.holderOf("a") == "n2" }); !ok {
		t.Fatalf("after n1 died the holder is %q: want n2", s.holderOf("a"))
	}
	s.restart("n1")
	took, ok := s.until(3*time.Second, func() bool { return s.holderOf("a") == "n1" })
	if !ok {
		t.Fatalf("preempt: n1 back, holder still %q", s.holderOf("a"))
	}
	t.Logf("preempt: back on n1 %s after its restart (min gap between two holders %s)", took, s.minGap)
	// Without preempt it would have stayed.
	s2 := newSim(t, 5, []string{"n1", "n2"}, []VIP{{Name: "a", Nodes: []vipsmart.VIPNode{{Node: "n1", Priority: 200}, {Node: "n2", Priority: 100}}}}, DefaultTimers())
	s2.run(2 * time.Second)
	s2.kill("n1")
	s2.run(2 * time.Second)
	s2.restart("n1")
	s2.run(2 * time.Second)
	if h := s2.holderOf("a"); h != "n2" {
		t.Errorf("without preempt: holder %q, want n2 to keep it", h)
	}
}

func TestUnlistedNodeNeverHolds(t *testing.T) {
	vips := []VIP{{Name: "a", Nodes: []vipsmart.VIPNode{{Node: "n1", Priority: 100}}}}
	s := newSim(t, 6, []string{"n1", "n2"}, vips, DefaultTimers())
	s.run(time.Second)
	s.kill("n1")
	s.run(3 * time.Second)
	if h := s.holderOf("a"); h != "" {
		t.Fatalf("VIP a listing only n1 is held by %s", h)
	}
}

// TestChaos runs random failures with slow and lost answers and checks
// the invariant at every tick.
func TestChaos(t *testing.T) {
	seeds := 20
	if testing.Short() {
		seeds = 8
	}
	moves := 0
	var minGap time.Duration = time.Hour
	for seed := int64(0); seed < int64(seeds); seed++ {
		s := newSim(t, 100+seed, []string{"n1", "n2", "n3"}, threeVIPs, DefaultTimers())
		s.chaos = true
		for _, n := range s.nodes {
			n.lag = time.Duration(s.rng.Intn(60)) * time.Millisecond
		}
		for i := 0; i < 40; i++ {
			n := s.nodes[s.rng.Intn(3)]
			switch s.rng.Intn(7) {
			case 0:
				if n.state == running {
					s.kill(n.name)
				}
			case 1:
				if n.state == killed {
					s.restart(n.name)
				}
			case 2:
				if n.state == running {
					s.freeze(n.name)
				} else if n.state == frozen {
					s.thaw(n.name)
				}
			case 3:
				if n.state == running {
					n.state = cut
				} else if n.state == cut {
					n.state = running
				}
			case 4:
				v := s.vips[s.rng.Intn(3)].Name
				n.e.SetHealth(v, !n.e.up[v])
			default:
			}
			before := map[string]string{}
			for _, v := range s.vips {
				before[v.Name] = s.holderOf(v.Name)
			}
			s.run(time.Duration(s.rng.Intn(1500)) * time.Millisecond)
			for _, v := range s.vips {
				if h := s.holderOf(v.Name); h != before[v.Name] && h != "" {
					moves++
				}
			}
		}
		minGap = min(minGap, s.minGap)
	}
	t.Logf("chaos: %d seeds, %d moves, never two holders; least gap between one node unbinding and another binding: %s", seeds, moves, minGap)
	if moves < seeds {
		t.Errorf("only %d moves in %d runs: the chaos does not exercise takeovers", moves, seeds)
	}
}

func TestTimersValidate(t *testing.T) {
	if err := DefaultTimers().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []Timers{
		{Renew: time.Millisecond, Deadline: time.Second, Takeover: 2 * time.Second},
		{Renew: time.Second, Deadline: time.Second, Takeover: 2 * time.Second},
		{Renew: 100 * time.Millisecond, Deadline: time.Second, Takeover: time.Second},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}

func ExampleTimers() {
	fmt.Println(DefaultTimers().Validate())
	// Output: <nil>
}

func TestRemovedVIPKeyDeletedAfterGrace(t *testing.T) {
	s := newSim(t, 8, []string{"n1", "n2"}, []VIP{{Name: "a"}, {Name: "b"}}, DefaultTimers())
	s.run(time.Second)
	h := s.holderOf("a")
	// a replaced (removed and added back at once): same holder.
	s.vips = []VIP{{Name: "b"}}
	s.run(50 * time.Millisecond)
	if s.holderOf("a") != "" {
		t.Fatal("a removed VIP is still bound")
	}
	s.vips = []VIP{{Name: "a"}, {Name: "b"}}
	s.run(200 * time.Millisecond)
	if got := s.holderOf("a"); got != h {
		t.Fatalf("a VIP removed and added back moved from %s to %q", h, got)
	}
	s.vips = []VIP{{Name: "b"}}
	s.run(RemoveGrace + time.Second)
	if _, ok := s.st.holders["a"]; ok {
		t.Fatal("the holder key of a removed VIP is still there after the grace")
	}
}

// TestReleaseAnswerLost: a holder releases (its check failed), the release
// commits but its answer is lost, and its check passes again before its
// lagging view shows the release: it must not bind the VIP again while
// another node takes it.
func TestReleaseAnswerLost(t *testing.T) {
	for seed := int64(0); seed < 20; seed++ {
		s := newSim(t, 200+seed, []string{"n1", "n2", "n3"}, threeVIPs, DefaultTimers())
		s.run(time.Second)
		h := s.holderOf("a")
		hn := s.node(h)
		hn.lag = 150 * time.Millisecond
		s.loseAck = func(node string, a Action) bool { return node == h && a.Kind == Release }
		hn.e.SetHealth("a", false)
		s.run(time.Duration(20+s.rng.Intn(40)) * time.Millisecond)
		hn.e.SetHealth("a", true)
		s.run(2 * time.Second)
		if s.holderOf("a") == "" {
			t.Fatalf("seed %d: VIP a has no holder", seed)
		}
	}
}
