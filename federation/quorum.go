package federation

// Quorum: the rule of GIPs with the consistent partition policy
// (docs/gips.md, "Partitions"). It rides on the heartbeats and their
// answers, and is pure like the rest of the package: time comes in as
// arguments and no clock is compared across DCs.
//
// Each DC keeps a monotonic clock of its own (durations since the node
// started; Stamp). Every heartbeat and answer carries the sender's Stamp,
// the last Stamp it received from the recipient (Echo), whether the
// sender supports the recipient, the members the sender has lost, and the
// consistent GIPs the sender claims.
//
//   - Z supports X while Z heard X within the support window Ws =
//     (misses+1) x interval, at least Ws after Z started, and at least Ws
//     after Z last told another DC it had lost X (hysteresis).
//   - Z has lost X when it has not heard X for more than Ws, at least Ws
//     after Z started. While it has lost X it says so in every message.
//   - A lease: a message from Z echoing X's stamp e with Supports gives X
//     Z's support until X's clock reads e + L; a message from Z echoing
//     Y's stamp e and listing X as lost gives Y a fence on X until
//     Y's clock reads e + L, with L = Ws(1-ρ)/(1+ρ) - guard (ρ =
//     MaxClockDrift, guard = one interval for the withdrawal itself).
//
// Because e was stamped before Z received it, and Z's support (and its
// having lost X) lasts at least Ws of Z's clock past that reception, a
// lease never outlives the state of Z it stands for, whatever the message
// delays and clock offsets, provided clock rates drift by less than ρ.
// So at any instant, for any X, the DCs whose support X holds and those
// whose fence on X some Y holds are disjoint. Hence:
//
//   - X is in the majority while it holds the support of more than half of
//     the members, itself included. A DC claims a consistent GIP only
//     while it is in the majority and its view chooses it; it is active
//     only while it claims it.
//   - A majority has lost X when this DC holds fences on X from more than
//     half of the members, itself included; then X is in no majority.
//   - A DC becomes active for a GIP it claims only when every other
//     placement DC Q is lost by a majority, or Q answered one of this DC's
//     heartbeats sent after the claim began without claiming the GIP.
//     After such an answer Q can only become active once this DC stopped
//     claiming (it needs the same answer from it) or lost the majority.
//     A DC goes on claiming a GIP for one interval after it stopped being
//     active for it: the time its withdrawal takes to reach the routers.
//
// Invariant (checked at every step by TestQuorumSimulation): no two DCs
// are active for the same consistent GIP at the same time.

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/vipsmart/vipsmart"
)

// MaxClockDrift is the bound assumed on how fast any DC's monotonic clock
// runs against real time (1000 ppm; crystals drift 10-100 ppm). Clock
// offsets between DCs do not matter: no time is compared across DCs.
const MaxClockDrift = 0.001

// QuorumBeat is the quorum part of a heartbeat and of its answer.
type QuorumBeat struct {
	Boot     int64    `json:"boot"`                // the sender's start (identifies its clock)
	Stamp    int64    `json:"stamp"`               // the sender's clock at sending, ns since Boot
	EchoBoot int64    `json:"echo_boot,omitempty"` // the recipient's Boot of Echo
	Echo     int64    `json:"echo,omitempty"`      // the last Stamp the sender received from the recipient
	Supports bool     `json:"supports,omitempty"`  // the sender supports the recipient
	Lost     []string `json:"lost,omitempty"`      // members the sender has lost
	Claims   []string `json:"claims,omitempty"`    // consistent GIPs the sender claims or holds
}

func (q *QuorumBeat) validate() error {
	if q == nil {
		return nil
	}
	if q.Stamp < 0 || q.Echo < 0 {
		return fmt.Errorf("quorum: negative stamp")
	}
	if len(q.Lost) > 1024 {
		return fmt.Errorf("quorum: %d lost members, more than a federation holds", len(q.Lost))
	}
	for _, s := range append(slices.Clone(q.Lost), q.Claims...) {
		if err := vipsmart.ValidateName("quorum", s); err != nil {
			return err
		}
	}
	return nil
}

// quorumPeer is what this DC knows of a peer's quorum messages.
type quorumPeer struct {
	boot, stamp int64 // the peer's last Boot and Stamp (echoed back)
	// From the received message with the highest valid echo:
	hasEcho  bool
	echo     int64
	supports bool
	lost     []string
	claims   map[string]bool
	// fenceSent: when this DC last told another DC it had lost the peer.
	fenceSent time.Time
}

type quorumState struct {
	base   time.Time
	boot   int64
	peers  map[string]*quorumPeer
	claims map[string]int64 // GIP -> this DC's stamp when the claim began
	active map[string]bool
	// released: when this DC stopped being active for a GIP; it goes on
	// claiming it for one interval, the time its withdrawal takes.
	released map[string]time.Time
	majority *bool // last reported, for events
	lost     map[string]bool
}

func newQuorum(now time.Time) quorumState {
	return quorumState{base: now, boot: now.UnixNano(), peers: map[string]*quorumPeer{}, claims: map[string]int64{}, active: map[string]bool{}, released: map[string]time.Time{}, lost: map[string]bool{}}
}

func (n *Node) qpeer(name string) *quorumPeer {
	p := n.q.peers[name]
	if p == nil {
		p = &quorumPeer{}
		n.q.peers[name] = p
	}
	return p
}

func (n *Node) mono(now time.Time) int64 { return now.Sub(n.q.base).Nanoseconds() }

// SupportWindow is how long a DC supports a member after last hearing it
// ((misses+1) x interval, 800 ms at defaults).
func (n *Node) SupportWindow() time.Duration {
	return time.Duration(n.cfg.HeartbeatMisses+1) * n.cfg.HeartbeatInterval
}

// Lease is how long a lease lasts from the stamp it echoes:
// Ws(1-ρ)/(1+ρ) minus one interval (598 ms at defaults). It is also the
// withdrawal bound: a DC that stops hearing from a majority withdraws its
// consistent GIPs at most Lease after the last of its heartbeats that a
// majority answered.
func (n *Node) Lease() time.Duration {
	ws := float64(n.SupportWindow())
	return time.Duration(ws*(1-MaxClockDrift)/(1+MaxClockDrift)) - n.cfg.HeartbeatInterval
}

func (n *Node) started(now time.Time) bool { return now.Sub(n.q.base) >= n.SupportWindow() }

// heardWithin reports whether this DC heard name within the support window.
func (n *Node) heardWithin(now time.Time, name string) bool {
	p := n.peers[name]
	return p != nil && !p.lastSeen.IsZero() && now.Sub(p.lastSeen) <= n.SupportWindow()
}

// supports reports whether this DC supports member x now.
func (n *Node) supports(now time.Time, x string) bool {
	if !n.started(now) || !n.heardWithin(now, x) {
		return false
	}
	fs := n.qpeer(x).fenceSent
	return fs.IsZero() || now.Sub(fs) >= n.SupportWindow()
}

// hasLost reports whether this DC has lost member x now.
func (n *Node) hasLost(now time.Time, x string) bool {
	return x != n.h.Self.Name && n.started(now) && !n.heardWithin(now, x)
}

func (n *Node) isMember(name string) bool {
	_, ok := findDC(n.h.Members, name)
	return ok
}

// quorumOut adds the quorum part to a heartbeat or answer for a member.
func (n *Node) quorumOut(now time.Time, m *Message) {
	if !n.h.memberish() || !n.isMember(m.To.Name) || m.To.Name == n.h.Self.Name {
		return
	}
	to := m.To.Name
	qb := &QuorumBeat{Boot: n.q.boot, Stamp: n.mono(now)}
	if p := n.q.peers[to]; p != nil && p.boot != 0 {
		qb.EchoBoot, qb.Echo = p.boot, p.stamp
		qb.Supports = n.supports(now, to)
	}
	for _, d := range n.h.Members {
		if n.hasLost(now, d.Name) {
			qb.Lost = append(qb.Lost, d.Name)
			if d.Name != to {
				n.qpeer(d.Name).fenceSent = now
			}
		}
	}
	for _, g := range sortedKeys(n.q.claims) {
		qb.Claims = append(qb.Claims, g)
	}
	for _, g := range sortedKeys(n.q.released) {
		if now.Sub(n.q.released[g]) >= n.cfg.HeartbeatInterval {
			delete(n.q.released, g)
		} else if _, ok := n.q.claims[g]; !ok {
			qb.Claims = append(qb.Claims, g)
		}
	}
	m.Quorum = qb
}

// quorumIn records the quorum part of a message from a member.
func (n *Node) quorumIn(m Message) {
	qb := m.Quorum
	if qb == nil || !n.isMember(m.From.Name) || m.From.Name == n.h.Self.Name {
		return
	}
	p := n.qpeer(m.From.Name)
	if qb.Boot != p.boot {
		*p = quorumPeer{boot: qb.Boot, stamp: qb.Stamp, fenceSent: p.fenceSent}
	} else if qb.Stamp > p.stamp {
		p.stamp = qb.Stamp
	}
	if qb.EchoBoot != n.q.boot || qb.EchoBoot == 0 || (p.hasEcho && qb.Echo < p.echo) {
		return
	}
	p.hasEcho, p.echo, p.supports, p.lost = true, qb.Echo, qb.Supports, slices.Clone(qb.Lost)
	p.claims = make(map[string]bool, len(qb.Claims))
	for _, g := range qb.Claims {
		p.claims[g] = true
	}
}

// valid reports whether a lease echoing e still holds now.
func (n *Node) valid(now time.Time, e int64) bool {
	return n.mono(now) < e+n.Lease().Nanoseconds()
}

// supporters returns the members whose support this DC holds now
// (itself included).
func (n *Node) supporters(now time.Time) []string {
	out := []string{n.h.Self.Name}
	for _, d := range n.h.Members {
		if d.Name == n.h.Self.Name {
			continue
		}
		if p := n.q.peers[d.Name]; p != nil && p.hasEcho && p.supports && n.valid(now, p.echo) {
			out = append(out, d.Name)
		}
	}
	return out
}

// lostBy returns the members whose fence on x this DC holds now (itself
// included when it has lost x).
func (n *Node) lostBy(now time.Time, x string) []string {
	var out []string
	for _, d := range n.h.Members {
		if d.Name == x {
			continue
		}
		if d.Name == n.h.Self.Name {
			if n.hasLost(now, x) {
				out = append(out, d.Name)
			}
			continue
		}
		if p := n.q.peers[d.Name]; p != nil && p.hasEcho && slices.Contains(p.lost, x) && n.valid(now, p.echo) {
			out = append(out, d.Name)
		}
	}
	return out
}

func (n *Node) majority(k int) bool { return 2*k > len(n.h.Members) }

// QuorumView is this DC's view of the majority now.
type QuorumView struct {
	InMajority bool
	Members    int
	Supporters []string // the members whose support this DC holds, itself included
	// Lost are the members a majority has lost (this DC holds their
	// fences): they are in no majority, so they hold no consistent GIP.
	Lost []string
}

// Quorum returns this DC's view of the majority at now.
func (n *Node) Quorum(now time.Time) QuorumView {
	v := QuorumView{Members: len(n.h.Members), Supporters: n.supporters(now)}
	v.InMajority = n.h.memberish() && n.majority(len(v.Supporters))
	for _, d := range n.h.Members {
		if d.Name != n.h.Self.Name && n.majority(len(n.lostBy(now, d.Name))) {
			v.Lost = append(v.Lost, d.Name)
		}
	}
	return v
}

// Why says why this DC is or is not in the majority.
func (v QuorumView) Why() string {
	need := v.Members/2 + 1
	if v.InMajority {
		return fmt.Sprintf("in the majority: supported by %d of %d members (%s), %d needed", len(v.Supporters), v.Members, strings.Join(v.Supporters, ", "), need)
	}
	return fmt.Sprintf("not in the majority: supported by %d of %d members (%s), %d needed", len(v.Supporters), v.Members, strings.Join(v.Supporters, ", "), need)
}

// ConsistentGIP is one GIP with the consistent policy, as the daemon sees
// it: whether its view (where only members a majority has lost count as
// unreachable) chooses this DC, and the other DCs with a placement.
type ConsistentGIP struct {
	Name   string
	Chosen bool
	Others []string
}

// ConsistentState is the outcome of Consistent for one GIP: whether this
// DC is active for it, and if it is chosen but not active, why.
type ConsistentState struct {
	Active bool
	Why    string
}

// Consistent decides, at now, which of gs this DC is active for, and
// makes its claims (carried by its next heartbeats) those of gs that it
// claims. Call it at least every tick while consistent GIPs exist: an
// active GIP ends when the majority's leases run out. It records an event
// when this DC enters or leaves the majority and when a majority loses or
// finds again a member.
func (n *Node) Consistent(now time.Time, gs []ConsistentGIP) (QuorumView, map[string]ConsistentState) {
	v := n.Quorum(now)
	n.quorumEvents(now, v)
	out := make(map[string]ConsistentState, len(gs))
	claims := map[string]int64{}
	active := map[string]bool{}
	for _, g := range gs {
		switch {
		case !v.InMajority:
			out[g.Name] = ConsistentState{Why: v.Why()}
			continue
		case !g.Chosen:
			out[g.Name] = ConsistentState{}
			continue
		}
		start, ok := n.q.claims[g.Name]
		if !ok {
			start = n.mono(now)
			n.lastHB = time.Time{} // ask for the answers at the next tick
		}
		claims[g.Name] = start
		if n.q.active[g.Name] {
			active[g.Name] = true
			out[g.Name] = ConsistentState{Active: true}
			continue
		}
		var waits []string
		for _, o := range g.Others {
			if o == n.h.Self.Name || slices.Contains(v.Lost, o) {
				continue
			}
			p := n.q.peers[o]
			if p != nil && p.hasEcho && p.echo >= start && !p.claims[g.Name] {
				continue // o answered after the claim began, not claiming it
			}
			if p != nil && p.hasEcho && p.echo >= start {
				waits = append(waits, o+" claims it too")
			} else {
				waits = append(waits, o+" has not confirmed that it does not hold it, and no majority has lost it")
			}
		}
		if len(waits) == 0 {
			active[g.Name] = true
			out[g.Name] = ConsistentState{Active: true}
			continue
		}
		out[g.Name] = ConsistentState{Why: "waiting before taking over: " + strings.Join(waits, "; ")}
	}
	for g := range n.q.active {
		if !active[g] {
			n.q.released[g] = now
		}
	}
	n.q.claims, n.q.active = claims, active
	return v, out
}

// quorumEvents records changes of the majority and of the lost members.
func (n *Node) quorumEvents(now time.Time, v QuorumView) {
	if !n.h.memberish() {
		return
	}
	if n.q.majority == nil || *n.q.majority != v.InMajority {
		if n.q.majority != nil || v.InMajority {
			n.event(now, vipsmart.EventQuorum, "", n.h.Self.Name+" is "+v.Why())
		}
		in := v.InMajority
		n.q.majority = &in
	}
	lost := map[string]bool{}
	for _, x := range v.Lost {
		lost[x] = true
		if !n.q.lost[x] {
			n.event(now, vipsmart.EventQuorum, "", fmt.Sprintf("a majority has lost %s (fenced by %s): consistent GIPs may move away from it", x, strings.Join(n.lostBy(now, x), ", ")))
		}
	}
	for x := range n.q.lost {
		if !lost[x] && n.isMember(x) {
			n.event(now, vipsmart.EventQuorum, "", fmt.Sprintf("no majority has lost %s any more", x))
		}
	}
	n.q.lost = lost
}

// ActiveConsistent returns the consistent GIPs this DC is active for.
func (n *Node) ActiveConsistent() []string { return sortedKeys(n.q.active) }
