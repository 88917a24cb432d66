// Package vipmove decides which node of a DC holds each VIP, when the DC
// runs several nodes on etcd (docs/ha.md, "VIPs that move between nodes").
// It is a pure, deterministic state machine: time comes in as arguments,
// it runs no goroutines and touches no network; the caller (cmd/vipsmart,
// vipmove.go there) reads and writes etcd and binds the addresses.
//
// # The protocol
//
// Every node keeps a beat key (P beats/<node>, bound to its etcd lease);
// the key's create revision is the node's incarnation, and the node renews
// it every Timers.Renew with a compare-and-swap on its mod revision. Every
// VIP has a holder key (P holders/<vip>): the holding node and its
// incarnation, or no node. A node binds a VIP only while (1) the holder key
// names it and its current incarnation and (2) its renew deadline has not
// passed: the send time of its last acknowledged renewal plus
// Timers.Deadline (a renewal acknowledged late extends nothing past that).
// Observers note, on their own clock, when they last saw each beat change;
// a holder whose beat did not change for Timers.Takeover is taken over
// with one etcd transaction that commits only if the holder key and the
// holder's beat are still exactly as observed, and that also marks the
// beat fenced, so the former holder's next renewal fails and its other
// VIPs can be taken at once.
//
// # Invariant: never two holders
//
// Let a takeover commit at time c, having compared the former holder's
// beat at mod revision r, which the taker saw at time y on its clock and
// took over at y+T or later. Every renewal of the former holder that
// succeeded committed no later than r (a later one would have changed the
// revision, and after c its compare-and-swap fails). Its last acknowledged
// renewal was sent at s <= commit(r) <= y, so it binds nothing after
// s+D <= y+D. With D + (time to remove an address) < T, the former holder
// has withdrawn before c, and the taker binds only after c. A holder that
// cannot act (killed, frozen) has its addresses removed at s+D by a guard
// process, or by the kernel's address lifetime as a last resort (docs).
// A release (health failing, preemption, VIP removed) is written only after
// the holder has unbound the address, and a VIP is taken from a released
// key only after that write. Clock rates are assumed equal within a small
// drift, which the margin T-D covers.
package vipmove

import (
	"fmt"
	"slices"
	"time"

	"github.com/vipsmart/vipsmart"
)

// Timers are the protocol's timers.
type Timers struct {
	// Renew is how often a node renews its beat.
	Renew time.Duration
	// Deadline is how long after sending its last acknowledged renewal a
	// holder keeps its addresses.
	Deadline time.Duration
	// Takeover is how long a beat must stay unchanged, on an observer's
	// clock, before the observer takes the holder's VIPs.
	Takeover time.Duration
}

// The default timers: a dead holder's VIPs move after about 1 s.
const (
	DefaultRenew    = 200 * time.Millisecond
	DefaultDeadline = 700 * time.Millisecond
	DefaultTakeover = 1000 * time.Millisecond
	// MinMargin is the least Takeover-Deadline: the time a holder has to
	// remove its addresses once its deadline passed, plus clock drift.
	MinMargin = 100 * time.Millisecond
)

// DefaultTimers returns the default timers.
func DefaultTimers() Timers {
	return Timers{Renew: DefaultRenew, Deadline: DefaultDeadline, Takeover: DefaultTakeover}
}

// Validate checks Renew < Deadline and Deadline + MinMargin <= Takeover.
func (t Timers) Validate() error {
	switch {
	case t.Renew < 10*time.Millisecond:
		return vipsmart.Errorf(vipsmart.EINVALID, "vip-renew-interval", "--vip-renew-interval %s is too short: give at least 10ms", t.Renew)
	case t.Deadline <= t.Renew:
		return vipsmart.Errorf(vipsmart.EINVALID, "vip-renew-deadline", "--vip-renew-deadline %s must be longer than --vip-renew-interval %s (a holder must get a chance to renew before it withdraws)", t.Deadline, t.Renew)
	case t.Takeover < t.Deadline+MinMargin:
		return vipsmart.Errorf(vipsmart.EINVALID, "vip-takeover", "--vip-takeover %s must be at least --vip-renew-deadline %s + %s: a holder that cannot renew must withdraw before another node may take over", t.Takeover, t.Deadline, MinMargin)
	}
	return nil
}

// VIP is what the protocol needs of a VIP's configuration.
type VIP struct {
	Name    string
	Nodes   []vipsmart.VIPNode // empty: every node, DefaultVIPPriority
	Preempt bool
}

// Beat is a node's beat key as observed.
type Beat struct {
	Node string
	// Inc is the key's create revision (the node's incarnation), Rev its
	// mod revision.
	Inc, Rev int64
	// Fenced: another node took one of this incarnation's VIPs over after
	// it fell silent; the incarnation is over.
	Fenced bool
	// Down are the VIPs this node may not hold (their check does not pass
	// from it, or has not passed yet).
	Down []string
}

// Holding is a VIP's holder key as observed.
type Holding struct {
	// Node and Inc: the holder and its incarnation; Node "" means free.
	Node string
	Inc  int64
	// Rev is the key's mod revision, 0 if the key does not exist.
	Rev    int64
	Since  time.Time
	Reason string
}

// View is a node's snapshot of the DC: the VIPs and the beat and holder
// keys present.
type View struct {
	// Rev is the etcd revision the snapshot reflects: an entry this
	// engine wrote itself at a later revision is kept over the snapshot's.
	Rev     int64
	VIPs    []VIP
	Beats   map[string]Beat
	Holders map[string]Holding
}

// Kind is the kind of an Action.
type Kind int

// The kinds of Action.
const (
	// Register creates this node's beat (a new incarnation), deleting
	// whatever beat of this node's name is there.
	Register Kind = iota + 1
	// Renew rewrites this node's beat if its mod revision is still Rev.
	Renew
	// Take writes the holder key of VIP (this node, Inc) if it is still at
	// HolderRev (0: absent) and the former holder's beat is as Prev*
	// says; with Fence it also marks that beat fenced.
	Take
	// Release makes the holder key of VIP free (or deletes it, with
	// Delete) if it is still at HolderRev. The address is unbound first.
	Release
)

func (k Kind) String() string {
	return [...]string{"?", "register", "renew", "take", "release"}[k]
}

// Action is a write to etcd the caller makes, then reports with Done.
type Action struct {
	Kind   Kind
	SentAt time.Time
	// Register and Renew: the VIPs this node may not hold; Renew: the
	// beat's mod revision to compare (and Inc, this incarnation).
	Down []string
	Rev  int64
	// Take and Release.
	VIP       string
	HolderRev int64
	Inc       int64 // Take: this node's incarnation
	// Take: the former holder (Prev "" if free) and the state of its
	// beat to compare: PrevBeatRev != 0: its mod revision; else its
	// create revision equals PrevBeatInc (0: absent).
	Prev        string
	PrevBeatInc int64
	PrevBeatRev int64
	Fence       bool
	Delete      bool
	Reason      string
}

// Result is the outcome of an Action.
type Result struct {
	// OK: the transaction committed. Lost (Renew): the beat was not
	// ours any more. Neither: etcd did not answer or a compare failed
	// (the caller should read the view again); for a Renew, Rev is then
	// the beat's revision if it is still this incarnation's and not
	// fenced (an earlier renewal whose answer was lost).
	OK   bool
	Lost bool
	// Inc and Rev: the new beat's create and mod revisions (Register,
	// Renew), or the holder key's mod revision (Take, Release).
	Inc, Rev int64
	// At: when the result arrived (for events).
	At time.Time
}

// Move is a change of holder this node made, for the event log.
type Move struct {
	VIP, From, To, Reason string
}

type seenBeat struct {
	present  bool
	inc, rev int64
	at       time.Time
}

// Engine is one node's protocol state.
type Engine struct {
	self string
	t    Timers

	view View
	vips map[string]VIP
	seen map[string]seenBeat

	myInc, myRev int64
	deadline     time.Time // binds nothing from then on
	lastSent     time.Time // the last Register/Renew sent
	beatBusy     bool      // a Register or Renew in flight
	up           map[string]bool
	// releasedAt: the holder key revision at which this node released a
	// VIP (or tried to: the answer may be lost). It holds that VIP again
	// only under a newer revision naming it (a new Take).
	releasedAt map[string]int64
	busy       map[string]bool // a Take or Release in flight per VIP
	gone       map[string]time.Time
	moves      []Move
	names      []string                   // the VIPs' names, sorted
	known      []string                   // every node in the view, and this one, sorted
	downOf     map[string]map[string]bool // each node's Down as a set
}

// RemoveGrace is how long the holder key of a VIP no longer configured is
// kept (the address is unbound at once): `vip update` replaces a VIP by a
// removal and an addition, and the holder keeps it through that.
const RemoveGrace = 5 * time.Second

// New returns the engine of node self.
func New(self string, t Timers) *Engine {
	return &Engine{self: self, t: t, vips: map[string]VIP{}, seen: map[string]seenBeat{},
		up: map[string]bool{}, releasedAt: map[string]int64{}, busy: map[string]bool{}, gone: map[string]time.Time{},
		view: View{Beats: map[string]Beat{}, Holders: map[string]Holding{}}}
}

// Observe replaces the engine's view at time now. A beat seen for the
// first time, or with a new revision, counts as renewed now.
func (e *Engine) Observe(now time.Time, v View) {
	beats := make(map[string]Beat, len(v.Beats))
	for n, b := range v.Beats {
		beats[n] = b
	}
	holders := make(map[string]Holding, len(v.Holders))
	for n, h := range v.Holders {
		holders[n] = h
	}
	// What this engine wrote after the snapshot was taken stays.
	for n, b := range e.view.Beats {
		if b.Rev > v.Rev {
			beats[n] = b
		}
	}
	for n, h := range e.view.Holders {
		if h.Rev > v.Rev {
			holders[n] = h
		}
	}
	v.Beats, v.Holders = beats, holders
	e.view = v
	e.vips = make(map[string]VIP, len(v.VIPs))
	e.names = e.names[:0]
	for _, x := range v.VIPs {
		e.vips[x.Name] = x
		e.names = append(e.names, x.Name)
	}
	slices.Sort(e.names)
	e.names = slices.Compact(e.names)
	for n, b := range v.Beats {
		s, ok := e.seen[n]
		if !ok || !s.present || s.inc != b.Inc || s.rev != b.Rev {
			e.seen[n] = seenBeat{present: true, inc: b.Inc, rev: b.Rev, at: now}
		}
	}
	for n, s := range e.seen {
		if _, ok := v.Beats[n]; !ok && s.present {
			s.present = false // a deletion is not a renewal: at stays
			e.seen[n] = s
		}
	}
	for name := range v.Holders {
		if _, ok := e.vips[name]; ok {
			delete(e.gone, name)
		} else if _, ok := e.gone[name]; !ok {
			e.gone[name] = now
		}
	}
	// A holder never seen (this node started after its beat went):
	// count its silence from now.
	for _, h := range v.Holders {
		if _, ok := e.seen[h.Node]; !ok && h.Node != "" {
			e.seen[h.Node] = seenBeat{at: now}
		}
	}
	e.index()
	// Our own incarnation ended (fenced, deleted, replaced): bind nothing.
	if e.myInc != 0 {
		b, ok := v.Beats[e.self]
		switch {
		case !ok && v.Rev >= e.myRev:
			e.lose()
		case ok && b.Inc == e.myInc && b.Fenced:
			e.lose()
		case ok && b.Inc > e.myInc:
			e.lose()
		}
	}
}

func (e *Engine) lose() {
	e.myInc, e.myRev = 0, 0
	e.deadline = time.Time{}
}

// SetHealth records whether VIP name's check passes from this node.
func (e *Engine) SetHealth(name string, up bool) { e.up[name] = up }

// Holding reports whether this node holds (may bind) VIP name at now.
func (e *Engine) holds(name string, now time.Time) bool {
	h := e.view.Holders[name]
	_, conf := e.vips[name]
	r, released := e.releasedAt[name]
	return conf && e.myInc != 0 && h.Node == e.self && h.Inc == e.myInc && now.Before(e.deadline) && !(released && h.Rev <= r)
}

// Bound returns the VIPs this node may bind at now, sorted.
func (e *Engine) Bound(now time.Time) []string {
	var out []string
	for _, name := range e.names {
		if e.holds(name, now) {
			out = append(out, name)
		}
	}
	return out
}

// Deadline is the renew deadline: Bound is empty from then on unless a
// renewal is acknowledged.
func (e *Engine) Deadline() time.Time { return e.deadline }

// Incarnation is this node's beat create revision (0: not registered).
func (e *Engine) Incarnation() int64 { return e.myInc }

// Moves returns and forgets the moves this node made since the last call.
func (e *Engine) Moves() []Move {
	m := e.moves
	e.moves = nil
	return m
}

// priority returns node n's priority for v, and whether v lists it.
func priority(v VIP, n string) (int, bool) {
	if len(v.Nodes) == 0 {
		return vipsmart.DefaultVIPPriority, true
	}
	for _, x := range v.Nodes {
		if x.Node == n {
			return x.Priority, true
		}
	}
	return 0, false
}

// alive reports whether node n is alive in this node's view at now.
func (e *Engine) alive(n string, now time.Time) bool {
	if n == e.self {
		return e.myInc != 0 && now.Before(e.deadline)
	}
	b, ok := e.view.Beats[n]
	s := e.seen[n]
	return ok && !b.Fenced && now.Sub(s.at) < e.t.Takeover
}

// eligible says whether node n may hold v at now, and why not.
func (e *Engine) eligible(v VIP, n string, now time.Time) (bool, string) {
	if _, ok := priority(v, n); !ok {
		return false, "not in the VIP's node list"
	}
	if !e.alive(n, now) {
		if n == e.self {
			return false, "its claim is not renewed (etcd unreachable?)"
		}
		return false, fmt.Sprintf("its claim was not renewed for %s", e.t.Takeover)
	}
	if n == e.self {
		if !e.up[v.Name] {
			return false, "the VIP's health check does not pass from it"
		}
		return true, ""
	}
	if e.downOf[n][v.Name] {
		return false, "the VIP's health check does not pass from it"
	}
	return true, ""
}

// nodes are every node the view knows of for v: beats and the VIP's list.
func (e *Engine) nodes(v VIP) []string {
	if len(v.Nodes) == 0 {
		return e.known
	}
	out := slices.Clone(e.known)
	for _, x := range v.Nodes {
		if !slices.Contains(out, x.Node) {
			out = append(out, x.Node)
		}
	}
	slices.Sort(out)
	return out
}

// index recomputes what Observe derives from the view: the known nodes
// and each node's down set.
func (e *Engine) index() {
	set := map[string]bool{e.self: true}
	for n := range e.view.Beats {
		set[n] = true
	}
	e.known = e.known[:0]
	for n := range set {
		e.known = append(e.known, n)
	}
	slices.Sort(e.known)
	e.downOf = make(map[string]map[string]bool, len(e.view.Beats))
	for n, b := range e.view.Beats {
		if len(b.Down) > 0 {
			d := make(map[string]bool, len(b.Down))
			for _, x := range b.Down {
				d[x] = true
			}
			e.downOf[n] = d
		}
	}
}

// rank orders nodes of equal priority for v, spreading VIPs over nodes
// (rendezvous hashing).
func rank(vip, node string) uint64 {
	const prime = 1099511628211
	h := uint64(14695981039346656037) // FNV-1a
	for i := 0; i < len(vip); i++ {
		h = (h ^ uint64(vip[i])) * prime
	}
	h = (h ^ 0) * prime
	for i := 0; i < len(node); i++ {
		h = (h ^ uint64(node[i])) * prime
	}
	return h
}

// best returns the eligible node of highest priority for v ("" if none).
func (e *Engine) best(v VIP, now time.Time) (string, int) {
	bn, bp := "", 0
	for _, n := range e.nodes(v) {
		if ok, _ := e.eligible(v, n, now); !ok {
			continue
		}
		p, _ := priority(v, n)
		if bn == "" || p > bp || (p == bp && rank(v.Name, n) > rank(v.Name, bn)) {
			bn, bp = n, p
		}
	}
	return bn, bp
}

// Eligibility lists, for VIP name, every node's eligibility at now.
func (e *Engine) Eligibility(name string, now time.Time) []vipsmart.NodeEligibility {
	v, ok := e.vips[name]
	if !ok {
		return nil
	}
	var out []vipsmart.NodeEligibility
	for _, n := range e.nodes(v) {
		ok, why := e.eligible(v, n, now)
		p, _ := priority(v, n)
		out = append(out, vipsmart.NodeEligibility{Node: n, Priority: p, Eligible: ok, Why: why})
	}
	return out
}

// Holder returns the holder key of VIP name as last observed.
func (e *Engine) Holder(name string) Holding { return e.view.Holders[name] }

// Step returns the writes to make at now. The caller first makes the
// bound addresses match Bound(now) (so a release is written only after the
// address is gone), then makes each write and reports it with Done.
func (e *Engine) Step(now time.Time) []Action {
	var acts []Action
	if !e.beatBusy {
		switch {
		case e.myInc == 0 && (e.lastSent.IsZero() || now.Sub(e.lastSent) >= e.t.Renew):
			e.beatBusy, e.lastSent = true, now
			acts = append(acts, Action{Kind: Register, SentAt: now, Down: e.down()})
		case now.Sub(e.lastSent) >= e.t.Renew:
			e.beatBusy, e.lastSent = true, now
			acts = append(acts, Action{Kind: Renew, SentAt: now, Down: e.down(), Rev: e.myRev, Inc: e.myInc})
		}
	}
	// Holder keys of VIPs no longer configured: their holder deletes them.
	for name, h := range e.view.Holders {
		if _, ok := e.vips[name]; !ok && h.Node == e.self && !e.busy[name] && now.Sub(e.gone[name]) >= RemoveGrace {
			e.busy[name] = true
			acts = append(acts, Action{Kind: Release, SentAt: now, VIP: name, HolderRev: h.Rev, Delete: true, Reason: "the VIP was removed"})
		}
	}
	for _, name := range e.names {
		if e.busy[name] {
			continue
		}
		if a, ok := e.decide(e.vips[name], now); ok {
			e.busy[name] = true
			a.SentAt = now
			acts = append(acts, a)
		}
	}
	return acts
}

func (e *Engine) down() []string {
	var out []string
	for name := range e.vips {
		if !e.up[name] {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// decide returns the write VIP v needs from this node, if any.
func (e *Engine) decide(v VIP, now time.Time) (Action, bool) {
	h := e.view.Holders[v.Name]
	mine := e.myInc != 0 && h.Node == e.self && h.Inc == e.myInc
	if r, ok := e.releasedAt[v.Name]; ok && h.Rev > r {
		delete(e.releasedAt, v.Name)
	}
	if mine {
		if !e.alive(e.self, now) {
			return Action{}, false // cannot write anyway; Bound is empty
		}
		release := ""
		if ok, why := e.eligible(v, e.self, now); !ok {
			release = fmt.Sprintf("released by %s: %s", e.self, why)
		} else if v.Preempt {
			b, bp := e.best(v, now)
			if p, _ := priority(v, e.self); b != e.self && bp > p {
				release = fmt.Sprintf("handed over by %s (priority %d) to %s (priority %d, preempt)", e.self, p, b, bp)
			}
		}
		r, released := e.releasedAt[v.Name]
		switch {
		case release != "":
			e.releasedAt[v.Name] = h.Rev
			return Action{Kind: Release, VIP: v.Name, HolderRev: h.Rev, Reason: release}, true
		case released && h.Rev <= r:
			// A release sent, its outcome unknown, and this node may hold
			// the VIP again: take it anew (fails if the release committed).
			p, _ := priority(v, e.self)
			return Action{Kind: Take, VIP: v.Name, HolderRev: h.Rev, Inc: e.myInc, Prev: e.self, PrevBeatInc: e.myInc,
				Reason: fmt.Sprintf("kept by %s (priority %d)", e.self, p)}, true
		}
		return Action{}, false
	}
	if !e.alive(e.self, now) {
		return Action{}, false
	}
	if h.Node != "" && h.Node != e.self {
		x, ok := e.view.Beats[h.Node]
		if ok && x.Inc == h.Inc && !x.Fenced && now.Sub(e.seen[h.Node].at) < e.t.Takeover {
			return Action{}, false // a live holder: it keeps it, or releases it itself
		}
	}
	if _, listed := priority(v, e.self); !listed || !e.up[v.Name] {
		return Action{}, false
	}
	b, bp := e.best(v, now)
	if b != e.self {
		return Action{}, false
	}
	a := Action{Kind: Take, VIP: v.Name, HolderRev: h.Rev, Inc: e.myInc, Prev: h.Node}
	prio := fmt.Sprintf("priority %d", bp)
	switch {
	case h.Node == "":
		a.Reason = fmt.Sprintf("taken by %s, the eligible node of highest rank (%s)", e.self, prio)
		if h.Reason != "" {
			a.Reason += " after " + h.Reason
		}
		return a, true
	case h.Node == e.self:
		a.PrevBeatInc = e.myInc
		a.Reason = fmt.Sprintf("taken by %s again after it restarted (%s)", e.self, prio)
		return a, true
	}
	x, ok := e.view.Beats[h.Node]
	silent := now.Sub(e.seen[h.Node].at) >= e.t.Takeover
	switch {
	case !ok:
		if !silent {
			return Action{}, false
		}
		a.Reason = fmt.Sprintf("taken by %s (%s): holder %s's claim ended", e.self, prio, h.Node)
	case x.Inc != h.Inc:
		a.PrevBeatInc = x.Inc
		a.Reason = fmt.Sprintf("taken by %s (%s): holder %s restarted", e.self, prio, h.Node)
	case x.Fenced:
		a.PrevBeatRev = x.Rev
		a.Reason = fmt.Sprintf("taken by %s (%s): holder %s's claim was fenced (it fell silent, or its process died)", e.self, prio, h.Node)
	case silent:
		a.PrevBeatRev, a.Fence = x.Rev, true
		a.Reason = fmt.Sprintf("taken by %s (%s): holder %s did not renew its claim for %s", e.self, prio, h.Node, e.t.Takeover)
	default:
		return Action{}, false // a live holder: it keeps it, or releases it itself
	}
	return a, true
}

// Done reports the result of a.
func (e *Engine) Done(a Action, r Result) {
	switch a.Kind {
	case Register:
		e.beatBusy = false
		if r.OK {
			e.myInc, e.myRev = r.Inc, r.Rev
			e.deadline = a.SentAt.Add(e.t.Deadline)
			e.view.Beats[e.self] = Beat{Node: e.self, Inc: r.Inc, Rev: r.Rev, Down: a.Down}
			e.index()
		}
	case Renew:
		e.beatBusy = false
		switch {
		case r.OK && a.Rev == e.myRev && e.myInc != 0:
			e.myRev = r.Rev
			if d := a.SentAt.Add(e.t.Deadline); d.After(e.deadline) {
				e.deadline = d
			}
		case r.Lost && a.Rev == e.myRev:
			e.lose()
		case !r.OK && r.Rev > e.myRev && a.Inc == e.myInc:
			// An earlier renewal committed but its answer was lost: go on
			// from its revision, extending nothing.
			e.myRev = r.Rev
		}
	case Take:
		delete(e.busy, a.VIP)
		if r.OK {
			h := e.view.Holders[a.VIP]
			e.view.Holders[a.VIP] = Holding{Node: e.self, Inc: a.Inc, Rev: r.Rev, Since: r.At, Reason: a.Reason}
			if a.Fence {
				b := e.view.Beats[a.Prev]
				b.Fenced = true
				e.view.Beats[a.Prev] = b
				e.index()
			}
			from := h.Node
			e.moves = append(e.moves, Move{VIP: a.VIP, From: from, To: e.self, Reason: a.Reason})
		}
	case Release:
		delete(e.busy, a.VIP)
		if r.OK {
			if a.Delete {
				delete(e.view.Holders, a.VIP)
			} else {
				e.view.Holders[a.VIP] = Holding{Rev: r.Rev, Since: r.At, Reason: a.Reason}
			}
			e.moves = append(e.moves, Move{VIP: a.VIP, From: e.self, Reason: a.Reason})
		}
	}
}
