package federation

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/internal/jsonfast"
)

// This file holds what rebuilding a DC from its federation needs: the
// member side (RebuildState) and the rebuilt side (RebuildRecord). It adds
// no message type and no state to the protocol. A DC whose store was lost
// fetches, before it runs a Node at all, the state of its federation from
// one member over a synchronous peer route, checks it (RebuildRecord) and
// persists it as its record; its Node then starts as a member at that
// epoch. So the other members never hear from it at epoch 0 or as
// standalone: they see it come back at an epoch at least the one they last
// saw (RebuildState refuses a member behind that), and it catches up from
// there like any member that was cut off.

// rebuildSeqGap is how far a rebuilt DC's operation count jumps past the
// last one the member it rebuilds from heard of it.
const rebuildSeqGap = 1 << 20

// DescribeRecord returns the DC, the federation ("" when not in one) and
// the epoch of a persisted record (for the store's marker).
func DescribeRecord(record []byte) (dc, fedID string, epoch uint64, err error) {
	var h hardState
	if err := json.Unmarshal(record, &h); err != nil {
		return "", "", 0, err
	}
	if h.Version != recordVersion {
		return "", "", 0, fmt.Errorf("record version %d, this build reads %d", h.Version, recordVersion)
	}
	return h.Self.Name, h.FedID, h.Epoch, nil
}

// DescribeOwnRecord is DescribeRecord for a record this process has just
// encoded (the Update of a Ready, on its way to the store at every
// federation change): it reads only the version, the DC, the federation
// and the epoch, and skips the rest (members, lock, last decisions,
// tombs), whose decoding took a few per cent of a member's CPU (a
// federation change stores a record twice; BENCHMARKS.md, issue 9, msg9).
// A record read back from disk goes through DescribeRecord, which decodes
// all of it.
func DescribeOwnRecord(record []byte) (dc, fedID string, epoch uint64, err error) {
	if dc, fedID, epoch, ok := describeHead(record); ok {
		return dc, fedID, epoch, nil
	}
	var h struct {
		Version int `json:"version"`
		Self    struct {
			Name string `json:"name"`
		} `json:"self"`
		FedID string `json:"fed_id"`
		Epoch uint64 `json:"epoch"`
	}
	if err := json.Unmarshal(record, &h); err != nil {
		return "", "", 0, err
	}
	if h.Version != recordVersion {
		return "", "", 0, fmt.Errorf("record version %d, this build reads %d", h.Version, recordVersion)
	}
	return h.Self.Name, h.FedID, h.Epoch, nil
}

// describeHead reads the version, DC, federation and epoch from the head
// of a record as hardState.encode writes it (version, self with its name
// first, status, fed_id unless empty, epoch: the fields of hardState in
// order, each once) and stops there; ok is false for anything else.
func describeHead(b []byte) (dc, fedID string, epoch uint64, ok bool) {
	r := jsonfast.New(b)
	key := func(want string) bool { return r.OK() && string(r.Key()) == want }
	r.Expect('{')
	if !key("version") || r.Int() != recordVersion {
		return "", "", 0, false
	}
	r.Expect(',')
	if !key("self") {
		return "", "", 0, false
	}
	r.Expect('{')
	if !key("name") {
		return "", "", 0, false
	}
	dc = r.String()
	for r.Consume(',') {
		r.Key()
		r.Raw()
	}
	r.Expect('}')
	r.Expect(',')
	if !key("status") {
		return "", "", 0, false
	}
	_ = r.String()
	r.Expect(',')
	k := r.Key()
	if string(k) == "fed_id" {
		fedID = r.String()
		r.Expect(',')
		k = r.Key()
	}
	if string(k) != "epoch" {
		return "", "", 0, false
	}
	epoch = r.Uint64()
	if !r.OK() || !(r.Consume(',') || r.Consume('}')) {
		return "", "", 0, false
	}
	return dc, fedID, epoch, true
}

// RebuildState returns the state this member hands to DC name, which is
// rebuilding its lost store as a member of federation fedID. It refuses
// (ESTATE) when this DC is not a member of fedID or fedID does not list
// name, and (EBUSY, worth retrying) while name is still heard from (its
// old daemon may be running) or was last seen at an epoch ahead of this
// DC's.
func (n *Node) RebuildState(now time.Time, name, fedID string) (*State, error) {
	self := n.h.Self.Name
	switch {
	case name == self:
		return nil, vipsmart.Errorf(vipsmart.EINVALID, "from", "%s cannot rebuild itself from itself: name another member", self)
	case !n.h.memberish():
		return nil, vipsmart.Errorf(vipsmart.ESTATE, "fed_id", "%s is not a member of any federation (it is %s): rebuild from a member of federation %s", self, n.h.Status, fedID)
	case n.h.FedID != fedID:
		return nil, vipsmart.Errorf(vipsmart.ESTATE, "fed_id", "%s is a member of federation %s, not %s: check --rebuild-federation (vipsmart status on a member shows the id)", self, n.h.FedID, fedID)
	}
	if _, ok := findDC(n.h.Members, name); !ok {
		return nil, vipsmart.Errorf(vipsmart.ESTATE, "from", "federation %s (epoch %d) does not list %s: it was removed; start %s afresh and add it again with dc add", fedID, n.h.Epoch, name, name)
	}
	if p := n.peers[name]; p != nil {
		if ago := now.Sub(p.lastSeen); ago <= n.window() {
			return nil, vipsmart.Errorf(vipsmart.EBUSY, "from", "%s heard from %s %s ago (epoch %d, %s): a rebuild is for a DC whose store is lost; stop the daemon that still runs as %s", self, name, ago.Round(time.Millisecond), p.lastEpoch, p.status, name)
		}
		if p.lastEpoch > n.h.Epoch {
			return nil, vipsmart.Errorf(vipsmart.EBUSY, "from", "%s last saw %s at epoch %d, ahead of its own epoch %d: it is catching up; retry, or rebuild from a member that is up to date", self, name, p.lastEpoch, n.h.Epoch)
		}
	}
	if l := n.h.Lock; l != nil && (l.Change.Kind == RemoveDC || l.Change.Kind == Leave) && l.Change.removes(name) {
		return nil, vipsmart.Errorf(vipsmart.EBUSY, "from", "operation %s is removing %s from federation %s: wait for it to end", l.OpID, name, fedID)
	}
	st := n.state()
	if p := n.peers[name]; p != nil {
		st.Seq = p.seq
	}
	return st, nil
}

// RebuildRecord returns the record and GIPs with which DC self starts as a
// member of federation fedID from st, a state a member handed out with
// RebuildState. minEpoch is the epoch the lost store had reached, if known
// (0 otherwise): a state behind it is refused, so that the DC never goes
// back in epoch. The federation must list self under the same address and
// port.
func RebuildRecord(self vipsmart.DC, st State, fedID string, minEpoch uint64) ([]byte, []vipsmart.GIP, error) {
	if err := self.Validate(); err != nil {
		return nil, nil, err
	}
	if st.FedID != fedID {
		return nil, nil, vipsmart.Errorf(vipsmart.ESTATE, "fed_id", "the state handed out is of federation %q, not %s", st.FedID, fedID)
	}
	listed, ok := findDC(st.Members, self.Name)
	if !ok {
		return nil, nil, vipsmart.Errorf(vipsmart.ESTATE, "from", "federation %s (epoch %d) does not list %s: it was removed; start it afresh and add it again with dc add", fedID, st.Epoch, self.Name)
	}
	if !listed.SameEndpoint(self) {
		return nil, nil, vipsmart.Errorf(vipsmart.EINVALID, "advertise", "federation %s lists %s at %s, but this daemon advertises %s: start it with --advertise %s (or remove it and add it again at the new address)", fedID, self.Name, listed.AddrPort(), self.AddrPort(), listed.AddrPort())
	}
	if st.Epoch < minEpoch {
		return nil, nil, vipsmart.Errorf(vipsmart.EBUSY, "from", "the state of federation %s handed out is at epoch %d, behind epoch %d which the lost store had reached: rebuild from a member that is up to date", fedID, st.Epoch, minEpoch)
	}
	for _, d := range st.Members {
		if err := d.Validate(); err != nil {
			return nil, nil, vipsmart.Errorf(vipsmart.EINVALID, "members", "the state handed out lists a bad member: %v", err)
		}
	}
	gips := make([]vipsmart.GIP, 0, len(st.GIPs))
	for _, g := range st.GIPs {
		g = cloneGIP(g)
		if err := g.Validate(); err != nil {
			return nil, nil, vipsmart.Errorf(vipsmart.EINVALID, "gips", "the state handed out holds a bad GIP %s: %v", g.Name, err)
		}
		gips = append(gips, g)
	}
	h := hardState{
		Version: recordVersion, Self: self, Status: vipsmart.StatusMember,
		FedID: fedID, Epoch: st.Epoch, Members: cloneDCs(st.Members),
		Last: st.Last, Founding: st.Founding, Quorum: slices.Clone(st.Quorum),
		// The lost store's operation count is gone: count on from past
		// what the member heard of it, with room for what other members
		// heard and it did not, so that no member takes the DC's next
		// operations for ended ones (a late lock is refused). Committed
		// claims them all: a doubt about one of them then ends only by
		// the epoch rule (see docs/federation.md).
		Counter: st.Seq + rebuildSeqGap, Committed: st.Seq + rebuildSeqGap,
	}
	sortDCs(h.Members)
	return h.encode(), gips, nil
}
