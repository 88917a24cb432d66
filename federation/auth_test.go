package federation

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
)

// keyOf is a made-up key fingerprint for tests.
func keyOf(s string) string {
	h := sha256.Sum256([]byte(s))
	return vipsmart.IdentityPrefix + hex.EncodeToString(h[:])
}

// authDC is DC dc-i with key keyOf(name).
func authDC(i int) vipsmart.DC {
	name := fmt.Sprintf("dc-%d", i)
	return vipsmart.DC{Name: name, Address: netip.AddrFrom4([4]byte{127, 0, 0, byte(i)}), Port: 9610, Identity: keyOf(name)}
}

// authNet delivers messages through Admit as a daemon does: the
// connection presents the key of the sending node (its Self), invites pass
// when their token is "ok", AnswerOnly messages are answered.
type authNet struct {
	t       testing.TB
	now     time.Time
	nodes   map[string]*Node
	queue   []Message
	results map[string]error
	refused []string
	events  []vipsmart.Event
}

var authEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func newAuthNet(t testing.TB, n int) *authNet {
	a := &authNet{t: t, now: authEpoch, nodes: map[string]*Node{}, results: map[string]error{}}
	for i := 1; i <= n; i++ {
		d := authDC(i)
		node, err := NewNode(Config{Self: d}, nil, nil, a.now)
		if err != nil {
			t.Fatal(err)
		}
		a.nodes[d.Name] = node
	}
	a.flush()
	return a
}

func (a *authNet) flush() {
	for _, n := range a.nodes {
		for n.HasReady() {
			rd := n.Ready()
			for _, m := range rd.Messages {
				b, _ := json.Marshal(m)
				var mm Message
				if err := json.Unmarshal(b, &mm); err != nil {
					a.t.Fatal(err)
				}
				a.queue = append(a.queue, mm)
			}
			for _, r := range rd.Results {
				a.results[r.OpID] = r.Err
			}
			a.events = append(a.events, rd.Events...)
			n.Advance(rd)
		}
	}
}

// deliverAs hands m to its destination as if its connection presented key.
func (a *authNet) deliverAs(m Message, key string) (Verdict, error) {
	n := a.nodes[m.To.Name]
	if n == nil {
		return Refuse, nil
	}
	v, err := n.Admit(m, key)
	switch v {
	case Accept:
		err = n.Step(a.now, m)
	case AnswerOnly:
		n.Answer(a.now, m)
	case NeedsJoinToken:
		if m.Token == "ok" {
			err = n.Step(a.now, m)
		} else {
			n.RefuseInvite(m, vipsmart.EFORBIDDEN, "bad token")
			err = vipsmart.Errorf(vipsmart.EFORBIDDEN, "", "bad token")
		}
	default:
		a.refused = append(a.refused, fmt.Sprintf("%s %s->%s: %v", m.Type, m.From.Name, m.To.Name, err))
	}
	a.flush()
	return v, err
}

func (a *authNet) settle() {
	for i := 0; len(a.queue) > 0 && i < 100000; i++ {
		m := a.queue[0]
		a.queue = a.queue[1:]
		sender := a.nodes[m.From.Name]
		key := m.From.Identity
		if sender != nil {
			key = sender.Self().Identity // what its TLS connection presents
		}
		_, _ = a.deliverAs(m, key)
	}
}

func (a *authNet) run(d time.Duration) {
	end := a.now.Add(d)
	for a.now.Before(end) {
		a.now = a.now.Add(100 * time.Millisecond)
		for _, n := range a.nodes {
			n.Tick(a.now)
		}
		a.flush()
		a.settle()
	}
}

func (a *authNet) do(at string, p Proposal) error {
	id, err := a.nodes[at].Propose(a.now, p)
	if err != nil {
		return err
	}
	a.flush()
	a.settle()
	err, ok := a.results[id]
	if !ok {
		a.t.Fatalf("no result for %s", id)
	}
	return err
}

func (a *authNet) federate(k int) {
	for i := 2; i <= k; i++ {
		if err := a.do("dc-1", Proposal{Kind: AddDC, DC: authDC(i), Token: "ok"}); err != nil {
			a.t.Fatalf("add dc-%d: %v", i, err)
		}
	}
	a.run(time.Second)
}

func (a *authNet) membersOf(name string) map[string]string {
	out := map[string]string{}
	for _, d := range a.nodes[name].h.Members {
		out[d.Name] = d.Identity
	}
	return out
}

func TestAdmitRules(t *testing.T) {
	a := newAuthNet(t, 4)
	a.federate(3)
	n2 := a.nodes["dc-2"]
	st := n2.state()
	hb := func(from vipsmart.DC, fed string) Message {
		return Message{Type: MsgHeartbeat, From: from, To: authDC(2), FedID: fed, SenderFed: fed, Epoch: st.Epoch, SenderEpoch: st.Epoch}
	}
	d1 := authDC(1)
	imposter := d1
	imposter.Identity = keyOf("stranger")
	ghost := vipsmart.DC{Name: "ghost", Address: netip.MustParseAddr("127.0.0.9"), Port: 1, Identity: keyOf("ghost")}
	lock := hb(ghost, st.FedID)
	lock.Type, lock.OpID, lock.Change = MsgLock, "ghost-1", &Change{Kind: DeleteGIP, Name: "x"}
	inv := Message{Type: MsgInvite, From: d1, To: authDC(2), FedID: st.FedID, OpID: "dc-1-99", Change: &Change{Kind: AddDC, DC: &vipsmart.DC{Name: "dc-2", Address: authDC(2).Address, Port: 9610}}}
	for _, c := range []struct {
		name string
		m    Message
		key  string
		want Verdict
		msg  string
	}{
		{"a member with its key", hb(d1, st.FedID), d1.Identity, Accept, ""},
		{"claims a member's key, presents another", hb(d1, st.FedID), keyOf("stranger"), Refuse, "but the connection presented"},
		{"a member's name with another key", hb(imposter, st.FedID), imposter.Identity, Refuse, "pinned to key"},
		{"no key", hb(d1, st.FedID), "", Refuse, "no key"},
		{"an unknown DC's heartbeat naming the federation", hb(ghost, st.FedID), ghost.Identity, AnswerOnly, ""},
		{"an unknown DC's heartbeat naming another federation", hb(ghost, "f-other"), ghost.Identity, Refuse, "unknown"},
		{"an unknown DC's lock", lock, ghost.Identity, Refuse, "unknown"},
		{"an invite, even from a member", inv, d1.Identity, NeedsJoinToken, ""},
	} {
		v, err := n2.Admit(c.m, c.key)
		if v != c.want || (c.msg != "" && (err == nil || !strings.Contains(err.Error(), c.msg))) {
			t.Errorf("%s: %s, %v; want %s %q", c.name, v, err, c.want, c.msg)
		}
	}
	// An invite with a bad token is refused with the reason, and the
	// coordinator's operation fails with it; nothing changes at the
	// candidate.
	err := a.do("dc-1", Proposal{Kind: AddDC, DC: authDC(4), Token: "stolen"})
	if err == nil || !strings.Contains(err.Error(), "did not accept the join token") || a.nodes["dc-4"].h.Status != vipsmart.StatusStandalone {
		t.Fatalf("add with a bad token: %v; dc-4 %s", err, a.nodes["dc-4"].h.Status)
	}
}

func TestInviteCarriesMembersKeys(t *testing.T) {
	a := newAuthNet(t, 3)
	a.federate(2)
	// dc-1 invites dc-3; hold everything after the invite.
	id, err := a.nodes["dc-1"].Propose(a.now, Proposal{Kind: AddDC, DC: authDC(3), Token: "ok"})
	if err != nil {
		t.Fatal(err)
	}
	a.flush()
	for len(a.queue) > 0 && a.queue[0].Type != MsgInvite {
		a.queue = a.queue[1:]
	}
	inv := a.queue[0]
	a.queue = nil
	if _, err := a.deliverAs(inv, authDC(1).Identity); err != nil {
		t.Fatal(err)
	}
	c := a.nodes["dc-3"]
	if c.h.Status != vipsmart.StatusInvited {
		t.Fatalf("dc-3 is %s", c.h.Status)
	}
	// dc-2, named in the invite, is believed with its key, not another.
	hb := Message{Type: MsgHeartbeat, From: authDC(2), To: authDC(3), SenderFed: inv.FedID}
	if v, err := c.Admit(hb, authDC(2).Identity); v != Accept {
		t.Fatalf("invited dc-3 does not believe member dc-2: %s %v", v, err)
	}
	bad := hb
	bad.From.Identity = keyOf("x")
	if v, _ := c.Admit(bad, keyOf("x")); v != Refuse {
		t.Fatalf("invited dc-3 believes dc-2 with another key: %s", v)
	}
	_ = id
}

func TestRotateIdentityCommitsNewKey(t *testing.T) {
	a := newAuthNet(t, 3)
	a.federate(3)
	old := authDC(2)
	nu := old
	nu.Identity = keyOf("dc-2 new")
	// Locked members believe both keys while the rotation is in flight.
	if _, err := a.nodes["dc-2"].Propose(a.now, Proposal{Kind: RotateIdentity, DC: nu, By: "uid 0 on the local socket"}); err != nil {
		t.Fatal(err)
	}
	a.flush()
	var held []Message
	for _, m := range a.queue {
		if m.Type == MsgLock {
			if _, err := a.deliverAs(m, old.Identity); err != nil {
				t.Fatal(err)
			}
		} else {
			held = append(held, m)
		}
	}
	a.queue = held
	n1 := a.nodes["dc-1"]
	hb := Message{Type: MsgHeartbeat, From: nu, To: authDC(1), SenderFed: n1.h.FedID}
	if v, err := n1.Admit(hb, nu.Identity); v != Accept {
		t.Fatalf("dc-1, locked for the rotation, refuses dc-2's new key: %s %v", v, err)
	}
	hb.From = old
	if v, err := n1.Admit(hb, old.Identity); v != Accept {
		t.Fatalf("dc-1 refuses dc-2's old key before the commit: %s %v", v, err)
	}
	a.settle()
	a.run(time.Second)
	for _, name := range []string{"dc-1", "dc-2", "dc-3"} {
		if got := a.membersOf(name)["dc-2"]; got != nu.Identity {
			t.Fatalf("%s lists dc-2 with %s; want the new key", name, got)
		}
	}
	if a.nodes["dc-2"].Self().Identity != nu.Identity || a.nodes["dc-2"].CommittedIdentity() != nu.Identity {
		t.Fatalf("dc-2 does not speak with its new key")
	}
	asked := 0
	for _, e := range a.events {
		if strings.Contains(e.Message, "rotate the key of dc-2") && strings.Contains(e.Message, "(asked by uid 0 on the local socket)") {
			asked++
		}
	}
	if asked < 3 {
		t.Fatalf("%d events of the rotation name who asked; want the coordinator's and the members'", asked)
	}
	// After the commit, the old key is refused everywhere.
	for _, name := range []string{"dc-1", "dc-3"} {
		m := Message{Type: MsgHeartbeat, From: old, To: a.nodes[name].Self(), SenderFed: n1.h.FedID}
		if v, err := a.nodes[name].Admit(m, old.Identity); v != Refuse || !strings.Contains(err.Error(), "pinned") {
			t.Fatalf("%s: dc-2's old key after the commit: %s %v", name, v, err)
		}
	}
	// A rotation to the committed key, or of another DC, is refused.
	if _, err := a.nodes["dc-2"].Propose(a.now, Proposal{Kind: RotateIdentity, DC: nu}); err == nil {
		t.Fatal("rotating to the committed key was accepted")
	}
	if _, err := a.nodes["dc-1"].Propose(a.now, Proposal{Kind: RotateIdentity, DC: old}); err == nil {
		t.Fatal("dc-1 rotated dc-2's key")
	}
}

func TestRemovedKeyOnlyAnswered(t *testing.T) {
	a := newAuthNet(t, 3)
	a.federate(3)
	n1 := a.nodes["dc-1"]
	if err := a.do("dc-1", Proposal{Kind: PutGIP, GIP: vipsmart.GIP{Name: "www", Address: netip.MustParseAddr("203.0.113.1"), Mode: vipsmart.ModeFailover, Preempt: true}}); err != nil {
		t.Fatal(err)
	}
	// dc-3 goes down and, once unreachable, is removed by force.
	dc3 := a.nodes["dc-3"]
	delete(a.nodes, "dc-3")
	a.run(2 * n1.window())
	if err := a.do("dc-1", Proposal{Kind: RemoveDC, Name: "dc-3", Force: true}); err != nil {
		t.Fatal(err)
	}
	a.run(time.Second)
	before := string(n1.h.encode())
	d3 := authDC(3)
	fed := n1.h.FedID
	// Its lock and commit are refused; its heartbeat and state request are
	// only answered, without the GIPs.
	lock := Message{Type: MsgLock, From: d3, To: authDC(1), FedID: fed, Epoch: n1.h.Epoch, OpID: "dc-3-9", Change: &Change{Kind: DeleteGIP, Name: "www"}}
	if v, _ := n1.Admit(lock, d3.Identity); v != Refuse {
		t.Fatalf("removed dc-3's lock: %s", v)
	}
	fetch := Message{Type: MsgFetchState, From: d3, To: authDC(1), SenderFed: fed, SenderEpoch: 1}
	if v, _ := a.deliverAs(fetch, d3.Identity); v != AnswerOnly {
		t.Fatalf("removed dc-3's state request: %s", v)
	}
	if len(a.queue) != 1 || a.queue[0].State == nil || len(a.queue[0].State.GIPs) != 0 || len(a.queue[0].State.Members) != 2 {
		t.Fatalf("answer to a removed DC: %+v", a.queue)
	}
	if string(n1.h.encode()) != before {
		t.Fatal("messages of a removed DC changed dc-1")
	}
	// When it comes back, the answers fence it out.
	a.queue = nil
	a.nodes["dc-3"] = dc3
	a.run(2 * time.Second)
	if dc3.h.Status != vipsmart.StatusStandalone || len(dc3.gips) != 0 {
		t.Fatalf("returning dc-3 is %s with %d GIPs", dc3.h.Status, len(dc3.gips))
	}
}
