package federation

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/vipsmart/vipsmart"
)

// ApplyGIPs commits many GIP changes (Proposal.Batch) as one operation:
// one lock round, one epoch step, every member or none (vipsmart apply).
const ApplyGIPs ProposalKind = "apply-gips"

// The bounds of one batch. A lock message carries the whole batch, so it
// must fit the peer body limit (httpapi.MaxPeerBody, 16 MiB) with room to
// spare: MaxBatchBytes bounds an over-estimate of the batch's JSON size.
const (
	MaxBatchChanges = 100_000
	MaxBatchBytes   = 12 << 20
)

// MaxStateBytes bounds an over-estimate of the JSON size of the
// federation's GIPs that a batch may leave: a prepare (dc add) and a state
// answer (a member catching up) carry every GIP in one peer message, which
// must fit the same 16 MiB limit with the members beside them. A batch
// that would take the GIPs past it is refused (one that shrinks them never
// is): otherwise a few large applies leave a federation that can neither
// add a DC nor bring back a member that missed a commit.
const MaxStateBytes = 12 << 20

// Batch is the GIP changes of one ApplyGIPs operation: GIPs written
// (created or replaced) and GIPs deleted, each name at most once. Count
// and Digest identify the content; a batch travels in full only in the
// lock messages (and the locks members persist). Decisions (commits,
// heartbeats, the last decision a DC keeps, doubts) carry it slim, Count
// and Digest alone: a member applies a slim decision from the batch of the
// lock it holds for that operation, or else catches up by fetching the
// state, so that the size of a batch never multiplies with heartbeats.
type Batch struct {
	Put    []vipsmart.GIP `json:"put,omitempty"`
	Delete []string       `json:"delete,omitempty"`
	Count  int            `json:"count"`
	Digest string         `json:"digest"`
	// raw caches the JSON encoding of a batch (Cache): a lock message
	// goes to every member, each encoded on its own.
	raw []byte
	// bin caches its binary encoding (batchcodec.go), made by Propose
	// too: the transport sends it to members that read it.
	bin []byte
	// checked is the batch itself once validate accepted it: a lock
	// received is validated by the transport's delivery, then Admit,
	// then Step, each on the same batch, which nothing changes after it
	// is decoded. A copy of the batch (another address) is checked anew.
	checked *Batch
}

// batchJSON is Batch without its methods (the default encoding).
type batchJSON Batch

// MarshalJSON encodes b, from the cached encoding when it has one.
func (b *Batch) MarshalJSON() ([]byte, error) {
	if b.raw != nil {
		return b.raw, nil
	}
	return json.Marshal((*batchJSON)(b))
}

// Encoded returns the cached JSON encoding of b (Cache), or nil. A transport may send it as it is instead of encoding it again
// for every peer (httpapi/peerbatch.go).
func (b *Batch) Encoded() []byte {
	if b == nil {
		return nil
	}
	return b.raw
}

// Cache encodes b once and keeps the encoding (MarshalJSON, Encoded). The
// batch must not change afterwards.
func (b *Batch) Cache() error {
	raw, err := json.Marshal((*batchJSON)(b))
	if err != nil {
		return err
	}
	b.raw = raw
	return nil
}

// NewBatch returns the batch of puts and deletes, sorted, with its Count
// and Digest. A GIP's placements already in order (as a manifest usually
// lists them) are shared with put, not copied: the caller must not change
// them afterwards (the daemon hands over the GIPs of an apply request).
func NewBatch(put []vipsmart.GIP, del []string) *Batch {
	b := &Batch{Put: make([]vipsmart.GIP, 0, len(put)), Delete: slices.Clone(del)}
	for _, g := range put {
		if !placementsSorted(g.Placements) {
			g = cloneGIP(g)
			vipsmart.SortPlacements(g.Placements)
		}
		b.Put = append(b.Put, g)
	}
	sort.Slice(b.Put, func(i, j int) bool { return b.Put[i].Name < b.Put[j].Name })
	sort.Strings(b.Delete)
	b.Count = len(b.Put) + len(b.Delete)
	b.Digest = b.digest()
	return b
}

// placementsSorted reports whether ps are in the order SortPlacements
// gives them: priority, best first, then DC name (a DC named twice, which
// Validate refuses, counts as out of order).
func placementsSorted(ps []vipsmart.Placement) bool {
	for i := 1; i < len(ps); i++ {
		a, b := ps[i-1], ps[i]
		if a.Priority < b.Priority || a.Priority == b.Priority && a.DC >= b.DC {
			return false
		}
	}
	return true
}

// full reports whether b carries its content (not only its identity).
func (b *Batch) full() bool { return b != nil && len(b.Put)+len(b.Delete) == b.Count }

// slim returns b without its content.
func (b *Batch) slim() *Batch {
	if b == nil {
		return nil
	}
	return &Batch{Count: b.Count, Digest: b.Digest}
}

// digest is a SHA-256 over the batch's content, field by field.
func (b *Batch) digest() string {
	// The fields are hashed in the order and form below; they are
	// gathered in buf and hashed a few KiB at a time (one Write per field
	// cost a third of a member's check of 10,000 GIPs).
	h := sha256.New()
	buf := make([]byte, 0, 8<<10)
	flush := func() {
		if len(buf) >= 7<<10 {
			h.Write(buf)
			buf = buf[:0]
		}
	}
	str := func(s string) {
		buf = binary.AppendUvarint(buf, uint64(len(s)))
		buf = append(buf, s...)
	}
	num := func(n uint64) { buf = binary.AppendUvarint(buf, n) }
	num(uint64(len(b.Put)))
	var addr []byte
	for _, g := range b.Put {
		str(g.Name)
		addr = g.Address.AppendTo(addr[:0]) // as str(g.Address.String()), without a string per GIP
		buf = binary.AppendUvarint(buf, uint64(len(addr)))
		buf = append(buf, addr...)
		if g.Partition == "" || g.Partition == vipsmart.PartitionAvailable {
			str(string(g.Mode))
		} else {
			// Any other partition policy (consistent) is hashed with the
			// mode, as "MODE+POLICY" (no mode has a "+"): the digest
			// covers it, and a batch without one keeps the digest it had
			// before (members of different versions compare it).
			buf = binary.AppendUvarint(buf, uint64(len(g.Mode)+1+len(g.Partition)))
			buf = append(append(append(buf, g.Mode...), '+'), g.Partition...)
		}
		if g.Preempt {
			num(1)
		} else {
			num(0)
		}
		num(uint64(len(g.Placements)))
		for _, p := range g.Placements {
			str(p.DC)
			num(uint64(p.Priority))
			str(p.VIP)
			flush()
		}
		flush()
	}
	num(uint64(len(b.Delete)))
	for _, n := range b.Delete {
		str(n)
		flush()
	}
	h.Write(buf)
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// size over-estimates the JSON size of b's content.
func (b *Batch) size() int {
	n := 64
	for i := range b.Put {
		n += gipSize(&b.Put[i], len(b.Put[i].Address.String()))
	}
	for _, d := range b.Delete {
		n += 4 + 2*len(d)
	}
	return n
}

// gipSize over-estimates the JSON size of g, whose address is addrLen
// characters long (Batch.size, MaxStateBytes).
func gipSize(g *vipsmart.GIP, addrLen int) int {
	n := 96 + len(g.Name) + 2*addrLen
	for _, p := range g.Placements {
		n += 48 + len(p.DC) + len(p.VIP)
	}
	return n
}

// validate checks a batch received from a peer: well-formed GIPs, each
// name once, and (when it carries its content) the digest.
func (b *Batch) validate() error {
	if b == nil {
		return fmt.Errorf("apply-gips without a batch")
	}
	if b.checked == b {
		return nil
	}
	if b.Count < 1 || b.Count > MaxBatchChanges {
		return fmt.Errorf("batch of %d changes: give 1 to %d", b.Count, MaxBatchChanges)
	}
	if len(b.Put)+len(b.Delete) == 0 {
		if len(b.Digest) != len("sha256:")+64 {
			return fmt.Errorf("slim batch without a digest")
		}
		return nil
	}
	if !b.full() {
		return fmt.Errorf("batch says %d changes but carries %d", b.Count, len(b.Put)+len(b.Delete))
	}
	seen := make(map[string]bool, b.Count)
	for _, g := range b.Put {
		// g is a copy: Validate sets defaults in its scalar fields only
		// (never in Placements), so the batch and its digest stay as
		// received without cloning 10,000 placement lists.
		if err := g.Validate(); err != nil {
			return fmt.Errorf("batch GIP %s: %w", g.Name, err)
		}
		if seen[g.Name] {
			return fmt.Errorf("batch names GIP %s twice", g.Name)
		}
		seen[g.Name] = true
	}
	for _, name := range b.Delete {
		if err := vipsmart.ValidateName("delete", name); err != nil {
			return err
		}
		if seen[name] {
			return fmt.Errorf("batch names GIP %s twice", name)
		}
		seen[name] = true
	}
	if b.digest() != b.Digest {
		return fmt.Errorf("batch digest %s does not match its content", b.Digest)
	}
	b.checked = b
	return nil
}

// proposeBatch checks an ApplyGIPs proposal at the coordinator and returns
// its change (with the batch sorted, counted and digested).
func (n *Node) proposeBatch(now time.Time, p Proposal) (Change, error) {
	c := Change{Kind: ApplyGIPs, By: p.By}
	if err := n.needMember("change GIPs"); err != nil {
		return c, err
	}
	if p.ExpectEpoch != 0 && p.ExpectEpoch != n.h.Epoch {
		last := ""
		if l := n.h.Last; l != nil {
			last = fmt.Sprintf(" (last change: operation %s of %s: %s)", l.OpID, l.Coordinator, describe(l.Change))
		}
		return c, vipsmart.Errorf(vipsmart.ECONFLICT, "expected_epoch", "the federation changed since the diff this apply is based on: it is at epoch %d, the diff was made at epoch %d%s; nothing was changed: run vipsmart diff again and apply what it shows", n.h.Epoch, p.ExpectEpoch, last)
	}
	if p.Batch == nil || len(p.Batch.Put)+len(p.Batch.Delete) == 0 {
		return c, vipsmart.Errorf(vipsmart.EINVALID, "batch", "the batch changes nothing: there is nothing to commit")
	}
	b := NewBatch(p.Batch.Put, p.Batch.Delete)
	if b.Count > MaxBatchChanges {
		return c, vipsmart.Errorf(vipsmart.EINVALID, "batch", "the batch has %d GIP changes, more than the %d one federation change can carry: apply the files in parts", b.Count, MaxBatchChanges)
	}
	if sz := b.size(); sz > MaxBatchBytes {
		return c, vipsmart.Errorf(vipsmart.EINVALID, "batch", "the batch's GIP changes take about %.1f MiB, more than the %d MiB one federation change can carry: apply the files in parts", float64(sz)/(1<<20), MaxBatchBytes>>20)
	}
	members := make(map[string]bool, len(n.h.Members))
	for _, m := range n.h.Members {
		members[m.Name] = true
	}
	touched := make(map[string]bool, b.Count)
	for _, name := range b.Delete {
		if touched[name] {
			return c, vipsmart.Errorf(vipsmart.EINVALID, "batch", "GIP %s is changed twice in one batch: give each GIP once", name)
		}
		touched[name] = true
		if _, ok := n.gips[name]; !ok {
			return c, vipsmart.Errorf(vipsmart.ENOTFOUND, "name", "GIP %s does not exist, so it cannot be deleted", name)
		}
	}
	for i := range b.Put {
		g := &b.Put[i]
		if err := g.Validate(); err != nil {
			e := vipsmart.Errorf(vipsmart.ErrorCodeOf(err), "", "GIP %s: %v", g.Name, err)
			return c, e
		}
		if touched[g.Name] {
			return c, vipsmart.Errorf(vipsmart.EINVALID, "batch", "GIP %s is changed twice in one batch: give each GIP once", g.Name)
		}
		touched[g.Name] = true
		for _, pl := range g.Placements {
			if !members[pl.DC] {
				return c, vipsmart.Errorf(vipsmart.EINVALID, "placements", "GIP %s: placement %s is not a member of federation %s (members: %s)", g.Name, pl.DC, n.h.FedID, names(n.h.Members))
			}
		}
		if err := n.checkOwnPlacements(g); err != nil {
			return c, err
		}
	}
	// Addresses stay unique once the batch is applied, and the GIPs fit
	// a state transfer (MaxStateBytes).
	addrs := make(map[string]string, len(n.gips)+len(b.Put))
	before, after := 0, 0
	for name, g := range n.gips {
		a := g.Address.String()
		sz := gipSize(&g, len(a))
		before += sz
		if !touched[name] {
			addrs[a] = name
			after += sz
		}
	}
	for i := range b.Put {
		g := &b.Put[i]
		a := g.Address.String()
		if other, ok := addrs[a]; ok {
			return c, vipsmart.Errorf(vipsmart.ECONFLICT, "address", "GIP %s: address %s is already used by GIP %s", g.Name, a, other)
		}
		addrs[a] = g.Name
		after += gipSize(g, len(a))
	}
	if after > MaxStateBytes && after > before {
		return c, vipsmart.Errorf(vipsmart.EINVALID, "batch", "after this batch the federation's %d GIPs would take about %.1f MiB, more than the %d MiB that adding a DC or a member catching up can carry in one message (now about %.1f MiB): delete GIPs first or apply fewer (docs/apply.md, \"Large changes\")", len(addrs), float64(after)/(1<<20), MaxStateBytes>>20, float64(before)/(1<<20))
	}
	b.Digest = b.digest()
	// Encoded once in binary for every member's lock; in JSON only by the
	// transport, for an older member that does not read the binary.
	b.CacheBinary()
	c.Batch = b
	return c, nil
}

// persisted is h as it is written: a lock keeps its batch slim. The batch
// is only needed to apply the commit without a state transfer; a DC that
// restarts while locked has lost it and, if the batch commits, fetches the
// state (as a DC that missed the lock would). So a batch of megabytes is
// never written with every record of the lock's lifetime.
func (h *hardState) persisted() *hardState {
	if h.Lock == nil || !h.Lock.Change.Batch.full() {
		return h
	}
	c := *h
	l := *h.Lock
	l.Change = slimChange(l.Change)
	c.Lock = &l
	return &c
}

// batchProblem checks a batch as a member does when it is asked for its
// lock: against this DC's own VIPs, and (a lock is peer input: the
// coordinator checked the same at the same epoch, but a forged or broken
// one may not have) that every placement names a member and that the
// GIPs' addresses stay unique once the batch is applied. It allocates
// one map of the batch's addresses, without pointers (a member's heap
// holds the batch and every GIP then: a collection costs more than the
// check).
func (n *Node) batchProblem(b *Batch) *vipsmart.Error {
	if b == nil {
		return nil
	}
	members := make([]string, len(n.h.Members)) // a few: scanned
	for i := range n.h.Members {
		members[i] = n.h.Members[i].Name
	}
	// Addresses carry no zone (Validate refuses one): 16 bytes and the
	// family are the whole address.
	type addrKey struct {
		a   [16]byte
		is4 bool
	}
	key := func(a netip.Addr) addrKey { return addrKey{a.As16(), a.Is4()} }
	addrs := make(map[addrKey]int32, len(b.Put))
	for i := range b.Put {
		g := &b.Put[i]
		for _, pl := range g.Placements {
			if !slices.Contains(members, pl.DC) {
				return vipsmart.Errorf(vipsmart.EINVALID, "placements", "is asked to lock a batch that places GIP %s on %s, which is not a member of federation %s", g.Name, pl.DC, n.h.FedID)
			}
		}
		if e := n.ownPlacementProblem(g); e != nil {
			return e
		}
		k := key(g.Address)
		if j, ok := addrs[k]; ok {
			return vipsmart.Errorf(vipsmart.ECONFLICT, "address", "is asked to lock a batch that gives GIPs %s and %s the same address %s", b.Put[j].Name, g.Name, g.Address)
		}
		addrs[k] = int32(i)
	}
	// A GIP that stays (not written nor deleted by the batch) must not
	// have the address of one the batch writes. The batch's names are
	// sorted as NewBatch makes them; a batch that is not (a forged one)
	// gets a set of its names.
	var inBatch func(string) bool
	if slices.IsSortedFunc(b.Put, func(x, y vipsmart.GIP) int { return strings.Compare(x.Name, y.Name) }) && slices.IsSorted(b.Delete) {
		inBatch = func(name string) bool {
			_, put := slices.BinarySearchFunc(b.Put, name, cmpGIPName)
			_, del := slices.BinarySearch(b.Delete, name)
			return put || del
		}
	} else {
		set := make(map[string]bool, len(b.Put)+len(b.Delete))
		for i := range b.Put {
			set[b.Put[i].Name] = true
		}
		for _, name := range b.Delete {
			set[name] = true
		}
		inBatch = func(name string) bool { return set[name] }
	}
	for name, g := range n.gips {
		if j, ok := addrs[key(g.Address)]; ok && !inBatch(name) {
			return vipsmart.Errorf(vipsmart.ECONFLICT, "address", "is asked to lock a batch that gives GIP %s the address %s of GIP %s", b.Put[j].Name, g.Address, name)
		}
	}
	return nil
}

// batchChanges returns the GIPs written and deleted by a full batch. put
// is the batch's own list, not a copy: the caller only reads it (putGIP
// keeps a clone of each), so 10,000 GIPs are not cloned twice.
func batchChanges(gips map[string]vipsmart.GIP, b *Batch) (put []vipsmart.GIP, del []string) {
	if !b.full() {
		return nil, nil
	}
	put = b.Put
	for _, name := range b.Delete {
		if _, ok := gips[name]; ok {
			del = append(del, name)
		}
	}
	return put, del
}

// withBatch returns c with its batch's content: c itself unless it is a
// slim ApplyGIPs change, then the content of the lock this DC holds for
// the same batch (nil batch if it holds none).
func (n *Node) withBatch(c Change) Change {
	if c.Kind != ApplyGIPs || c.Batch.full() {
		return c
	}
	if l := n.h.Lock; l != nil && l.Change.Kind == ApplyGIPs && l.Change.Batch.full() && c.Batch != nil && l.Change.Batch.Digest == c.Batch.Digest {
		return l.Change
	}
	c.Batch = nil
	return c
}

// canApplyBatch reports whether this DC can apply decision d's GIP
// changes: always unless d is a slim batch whose content this DC does not
// hold (it then fetches the state from a DC that is ahead).
func (n *Node) canApplyBatch(d Decision) bool {
	return d.Change.Kind != ApplyGIPs || n.withBatch(d.Change).Batch.full()
}

// slimChange returns c as decisions carry it (a batch without content).
func slimChange(c Change) Change {
	if c.Batch != nil {
		c.Batch = c.Batch.slim()
	}
	return c
}

// slimDecision returns d as it travels in commits and heartbeats.
func slimDecision(d Decision) Decision {
	d.Change = slimChange(d.Change)
	return d
}

// resendEvery is how long the coordinator waits before it resends an
// unanswered phase message: a heartbeat interval, or for a batch a third
// of the batch's phase timeout (3 s by default). A lock of 10,000 GIPs is
// megabytes that a member decodes and checks before it answers: resent
// each second, it made a loaded member decode it again and again, later
// still.
func (n *Node) resendEvery() time.Duration {
	if o := n.op; o != nil && o.change.Kind == ApplyGIPs {
		return max(n.cfg.HeartbeatInterval, n.phaseTimeout()/3)
	}
	return n.cfg.HeartbeatInterval
}

// phaseTimeout is how long the coordinator waits for the answers of one
// phase: PhaseTimeout, or for a batch (each member decodes, checks and
// persists the whole batch before it answers) at least 9/10 of the review
// TTL: the coordinator commits as soon as the last lock answer arrives,
// before its own lock (taken first, for the review TTL) expires.
func (n *Node) phaseTimeout() time.Duration {
	if o := n.op; o != nil && o.change.Kind == ApplyGIPs {
		return max(n.cfg.PhaseTimeout, n.cfg.ReviewTTL*9/10)
	}
	return n.cfg.PhaseTimeout
}

func describeBatch(c Change) string {
	b := c.Batch
	if b == nil {
		return "apply GIP changes"
	}
	if !b.full() {
		return fmt.Sprintf("apply %d GIP changes (%s)", b.Count, vipsmart.ShortIdentity(b.Digest))
	}
	return fmt.Sprintf("apply %d GIP changes: %d written, %d deleted", b.Count, len(b.Put), len(b.Delete))
}
