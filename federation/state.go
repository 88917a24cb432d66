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
	Counter uint64     `json:"counter"`
	Coord   *coordRec  `json:"coord,omitempty"`
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
		return withoutDC(members, c.Name)
	case RotateIdentity:
		out := slices.Clone(members)
		for i := range out {
			if c.DC != nil && out[i].Name == c.DC.Name {
				out[i].Identity = c.DC.Identity
			}
		}
		return out
	}
	return slices.Clone(members)
}

// gipChanges returns the GIPs written and deleted by c, given the GIPs
// before it. Removing a DC drops its placements.
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
		for _, name := range sortedKeys(gips) {
			g := gips[name]
			if slices.ContainsFunc(g.Placements, func(p vipsmart.Placement) bool { return p.DC == c.Name }) {
				g = cloneGIP(g)
				g.Placements = slices.DeleteFunc(g.Placements, func(p vipsmart.Placement) bool { return p.DC == c.Name })
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
