package federation

import (
	"container/heap"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
)

var (
	simRuns  = flag.Int("sim.runs", 2000, "number of seeded simulation runs")
	simFirst = flag.Int64("sim.first", 0, "first seed of a multi-seed run (seeds first .. first+runs-1)")
	simSeed  = flag.Int64("sim.seed", -1, "replay this one simulation seed (with -v for its trace)")
)

// simConfig is the protocol configuration of every simulated DC: short
// TTLs so that a run covers many leases.
func simConfig(self vipsmart.DC) Config {
	return Config{
		Self:              self,
		InviteTTL:         1200 * time.Millisecond,
		ReviewTTL:         1000 * time.Millisecond,
		HeartbeatInterval: 200 * time.Millisecond,
		HeartbeatMisses:   3,
		PhaseTimeout:      400 * time.Millisecond,
	}
}

const (
	simStep     = 25 * time.Millisecond
	simChaos    = 15 * time.Second // faults and operator commands
	simMaxDelay = 40 * time.Millisecond
	simTraceLen = 60
)

type skey struct {
	fed   string
	epoch uint64
}

func (k skey) String() string { return fmt.Sprintf("%s@%d", k.fed, k.epoch) }

func resKey(d *Decision) skey {
	if d.Change.NewFedID != "" {
		return skey{d.Change.NewFedID, d.ToEpoch}
	}
	return skey{d.FedID, d.ToEpoch}
}

type simDC struct {
	dc       vipsmart.DC
	node     *Node
	record   []byte
	gips     map[string]vipsmart.GIP
	downTill time.Time
	maxEpoch uint64
	skew     time.Duration // this DC's clock is the simulation's time plus skew
	invited  string        // the op of the invite it holds (to see it end)
	decided  string        // the last operation it committed as coordinator
	hc       hashCache
}

// hashCache caches stateHash: a node's member list and GIPs change only
// with its (federation, epoch) or its GIP version.
type hashCache struct {
	node  *Node
	fed   string
	epoch uint64
	ver   uint64
	x     uint64
	str   string
}

type envelope struct {
	at  time.Time
	seq int
	m   Message
}

// netQueue is the messages in flight, a min-heap by delivery time.
type netQueue []envelope

func (q netQueue) Len() int { return len(q) }
func (q netQueue) Less(i, j int) bool {
	if !q[i].at.Equal(q[j].at) {
		return q[i].at.Before(q[j].at)
	}
	return q[i].seq < q[j].seq
}
func (q netQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *netQueue) Push(x any)   { *q = append(*q, x.(envelope)) }
func (q *netQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

type acked struct {
	op string
	d  Decision
	at time.Time
}

// traceLine is formatted only when a trace is printed.
type traceLine struct {
	at     time.Duration
	format string
	args   []any
}

func (l traceLine) String() string {
	return fmt.Sprintf("%8.3fs ", l.at.Seconds()) + fmt.Sprintf(l.format, l.args...)
}

type sim struct {
	seed    int64
	rng     *rand.Rand
	now     time.Time
	dcs     []*simDC
	byName  map[string]*simDC
	net     netQueue
	seq     int
	loss    float64
	dup     float64
	cut     map[[2]string]bool
	faults  bool
	forced  bool // the forced-removal mode: many forced removals, long partitions
	full    bool // keep the whole trace (replaying one seed)
	trace   []traceLine
	err     error
	unreach []func()

	states    map[skey]uint64 // invariant 2: the first state seen at each (fed, epoch)
	descr     map[skey]string
	parents   map[skey]skey
	acks      []acked
	diss      map[skey]bool // results of the decisions that dissolved a federation (its last member left)
	exempt    map[string]string
	forcedOK  []Decision                 // the forced removals committed so far
	committed map[string]bool            // forced removals seen committed
	inviteFed map[string]string          // op -> the federation its invite was for
	gaveUp    map[string]map[string]bool // DC -> federations whose invite it let expire
	nodeSets  map[string]map[string]bool // DC -> the node sets it named (nodes_sim_test.go)
	stats     simStats
}

type simStats struct {
	ops, okOps, msgs, crashes        int
	forcedOps, forcedOK, multiOK     int
	lossExempt, refounds, clockJumps int
}

func (a *simStats) add(b simStats) {
	a.ops += b.ops
	a.okOps += b.okOps
	a.msgs += b.msgs
	a.crashes += b.crashes
	a.forcedOps += b.forcedOps
	a.forcedOK += b.forcedOK
	a.multiOK += b.multiOK
	a.lossExempt += b.lossExempt
	a.refounds += b.refounds
	a.clockJumps += b.clockJumps
}

func (s *sim) tracef(format string, args ...any) {
	line := traceLine{at: s.now.Sub(simEpoch), format: format, args: args}
	if len(s.trace) >= simTraceLen && !s.full {
		copy(s.trace, s.trace[1:])
		s.trace = s.trace[:simTraceLen-1]
	}
	s.trace = append(s.trace, line)
}

func (s *sim) traceText() string {
	lines := make([]string, len(s.trace))
	for i, l := range s.trace {
		lines[i] = l.String()
	}
	return strings.Join(lines, "\n")
}

func (s *sim) failf(format string, args ...any) {
	if s.err == nil {
		s.err = fmt.Errorf(format, args...)
		s.tracef("INVARIANT VIOLATED: %v", s.err)
	}
}

var simEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func newSim(seed int64) *sim {
	s := &sim{
		seed:      seed,
		rng:       rand.New(rand.NewPCG(uint64(seed), uint64(seed)*0x9e3779b97f4a7c15+1)),
		now:       simEpoch,
		byName:    map[string]*simDC{},
		cut:       map[[2]string]bool{},
		states:    map[skey]uint64{},
		descr:     map[skey]string{},
		parents:   map[skey]skey{},
		exempt:    map[string]string{},
		committed: map[string]bool{},
		diss:      map[skey]bool{},
		inviteFed: map[string]string{},
		gaveUp:    map[string]map[string]bool{},
		faults:    true,
	}
	s.forced = seed%3 == 0
	n := 3 + s.rng.IntN(4)
	if s.forced {
		n = 5 + s.rng.IntN(2) // room for forced removals of several DCs
	}
	for i := 1; i <= n; i++ {
		d := &simDC{dc: vipsmart.DC{Name: fmt.Sprintf("dc-%d", i), Address: netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), Port: 9610}, gips: map[string]vipsmart.GIP{}}
		d.skew = time.Duration(s.rng.IntN(4000)-2000) * time.Millisecond
		s.dcs = append(s.dcs, d)
		s.byName[d.dc.Name] = d
		s.start(d)
	}
	s.loss = []float64{0, 0.05, 0.2}[s.rng.IntN(3)]
	s.dup = []float64{0, 0.05, 0.2}[s.rng.IntN(3)]
	return s
}

// clock is d's own clock: the simulation's time plus d's skew.
func (s *sim) clock(d *simDC) time.Time { return s.now.Add(d.skew) }

func (s *sim) start(d *simDC) {
	var gips []vipsmart.GIP
	for _, k := range sortedKeys(d.gips) {
		gips = append(gips, d.gips[k])
	}
	n, err := NewNode(simConfig(d.dc), d.record, gips, s.clock(d))
	if err != nil {
		s.failf("restart of %s: %v", d.dc.Name, err)
		return
	}
	d.node = n
	s.setLocalNodes(d)
	s.drain(d)
}

func (s *sim) crash(d *simDC, why string) {
	s.tracef("CRASH %s (%s)", d.dc.Name, why)
	s.stats.crashes++
	d.node = nil
	down := 50 + s.rng.IntN(1500)
	if s.forced {
		down = 200 + s.rng.IntN(4000) // long enough to be force-removed
	}
	d.downTill = s.now.Add(time.Duration(down) * time.Millisecond)
}

// drain does what a daemon does with Ready: persist, send, report.
func (s *sim) drain(d *simDC) {
	for d.node != nil && d.node.HasReady() {
		rd := d.node.Ready()
		if s.faults && s.rng.IntN(2000) == 0 {
			s.crash(d, "before persisting")
			return
		}
		if u := rd.Update; u != nil {
			d.record = slices.Clone(u.Record)
			if u.ReplaceGIPs {
				d.gips = map[string]vipsmart.GIP{}
			}
			for _, g := range u.PutGIPs {
				d.gips[g.Name] = cloneGIP(g)
			}
			for _, name := range u.DeleteGIPs {
				delete(d.gips, name)
			}
			s.record(d)
		}
		for _, e := range rd.Events {
			if e.Kind != vipsmart.EventHealth {
				s.tracef("%s event: %s", d.dc.Name, e.Message)
			}
		}
		if s.faults && s.rng.IntN(1000) == 0 {
			s.crash(d, "after persisting, before sending")
			return
		}
		for _, m := range rd.Messages {
			s.send(m)
		}
		for _, r := range rd.Results {
			s.result(d, r)
		}
		d.node.Advance(rd)
		for len(s.unreach) > 0 && d.node != nil {
			f := s.unreach[0]
			s.unreach = s.unreach[1:]
			f()
		}
		s.unreach = nil
	}
}

func (s *sim) result(d *simDC, r Result) {
	if r.Err != nil {
		s.tracef("%s result %s: %v", d.dc.Name, r.OpID, r.Err)
		if _, ok := r.Err.(*vipsmart.Error); !ok {
			s.failf("result of %s is not a *vipsmart.Error: %T %v", r.OpID, r.Err, r.Err)
		}
		return
	}
	s.stats.okOps++
	l := d.node.h.Last
	if l == nil || l.OpID != r.OpID {
		s.failf("%s acknowledged %s but its last decision is %+v", d.dc.Name, r.OpID, l)
		return
	}
	a := acked{op: r.OpID, d: *l, at: s.now}
	s.tracef("%s result %s: OK (epoch %d -> %d)", d.dc.Name, r.OpID, l.FromEpoch, l.ToEpoch)
	s.acks = append(s.acks, a)
	s.lateExempt(a)
}

// lateExempt exempts from invariant 6 a change acknowledged after a
// forced removal F already committed without it: the change is a lone
// commit of a DC that F removes, in the epochs F skipped (F's epoch rule
// went past it), and no DC that F keeps holds it. The product allows its
// loss: the force-removed DC is its only holder. An add whose candidate F
// keeps is never exempted here (the candidate may hold it: F's probe must
// have made F fail instead).
func (s *sim) lateExempt(a acked) {
	rk := resKey(&a.d)
	for _, f := range s.forcedOK {
		if a.d.FedID != f.FedID || a.d.FromEpoch < f.FromEpoch || a.d.ToEpoch >= f.ToEpoch || !f.Change.removes(a.d.Coordinator) {
			continue
		}
		if a.d.Change.Kind == AddDC && a.d.Change.DC != nil && !f.Change.removes(a.d.Change.DC.Name) {
			continue
		}
		held := false
		for _, d := range s.dcs {
			if f.Change.removes(d.dc.Name) {
				continue
			}
			if h := s.hardOf(d); h != nil && h.memberish() && s.descends(skey{h.FedID, h.Epoch}, rk) {
				held = true
			}
		}
		if !held {
			s.exempt[a.op] = f.OpID
			s.stats.lossExempt++
			s.tracef("acknowledged %s exempt from invariant 6: a lone commit of %s, which %s had force-removed past it", a.op, a.d.Coordinator, f.OpID)
			return
		}
	}
}

func (s *sim) reachable(a, b string) bool {
	da, db := s.byName[a], s.byName[b]
	if da == nil || db == nil || da.node == nil || db.node == nil {
		return false
	}
	return !s.cut[[2]string{a, b}] && !s.cut[[2]string{b, a}]
}

func (s *sim) send(m Message) {
	s.stats.msgs++
	from, to := m.From.Name, m.To.Name
	if s.byName[to] == nil {
		return
	}
	if !s.reachable(from, to) {
		if s.rng.IntN(3) == 0 {
			d := s.byName[from]
			s.unreach = append(s.unreach, func() {
				if d.node != nil {
					d.node.ReportUndelivered(s.clock(d), m, "connection refused")
				}
			})
		}
		return
	}
	copies := 1
	if s.faults {
		if s.rng.Float64() < s.loss || (s.forced && (m.Type == MsgCommit || m.Type == MsgAbort) && s.rng.IntN(10) < 4) {
			return
		}
		if s.rng.Float64() < s.dup {
			copies = 2
		}
	}
	// What travels between daemons is JSON: every message delivered,
	// heartbeats included, goes through the round trip.
	b, err := json.Marshal(m)
	if err != nil {
		s.failf("marshal %s: %v", m.Type, err)
		return
	}
	var mm Message
	if err := json.Unmarshal(b, &mm); err != nil {
		s.failf("unmarshal %s: %v", m.Type, err)
		return
	}
	for range copies {
		s.seq++
		delay := time.Duration(1+s.rng.IntN(int(simMaxDelay/time.Millisecond))) * time.Millisecond
		heap.Push(&s.net, envelope{at: s.now.Add(delay), seq: s.seq, m: mm})
	}
}

func (s *sim) deliver() {
	for len(s.net) > 0 && !s.net[0].at.After(s.now) && s.err == nil {
		e := heap.Pop(&s.net).(envelope)
		m := e.m
		d := s.byName[m.To.Name]
		if d.node == nil || !s.reachable(m.From.Name, m.To.Name) {
			continue
		}
		if m.Type != MsgHeartbeat && m.Type != MsgHeartbeatResp && m.Type != MsgFetchState {
			s.tracef("deliver %s %s->%s op=%s fed=%s e=%d ok=%v %s", m.Type, m.From.Name, m.To.Name, m.OpID, m.FedID, m.Epoch, m.OK, m.Reason)
		}
		if err := d.node.Step(s.clock(d), m); err != nil {
			s.failf("Step(%s) at %s refused a well-formed message: %v", m.Type, d.dc.Name, err)
		}
		s.drain(d)
	}
}

func (s *sim) live() []*simDC {
	var out []*simDC
	for _, d := range s.dcs {
		if d.node != nil {
			out = append(out, d)
		}
	}
	return out
}

func (s *sim) pick(ds []*simDC) *simDC {
	if len(ds) == 0 {
		return nil
	}
	return ds[s.rng.IntN(len(ds))]
}

// forcedTargets picks the DCs a forced removal at d names: members d
// cannot reach (one, or several at once), sometimes a reachable member
// (refused) or a DC that is not a member (accepted only when it is the
// candidate of an add in doubt).
func (s *sim) forcedTargets(d *simDC) (string, []string) {
	var down []string
	for _, info := range d.node.DCs(s.clock(d)) {
		if !info.Self && !info.Reachable {
			down = append(down, info.Name)
		}
	}
	h := &d.node.h
	switch {
	case len(down) == 0 || s.rng.IntN(10) == 0:
		var others []string
		for _, m := range h.Members {
			if m.Name != d.dc.Name {
				others = append(others, m.Name)
			}
		}
		if len(others) == 0 || s.rng.IntN(20) == 0 {
			return s.dcs[s.rng.IntN(len(s.dcs))].dc.Name, nil
		}
		return others[s.rng.IntN(len(others))], nil
	case len(down) > 1 && s.rng.IntN(2) == 0:
		s.rng.Shuffle(len(down), func(i, j int) { down[i], down[j] = down[j], down[i] })
		k := 2 + s.rng.IntN(len(down)-1)
		return down[0], down[1:k]
	}
	name := down[s.rng.IntN(len(down))]
	if s.rng.IntN(8) == 0 {
		return name, []string{s.dcs[s.rng.IntN(len(s.dcs))].dc.Name}
	}
	return name, nil
}

// operator issues a random command at a random DC.
func (s *sim) operator() {
	d := s.pick(s.live())
	if d == nil {
		return
	}
	h := &d.node.h
	if s.forced && !h.memberish() && d != s.dcs[0] && s.rng.IntN(10) != 0 {
		return // in the forced-removal mode one large federation grows from dc-1
	}
	var p Proposal
	other := s.dcs[s.rng.IntN(len(s.dcs))]
	growing := s.growing()
	member := other.dc.Name
	if len(h.Members) > 0 {
		member = h.Members[s.rng.IntN(len(h.Members))].Name
	}
	// Thresholds of add, remove, forced remove, leave, GIP put; the rest
	// deletes a GIP.
	th := [5]int{30, 42, 48, 54, 86}
	if s.forced {
		th = [5]int{30, 34, 59, 61, 88}
	}
	r := s.rng.IntN(100)
	if (!h.memberish() && r < 85) || growing {
		r = 0 // a standalone DC mostly declares a federation
	}
	switch {
	case r < th[0]:
		// Prefer a DC that is not yet a member (in the forced-removal
		// mode, a standalone one).
		for range 3 {
			if _, ok := findDC(h.Members, other.dc.Name); !ok && other != d && (!s.forced || other.node == nil || !other.node.h.memberish()) {
				break
			}
			other = s.dcs[s.rng.IntN(len(s.dcs))]
		}
		p = Proposal{Kind: AddDC, DC: other.dc}
		if s.rng.IntN(30) == 0 {
			p.DC.Name = "dc-9" // a wrong name for that address
		}
	case r < th[1]:
		p = Proposal{Kind: RemoveDC, Name: member}
	case r < th[2]:
		p = Proposal{Kind: RemoveDC, Force: true}
		p.Name, p.Names = s.forcedTargets(d)
		s.stats.forcedOps++
	case r < th[3]:
		p = Proposal{Kind: Leave}
	case r < th[4]:
		g := vipsmart.GIP{Name: fmt.Sprintf("gip-%d", 1+s.rng.IntN(4)), Address: netip.AddrFrom4([4]byte{192, 0, 2, byte(1 + s.rng.IntN(6))}), Mode: vipsmart.ModeFailover, Preempt: s.rng.IntN(2) == 0}
		for _, m := range h.Members {
			if s.rng.IntN(2) == 0 {
				g.Placements = append(g.Placements, vipsmart.Placement{DC: m.Name, Priority: 1 + s.rng.IntN(255)})
			}
		}
		_, exists := d.node.gips[g.Name]
		p = Proposal{Kind: PutGIP, GIP: g, Update: exists != (s.rng.IntN(10) == 0)}
	default:
		p = Proposal{Kind: DeleteGIP, Name: fmt.Sprintf("gip-%d", 1+s.rng.IntN(4))}
	}
	if (p.Kind == PutGIP || p.Kind == DeleteGIP) && s.rng.IntN(3) == 0 {
		p = s.batchProposal(d) // batch_sim_test.go
	}
	if p.Kind != AddDC && h.memberish() && s.rng.IntN(10) == 0 {
		p = s.nodesProposal(d) // nodes_sim_test.go
	}
	s.stats.ops++
	id, err := d.node.Propose(s.clock(d), p)
	desc := fmt.Sprintf("%s %s%s%v %s force=%v", p.Kind, p.DC.Name, p.Name, p.Names, p.GIP.Name, p.Force)
	if err != nil {
		if _, ok := err.(*vipsmart.Error); !ok {
			s.failf("Propose returned a non-vipsmart error: %v", err)
		}
		s.tracef("OP at %s: %s -> refused: %v", d.dc.Name, desc, err)
	} else {
		s.tracef("OP at %s: %s -> %s", d.dc.Name, desc, id)
	}
	s.drain(d)
}

// growing reports whether the forced-removal mode is in its first calm
// seconds, in which one federation of every DC grows before the faults.
func (s *sim) growing() bool { return s.forced && s.now.Sub(simEpoch) < 3*time.Second }

// chaos injects faults: crashes, partitions of one DC from some others,
// heals of one link, of one DC or of everything, clock jumps of one DC.
// In the forced-removal mode partitions last longer (past lock deadlines).
func (s *sim) chaos() {
	crash, part, healLink, healDC, healAll := 6, 8, 30, 8, 4 // per 1000 steps
	if s.forced {
		crash, part, healLink, healDC, healAll = 10, 12, 6, 3, 1
	}
	r := s.rng.IntN(1000)
	if s.growing() {
		r = 999
	}
	switch {
	case r < crash:
		if d := s.pick(s.live()); d != nil {
			s.crash(d, "random")
		}
	case r < crash+part: // partition one DC from some others (or all)
		a := s.pick(s.dcs)
		all := s.rng.IntN(3) == 0
		for _, b := range s.dcs {
			if b != a && (all || s.rng.IntN(2) == 0) {
				s.cut[[2]string{a.dc.Name, b.dc.Name}] = true
			}
		}
		s.tracef("PARTITION %s from some (all: %v)", a.dc.Name, all)
	case r < crash+part+healLink:
		if len(s.cut) > 0 {
			links := make([][2]string, 0, len(s.cut))
			for l := range s.cut {
				links = append(links, l)
			}
			sort.Slice(links, func(i, j int) bool { return links[i][0]+links[i][1] < links[j][0]+links[j][1] })
			l := links[s.rng.IntN(len(links))]
			delete(s.cut, l)
			delete(s.cut, [2]string{l[1], l[0]})
			s.tracef("HEAL link %s-%s", l[0], l[1])
		}
	case r < crash+part+healLink+healDC:
		a := s.pick(s.dcs).dc.Name
		for l := range s.cut {
			if l[0] == a || l[1] == a {
				delete(s.cut, l)
			}
		}
		s.tracef("HEAL %s", a)
	case r < crash+part+healLink+healDC+healAll:
		clear(s.cut)
		s.tracef("HEAL all")
	case r < crash+part+healLink+healDC+healAll+3:
		// One DC's clock jumps forward (a paused VM, a stepped clock).
		d := s.pick(s.dcs)
		j := time.Duration(200+s.rng.IntN(2500)) * time.Millisecond
		d.skew += j
		s.stats.clockJumps++
		s.tracef("CLOCK JUMP %s +%s", d.dc.Name, j)
	}
	for _, d := range s.dcs {
		if d.node == nil && !s.now.Before(d.downTill) {
			// While it was down its clock may have been stepped either way
			// (the wall clock is what survives a restart).
			j := time.Duration(s.rng.IntN(4000)-3000) * time.Millisecond
			if s.rng.IntN(10) == 0 {
				j = -time.Minute
			}
			d.skew += j
			s.tracef("RESTART %s (clock %+v)", d.dc.Name, j)
			s.start(d)
		}
	}
}

func (s *sim) tick() {
	for _, d := range s.dcs {
		if d.node != nil {
			d.node.Tick(s.clock(d))
			s.drain(d)
		}
	}
}

func stateHash(h *hardState, gips map[string]vipsmart.GIP) (uint64, string) {
	var b strings.Builder
	for _, m := range h.Members {
		b.WriteString(m.Name)
		b.WriteByte('=')
		b.WriteString(m.AddrPort().String())
		if len(m.Nodes) > 0 {
			fmt.Fprintf(&b, "%v", m.Nodes)
		}
		b.WriteByte('|')
	}
	if len(h.Quorum) > 0 {
		b.WriteString("quorum=" + strings.Join(h.Quorum, ","))
	}
	b.WriteByte('#')
	for _, k := range sortedKeys(gips) {
		g := gips[k]
		fmt.Fprintf(&b, "%s=%s/%s/%v/%s", g.Name, g.Address, g.Mode, g.Preempt, g.Partition)
		for _, p := range g.Placements {
			fmt.Fprintf(&b, ",%s:%d:%s", p.DC, p.Priority, p.VIP)
		}
		b.WriteByte(';')
	}
	str := b.String()
	var x uint64 = 14695981039346656037
	for i := 0; i < len(str); i++ {
		x ^= uint64(str[i])
		x *= 1099511628211
	}
	return x, str
}

func (d *simDC) hash() (uint64, string) {
	n := d.node
	c := &d.hc
	if c.node != n || c.fed != n.h.FedID || c.epoch != n.h.Epoch || c.ver != n.gipVersion {
		x, str := stateHash(&n.h, n.gips)
		*c = hashCache{node: n, fed: n.h.FedID, epoch: n.h.Epoch, ver: n.gipVersion, x: x, str: str}
	}
	return c.x, c.str
}

// check checks invariants 1 and 4 on every live DC (4 only right after a
// Tick: after a Tick at its clock's time t no DC holds a lock whose
// deadline is <= t). Invariants 2 and 3 are checked at every persist.
func (s *sim) check(afterTick bool) {
	for _, d := range s.dcs {
		n := d.node
		if n == nil {
			continue
		}
		h := &n.h
		name := d.dc.Name
		// (1) one federation at a time; status consistent with it.
		if h.memberish() {
			switch h.Status {
			case vipsmart.StatusMember, vipsmart.StatusCandidateReview, vipsmart.StatusLeaving:
			default:
				s.failf("%s has federation %s but status %s", name, h.FedID, h.Status)
			}
			if _, ok := findDC(h.Members, name); !ok {
				s.failf("%s is in federation %s but not in its member list %v", name, h.FedID, names(h.Members))
			}
		} else {
			if h.Status != vipsmart.StatusStandalone && h.Status != vipsmart.StatusInvited {
				s.failf("%s has no federation but status %s", name, h.Status)
			}
			if len(h.Members) > 0 || len(n.gips) > 0 {
				s.failf("%s is %s but holds %d DC and %d GIP objects", name, h.Status, len(h.Members), len(n.gips))
			}
		}
		if h.Status.Temporary() && h.Lock == nil {
			s.failf("%s is %s without a deadline", name, h.Status)
		}
		// (4) temporary statuses end by their deadline.
		if afterTick && h.Lock != nil && !s.clock(d).Before(h.Lock.Deadline) {
			s.failf("%s is %s with lock %s whose deadline %s passed (its clock %s)", name, h.Status, h.Lock.OpID, h.Lock.Deadline.Sub(simEpoch), s.clock(d).Sub(simEpoch))
		}
	}
}

// record checks invariants 2 and 3 on what d just persisted and records
// its parent link, the invites it holds and the forced removals it
// committed.
func (s *sim) record(d *simDC) {
	n := d.node
	h := &n.h
	name := d.dc.Name
	s.checkNodes(d) // nodes_sim_test.go
	// (3) epochs never go down, across restarts.
	if h.Epoch < d.maxEpoch {
		s.failf("%s epoch went down from %d to %d", name, d.maxEpoch, h.Epoch)
	}
	d.maxEpoch = h.Epoch
	// (2) one state per (federation, epoch), over all time.
	if h.memberish() {
		k := skey{h.FedID, h.Epoch}
		x, str := d.hash()
		if old, ok := s.states[k]; !ok {
			s.states[k] = x
			s.descr[k] = str
		} else if old != x {
			s.failf("two states at %s: %s holds %q, first seen %q", k, name, str, s.descr[k])
		}
	}
	if l := h.Last; l != nil {
		rk, pk := resKey(l), skey{l.FedID, l.FromEpoch}
		if old, ok := s.parents[rk]; ok && old != pk {
			s.failf("%s reached by two parents: %s and %s", rk, old, pk)
		}
		s.parents[rk] = pk
		if !h.memberish() && l.Change.Kind == Leave && l.Coordinator == name {
			if desc, ok := s.descr[pk]; ok && strings.Count(desc, "|") == 1 {
				s.diss[rk] = true
			}
		}
		if l.Change.Force && l.Coordinator == name && !s.committed[l.OpID] {
			s.committed[l.OpID] = true
			s.stats.forcedOK++
			if len(l.Change.removed()) > 1 {
				s.stats.multiOK++
			}
			if l.Change.NewFedID != "" {
				s.stats.refounds++
			}
			s.forcedOK = append(s.forcedOK, *l)
			s.forcedCommit(l)
		}
		if l.Coordinator == name && d.decided != l.OpID {
			// The most dangerous moment: a coordinator is cut off right
			// after its decision (its commits lost), in the forced-removal
			// mode every other forced removal and every fourth change.
			d.decided = l.OpID
			if s.forced && s.faults && s.rng.IntN(4) < map[bool]int{true: 2, false: 1}[l.Change.Force] {
				for _, o := range s.dcs {
					if o != d {
						s.cut[[2]string{name, o.dc.Name}] = true
					}
				}
				s.tracef("CUT %s off right after committing %s", name, l.OpID)
			}
		}
	}
	// Invites: a DC that lets the invite of a federation expire (or
	// abort) without joining has given that federation up.
	invited := ""
	if h.Status == vipsmart.StatusInvited && h.Lock != nil {
		invited = h.Lock.OpID
		s.inviteFed[invited] = h.Lock.FedID
	}
	if d.invited != "" && d.invited != invited {
		fed := s.inviteFed[d.invited]
		if !(h.memberish() && h.FedID == fed) {
			if s.gaveUp[name] == nil {
				s.gaveUp[name] = map[string]bool{}
			}
			s.gaveUp[name][fed] = true
		}
	}
	d.invited = invited
}

func sortedSkeys(m map[skey]bool) []skey {
	var out []skey
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// descends reports whether state k has a as an ancestor (or is a).
func (s *sim) descends(k, a skey) bool {
	for range 100000 {
		if k == a {
			return true
		}
		p, ok := s.parents[k]
		if !ok {
			return false
		}
		k = p
	}
	return false
}

// hardOf returns d's protocol state: its node's, or for a crashed DC what
// it persisted.
func (s *sim) hardOf(d *simDC) *hardState {
	if d.node != nil {
		return &d.node.h
	}
	if d.record == nil {
		return nil
	}
	var h hardState
	if err := json.Unmarshal(d.record, &h); err != nil {
		s.failf("record of %s: %v", d.dc.Name, err)
		return nil
	}
	return &h
}

// forcedCommit exempts from invariant 6 the acknowledged changes that
// the forced removal f makes lost because only DCs it removes held them:
// no other DC, live or crashed, holds a state descending from them.
func (s *sim) forcedCommit(f *Decision) {
	parent := skey{f.FedID, f.FromEpoch}
	for _, a := range s.acks {
		rk := resKey(&a.d)
		if _, ok := s.exempt[a.op]; ok || s.descends(parent, rk) {
			continue
		}
		held := ""
		for _, d := range s.dcs {
			if f.Change.removes(d.dc.Name) {
				continue
			}
			if h := s.hardOf(d); h != nil && h.memberish() && s.descends(skey{h.FedID, h.Epoch}, rk) {
				held = d.dc.Name
			}
		}
		if held == "" {
			s.exempt[a.op] = f.OpID
			s.stats.lossExempt++
			s.tracef("acknowledged %s exempt from invariant 6: only %s held it when %s force-removed them", a.op, strings.Join(f.Change.removed(), ","), f.OpID)
		}
	}
}

// deadMemberOK reports whether p, listed as a member by a DC of
// federation fed but not in it, is a dead member the protocol allows: a
// candidate whose invite expired while the coordinator committed, and
// that has since given up that invite (it joined elsewhere, or took
// another invite), or renounced the add that lists it (it told a forced
// removal that asked it that it holds nothing of that add and will not
// join through it; the removal then failed and the add committed).
func (s *sim) deadMemberOK(p *simDC, fed string) bool {
	if s.gaveUp[p.dc.Name][fed] && !p.node.candidateOf(fed) {
		return true
	}
	for _, d := range s.dcs {
		if h := d.node; h != nil && h.h.memberish() && h.h.FedID == fed && h.h.Last != nil && h.h.Last.Change.Kind == AddDC &&
			h.h.Last.Change.DC != nil && h.h.Last.Change.DC.Name == p.dc.Name && slices.Contains(p.node.h.Renounced, h.h.Last.OpID) {
			return true
		}
	}
	return false
}

// converged checks invariants 1 (across DCs), 5 and 6 once faults
// stopped and a lease plus a few heartbeats passed.
func (s *sim) converged() {
	listedBy := map[string][]string{}
	for _, d := range s.dcs {
		n := d.node
		h := &n.h
		if h.Lock != nil || h.Status.Temporary() {
			s.failf("%s still %s (lock %+v) after faults stopped", d.dc.Name, h.Status, h.Lock)
			continue
		}
		if !h.memberish() {
			continue
		}
		x, _ := d.hash()
		for _, m := range h.Members {
			if !slices.Contains(listedBy[m.Name], h.FedID) {
				listedBy[m.Name] = append(listedBy[m.Name], h.FedID)
			}
			if m.Name == d.dc.Name {
				continue
			}
			p := s.byName[m.Name]
			if p == nil {
				s.failf("%s lists unknown DC %s", d.dc.Name, m.Name)
				continue
			}
			ph := &p.node.h
			if ph.memberish() && ph.FedID == h.FedID {
				px, _ := p.hash()
				if ph.Epoch != h.Epoch || px != x {
					s.failf("not converged: %s at %s@%d, its member %s at %s@%d", d.dc.Name, h.FedID, h.Epoch, m.Name, ph.FedID, ph.Epoch)
				}
				continue
			}
			// (5) A listed DC that is not in the federation: allowed only
			// for the one case the protocol cannot repair.
			if !s.deadMemberOK(p, h.FedID) {
				s.failf("not converged: %s at %s@%d lists %s, which is %s in federation %q at epoch %d", d.dc.Name, h.FedID, h.Epoch, m.Name, ph.Status, ph.FedID, ph.Epoch)
			}
		}
	}
	// (1) across DCs: no DC is listed as a member by two federations, but
	// for the dead members allowed above.
	for _, name := range sortedKeys(listedBy) {
		feds := listedBy[name]
		if len(feds) < 2 {
			continue
		}
		p := s.byName[name]
		for _, f := range feds {
			if !(p.node.h.FedID == f) && !s.deadMemberOK(p, f) {
				s.failf("%s is listed as a member of federations %v (it is in %q)", name, feds, p.node.h.FedID)
			}
		}
	}
	// (6) acknowledged changes are not lost.
	var anchors []skey
	for _, d := range s.dcs {
		if d.node.h.memberish() {
			anchors = append(anchors, skey{d.node.h.FedID, d.node.h.Epoch})
		}
	}
	for _, k := range sortedSkeys(s.diss) {
		anchors = append(anchors, k)
	}
	for _, a := range s.acks {
		if _, ok := s.exempt[a.op]; ok {
			continue
		}
		rk := resKey(&a.d)
		ok := false
		for _, k := range anchors {
			if s.descends(k, rk) {
				ok = true
				break
			}
		}
		if !ok {
			s.failf("acknowledged change %s (%s -> %s) is lost: no DC's state descends from it", a.op, skey{a.d.FedID, a.d.FromEpoch}, rk)
		}
	}
}

func runSim(seed int64, full bool) (*sim, error) {
	s := newSim(seed)
	s.full = full
	end := s.now.Add(simChaos)
	for s.now.Before(end) && s.err == nil {
		s.now = s.now.Add(simStep)
		s.deliver()
		s.check(false)
		s.tick()
		s.check(true)
		s.chaos()
		if s.rng.IntN(4) == 0 {
			s.operator()
		}
		s.check(false)
	}
	// Faults stop: heal, no loss, everyone up, no more commands.
	s.faults = false
	clear(s.cut)
	s.tracef("FAULTS STOP")
	for _, d := range s.dcs {
		if d.node == nil {
			s.tracef("RESTART %s", d.dc.Name)
			s.start(d)
		}
	}
	cfg := simConfig(s.dcs[0].dc)
	quiet := max(cfg.InviteTTL, cfg.ReviewTTL) + 10*cfg.HeartbeatInterval
	stop := s.now.Add(quiet)
	for s.now.Before(stop) && s.err == nil {
		s.now = s.now.Add(simStep)
		s.deliver()
		s.tick()
		s.check(true)
	}
	if s.err == nil {
		s.converged()
	}
	return s, s.err
}

func TestSimulation(t *testing.T) {
	if *simSeed >= 0 {
		s, err := runSim(*simSeed, true)
		if testing.Verbose() || err != nil {
			t.Logf("seed %d (forced-removal mode %v): %d DCs, %d commands (%d acknowledged), %d messages, %d crashes; trace:\n%s", *simSeed, s.forced, len(s.dcs), s.stats.ops, s.stats.okOps, s.stats.msgs, s.stats.crashes, s.traceText())
		}
		if err != nil {
			t.Fatalf("seed %d: %v", *simSeed, err)
		}
		return
	}
	runs := *simRuns
	if raceEnabled && runs > 200 {
		runs = 200
	}
	if testing.Short() && runs > 300 {
		runs = 300
	}
	// The runs allocate a lot of short-lived garbage (the JSON round
	// trips): trade memory for less collector time.
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	start := time.Now()
	var (
		mu       sync.Mutex
		failSeed int64 = -1
		fail     *sim
		total    simStats
		next     = *simFirst
		last     = *simFirst + int64(runs)
	)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for {
				mu.Lock()
				seed := next
				next++
				stop := seed >= last || (failSeed >= 0 && seed > failSeed)
				mu.Unlock()
				if stop {
					return
				}
				s, err := runSim(seed, false)
				mu.Lock()
				total.add(s.stats)
				if err != nil && (failSeed < 0 || seed < failSeed) {
					failSeed, fail = seed, s
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if fail != nil {
		t.Fatalf("simulation seed %d failed: %v\nreplay: go test ./federation -run 'TestSimulation$' -sim.seed=%d -v\nlast steps:\n%s", failSeed, fail.err, failSeed, fail.traceText())
	}
	t.Logf("%d seeded runs (seeds %d-%d) in %s: %d commands, %d acknowledged, %d messages, %d crashes, %d clock jumps; %d forced removals tried, %d committed (%d of several DCs, %d re-foundings), %d acknowledged changes exempted as held only by force-removed DCs",
		runs, *simFirst, last-1, time.Since(start).Round(time.Millisecond), total.ops, total.okOps, total.msgs, total.crashes, total.clockJumps, total.forcedOps, total.forcedOK, total.multiOK, total.refounds, total.lossExempt)
}

// TestSimulationDeterministic: the same seed gives the same trace and the
// same outcome.
func TestSimulationDeterministic(t *testing.T) {
	for _, seed := range []int64{7, 701, 2809, 3000} {
		a, errA := runSim(seed, true)
		b, errB := runSim(seed, true)
		if fmt.Sprint(errA) != fmt.Sprint(errB) {
			t.Fatalf("seed %d: two runs ended differently: %v and %v", seed, errA, errB)
		}
		if errA != nil {
			t.Fatalf("seed %d failed: %v", seed, errA)
		}
		if a.traceText() != b.traceText() {
			t.Fatalf("seed %d: two runs gave different traces", seed)
		}
	}
}
