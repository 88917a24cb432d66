package daemon

import (
	"context"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/federation"
)

// healthView is the local DC's view of health: which members it can reach
// and which VIPs are up. Its own VIPs come from its checks; another DC's
// VIPs named by placements are up unless that DC reported them down, and
// left out (neither up nor down) while it reports their health not known
// yet.
func (d *Daemon) healthView(gs []vipsmart.GIP) vipsmart.HealthView {
	now := d.cfg.Now()
	self := d.cfg.Self.Name
	v := vipsmart.HealthView{Reachable: map[string]bool{self: true}, VIPUp: map[string]map[string]bool{}}
	down := map[string]map[string]bool{}
	unknown := map[string]map[string]bool{}
	for _, m := range d.node.DCs(now) {
		if m.Self {
			continue
		}
		v.Reachable[m.Name] = m.Reachable
		down[m.Name] = map[string]bool{}
		unknown[m.Name] = map[string]bool{}
		for _, n := range m.VIPsDown {
			down[m.Name][n] = true
		}
		for _, n := range m.VIPsUnknown {
			unknown[m.Name][n] = true
		}
		held := make(map[string]bool, len(m.Holding)) // a set: looked up per GIP
		for _, g := range m.Holding {
			held[g] = true
		}
		d.holding[m.Name] = held
	}
	own := map[string]bool{}
	for name := range d.vips {
		st, _ := d.vipState(name)
		own[name] = st == vipsmart.VIPUp
	}
	v.VIPUp[self] = own
	for _, g := range gs {
		for _, p := range g.Placements {
			if p.VIP == "" || p.DC == self {
				continue
			}
			if v.VIPUp[p.DC] == nil {
				v.VIPUp[p.DC] = map[string]bool{}
			}
			if unknown[p.DC][p.VIP] {
				continue // not known yet: neither up nor down
			}
			v.VIPUp[p.DC][p.VIP] = !down[p.DC][p.VIP]
		}
	}
	return v
}

// prevActive is the set a GIP without preemption stays with: the DCs that
// this DC saw active, and every reachable DC that reports holding it.
func (d *Daemon) prevActive(g vipsmart.GIP, view vipsmart.HealthView) []string {
	if g.Preempt {
		return nil
	}
	prev := slices.Clone(d.active[g.Name])
	for dc, held := range d.holding {
		if view.Reachable[dc] && held[g.Name] && !slices.Contains(prev, dc) {
			prev = append(prev, dc)
		}
	}
	return prev
}

// computeActive returns the active placements of every GIP from the local
// view, without changing anything. The map is the one of the call before,
// emptied (the caller must not keep it): a map of 10,000 GIPs is made once,
// not at each evaluation.
func (d *Daemon) computeActive(gs []vipsmart.GIP) (map[string][]string, vipsmart.HealthView) {
	view := d.healthView(gs)
	out := d.actBuf
	if out == nil {
		out = make(map[string][]string, len(gs))
		d.actBuf = out
	}
	clear(out)
	for _, g := range gs {
		out[g.Name] = vipsmart.ActivePlacements(g, view, d.prevActive(g, view))
	}
	return out, view
}

// DefaultActivationWait is the default of Config.ActivationWait.
const DefaultActivationWait = 10 * time.Second

// updateActive recomputes the active placements of every GIP and records an
// event each time this DC becomes active or inactive for one. During the
// start-up hold-down (one detection window) this DC claims nothing: it has
// not heard from the others yet.
//
// No flapping on add or restart: this DC does not become active for a
// failover GIP while a better placement's DC is reachable but the health of
// its backing VIP is not known yet (its check has not passed rise or failed
// fall times: a GIP just added, a DC just restarted). It waits until that
// health is known, at most Config.ActivationWait, so that a GIP added
// across three DCs whose checks come up in any order activates once, on
// the best placement, instead of on each DC in turn. Unreachable DCs and
// VIPs known to be down never make it wait: failover is not slowed.
func (d *Daemon) updateActive() {
	key := d.activeKey()
	retry := d.annRetryDue()
	if key == d.lastActiveKey && !retry {
		return
	}
	base := key[:len(key)-d.quorumKeyLen]
	if !retry && !d.q.consistent && d.lastActiveKey != "" && base == d.lastActiveKey[:len(d.lastActiveKey)-d.lastQuorumKeyLen] {
		// Only the majority changed (a member's heartbeats came late,
		// as they do while 10,000 GIPs are stored everywhere), and no
		// GIP depends on it: record the change (applyQuorum) without
		// evaluating every GIP again.
		d.lastActiveKey, d.lastQuorumKeyLen = key, d.quorumKeyLen
		gs := d.gipList()
		d.applyQuorum(gs, map[string][]string{}, d.healthView(gs))
		return
	}
	d.lastActiveKey, d.lastQuorumKeyLen = key, d.quorumKeyLen
	gs := d.gipList()
	act, view := d.computeActive(gs)
	d.applyQuorum(gs, act, view)
	self := d.cfg.Self.Name
	nowT := d.cfg.Now()
	holdDown := nowT.Before(d.holdDownUntil)
	unknown := d.unknownVIPs()
	reported := map[string]bool{}
	conflicts := map[string]bool{}
	waiting := map[string]time.Time{}
	var up, down, waits []string
	if len(gs) > 2*len(d.active)+64 {
		// A batch of GIPs just arrived: room for all of them at once
		// rather than a map grown one insert at a time.
		m := make(map[string][]string, len(gs))
		maps.Copy(m, d.active)
		d.active = m
	}
	for _, g := range gs {
		now := act[g.Name]
		if holdDown {
			now = slices.DeleteFunc(slices.Clone(now), func(s string) bool { return s == self })
		}
		prev, had := d.active[g.Name]
		was := slices.Contains(prev, self)
		if !was && slices.Contains(now, self) && g.Mode != vipsmart.ModeAnycast {
			if what := unknownBetter(g, self, view, unknown); what != "" {
				since, ok := d.waitSince[g.Name]
				if !ok {
					since = nowT
					waits = append(waits, fmt.Sprintf("GIP %s %s waits up to %s before activating here: the health of %s is not known yet", g.Name, g.Address, d.cfg.ActivationWait, what))
				}
				if nowT.Sub(since) < d.cfg.ActivationWait {
					waiting[g.Name] = since
					now = slices.DeleteFunc(slices.Clone(now), func(s string) bool { return s == self })
				} else {
					d.eventAt(vipsmart.EventGIP, vipsmart.LevelWarn, fmt.Sprintf("GIP %s %s: the health of %s is still not known after %s: activating here", g.Name, g.Address, what, d.cfg.ActivationWait))
				}
			}
		}
		is := slices.Contains(now, self)
		if was != is {
			// Only the first maxGIPEvents are told one by one (gipEvents):
			// the others are counted, not explained, so that a change of
			// 10,000 GIPs costs no 10,000 explanations.
			switch {
			case is && len(up) >= maxGIPEvents:
				up = append(up, "")
			case is:
				up = append(up, fmt.Sprintf("GIP %s %s active here: %s", g.Name, g.Address, activeReason(g, view, now)))
			case len(down) >= maxGIPEvents:
				down = append(down, "")
			default:
				down = append(down, fmt.Sprintf("GIP %s %s inactive here: %s", g.Name, g.Address, d.inactiveReason(g, view, now)))
			}
		}
		if !had || !slices.Equal(prev, now) {
			d.metrics.activeChanged(g, prev, now, view)
			d.active[g.Name] = now
		}
		if is && g.Mode != vipsmart.ModeAnycast {
			if !g.Preempt || !topRanked(g, self) {
				reported[g.Name] = true
			}
			for dc, held := range d.holding {
				if dc != self && view.Reachable[dc] && held[g.Name] {
					conflicts[g.Name] = true
				}
			}
		}
	}
	for name, was := range d.active {
		if _, ok := act[name]; !ok {
			if slices.Contains(was, self) {
				down = append(down, fmt.Sprintf("GIP %s inactive here: removed", name))
			}
			delete(d.active, name)
		}
	}
	d.waitSince = waiting
	d.gipEvents(waits, "waiting")
	d.gipEvents(up, "active")
	d.gipEvents(down, "inactive")
	d.reported = reported
	d.announce(gs, view, holdDown)
	newConflict := false
	for g := range conflicts {
		if !d.conflicts[g] {
			newConflict = true
		}
	}
	d.conflicts = conflicts
	d.reannounceOnReturn(view, newConflict)
	if r := d.localReport(); !slices.Equal(r.Holding, d.lastReport.Holding) || !slices.Equal(r.VIPsDown, d.lastReport.VIPsDown) || !slices.Equal(r.VIPsUnknown, d.lastReport.VIPsUnknown) {
		d.lastReport = r
		d.node.SetLocalReport(r)
	}
}

// gipList returns the federation's GIPs sorted by name for an evaluation
// (updateActive), read-only: it is taken from the node only when the GIP
// set changed (federation.Node.GIPVersion), not at every evaluation, which
// runs after every message and tick that changes a member's reachability or
// report; and it is the node's own list (SortedGIPs), not a copy of
// 10,000 GIPs at each change.
func (d *Daemon) gipList() []vipsmart.GIP {
	if v := d.node.GIPVersion(); !d.gipsCached || v != d.gipsVersion {
		d.gips, d.gipsVersion, d.gipsCached = d.node.SortedGIPs(), v, true
	}
	return d.gips
}

// unknownVIPs are, for each reachable member, the VIPs it reports whose
// health is not known yet.
func (d *Daemon) unknownVIPs() map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for _, m := range d.node.DCs(d.cfg.Now()) {
		if m.Self || !m.Reachable || len(m.VIPsUnknown) == 0 {
			continue
		}
		out[m.Name] = map[string]bool{}
		for _, v := range m.VIPsUnknown {
			out[m.Name][v] = true
		}
	}
	return out
}

// unknownBetter names the backing VIP of a placement of g that ranks
// before self's (higher priority, then the DC name that sorts first) whose
// DC is reachable and whose health is not known yet ("VIP web in dc-1"),
// or returns "".
func unknownBetter(g vipsmart.GIP, self string, view vipsmart.HealthView, unknown map[string]map[string]bool) string {
	if len(unknown) == 0 {
		// The common case: no VIP health to wait for, and no copy and
		// sort of the placements of each of 10,000 GIPs that become
		// active here at once.
		return ""
	}
	ps := slices.Clone(g.Placements)
	vipsmart.SortPlacements(ps)
	for _, p := range ps {
		if p.DC == self {
			return ""
		}
		if p.VIP != "" && view.Reachable[p.DC] && unknown[p.DC][p.VIP] {
			return "VIP " + p.VIP + " in " + p.DC
		}
	}
	return ""
}

// topRanked reports whether dc holds g's best-ranked placement.
func topRanked(g vipsmart.GIP, dc string) bool {
	best := -1
	for i, p := range g.Placements {
		if best < 0 || p.Priority > g.Placements[best].Priority || p.Priority == g.Placements[best].Priority && p.DC < g.Placements[best].DC {
			best = i
		}
	}
	return best >= 0 && g.Placements[best].DC == dc
}

func activeReason(g vipsmart.GIP, view vipsmart.HealthView, act []string) string {
	if g.Mode == vipsmart.ModeAnycast {
		return "anycast, placement healthy"
	}
	var others []string
	why := vipsmart.ExplainPlacements(g, view, act)
	for _, p := range g.Placements {
		if !slices.Contains(act, p.DC) {
			others = append(others, p.DC+" "+why[p.DC])
		}
	}
	if len(others) == 0 {
		return "the only placement"
	}
	return "best healthy placement (" + strings.Join(others, "; ") + ")"
}

// maxGIPEvents bounds the GIP activation events one evaluation records one
// by one; beyond it one summary event stands for the rest, so that a DC
// taking over 10,000 GIPs writes a handful of events, not 10,000.
const maxGIPEvents = 20

// gipEvents records activation changes in one store transaction.
func (d *Daemon) gipEvents(msgs []string, what string) {
	if len(msgs) == 0 {
		return
	}
	now := d.cfg.Now()
	n := min(len(msgs), maxGIPEvents)
	evs := make([]vipsmart.Event, 0, n+1)
	for _, m := range msgs[:n] {
		evs = append(evs, vipsmart.Event{Time: now, DC: d.cfg.Self.Name, Kind: vipsmart.EventGIP, Message: m})
	}
	if rest := len(msgs) - n; rest > 0 {
		evs = append(evs, vipsmart.Event{Time: now, DC: d.cfg.Self.Name, Kind: vipsmart.EventGIP,
			Message: fmt.Sprintf("and %d more GIPs %s here (%d in all)", rest, what, len(msgs))})
	}
	d.appendEvents(context.Background(), evs)
}

// activeKey sums up everything the active placements depend on: the GIP
// set, each member's reachability and report, the local VIPs' health and
// the hold-down. updateActive recomputes only when it changes.
//
// It is made at every tick (20 times a second) and after every message, so
// it is appended with strconv into one buffer rather than printed with fmt.
func (d *Daemon) activeKey() string {
	b := d.keyBuf[:0]
	now := d.cfg.Now()
	b = strconv.AppendUint(b, d.node.GIPVersion(), 10)
	b = append(b, '/')
	b = strconv.AppendUint(b, d.healthVersion, 10)
	b = append(b, '/')
	b = strconv.AppendBool(b, now.Before(d.holdDownUntil))
	b = append(b, '/')
	b = strconv.AppendBool(b, d.inheriting(now))
	for _, m := range d.node.DCs(now) {
		// The lists are hashed, not printed: a DC may report holding
		// 10,000 GIPs, and this key is made at every tick.
		b = append(b, '|')
		b = append(b, m.Name...)
		b = append(b, ':')
		b = strconv.AppendBool(b, m.Reachable)
		for _, l := range [][]string{m.VIPsDown, m.Holding, m.VIPsUnknown} {
			h := hashNames(l)
			b = append(b, ':')
			b = strconv.AppendUint(b, h[0], 16)
			b = append(b, '.')
			b = strconv.AppendUint(b, h[1], 16)
		}
	}
	expired := 0
	for _, since := range d.waitSince {
		if now.Sub(since) >= d.cfg.ActivationWait {
			expired++
		}
	}
	b = append(b, "|waits:"...)
	b = strconv.AppendInt(b, int64(len(d.waitSince)), 10)
	b = append(b, '/')
	b = strconv.AppendInt(b, int64(expired), 10)
	q := d.quorumKey()
	b = append(b, q...)
	d.quorumKeyLen = len(q) // the quorum's part ends the key (updateActive)
	d.keyBuf = b
	return string(b)
}

// hashNames is an FNV-1a hash of names and their count.
func hashNames(names []string) [2]uint64 {
	h := fnv.New64a()
	for _, n := range names {
		h.Write([]byte(n))
		h.Write([]byte{0})
	}
	return [2]uint64{uint64(len(names)), h.Sum64()}
}

// gipInfos describes GIPs with their current active placements and, with
// why, the reason of each placement's state (gip show; gip list leaves it
// out to stay small with 10,000 GIPs).
func (d *Daemon) gipInfos(gs []vipsmart.GIP, why bool) []vipsmart.GIPInfo {
	view := d.healthView(gs)
	out := make([]vipsmart.GIPInfo, 0, len(gs))
	for _, g := range gs {
		act, ok := d.active[g.Name]
		if !ok {
			act = vipsmart.ActivePlacements(g, view, d.prevActive(g, view))
		}
		act = slices.Clone(act)
		if act == nil {
			act = []string{}
		}
		gi := vipsmart.GIPInfo{GIP: g, Active: act, Quorum: d.quorumInfo(g, act)}
		if gi.Partition == "" {
			gi.Partition = vipsmart.PartitionAvailable // stored before the field existed
		}
		if why {
			gi.Why = vipsmart.ExplainPlacements(g, view, act)
		}
		out = append(out, gi)
	}
	return out
}

// ListGIPs implements vipsmart.Service.
func (d *Daemon) ListGIPs(ctx context.Context) ([]vipsmart.GIPInfo, error) {
	var out []vipsmart.GIPInfo
	err := d.call(ctx, func() error {
		out = d.gipInfos(d.node.GIPs(), false)
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// GetGIP implements vipsmart.Service.
func (d *Daemon) GetGIP(ctx context.Context, name string) (vipsmart.GIPInfo, error) {
	var out vipsmart.GIPInfo
	err := d.call(ctx, func() error {
		g, ok := d.gip(name)
		if !ok {
			return vipsmart.Errorf(vipsmart.ENOTFOUND, "name", "GIP %s does not exist: see `vipsmart gip list`", name)
		}
		out = d.gipInfos([]vipsmart.GIP{g}, true)[0]
		return nil
	})
	return out, err
}

func (d *Daemon) gip(name string) (vipsmart.GIP, bool) {
	for _, g := range d.node.GIPs() {
		if g.Name == name {
			return g, true
		}
	}
	return vipsmart.GIP{}, false
}

// AddGIP implements vipsmart.Service.
func (d *Daemon) AddGIP(ctx context.Context, g vipsmart.GIP) (vipsmart.GIPInfo, error) {
	if err := g.Validate(); err != nil {
		return vipsmart.GIPInfo{}, err
	}
	if err := d.call(ctx, func() error { return d.checkWitnessPlacements(g) }); err != nil {
		return vipsmart.GIPInfo{}, err
	}
	if err := d.propose(ctx, federation.Proposal{Kind: federation.PutGIP, GIP: g}); err != nil {
		return vipsmart.GIPInfo{}, err
	}
	return d.GetGIP(context.WithoutCancel(ctx), g.Name)
}

// UpdateGIP implements vipsmart.Service.
func (d *Daemon) UpdateGIP(ctx context.Context, g vipsmart.GIP) (vipsmart.GIPInfo, error) {
	if err := g.Validate(); err != nil {
		return vipsmart.GIPInfo{}, err
	}
	// An update that changes nothing succeeds without a federation change.
	same := false
	if err := d.call(ctx, func() error {
		if err := d.checkWitnessPlacements(g); err != nil {
			return err
		}
		cur, ok := d.gip(g.Name)
		want := slices.Clone(g.Placements)
		vipsmart.SortPlacements(want)
		have := slices.Clone(cur.Placements)
		vipsmart.SortPlacements(have)
		same = ok && cur.Address == g.Address && cur.Mode == g.Mode && cur.Preempt == g.Preempt && slices.Equal(have, want) && samePartition(cur, g)
		return nil
	}); err != nil {
		return vipsmart.GIPInfo{}, err
	}
	if same {
		return d.GetGIP(ctx, g.Name)
	}
	if err := d.propose(ctx, federation.Proposal{Kind: federation.PutGIP, GIP: g, Update: true}); err != nil {
		return vipsmart.GIPInfo{}, err
	}
	return d.GetGIP(context.WithoutCancel(ctx), g.Name)
}

// RemoveGIP implements vipsmart.Service.
func (d *Daemon) RemoveGIP(ctx context.Context, name string) error {
	if err := vipsmart.ValidateName("name", name); err != nil {
		return err
	}
	return d.propose(ctx, federation.Proposal{Kind: federation.DeleteGIP, Name: name})
}
