package federation

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vipsmart/vipsmart"
)

// phase is the phase of the operation a coordinator runs.
type phase int

const (
	phInvite  phase = iota + 1 // waiting for the candidate's InviteResp
	phLock                     // waiting for every member's LockResp
	phRelock                   // forced removal: waiting for the members to ack the raised epoch
	phPrepare                  // waiting for the candidate's PrepareResp
	phProbe                    // forced removal: waiting for the candidates of changes in doubt
)

func (p phase) String() string {
	switch p {
	case phInvite:
		return "invite"
	case phLock:
		return "lock"
	case phRelock:
		return "epoch raise"
	case phPrepare:
		return "prepare"
	case phProbe:
		return "probe"
	}
	return "?"
}

// op is the operation this DC coordinates (volatile; its existence is
// persisted as hardState.Coord so that a restart aborts it).
type op struct {
	id         string
	change     Change
	fedID      string // the federation the decision applies to (a new id when founding)
	from, to   uint64
	cand       *vipsmart.DC
	parts      []vipsmart.DC // the other members to lock
	phase      phase
	phaseStart time.Time
	lastSend   time.Time
	acked      map[string]bool
	doubts     []Doubt
	newState   *State
	early      *State        // AddDC: the state sent to the candidate with the locks (coord.go)
	earlyOK    bool          // the candidate acknowledged early
	earlyGIPs  uint64        // the node's gipVersion when early was made
	probes     []probeTarget // phProbe: the candidates asked
	token      string        // AddDC: the join token the invite carries
}

// probeTarget is a candidate of a change in doubt that a forced removal
// asks whether it holds that change.
type probeTarget struct {
	dc     vipsmart.DC
	doubts []Doubt
}

// peer is what this DC knows of another DC.
type peer struct {
	lastSeen  time.Time
	report    Report
	lastEpoch uint64
	status    vipsmart.Status
	reachable bool
	// seq and running: the latest operation sequence number heard from the
	// peer as a coordinator, and whether it was still running it.
	seq     uint64
	running bool
}

// ended reports whether the peer's operation with sequence number seq is
// known to have ended: the peer was heard past it.
func (p *peer) ended(seq uint64) bool {
	return p != nil && seq > 0 && (p.seq > seq || (p.seq == seq && !p.running))
}

// prepared is the state a candidate received in Prepare.
type prepared struct {
	opID  string
	state State
}

// Node is one DC's membership state machine. It is not safe for concurrent
// use: the daemon calls it from one goroutine (or under one mutex).
type Node struct {
	cfg  Config
	h    hardState
	gips map[string]vipsmart.GIP
	// gipList caches GIPs() (nil when stale); gipVersion counts changes
	// of the GIP set.
	gipList    []vipsmart.GIP
	gipVersion uint64
	vips       map[string]netip.Addr
	rep        Report

	op       *op
	prep     *prepared
	peers    map[string]*peer
	lastHB   time.Time
	lastFtch map[string]time.Time
	now      time.Time // the last time the daemon gave
	saved    time.Time // SavedAt of the last record handed out in Ready
	lastAbrt time.Time // when the pending aborts were last sent

	// Ready buffers.
	dirty    bool
	replace  bool
	putGIPs  map[string]bool
	delGIPs  map[string]bool
	msgs     []Message
	results  []Result
	events   []vipsmart.Event
	rdRecord []byte

	// putSorted are the GIPs a large change wrote since the last Ready,
	// sorted by name, when nothing else changed the GIPs since
	// (putBatch): Ready hands them to the store as they are, without a
	// set of 10,000 names to build and sort. putGIPs holds every other
	// write (unsort moves putSorted there first).
	putSorted []vipsmart.GIP

	q quorumState // quorum.go

	// localNodes are the addresses of this DC's live nodes (nodes.go).
	localNodes []netip.AddrPort
}

func (c *Config) setDefaults() {
	if c.InviteTTL <= 0 {
		c.InviteTTL = DefaultInviteTTL
	}
	if c.ReviewTTL <= 0 {
		c.ReviewTTL = DefaultReviewTTL
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.HeartbeatMisses <= 0 {
		c.HeartbeatMisses = DefaultHeartbeatMisses
	}
	if c.PhaseTimeout <= 0 {
		c.PhaseTimeout = DefaultPhaseTimeout
	}
}

// NewNode returns the node of cfg.Self from the record and GIPs last
// persisted (a nil record is a fresh standalone DC). A deadline that passed
// while the DC was down is applied at once, and an operation this DC
// coordinated and had not committed is aborted; both show in the first
// Ready.
func NewNode(cfg Config, record []byte, gips []vipsmart.GIP, now time.Time) (*Node, error) {
	cfg.setDefaults()
	if err := cfg.Self.Validate(); err != nil {
		return nil, err
	}
	n := &Node{
		cfg:      cfg,
		gips:     map[string]vipsmart.GIP{},
		peers:    map[string]*peer{},
		lastFtch: map[string]time.Time{},
		putGIPs:  map[string]bool{},
		delGIPs:  map[string]bool{},
		q:        newQuorum(now),
	}
	if record == nil {
		n.h = hardState{Version: recordVersion, Self: cfg.Self, Status: vipsmart.StatusStandalone}
		n.dirty = true
	} else {
		if err := json.Unmarshal(record, &n.h); err != nil {
			return nil, vipsmart.Errorf(vipsmart.EINTERNAL, "", "the federation record is corrupt: %v", err)
		}
		if n.h.Version != recordVersion {
			return nil, vipsmart.Errorf(vipsmart.EINTERNAL, "", "the federation record has version %d; this build reads version %d", n.h.Version, recordVersion)
		}
		if n.h.Self.Name != cfg.Self.Name {
			return nil, vipsmart.Errorf(vipsmart.EINVALID, "name", "the data directory belongs to DC %s, not %s: start with --name %s or use another data directory", n.h.Self.Name, cfg.Self.Name, n.h.Self.Name)
		}
		if !n.h.Status.Valid() {
			return nil, vipsmart.Errorf(vipsmart.EINTERNAL, "", "the federation record has an unknown status %q", n.h.Status)
		}
		if !n.h.Self.SameEndpoint(cfg.Self) {
			n.h.Self = cfg.Self
			n.dirty = true
		}
	}
	for _, g := range gips {
		n.gips[g.Name] = cloneGIP(g)
	}
	n.now = now
	n.rebase(now)
	if c := n.h.Coord; c != nil {
		// Restarted with an operation in progress that was not committed
		// here: abort it.
		n.abort(now, c.OpID, c.FedID, c.Epoch, c.Participants)
		n.h.Coord = nil
		if n.h.Lock != nil && n.h.Lock.Own && n.h.Lock.OpID == c.OpID {
			n.releaseLock(now, "")
		}
		n.event(now, vipsmart.EventFederation, c.OpID, fmt.Sprintf("operation %s aborted: %s restarted before committing it", c.OpID, n.h.Self.Name))
		n.dirty = true
	}
	n.expire(now)
	return n, nil
}

// savePeriod: while it holds a lock, the node persists its record at
// least this often, so that SavedAt is at most this old.
const savePeriod = time.Second

// rebase counts the persisted deadlines from now instead of from the
// time the record was saved when the clock is behind that time (it jumped
// back while the daemon was down): a temporary status never lasts longer
// than what was left of it when it was saved (at most savePeriod before
// the daemon stopped). A forward jump cannot be told from downtime: it
// ends temporary statuses early, which is safe (they are leases; see
// docs/federation.md).
func (n *Node) rebase(now time.Time) {
	saved := n.h.SavedAt
	if saved.IsZero() || !now.Before(saved) {
		return
	}
	back := saved.Sub(now)
	if l := n.h.Lock; l != nil {
		l.Deadline = l.Deadline.Add(-back)
	}
	for i := range n.h.Aborts {
		n.h.Aborts[i].Until = n.h.Aborts[i].Until.Add(-back)
	}
	n.dirty = true
	n.event(now, vipsmart.EventFederation, "", fmt.Sprintf("the clock is %s behind the time the record was saved: deadlines count from now", back.Round(time.Millisecond)))
}

// ---- Ready ----

// HasReady reports whether Ready has anything to do.
func (n *Node) HasReady() bool {
	return n.dirty || len(n.msgs) > 0 || len(n.results) > 0 || len(n.events) > 0
}

// Ready returns what the daemon must do now: persist Update, then send
// Messages, then report Results and store Events; then call Advance.
func (n *Node) Ready() Ready {
	var rd Ready
	if n.dirty {
		h := n.h
		h.SavedAt = n.now
		n.saved = n.now
		u := &vipsmart.FederationUpdate{Record: h.encode()}
		if n.replace {
			u.ReplaceGIPs = true
			u.PutGIPs = sortedGIPs(n.gips)
		} else {
			// The GIPs are handed over as the node holds them, as in the
			// replace case above (their Placements shared: the store only
			// reads them): a batch of 10,000 is not copied once more.
			if n.putSorted != nil {
				u.PutGIPs = n.putSorted // what n.gips holds under those names (unsort)
			} else if len(n.putGIPs) > 0 {
				u.PutGIPs = make([]vipsmart.GIP, 0, len(n.putGIPs))
				for name := range n.putGIPs {
					if g, ok := n.gips[name]; ok {
						u.PutGIPs = append(u.PutGIPs, g)
					}
				}
				slices.SortFunc(u.PutGIPs, byName)
			}
			for _, name := range sortedKeys(n.delGIPs) {
				if _, ok := n.gips[name]; !ok {
					u.DeleteGIPs = append(u.DeleteGIPs, name)
				}
			}
		}
		rd.Update = u
	}
	rd.Messages = slices.Clone(n.msgs)
	rd.Results = slices.Clone(n.results)
	rd.Events = slices.Clone(n.events)
	return rd
}

// Advance tells the node that rd (the last Ready) was done.
func (n *Node) Advance(rd Ready) {
	if rd.Update != nil {
		n.dirty, n.replace = false, false
		clear(n.putGIPs)
		clear(n.delGIPs)
		n.putSorted = nil
	}
	n.msgs = n.msgs[min(len(rd.Messages), len(n.msgs)):]
	n.results = n.results[min(len(rd.Results), len(n.results)):]
	n.events = n.events[min(len(rd.Events), len(n.events)):]
	if len(n.msgs) == 0 {
		n.msgs = nil
	}
	if len(n.results) == 0 {
		n.results = nil
	}
	if len(n.events) == 0 {
		n.events = nil
	}
}

func (n *Node) event(now time.Time, kind, opID, msg string) {
	n.events = append(n.events, vipsmart.Event{Time: now, DC: n.h.Self.Name, Kind: kind, OpID: opID, Message: msg})
}

func (n *Node) send(m Message) { n.msgs = append(n.msgs, m) }

func (n *Node) newMsg(t MsgType, to vipsmart.DC) Message {
	return Message{
		Type: t, From: n.h.Self, To: to,
		FedID: n.h.FedID, Epoch: n.h.Epoch,
		SenderFed: n.h.FedID, SenderEpoch: n.h.Epoch, Status: n.h.Status,
		Seq: n.h.Counter, Running: n.op != nil, Committed: n.h.Committed,
	}
}

// reply is newMsg addressed to the sender of m, for the same operation.
func (n *Node) reply(t MsgType, m Message) Message {
	r := n.newMsg(t, m.From)
	r.OpID = m.OpID
	return r
}

func (n *Node) setStatus(now time.Time, s vipsmart.Status, opID, why string) {
	if n.h.Status == s {
		return
	}
	old := n.h.Status
	n.h.Status = s
	n.dirty = true
	msg := fmt.Sprintf("status %s -> %s", old, s)
	if why != "" {
		msg += ": " + why
	}
	n.event(now, vipsmart.EventStatus, opID, msg)
}

// setGIPs replaces every GIP (adopting a whole state).
func (n *Node) setGIPs(gips []vipsmart.GIP) {
	n.gips = map[string]vipsmart.GIP{}
	for _, g := range gips {
		n.gips[g.Name] = cloneGIP(g)
	}
	n.replace = true
	n.putSorted = nil
	n.dirty = true
	n.gipsChanged()
}

func (n *Node) gipsChanged() {
	n.gipList = nil
	n.gipVersion++
}

// growGIPs makes room for k more GIPs in the node's maps at once, so that
// a batch of 10,000 does not grow them one insert at a time.
func (n *Node) growGIPs(k int) {
	if k < 64 {
		return
	}
	if len(n.gips)+k > 2*len(n.gips) {
		m := make(map[string]vipsmart.GIP, len(n.gips)+k)
		maps.Copy(m, n.gips)
		n.gips = m
	}
	if len(n.putGIPs) == 0 {
		n.putGIPs = make(map[string]bool, k)
	}
}

// putGIP stores g as it is: the caller hands over a GIP nothing else
// changes (gipChanges clones a single change; a batch's GIPs are never
// changed once it is made or decoded, and the node does not change its
// GIPs in place either), so a batch of 10,000 is not copied once more.
func (n *Node) putGIP(g vipsmart.GIP) {
	n.unsort()
	n.gips[g.Name] = g
	n.putGIPs[g.Name] = true
	delete(n.delGIPs, g.Name)
	n.dirty = true
	n.gipsChanged()
}

func (n *Node) delGIP(name string) {
	n.unsort()
	delete(n.gips, name)
	n.delGIPs[name] = true
	delete(n.putGIPs, name)
	n.dirty = true
	n.gipsChanged()
}

// setEpoch raises the epoch; it never goes down. Doubts are about
// operations at the current epoch: they are moot once it is left (see the
// forced-removal rule in docs/federation.md).
func (n *Node) setEpoch(e uint64) {
	if e > n.h.Epoch {
		n.h.Epoch = e
		n.h.Doubts = nil
		n.dirty = true
	}
}

// blocking returns the doubts about forced removals: while it holds one, a
// DC applies, adopts and votes only for what cannot split the federation
// from that removal's line (see docs/federation.md).
func (n *Node) blocking() []Doubt {
	var out []Doubt
	for _, d := range n.h.Doubts {
		if d.Change.forced() && d.FedID == n.h.FedID && d.Epoch == n.h.Epoch {
			out = append(out, d)
		}
	}
	return out
}

// floor is the lowest epoch this DC may move to: the target of every
// forced removal it voted for and does not know the outcome of (it doubts
// it, or still holds its lock); 0 when there is none.
func (n *Node) floor() uint64 {
	var f uint64
	for _, d := range n.blocking() {
		f = max(f, d.ToEpoch)
	}
	if l := n.h.Lock; l != nil && !l.Own && l.Change.forced() && l.FedID == n.h.FedID && l.Epoch == n.h.Epoch {
		f = max(f, l.ToEpoch)
	}
	return f
}

// lockBlocked returns why this DC does not vote for operation opID of
// coordinator coord making change c, or "" if it may: a DC that doubts a
// forced removal D votes only for D itself or for a forced removal of D's
// coordinator, and never for an operation of a DC that D removes.
func (n *Node) lockBlocked(opID, coord string, c Change) string {
	for _, d := range n.blocking() {
		if d.OpID == opID {
			continue
		}
		if d.Change.removes(coord) {
			return fmt.Sprintf("took part in operation %s of %s, which force-removed %s and may have committed at epoch %d: it takes no part in operations of %s", d.OpID, d.Coordinator, coord, d.ToEpoch, coord)
		}
		if !c.forced() || !c.removes(d.Coordinator) {
			return fmt.Sprintf("is in doubt about operation %s of %s (%s), which may have committed at epoch %d: until it hears from %s it takes part only in a forced removal of %s", d.OpID, d.Coordinator, describe(d.Change), d.ToEpoch, d.Coordinator, d.Coordinator)
		}
	}
	return ""
}

// ---- time ----

// Tick tells the node that time passed: it expires deadlines, sends
// heartbeats, resends unanswered phase messages and times out phases.
func (n *Node) Tick(now time.Time) {
	n.now = now
	if n.h.Lock != nil && now.Sub(n.saved) >= savePeriod {
		n.dirty = true // keeps SavedAt fresh: see rebase
	}
	n.expire(now)
	n.resendAborts(now)
	if o := n.op; o != nil {
		if now.Sub(o.phaseStart) >= n.phaseTimeout() {
			name := n.firstMissing()
			d, _ := n.dcByName(name)
			if o.phase == phProbe {
				n.failOp(now, vipsmart.Errorf(vipsmart.ETIMEOUT, "", "%s did not answer within %s; %s", n.probeWhat(name), n.phaseTimeout(), n.probeAdvice(name)))
			} else {
				n.failOp(now, vipsmart.Errorf(vipsmart.ETIMEOUT, "", "%s (%s) did not answer the %s within %s; the operation was rolled back", name, d.AddrPort(), o.phase, n.phaseTimeout()))
			}
		} else if now.Sub(o.lastSend) >= n.resendEvery() {
			n.sendPhase(now, true)
		}
	}
	if n.h.memberish() && (n.lastHB.IsZero() || now.Sub(n.lastHB) >= n.cfg.HeartbeatInterval || now.Before(n.lastHB)) {
		n.lastHB = now
		for _, d := range n.h.Members {
			if d.Name == n.h.Self.Name {
				continue
			}
			m := n.newMsg(MsgHeartbeat, d)
			m.Last, m.Founding = n.h.Last, n.h.Founding
			m.Report = n.report()
			n.quorumOut(now, &m)
			n.send(m)
		}
	}
	n.reachability(now)
}

func (n *Node) window() time.Duration {
	return time.Duration(n.cfg.HeartbeatMisses) * n.cfg.HeartbeatInterval
}

func (n *Node) reachability(now time.Time) {
	for _, d := range n.h.Members {
		if d.Name == n.h.Self.Name {
			continue
		}
		p := n.peers[d.Name]
		if p == nil {
			continue
		}
		r := now.Sub(p.lastSeen) <= n.window()
		if r != p.reachable {
			p.reachable = r
			if r {
				n.event(now, vipsmart.EventHealth, "", fmt.Sprintf("%s is reachable (epoch %d)", d.Name, p.lastEpoch))
			} else {
				n.event(now, vipsmart.EventHealth, "", fmt.Sprintf("%s is unreachable: not heard from for %s", d.Name, n.window()))
			}
		}
	}
}

// expire applies a passed deadline.
func (n *Node) expire(now time.Time) {
	l := n.h.Lock
	if l == nil || now.Before(l.Deadline) {
		return
	}
	if l.Own {
		if n.op != nil && n.op.id == l.OpID {
			n.failOp(now, vipsmart.Errorf(vipsmart.ETIMEOUT, "", "operation %s did not finish before its lock expired (%s); it was rolled back", l.OpID, n.ttl(l.Change)))
			return
		}
		n.releaseLock(now, "the lock of operation "+l.OpID+" expired")
		return
	}
	if n.h.Status != vipsmart.StatusInvited {
		// A lock granted to another coordinator expired without commit or
		// abort: the operation is in doubt. Doubts are never dropped while
		// they matter (see docs/federation.md): they end with the epoch, an
		// abort, or news that the coordinator is past the operation.
		n.h.Doubts = slices.DeleteFunc(n.h.Doubts, func(d Doubt) bool { return d.OpID == l.OpID })
		n.h.Doubts = append(n.h.Doubts, Doubt{FedID: l.FedID, Epoch: l.Epoch, ToEpoch: l.ToEpoch, OpID: l.OpID, Coordinator: l.Coordinator.Name, Change: slimChange(l.Change), Seq: l.Seq})
	}
	n.releaseLock(now, fmt.Sprintf("operation %s of %s did not commit before its deadline", l.OpID, l.Coordinator.Name))
}

// releaseLock drops the lock and reverts the temporary status.
func (n *Node) releaseLock(now time.Time, why string) {
	l := n.h.Lock
	if l == nil {
		return
	}
	n.h.Lock = nil
	n.dirty = true
	if n.prep != nil && n.prep.opID == l.OpID {
		n.prep = nil
	}
	switch n.h.Status {
	case vipsmart.StatusInvited:
		n.setStatus(now, vipsmart.StatusStandalone, l.OpID, why)
	case vipsmart.StatusCandidateReview, vipsmart.StatusLeaving:
		n.setStatus(now, vipsmart.StatusMember, l.OpID, why)
	}
}

func (n *Node) ttl(c Change) time.Duration {
	if c.Kind == AddDC {
		return min(n.cfg.InviteTTL, n.cfg.ReviewTTL)
	}
	return n.cfg.ReviewTTL
}

// ---- reads ----

// Status returns the local status (VIPs is left to the daemon).
func (n *Node) Status(now time.Time) vipsmart.StatusInfo {
	s := vipsmart.StatusInfo{
		Name: n.h.Self.Name, Address: n.h.Self.Address, Port: n.h.Self.Port,
		Status: n.h.Status, Epoch: n.h.Epoch, GIPs: len(n.gips),
	}
	if l := n.h.Lock; l != nil {
		s.OpID = l.OpID
		d := l.Deadline
		s.Deadline = &d
		left := vipsmart.Duration(max(0, d.Sub(now)))
		s.TimeLeft = &left
	}
	if n.h.memberish() {
		s.Federation = &vipsmart.FederationInfo{ID: n.h.FedID, Epoch: n.h.Epoch, Members: slices.Clone(n.h.Members)}
	}
	return s
}

// DCs returns the members with what this DC knows of them.
func (n *Node) DCs(now time.Time) []vipsmart.DCInfo {
	var out []vipsmart.DCInfo
	for _, d := range n.h.Members {
		info := vipsmart.DCInfo{DC: d}
		if d.Name == n.h.Self.Name {
			info.Self, info.Reachable, info.Status, info.LastEpoch = true, true, n.h.Status, n.h.Epoch
			info.VIPsDown, info.Holding, info.VIPsUnknown = slices.Clone(n.rep.VIPsDown), slices.Clone(n.rep.Holding), slices.Clone(n.rep.VIPsUnknown)
			t := now
			info.LastSeen = &t
		} else if p := n.peers[d.Name]; p != nil {
			info.Reachable = now.Sub(p.lastSeen) <= n.window()
			info.Status, info.LastEpoch = p.status, p.lastEpoch
			if p.lastEpoch < n.h.Epoch && p.status.Temporary() {
				// Heard before a decision this DC has since applied (e.g.
				// the candidate's invited, sent before the commit that
				// made it a member): no longer true, and not known
				// until the DC is heard again.
				info.Status = ""
			}
			info.VIPsDown, info.Holding, info.VIPsUnknown = slices.Clone(p.report.VIPsDown), slices.Clone(p.report.Holding), slices.Clone(p.report.VIPsUnknown)
			t := p.lastSeen
			info.LastSeen = &t
		}
		out = append(out, info)
	}
	return out
}

// GIPs returns the federation's GIPs sorted by name.
// The slice is the caller's, but the GIPs' Placements are shared with the
// node: callers must not modify them.
func (n *Node) GIPs() []vipsmart.GIP {
	return slices.Clone(n.SortedGIPs())
}

// SortedGIPs is GIPs without the copy: the node's own sorted list, which
// the caller must not change (neither the slice nor the GIPs). A change
// of the GIP set makes a new list (GIPVersion changes), so a list once
// returned stays as it was: the daemon's evaluation reads 10,000 GIPs
// from it without copying them at each change.
func (n *Node) SortedGIPs() []vipsmart.GIP {
	if n.gipList == nil {
		// Not cloned: the GIPs' Placements are shared (see GIPs).
		n.gipList = make([]vipsmart.GIP, 0, len(n.gips))
		for _, g := range n.gips {
			n.gipList = append(n.gipList, g)
		}
		slices.SortFunc(n.gipList, byName)
	}
	return n.gipList
}

// byName orders GIPs by name (names are unique in a set of GIPs).
func byName(a, b vipsmart.GIP) int { return strings.Compare(a.Name, b.Name) }

// GIPVersion changes whenever the GIP set changes (it is not persisted).
func (n *Node) GIPVersion() uint64 { return n.gipVersion }

// LocalChangeAllowed returns an ESTATE error while the DC is invited or in
// candidate-review (VIP changes are refused then), nil otherwise.
func (n *Node) LocalChangeAllowed() error {
	l := n.h.Lock
	switch n.h.Status {
	case vipsmart.StatusInvited, vipsmart.StatusCandidateReview:
		who, left := "", ""
		if l != nil {
			who = " by operation " + l.OpID + " of " + l.Coordinator.Name
			left = fmt.Sprintf(" (until %s)", l.Deadline.UTC().Format(time.RFC3339))
		}
		return vipsmart.Errorf(vipsmart.ESTATE, "", "%s is %s%s%s: it refuses VIP and GIP changes until the operation commits, aborts or expires", n.h.Self.Name, n.h.Status, who, left)
	}
	return nil
}

// SetLocalVIPs gives the node the daemon's VIPs (name -> address); a member
// checks GIP placements on itself against them. Until it is called (nil) no
// such check is made.
func (n *Node) SetLocalVIPs(vips map[string]netip.Addr) {
	if vips == nil {
		n.vips = nil
		return
	}
	n.vips = make(map[string]netip.Addr, len(vips))
	for k, v := range vips {
		n.vips[k] = v
	}
}

// SetLocalReport sets what this DC reports to the others in its
// heartbeats (see Report).
func (n *Node) SetLocalReport(r Report) {
	n.rep = r.clone()
}

func (n *Node) report() *Report {
	if len(n.rep.VIPsDown) == 0 && len(n.rep.Holding) == 0 && len(n.rep.VIPsUnknown) == 0 {
		return nil
	}
	r := n.rep.clone()
	return &r
}

// lockDesc describes the lock this DC holds, for "busy" messages: what
// holds it, and until when at the latest (it ends earlier when its
// coordinator commits or aborts the operation).
func (n *Node) lockDesc(now time.Time) string {
	l := n.h.Lock
	if l == nil {
		return ""
	}
	left := max(0, l.Deadline.Sub(now)).Round(100 * time.Millisecond)
	if l.Own {
		what := "running"
		if n.op != nil && n.op.id == l.OpID {
			what = fmt.Sprintf("in the %s phase", n.op.phase)
		}
		return fmt.Sprintf("is coordinating operation %s (%s, %s): it ends when that commits or fails, at the latest in %s", l.OpID, describe(l.Change), what, left)
	}
	return fmt.Sprintf("is locked by operation %s of %s (%s, %s): it ends when %s commits or aborts it, at the latest in %s", l.OpID, l.Coordinator.Name, describe(l.Change), n.h.Status, l.Coordinator.Name, left)
}

func (n *Node) newOpID() string {
	n.h.Counter++
	n.dirty = true
	if n.cfg.OpIDs != nil {
		return n.cfg.OpIDs()
	}
	return n.h.Self.Name + "-" + strconv.FormatUint(n.h.Counter, 10)
}

func (n *Node) dcByName(name string) (vipsmart.DC, bool) {
	if o := n.op; o != nil && o.cand != nil && o.cand.Name == name {
		return *o.cand, true
	}
	if o := n.op; o != nil {
		for _, t := range o.probes {
			if t.dc.Name == name {
				return t.dc, true
			}
		}
	}
	return findDC(n.h.Members, name)
}
