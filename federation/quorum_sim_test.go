package federation

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
)

var qsimRuns = flag.Int("qsim.runs", 150, "number of seeded quorum simulation runs")

// The timing model of TestQuorumSimulation:
//   - real time advances in steps of qStep; each DC has its own clock with a
//     random offset (hours) and a rate within ±0.9 MaxClockDrift of real
//     time, and ticks (Tick, then Consistent) every qTick of its own clock
//     from a random phase;
//   - a message is lost with probability 5-30% (whole runs at a time), else
//     delivered after 0-40 ms, or 0-2 s with probability 3% (reordering);
//     links are cut one way or both ways at random, in any shape (DC A
//     hears B but not C, ...);
//   - DCs crash (lose every volatile state) and restart after 0-3 s;
//   - a DC's own VIP goes down and up (its report follows by heartbeat).
//
// A DC "announces" a GIP from the step its evaluation makes it active
// until qWithdraw after the evaluation that makes it inactive (or its
// crash): the route's withdrawal reaching the router. The invariant
// checked at every step: no two DCs announce the same consistent GIP.
const (
	qStep     = 5 * time.Millisecond
	qTick     = 50 * time.Millisecond
	qWithdraw = 100 * time.Millisecond
	qRun      = 30 * time.Second
)

type qdc struct {
	dc       vipsmart.DC
	node     *Node
	off      time.Duration
	rate     float64
	phase    time.Duration
	nextTick time.Time
	down     bool
	upAt     time.Time
	vipDown  bool
	active   bool
	until    time.Time // announcing until (after turning inactive)
	record   []byte
}

type qmsg struct {
	at time.Time
	m  Message
}

type qsim struct {
	rng       *rand.Rand
	now       time.Time
	dcs       []*qdc
	by        map[string]*qdc
	net       []qmsg
	loss      float64
	cut       map[[2]string]bool
	gip       vipsmart.GIP
	trace     []string
	activeFor time.Duration // real time with some DC announcing
	takeovers int
	last      string
	calm      bool // no long delays
}

func (s *qsim) local(d *qdc) time.Time {
	el := s.now.Sub(qEpoch)
	return qEpoch.Add(d.off + time.Duration(float64(el)*d.rate))
}

var qEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func (s *qsim) tracef(f string, a ...any) {
	s.trace = append(s.trace, fmt.Sprintf("%7.3fs ", s.now.Sub(qEpoch).Seconds())+fmt.Sprintf(f, a...))
	if len(s.trace) > 80 {
		s.trace = s.trace[1:]
	}
}

func newQsim(seed int64, witness bool) *qsim {
	s := &qsim{rng: rand.New(rand.NewPCG(uint64(seed), 7)), now: qEpoch, by: map[string]*qdc{}, cut: map[[2]string]bool{}}
	names := []string{"dc-1", "dc-2", "dc-3"}
	var members []vipsmart.DC
	for i, nm := range names {
		d := vipsmart.DC{Name: nm, Address: netip.MustParseAddr(fmt.Sprintf("127.0.0.%d", i+1)), Port: 9610}
		if witness && nm == "dc-3" {
			d.Witness = true
		}
		members = append(members, d)
	}
	s.gip = vipsmart.GIP{Name: "db", Address: netip.MustParseAddr("203.0.113.10"), Mode: vipsmart.ModeFailover, Preempt: s.rng.IntN(2) == 0, Partition: vipsmart.PartitionConsistent}
	for _, d := range members {
		if !d.Witness {
			s.gip.Placements = append(s.gip.Placements, vipsmart.Placement{DC: d.Name, Priority: 1 + s.rng.IntN(3)*50, VIP: "db"})
		}
	}
	for _, d := range members {
		h := hardState{Version: recordVersion, Self: d, Status: vipsmart.StatusMember, FedID: "f", Epoch: 1, Members: members}
		q := &qdc{dc: d, off: time.Duration(s.rng.Int64N(int64(10 * time.Hour))), rate: 1 + (s.rng.Float64()*2-1)*0.9*MaxClockDrift, phase: time.Duration(s.rng.Int64N(int64(qTick))), record: h.encode()}
		s.dcs = append(s.dcs, q)
		s.by[d.Name] = q
		s.start(q)
	}
	return s
}

func (s *qsim) start(d *qdc) {
	n, err := NewNode(Config{Self: d.dc}, d.record, []vipsmart.GIP{s.gip}, s.local(d))
	if err != nil {
		panic(err)
	}
	d.node, d.down, d.active = n, false, false
	d.nextTick = s.now.Add(d.phase)
	s.drain(d)
}

func (s *qsim) drain(d *qdc) {
	for d.node.HasReady() {
		rd := d.node.Ready()
		for _, m := range rd.Messages {
			if s.rng.Float64() < s.loss || s.cut[[2]string{m.From.Name, m.To.Name}] {
				continue
			}
			delay := time.Duration(s.rng.Int64N(int64(40 * time.Millisecond)))
			if !s.calm && s.rng.Float64() < 0.03 {
				delay = time.Duration(s.rng.Int64N(int64(2 * time.Second)))
			}
			s.net = append(s.net, qmsg{s.now.Add(delay), m})
		}
		d.node.Advance(rd)
	}
}

// eval is what the daemon does each tick for a consistent GIP.
func (s *qsim) eval(d *qdc) {
	now := s.local(d)
	d.node.Tick(now)
	if d.dc.Witness {
		d.node.Consistent(now, nil)
		s.drain(d)
		return
	}
	r := Report{}
	if d.vipDown {
		r.VIPsDown = []string{"db"}
	}
	d.node.SetLocalReport(r)
	v := d.node.Quorum(now)
	view := vipsmart.HealthView{Reachable: map[string]bool{}, VIPUp: map[string]map[string]bool{}}
	for _, m := range d.node.DCs(now) {
		view.Reachable[m.Name] = m.Self || !slices.Contains(v.Lost, m.Name)
		view.VIPUp[m.Name] = map[string]bool{"db": !slices.Contains(m.VIPsDown, "db")}
	}
	view.VIPUp[d.dc.Name]["db"] = !d.vipDown
	var prev []string
	if d.active {
		prev = []string{d.dc.Name}
	}
	act := vipsmart.ActivePlacements(s.gip, view, prev)
	var others []string
	for _, p := range s.gip.Placements {
		if p.DC != d.dc.Name {
			others = append(others, p.DC)
		}
	}
	_, st := d.node.Consistent(now, []ConsistentGIP{{Name: "db", Chosen: slices.Contains(act, d.dc.Name), Others: others}})
	is := st["db"].Active
	if is != d.active {
		s.tracef("%s %s (%s)", d.dc.Name, map[bool]string{true: "ACTIVE", false: "inactive"}[is], st["db"].Why)
		if !is {
			d.until = s.now.Add(qWithdraw)
		}
		d.active = is
	}
	s.drain(d)
}

func (s *qsim) chaos() {
	r := s.rng.Float64()
	switch {
	case r < 0.004: // cut or heal a link, one way or both
		a, b := s.dcs[s.rng.IntN(3)].dc.Name, s.dcs[s.rng.IntN(3)].dc.Name
		if a == b {
			return
		}
		v := !s.cut[[2]string{a, b}]
		s.cut[[2]string{a, b}] = v
		if s.rng.IntN(2) == 0 {
			s.cut[[2]string{b, a}] = v
		}
		s.tracef("link %s->%s cut=%t", a, b, v)
	case r < 0.005: // heal everything
		s.cut = map[[2]string]bool{}
		s.tracef("healed")
	case r < 0.0065: // crash
		d := s.dcs[s.rng.IntN(3)]
		if !d.down {
			d.down = true
			if d.active {
				d.until = s.now.Add(qWithdraw)
			}
			d.active = false
			d.upAt = s.now.Add(time.Duration(s.rng.Int64N(int64(3 * time.Second))))
			s.tracef("%s crashed", d.dc.Name)
		}
	case r < 0.008:
		d := s.dcs[s.rng.IntN(3)]
		d.vipDown = !d.vipDown
		s.tracef("%s VIP down=%t", d.dc.Name, d.vipDown)
	case r < 0.0085:
		s.loss = []float64{0, 0.05, 0.3}[s.rng.IntN(3)]
	}
}

func (s *qsim) step() error {
	s.now = s.now.Add(qStep)
	s.chaos()
	s.deliver()
	s.tickAll()
	return s.checkOne()
}

func (s *qsim) deliver() {
	var keep []qmsg
	var due []qmsg
	for _, m := range s.net {
		if m.at.After(s.now) {
			keep = append(keep, m)
		} else {
			due = append(due, m)
		}
	}
	s.net = keep
	for _, m := range due {
		d := s.by[m.m.To.Name]
		if d.down {
			continue
		}
		_ = d.node.Step(s.local(d), m.m)
		s.drain(d)
	}
}

func (s *qsim) tickAll() {
	for _, d := range s.dcs {
		if d.down && !s.now.Before(d.upAt) {
			s.start(d)
			s.tracef("%s restarted", d.dc.Name)
		}
		if !d.down && !s.now.Before(d.nextTick) {
			d.nextTick = d.nextTick.Add(time.Duration(float64(qTick) / d.rate))
			s.eval(d)
		}
	}
}

func (s *qsim) checkOne() error {
	var ann []string
	for _, d := range s.dcs {
		if d.active || s.now.Before(d.until) {
			ann = append(ann, d.dc.Name)
		}
	}
	if len(ann) > 1 {
		return fmt.Errorf("two DCs announce consistent GIP db at once: %s", strings.Join(ann, ", "))
	}
	if len(ann) == 1 {
		s.activeFor += qStep
		if ann[0] != s.last && s.last != "" {
			s.takeovers++
		}
		s.last = ann[0]
	}
	return nil
}

// TestQuorumSimulation checks, at every step of seeded runs with
// partitions (any shape), message loss, delay and reordering, clock
// offsets and drift within MaxClockDrift, crashes and restarts, that no
// two DCs are active for the same consistent GIP at once (see the timing
// model above), with three DCs and with two DCs and a witness. It also
// checks that the runs are not vacuous: the GIP is active most of the
// time and moves between DCs.
func TestQuorumSimulation(t *testing.T) {
	runs := *qsimRuns
	if testing.Short() {
		runs = 30
	}
	var active, total time.Duration
	takeovers := 0
	for seed := int64(1); seed <= int64(runs); seed++ {
		s := newQsim(seed, seed%2 == 0)
		for s.now.Sub(qEpoch) < qRun {
			if err := s.step(); err != nil {
				t.Fatalf("seed %d (witness %t): %v\n%s", seed, seed%2 == 0, err, strings.Join(s.trace, "\n"))
			}
		}
		active += s.activeFor
		total += qRun
		takeovers += s.takeovers
	}
	frac := float64(active) / float64(total)
	t.Logf("%d runs of %s: the GIP was active %.0f%% of the time, %d moves between DCs", runs, qRun, 100*frac, takeovers)
	if frac < 0.25 || takeovers < runs {
		t.Fatalf("the runs are nearly vacuous: active %.0f%% of the time, %d moves in %d runs", 100*frac, takeovers, runs)
	}
}
