package federation

import (
	"encoding/json"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
)

// fuzzMember is dc-2 of a federation of three with one GIP, as a record
// and GIPs to restore a fresh node from, and the messages that federation
// exchanged (the seeds of the fuzz targets).
var fuzzMember struct {
	once   sync.Once
	record []byte
	gips   []vipsmart.GIP
	now    time.Time
	seeds  [][]byte
}

func fuzzSetup(t testing.TB) {
	fuzzMember.once.Do(func() {
		a := newAuthNet(t, 4)
		var seen [][]byte
		a.federate(3)
		if err := a.do("dc-1", Proposal{Kind: PutGIP, GIP: vipsmart.GIP{Name: "www", Address: netip.MustParseAddr("203.0.113.1"), Mode: vipsmart.ModeFailover, Preempt: true,
			Placements: []vipsmart.Placement{{DC: "dc-1", Priority: 200}, {DC: "dc-2", Priority: 100}}}}); err != nil {
			panic(err)
		}
		// Record one message of each kind: a rotation, an add, a removal.
		rec := func() {
			for _, n := range a.nodes {
				for n.HasReady() {
					rd := n.Ready()
					for _, m := range rd.Messages {
						b, _ := json.Marshal(m)
						seen = append(seen, b)
						a.queue = append(a.queue, m)
					}
					n.Advance(rd)
				}
			}
		}
		nu := authDC(3)
		nu.Identity = keyOf("dc-3 new")
		for _, p := range []struct {
			at string
			p  Proposal
		}{{"dc-3", Proposal{Kind: RotateIdentity, DC: nu}}, {"dc-1", Proposal{Kind: AddDC, DC: authDC(4), Token: "ok"}}, {"dc-2", Proposal{Kind: RemoveDC, Name: "dc-4"}}} {
			if _, err := a.nodes[p.at].Propose(a.now, p.p); err != nil {
				panic(err)
			}
			rec()
			for len(a.queue) > 0 {
				m := a.queue[0]
				a.queue = a.queue[1:]
				if n := a.nodes[m.To.Name]; n != nil {
					_ = n.Step(a.now, m)
				}
				rec()
			}
		}
		n := a.nodes["dc-2"]
		fuzzMember.record = n.h.encode()
		fuzzMember.gips = n.GIPs()
		fuzzMember.now = a.now
		fuzzMember.seeds = seen
	})
	if fuzzMember.record == nil {
		t.Fatal("fuzz setup failed")
	}
}

func fuzzNode(t testing.TB) *Node {
	n, err := NewNode(Config{Self: authDC(2)}, fuzzMember.record, fuzzMember.gips, fuzzMember.now)
	if err != nil {
		t.Fatal(err)
	}
	for n.HasReady() {
		n.Advance(n.Ready())
	}
	return n
}

// checkOwnRecord checks the invariants of a node's own record.
func checkOwnRecord(t *testing.T, n *Node, epochBefore uint64, now time.Time) {
	t.Helper()
	h := &n.h
	if !h.Status.Valid() {
		t.Fatalf("status %q", h.Status)
	}
	if h.Epoch < epochBefore {
		t.Fatalf("epoch went down: %d -> %d", epochBefore, h.Epoch)
	}
	_, listed := findDC(h.Members, h.Self.Name)
	if h.memberish() {
		if !listed {
			t.Fatalf("member of %s that does not list itself: %v", h.FedID, names(h.Members))
		}
		if h.Status != vipsmart.StatusMember && h.Status != vipsmart.StatusCandidateReview && h.Status != vipsmart.StatusLeaving {
			t.Fatalf("in federation %s with status %s", h.FedID, h.Status)
		}
	} else {
		if len(h.Members) != 0 || len(n.gips) != 0 {
			t.Fatalf("%s with %d members and %d GIPs", h.Status, len(h.Members), len(n.gips))
		}
		if h.Status != vipsmart.StatusStandalone && h.Status != vipsmart.StatusInvited {
			t.Fatalf("in no federation with status %s", h.Status)
		}
	}
	if h.Status.Temporary() && h.Lock == nil {
		t.Fatalf("status %s without a lock", h.Status)
	}
	if l := h.Lock; l != nil {
		if max := max(n.cfg.InviteTTL, n.cfg.ReviewTTL); l.Deadline.After(now.Add(max)) {
			t.Fatalf("lock deadline %s is more than %s after %s", l.Deadline, max, now)
		}
	}
	for n.HasReady() {
		rd := n.Ready()
		if rd.Update != nil {
			if _, err := NewNode(n.cfg, rd.Update.Record, nil, now); err != nil {
				t.Fatalf("the persisted record does not load: %v", err)
			}
		}
		for _, m := range rd.Messages {
			if err := m.Validate(); err != nil {
				t.Fatalf("the node sends a malformed %s: %v", m.Type, err)
			}
		}
		n.Advance(rd)
	}
}

// FuzzMessage: federation messages as they arrive from the network. A
// message decodes and validates or is refused; a valid one survives a JSON
// round trip; Admit decides without panicking and refuses a message whose
// claimed key is not the connection's.
func FuzzMessage(f *testing.F) {
	fuzzSetup(f)
	for _, s := range fuzzMember.seeds {
		f.Add(s)
	}
	f.Add([]byte(`{"type":"bogus"}`))
	f.Add([]byte(`{"type":"heartbeat","from":{"name":"dc-1","address":"127.0.0.1","port":1},"to":{"name":"dc-2"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var m Message
		if err := json.Unmarshal(data, &m); err != nil {
			return
		}
		if err := m.Validate(); err != nil {
			if !vipsmart.IsCode(err, vipsmart.EINVALID) {
				t.Fatalf("Validate: %v is not EINVALID", err)
			}
			return
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		var back Message
		if err := json.Unmarshal(b, &back); err != nil || back.Validate() != nil {
			t.Fatalf("a valid message does not survive a round trip: %v", err)
		}
		n := fuzzNode(t)
		if v, _ := n.Admit(m, keyOf("someone else")); v != Refuse && m.From.Identity != keyOf("someone else") {
			t.Fatalf("Admit(%s from %s) with another key than claimed: %s", m.Type, m.From.Name, v)
		}
		_, _ = n.Admit(m, m.From.Identity)
	})
}

// FuzzStep: a member fed an arbitrary message (straight to Step, as if the
// transport had let anything through), then time. No panic; the node's own
// record keeps its invariants (valid status, epoch never down, a member
// lists itself, a temporary status has a lock whose deadline is within
// its TTL and ends by it, what it persists loads back, what it sends is
// well formed).
func FuzzStep(f *testing.F) {
	fuzzSetup(f)
	for i, s := range fuzzMember.seeds {
		f.Add(s, uint16(i*37))
	}
	f.Fuzz(func(t *testing.T, data []byte, dt uint16) {
		var m Message
		if err := json.Unmarshal(data, &m); err != nil {
			return
		}
		n := fuzzNode(t)
		now := fuzzMember.now.Add(time.Duration(dt) * time.Millisecond)
		e0 := n.h.Epoch
		if err := n.Step(now, m); err != nil && !vipsmart.IsCode(err, vipsmart.EINVALID) {
			t.Fatalf("Step: %v is not EINVALID", err)
		}
		checkOwnRecord(t, n, e0, now)
		if v, _ := n.Admit(m, m.From.Identity); v == AnswerOnly {
			n.Answer(now, m)
			checkOwnRecord(t, n, e0, now)
		}
		e1 := n.h.Epoch
		later := now.Add(max(n.cfg.InviteTTL, n.cfg.ReviewTTL) + n.cfg.PhaseTimeout + time.Second)
		n.Tick(later)
		checkOwnRecord(t, n, e1, later)
		if n.h.Status.Temporary() {
			t.Fatalf("still %s after every deadline passed", n.h.Status)
		}
	})
}
