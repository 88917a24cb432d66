package etcd_test

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/etcd"
	"github.com/vipsmart/vipsmart/etcd/etcdtest"
	"github.com/vipsmart/vipsmart/vipmove"
)

// TestMoveCompareAndSwap checks the writes of the VIP holder protocol
// against a real etcd: registration, renewals that fail once fenced,
// takeovers that commit only if the holder key and the former holder's
// beat are as observed, one winner among concurrent takers, releases.
func TestMoveCompareAndSwap(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	st := open(t, c, newPrefix(), 0)
	ctx := t.Context()
	if err := st.CreateVIP(ctx, vipsmart.VIP{Name: "web", Address: mustAddr("192.0.2.10"), Nodes: []vipsmart.VIPNode{{Node: "n1", Priority: 200}}, Preempt: true}); err != nil {
		t.Fatal(err)
	}
	sess := func(n string) *etcd.Session {
		se, err := st.NewSession(ctx, n, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = se.Close() })
		return se
	}
	s1, s2, s3 := sess("n1"), sess("n2"), sess("n3")
	do := func(se *etcd.Session, a vipmove.Action) vipmove.Result {
		t.Helper()
		r, err := st.DoMove(ctx, se.Node(), se.Lease(), a)
		if err != nil {
			t.Fatalf("%s %s: %v", se.Node(), a.Kind, err)
		}
		return r
	}
	r1 := do(s1, vipmove.Action{Kind: vipmove.Register, Down: []string{"api"}})
	r2 := do(s2, vipmove.Action{Kind: vipmove.Register})
	r3 := do(s3, vipmove.Action{Kind: vipmove.Register})
	if !r1.OK || r1.Inc == 0 || r1.Inc != r1.Rev {
		t.Fatalf("register n1: %+v", r1)
	}
	ms, err := st.MoveState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if b := ms.View.Beats["n1"]; b.Inc != r1.Inc || len(b.Down) != 1 || b.Down[0] != "api" {
		t.Fatalf("n1's beat read back as %+v", b)
	}
	if len(ms.VIPs) != 1 || len(ms.View.VIPs) != 1 || !ms.View.VIPs[0].Preempt || ms.View.VIPs[0].Nodes[0].Priority != 200 {
		t.Fatalf("VIPs read back as %+v / %+v", ms.VIPs, ms.View.VIPs)
	}

	// Two nodes take the free VIP at once: exactly one wins.
	var wg sync.WaitGroup
	res := make([]vipmove.Result, 2)
	for i, x := range []struct {
		se *etcd.Session
		r  vipmove.Result
	}{{s1, r1}, {s2, r2}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i] = do(x.se, vipmove.Action{Kind: vipmove.Take, VIP: "web", Inc: x.r.Inc, Reason: "test"})
		}()
	}
	wg.Wait()
	if res[0].OK == res[1].OK {
		t.Fatalf("concurrent takes of a free VIP: n1 %v, n2 %v: want exactly one", res[0].OK, res[1].OK)
	}
	holder, hrev, hr := "n1", res[0].Rev, r1
	if res[1].OK {
		holder, hrev, hr = "n2", res[1].Rev, r2
	}
	holderSe := map[string]*etcd.Session{"n1": s1, "n2": s2}[holder]

	// The holder renews: a takeover comparing the beat's former revision
	// fails; so does one comparing a stale holder key.
	ren := do(holderSe, vipmove.Action{Kind: vipmove.Renew, Rev: hr.Rev, Inc: hr.Inc})
	if !ren.OK {
		t.Fatalf("renew: %+v", ren)
	}
	// A renewal comparing the revision before one whose answer was lost:
	// not committed, not lost, the current revision.
	if r := do(holderSe, vipmove.Action{Kind: vipmove.Renew, Rev: hr.Rev, Inc: hr.Inc}); r.OK || r.Lost || r.Rev != ren.Rev {
		t.Fatalf("a renewal after one whose answer was lost: %+v, want the revision %d", r, ren.Rev)
	}
	if r := do(s3, vipmove.Action{Kind: vipmove.Take, VIP: "web", Inc: r3.Inc, HolderRev: hrev, Prev: holder, PrevBeatRev: hr.Rev, Fence: true}); r.OK {
		t.Fatal("a takeover comparing the holder's beat before its renewal committed")
	}
	if r := do(s3, vipmove.Action{Kind: vipmove.Take, VIP: "web", Inc: r3.Inc, HolderRev: hrev - 1, Prev: holder, PrevBeatRev: ren.Rev, Fence: true}); r.OK {
		t.Fatal("a takeover comparing a stale holder key committed")
	}
	// As observed: it commits and fences the holder's beat.
	tk := do(s3, vipmove.Action{Kind: vipmove.Take, VIP: "web", Inc: r3.Inc, HolderRev: hrev, Prev: holder, PrevBeatRev: ren.Rev, Fence: true, Reason: "silent"})
	if !tk.OK {
		t.Fatalf("takeover as observed: %+v", tk)
	}
	if r := do(holderSe, vipmove.Action{Kind: vipmove.Renew, Rev: ren.Rev, Inc: hr.Inc}); r.OK || !r.Lost {
		t.Fatalf("the fenced holder's renewal: %+v: want lost", r)
	}
	ms, _ = st.MoveState(ctx)
	if h := ms.View.Holders["web"]; h.Node != "n3" || h.Inc != r3.Inc || h.Reason != "silent" {
		t.Fatalf("holder read back as %+v", h)
	}
	if b := ms.View.Beats[holder]; !b.Fenced {
		t.Fatalf("the former holder's beat is not fenced: %+v", b)
	}
	// The fenced node registers again: a new incarnation.
	again := do(holderSe, vipmove.Action{Kind: vipmove.Register})
	if !again.OK || again.Inc <= hr.Inc {
		t.Fatalf("register again: %+v (former incarnation %d)", again, hr.Inc)
	}
	// A take by a node whose incarnation is not the one it names fails.
	if r := do(holderSe, vipmove.Action{Kind: vipmove.Take, VIP: "web", Inc: hr.Inc, HolderRev: tk.Rev, Prev: "n3", PrevBeatRev: r3.Rev}); r.OK {
		t.Fatal("a take naming a former incarnation committed")
	}
	// Release: only at the revision observed; then anyone eligible takes.
	if r := do(s3, vipmove.Action{Kind: vipmove.Release, VIP: "web", HolderRev: tk.Rev - 1}); r.OK {
		t.Fatal("a release at a stale revision committed")
	}
	rel := do(s3, vipmove.Action{Kind: vipmove.Release, VIP: "web", HolderRev: tk.Rev, Reason: "handed over"})
	if !rel.OK {
		t.Fatalf("release: %+v", rel)
	}
	ms, _ = st.MoveState(ctx)
	if h := ms.View.Holders["web"]; h.Node != "" || h.Reason != "handed over" || h.Rev != rel.Rev {
		t.Fatalf("released holder key read back as %+v", h)
	}
	if r := do(holderSe, vipmove.Action{Kind: vipmove.Take, VIP: "web", Inc: again.Inc, HolderRev: rel.Rev}); !r.OK {
		t.Fatalf("take of the released VIP: %+v", r)
	}
	// The guard of a dead daemon fences its beat: only that incarnation's.
	if ok, err := st.FenceBeat(ctx, "n3", r3.Inc+1000, "addr-guard"); ok || err != nil {
		t.Fatalf("fencing another incarnation: %v %v", ok, err)
	}
	if ok, err := st.FenceBeat(ctx, "n3", r3.Inc, "addr-guard"); !ok || err != nil {
		t.Fatalf("fencing n3's beat: %v %v", ok, err)
	}
	if ms, _ = st.MoveState(ctx); !ms.View.Beats["n3"].Fenced {
		t.Fatalf("n3's beat not fenced: %+v", ms.View.Beats["n3"])
	}
	// A beat ends with its lease.
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	ms, _ = st.MoveState(ctx)
	if _, ok := ms.View.Beats["n2"]; ok && holder != "n2" {
		t.Fatal("n2's beat outlived its lease")
	}
}

func TestWatchMove(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	st := open(t, c, newPrefix(), 0)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ch := st.WatchMove(ctx)
	first := <-ch
	if len(first.VIPs) != 0 || len(first.View.Beats) != 0 {
		t.Fatalf("first state %+v", first)
	}
	se, err := st.NewSession(ctx, "n1", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer se.Close()
	r, err := st.DoMove(ctx, "n1", se.Lease(), vipmove.Action{Kind: vipmove.Register})
	if err != nil || !r.OK {
		t.Fatal(r, err)
	}
	if err := st.CreateVIP(ctx, vipsmart.VIP{Name: "web", Address: mustAddr("192.0.2.10")}); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(5 * time.Second)
	for {
		select {
		case s := <-ch:
			if len(s.VIPs) == 1 && s.View.Beats["n1"].Inc == r.Inc && s.View.Rev >= r.Rev {
				return
			}
		case <-deadline:
			t.Fatal("WatchMove did not send the beat and the VIP within 5s")
		}
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
