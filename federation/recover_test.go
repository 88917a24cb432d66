package federation

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
)

// rbNet is the small harness of the rebuild tests (separate from the
// scenario harness on purpose): nodes whose Readys are persisted at once,
// and messages delivered in order, each checked by watch.
type rbNet struct {
	t     *testing.T
	now   time.Time
	nodes map[string]*Node
	rec   map[string][]byte
	gips  map[string][]vipsmart.GIP
	queue []Message
	res   map[string]error
	watch func(m Message)
}

func rbDC(i int) vipsmart.DC {
	return vipsmart.DC{Name: fmt.Sprintf("dc-%d", i), Address: netip.AddrFrom4([4]byte{127, 0, 0, byte(i)}), Port: uint16(9610 + i)}
}

func newRBNet(t *testing.T, n int) *rbNet {
	r := &rbNet{t: t, now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), nodes: map[string]*Node{}, rec: map[string][]byte{}, gips: map[string][]vipsmart.GIP{}, res: map[string]error{}}
	for i := 1; i <= n; i++ {
		r.start(rbDC(i))
	}
	return r
}

func (r *rbNet) start(d vipsmart.DC) {
	n, err := NewNode(Config{Self: d, InviteTTL: 5 * time.Second, ReviewTTL: 5 * time.Second}, r.rec[d.Name], r.gips[d.Name], r.now)
	if err != nil {
		r.t.Fatalf("NewNode(%s): %v", d.Name, err)
	}
	r.nodes[d.Name] = n
	r.flush()
}

func (r *rbNet) flush() {
	for name, n := range r.nodes {
		for n != nil && n.HasReady() {
			rd := n.Ready()
			if u := rd.Update; u != nil {
				r.rec[name] = u.Record
				r.gips[name] = n.GIPs()
			}
			for _, m := range rd.Messages {
				if r.watch != nil {
					r.watch(m)
				}
			}
			r.queue = append(r.queue, rd.Messages...)
			for _, res := range rd.Results {
				r.res[res.OpID] = res.Err
			}
			n.Advance(rd)
		}
	}
}

func (r *rbNet) settle() {
	for len(r.queue) > 0 {
		m := r.queue[0]
		r.queue = r.queue[1:]
		if n := r.nodes[m.To.Name]; n != nil {
			if err := n.Step(r.now, m); err != nil {
				r.t.Fatalf("Step %s %s->%s: %v", m.Type, m.From.Name, m.To.Name, err)
			}
			r.flush()
		}
	}
}

func (r *rbNet) run(d time.Duration) {
	for end := r.now.Add(d); r.now.Before(end); {
		r.now = r.now.Add(100 * time.Millisecond)
		for _, n := range r.nodes {
			if n != nil {
				n.Tick(r.now)
			}
		}
		r.flush()
		r.settle()
	}
}

func (r *rbNet) propose(at string, p Proposal) error {
	id, err := r.nodes[at].Propose(r.now, p)
	if err != nil {
		return err
	}
	r.flush()
	r.settle()
	res, ok := r.res[id]
	if !ok {
		r.t.Fatalf("operation %s has no result", id)
	}
	return res
}

func rbGIP(name string, last byte) vipsmart.GIP {
	return vipsmart.GIP{Name: name, Address: netip.AddrFrom4([4]byte{192, 0, 2, last}), Mode: vipsmart.ModeFailover,
		Placements: []vipsmart.Placement{{DC: "dc-1", Priority: 100}, {DC: "dc-3", Priority: 50}}}
}

func TestRebuildFromTheFederation(t *testing.T) {
	r := newRBNet(t, 3)
	for i := 2; i <= 3; i++ {
		if err := r.propose("dc-1", Proposal{Kind: AddDC, DC: rbDC(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.propose("dc-2", Proposal{Kind: PutGIP, GIP: rbGIP("web", 1)}); err != nil {
		t.Fatal(err)
	}
	// dc-3 coordinates changes too: the others know its operation count.
	if err := r.propose("dc-3", Proposal{Kind: PutGIP, GIP: rbGIP("db", 3)}); err != nil {
		t.Fatal(err)
	}
	r.run(time.Second)
	fed, epoch := r.nodes["dc-1"].h.FedID, r.nodes["dc-3"].h.Epoch

	// While dc-3 runs, a member refuses to hand out its state.
	_, err := r.nodes["dc-1"].RebuildState(r.now, "dc-3", fed)
	wantErr(t, err, vipsmart.EBUSY, "heard from dc-3", "stop the daemon")

	// dc-3 loses its store; the others stop hearing from it.
	r.nodes["dc-3"], r.rec["dc-3"], r.gips["dc-3"] = nil, nil, nil
	r.run(2 * time.Second)

	_, err = r.nodes["dc-1"].RebuildState(r.now, "dc-3", "f-other")
	wantErr(t, err, vipsmart.ESTATE, "not f-other")
	_, err = r.nodes["dc-1"].RebuildState(r.now, "dc-9", fed)
	wantErr(t, err, vipsmart.ESTATE, "does not list dc-9")
	st, err := r.nodes["dc-1"].RebuildState(r.now, "dc-3", fed)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = RebuildRecord(rbDC(3), *st, fed, epoch+1)
	wantErr(t, err, vipsmart.EBUSY, "behind epoch")
	moved := rbDC(3)
	moved.Port++
	_, _, err = RebuildRecord(moved, *st, fed, epoch)
	wantErr(t, err, vipsmart.EINVALID, "--advertise 127.0.0.3:9613")
	rec, gips, err := RebuildRecord(rbDC(3), *st, fed, epoch)
	if err != nil {
		t.Fatal(err)
	}

	// dc-3 starts on the rebuilt record: from its first message on, it
	// is a member at the epoch it had.
	r.watch = func(m Message) {
		if m.From.Name == "dc-3" && (m.SenderEpoch < epoch || m.Status == vipsmart.StatusStandalone || m.Status == vipsmart.StatusInvited || m.SenderFed != fed) {
			t.Fatalf("dc-3 sent %s as %s of %q at epoch %d; it was a member at epoch %d", m.Type, m.Status, m.SenderFed, m.SenderEpoch, epoch)
		}
	}
	r.rec["dc-3"], r.gips["dc-3"] = rec, gips
	r.start(rbDC(3))
	r.run(time.Second)
	for _, name := range []string{"dc-1", "dc-2"} {
		for _, info := range r.nodes[name].DCs(r.now) {
			if info.Name == "dc-3" && (!info.Reachable || info.LastEpoch != epoch || info.Status != vipsmart.StatusMember) {
				t.Fatalf("%s sees dc-3 as %+v", name, info)
			}
		}
	}
	// It is a member like the others: it coordinates a change (counting
	// its operations on past those the others heard of before the loss).
	if err := r.propose("dc-3", Proposal{Kind: PutGIP, GIP: rbGIP("api", 2)}); err != nil {
		t.Fatalf("a change from the rebuilt DC: %v", err)
	}
	r.run(time.Second)
	for _, name := range []string{"dc-1", "dc-2", "dc-3"} {
		h := r.nodes[name].h
		if h.FedID != fed || h.Epoch != epoch+1 || len(r.nodes[name].GIPs()) != 3 || h.Status != vipsmart.StatusMember {
			t.Fatalf("%s: %s of %s at epoch %d with %d GIPs; want member of %s at %d with 3", name, h.Status, h.FedID, h.Epoch, len(r.nodes[name].GIPs()), fed, epoch+1)
		}
	}
}

func TestRebuildRefusesARemovedDC(t *testing.T) {
	r := newRBNet(t, 3)
	for i := 2; i <= 3; i++ {
		if err := r.propose("dc-1", Proposal{Kind: AddDC, DC: rbDC(i)}); err != nil {
			t.Fatal(err)
		}
	}
	fed := r.nodes["dc-1"].h.FedID
	r.nodes["dc-3"] = nil
	r.run(2 * time.Second)
	if err := r.propose("dc-1", Proposal{Kind: RemoveDC, Name: "dc-3", Force: true}); err != nil {
		t.Fatal(err)
	}
	_, err := r.nodes["dc-2"].RebuildState(r.now, "dc-3", fed)
	wantErr(t, err, vipsmart.ESTATE, "does not list dc-3", "add it again")
}

func TestDescribeRecord(t *testing.T) {
	rec, _, err := RebuildRecord(rbDC(2), State{FedID: "f-x", Epoch: 12, Members: []vipsmart.DC{rbDC(1), rbDC(2)}}, "f-x", 0)
	if err != nil {
		t.Fatal(err)
	}
	dc, fed, epoch, err := DescribeRecord(rec)
	if err != nil || dc != "dc-2" || fed != "f-x" || epoch != 12 {
		t.Fatalf("DescribeRecord = %s %s %d %v", dc, fed, epoch, err)
	}
	if _, _, _, err := DescribeRecord([]byte("{")); err == nil {
		t.Fatal("a broken record was described")
	}
}
