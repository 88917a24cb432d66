package federation

import (
	"encoding/json"

	"github.com/vipsmart/vipsmart"
)

// StandbyHeartbeats returns the heartbeats a DC sends to the other
// members, built from its persisted record alone: what a follower node of
// a DC run by several nodes (docs/ha.md) sends while the DC has no
// reachable leader, so that the other members keep hearing the DC during
// a failover. self is the sending node's view of the DC (its address and
// the DC's key); report is the leader's last health report (nil: none
// known, and the heartbeats carry none). It changes nothing: the record is
// only read. A DC in no federation sends none. The leader of a DC sends
// them too while its own loop is held by a store write
// (daemon/keeper.go): what it sends is what it stored.
func StandbyHeartbeats(record []byte, self vipsmart.DC, report *Report) ([]Message, error) {
	if record == nil {
		return nil, nil
	}
	var h hardState
	if err := json.Unmarshal(record, &h); err != nil {
		return nil, vipsmart.Errorf(vipsmart.EINTERNAL, "", "the federation record is corrupt: %v", err)
	}
	if !h.memberish() || h.Self.Name != self.Name {
		return nil, nil
	}
	h.Self = self
	n := &Node{h: h}
	var out []Message
	for _, d := range h.Members {
		if d.Name == self.Name {
			continue
		}
		m := n.newMsg(MsgHeartbeat, d)
		m.Last, m.Founding = h.Last, h.Founding
		// An operation this DC coordinates and has not ended is still
		// running as far as the record knows: a member that holds its
		// lock keeps it (Running false would tell it the operation ended).
		m.Running = h.Coord != nil
		if report != nil {
			r := report.clone()
			m.Report = &r
		}
		out = append(out, m)
	}
	return out, nil
}

// RecordMembers returns the member list of a persisted record (none for
// a DC in no federation): who a DC believes, with the keys it pinned,
// read without a Node (the daemon's heartbeat keeper, while its loop
// waits for the store).
func RecordMembers(record []byte) ([]vipsmart.DC, error) {
	if record == nil {
		return nil, nil
	}
	var h hardState
	if err := json.Unmarshal(record, &h); err != nil {
		return nil, vipsmart.Errorf(vipsmart.EINTERNAL, "", "the federation record is corrupt: %v", err)
	}
	return h.Members, nil
}
