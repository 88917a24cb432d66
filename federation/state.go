package federation

import (
	"encoding/json"
	"slices"
	"sort"
	"time"

	"github.com/vipsmart/vipsmart"
)

// recordVersion is the version of the persisted record's encoding.
const recordVersion = 1

// lockRec is a lock this DC holds for an operation: the invite of a
// candidate, the candidate-review or leaving of a member, or the
// coordinator's own lock (Own).
type lockRec struct {
	OpID        string      `json:"op_id"`
	Coordinator vipsmart.DC `json:"coordinator"`
	Deadline    time.Time   `json:"deadline"`
	FedID       string      `json:"fed_id"`
	Epoch       uint64      `json:"epoch"`
	ToEpoch     uint64      `json:"to_epoch,omitempty"`
	Change      Change      `json:"change"`
	Own         bool        `json:"own,omitempty"`
	Seq         uint64      `json:"seq,omitempty"` // the coordinator's sequence number of the operation
	// Members are an invited candidate's members-to-be (from the invite).
	Members []vipsmart.DC `json:"members,omitempty"`
}

// inviteMemo is the last invite a DC accepted. A standalone DC that still
// remembers it (and did nothing else since) joins the federation when it
// hears of a commit of that federation that lists it.
type inviteMemo struct {
	FedID       string        `json:"fed_id"`
	OpID        string        `json:"op_id"`
	Coordinator string        `json:"coordinator"`
	Members     []vipsmart.DC `json:"members,omitempty"`
}

// coordRec is persisted while this DC coordinates an operation that it has
// not committed: after a restart it aborts the operation.
type coordRec struct {
	OpID         string        `json:"op_id"`
	FedID        string        `json:"fed_id"`
	Epoch        uint64        `json:"epoch"`
	Participants []vipsmart.DC `json:"participants"`
}

// abortRec is an abort this DC (the coordinator of a failed operation)
// resends until every participant answered it, or until Until passes (by
// then every lock granted for the operation has expired; a later, delayed
// lock is refused by the participants that heard this DC since).
type abortRec struct {
	OpID  string        `json:"op_id"`
	FedID string        `json:"fed_id"`
	Epoch uint64        `json:"epoch"`
	To    []vipsmart.DC `json:"to"`
	Until time.Time     `json:"until"`
}

// hardState is the persisted record (the GIPs are persisted per key beside
// it).
type hardState struct {
	Version  int             `json:"version"`
	Self     vipsmart.DC     `json:"self"`
	Status   vipsmart.Status `json:"status"`
	FedID    string          `json:"fed_id,omitempty"`
	Epoch    uint64          `json:"epoch"`
	Members  []vipsmart.DC   `json:"members,omitempty"`
	Lock     *lockRec        `json:"lock,omitempty"`
	Doubts   []Doubt         `json:"doubts,omitempty"`
	Last     *Decision       `json:"last,omitempty"`
	Founding *Decision       `json:"founding,omitempty"`
	Invite   *inviteMemo     `json:"invite,omitempty"`
	// Tombs are the decisions by which this DC left its past federations
	// (one per federation, the newest 16): a member that missed the
	// departure learns it from them even after the DC joined elsewhere.
	Tombs   []Decision `json:"tombs,omitempty"`
	Counter uint64     `json:"counter"` // operations started as a coordinator (their sequence numbers)
	// Committed is the sequence number of the last operation this DC
	// committed as a coordinator.
	Committed uint64    `json:"committed,omitempty"`
	Coord     *coordRec `json:"coord,omitempty"`
	// Quorum is the state's quorum (see State.Quorum).
	Quorum []string `json:"quorum,omitempty"`
	// Aborts are the aborts being resent.
	Aborts []abortRec `json:"aborts,omitempty"`
	// Renounced are operations this DC, a candidate, answered a probe
	// about: it will not join through them (the newest 64).
	Renounced []string `json:"renounced,omitempty"`
	// SavedAt is the node's clock when the record was persisted. A
	// restart whose clock is behind it counts the deadlines from SavedAt,
	// so that a backward clock jump across a restart never stretches a
	// temporary status beyond what was left of it.
	SavedAt time.Time `json:"saved_at,omitzero"`
}

func (h *hardState) encode() []byte {
	b, err := json.Marshal(h.persisted())
	if err != nil {
		panic("federation: encoding the record: " + err.Error())
	}
	return b
}

// memberish reports whether the DC is in a federation (member,
// candidate-review or leaving).
func (h *hardState) memberish() bool { return h.FedID != "" }

func sortDCs(ds []vipsmart.DC) {
	sort.Slice(ds, func(i, j int) bool { return ds[i].Name < ds[j].Name })
}

func findDC(ds []vipsmart.DC, name string) (vipsmart.DC, bool) {
	for _, d := range ds {
		if d.Name == name {
			return d, true
		}
	}
	return vipsmart.DC{}, false
}

func withoutDC(ds []vipsmart.DC, name string) []vipsmart.DC {
	out := make([]vipsmart.DC, 0, len(ds))
	for _, d := range ds {
		if d.Name != name {
			out = append(out, d)
		}
	}
	return out
}

// removed returns the DCs change c takes out of the federation.
func (c Change) removed() []string {
	switch c.Kind {
	case RemoveDC, Leave:
		if len(c.Names) > 0 {
			return c.Names
		}
		return []string{c.Name}
	}
	return nil
}

// removes reports whether c takes DC name out of the federation.
func (c Change) removes(name string) bool { return slices.Contains(c.removed(), name) }

// forced reports whether c is a forced removal.
func (c Change) forced() bool { return c.Kind == RemoveDC && c.Force }

// applyMembers returns the member list after c.
func applyMembers(members []vipsmart.DC, c Change) []vipsmart.DC {
	switch c.Kind {
	case AddDC:
		out := slices.Clone(members)
		if c.Founder != nil {
			out = []vipsmart.DC{*c.Founder}
		}
		if c.DC != nil {
			out = append(withoutDC(out, c.DC.Name), *c.DC)
		}
		sortDCs(out)
		return out
	case RemoveDC, Leave:
		out := slices.Clone(members)
		for _, name := range c.removed() {
			out = withoutDC(out, name)
		}
		return out
	case RotateIdentity:
		out := slices.Clone(members)
		for i := range out {
			if c.DC != nil && out[i].Name == c.DC.Name {
				out[i].Identity = c.DC.Identity
			}
		}
		return out
	case SetNodes:
		out := slices.Clone(members)
		for i := range out {
			if c.DC != nil && out[i].Name == c.DC.Name {
				out[i].Nodes = slices.Clone(c.DC.Nodes)
			}
		}
		return out
	}
	return slices.Clone(members)
}

// quorumAfter returns the quorum of the state that change c makes from a
// state with the given members: the old members after a forced removal
// of several DCs, none after any other change.
func quorumAfter(members []vipsmart.DC, c Change) []string {
	if !c.forced() || len(c.removed()) < 2 || c.NewFedID != "" {
		return nil
	}
	q := make([]string, 0, len(members))
	for _, m := range members {
		q = append(q, m.Name)
	}
	sort.Strings(q)
	return q
}

// gipChanges returns the GIPs written and deleted by c, given the GIPs
// before it. Removing a DC drops its placements. The caller must not
// change put (a batch's GIPs are returned as they are).
func gipChanges(gips map[string]vipsmart.GIP, c Change) (put []vipsmart.GIP, del []string) {
	switch c.Kind {
	case PutGIP:
		if c.GIP != nil {
			put = append(put, cloneGIP(*c.GIP))
		}
	case ApplyGIPs:
		return batchChanges(gips, c.Batch)
	case DeleteGIP:
		if _, ok := gips[c.Name]; ok {
			del = append(del, c.Name)
		}
	case RemoveDC, Leave:
		gone := func(p vipsmart.Placement) bool { return c.removes(p.DC) }
		for _, name := range sortedKeys(gips) {
			g := gips[name]
			if slices.ContainsFunc(g.Placements, gone) {
				g = cloneGIP(g)
				g.Placements = slices.DeleteFunc(g.Placements, gone)
				put = append(put, g)
			}
		}
	}
	return put, del
}

func cloneGIP(g vipsmart.GIP) vipsmart.GIP {
	g.Placements = slices.Clone(g.Placements)
	return g
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func sortedGIPs(m map[string]vipsmart.GIP) []vipsmart.GIP {
	out := make([]vipsmart.GIP, 0, len(m))
	for _, k := range sortedKeys(m) {
		out = append(out, cloneGIP(m[k]))
	}
	return out
}
