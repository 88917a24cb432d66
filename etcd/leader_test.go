package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/etcd"
	"github.com/vipsmart/vipsmart/etcd/etcdtest"
)

// snapshot returns every key of the DC's state under prefix (leaving out
// the election and the node claims) with its value and mod revision.
func snapshot(t *testing.T, cli *clientv3.Client, prefix string) map[string]string {
	t.Helper()
	resp, err := cli.Get(t.Context(), prefix, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, kv := range resp.Kvs {
		k := string(kv.Key)
		if strings.HasPrefix(k, prefix+"election/") || strings.HasPrefix(k, prefix+"nodes/") {
			continue
		}
		m[k] = fmt.Sprintf("%s@%d", kv.Value, kv.ModRevision)
	}
	return m
}

// campaignAsync campaigns in the background.
func campaignAsync(ctx context.Context, se *etcd.Session) <-chan *etcd.Leadership {
	ch := make(chan *etcd.Leadership, 1)
	go func() {
		l, err := se.Campaign(ctx)
		if err != nil {
			close(ch)
			return
		}
		ch <- l
	}()
	return ch
}

func wantWon(t *testing.T, ch <-chan *etcd.Leadership, within time.Duration) *etcd.Leadership {
	t.Helper()
	select {
	case l, ok := <-ch:
		if !ok {
			t.Fatal("campaign failed")
		}
		return l
	case <-time.After(within):
		t.Fatalf("campaign not won within %s", within)
	}
	return nil
}

func wantDone(t *testing.T, l *etcd.Leadership, within time.Duration) {
	t.Helper()
	select {
	case <-l.Done():
	case <-time.After(within):
		t.Fatalf("the deposed leader's Done was not closed within %s", within)
	}
}

// deposedWrites runs every write of the Store interface on the deposed
// leader's fenced store f: each must fail with ErrNotLeader.
func deposedWrites(t *testing.T, f *etcd.Store) {
	t.Helper()
	ctx := t.Context()
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, etcd.ErrNotLeader) {
			t.Errorf("%s by a deposed leader: error %v, want ErrNotLeader", what, err)
		} else if !vipsmart.IsCode(err, vipsmart.EUNAVAILABLE) {
			t.Errorf("%s by a deposed leader: code %q, want %q", what, vipsmart.ErrorCodeOf(err), vipsmart.EUNAVAILABLE)
		}
	}
	check("CreateVIP", f.CreateVIP(ctx, vipsmart.VIP{Name: "late", Address: netip.MustParseAddr("192.0.2.99")}))
	check("DeleteVIP", f.DeleteVIP(ctx, "web"))
	check("SaveFederation (incremental)", f.SaveFederation(ctx, vipsmart.FederationUpdate{Record: []byte("stale"), PutGIPs: gipRange(50, 51)}))
	check("SaveFederation (replace, one transaction)", f.SaveFederation(ctx, vipsmart.FederationUpdate{Record: []byte("stale"), ReplaceGIPs: true, PutGIPs: gipRange(0, 2)}))
	check("SaveFederation (replace, staged)", f.SaveFederation(ctx, vipsmart.FederationUpdate{Record: []byte("stale"), ReplaceGIPs: true, PutGIPs: gipRange(0, 400)}))
	_, err := f.AppendEvents(ctx, []vipsmart.Event{{Message: "stale"}})
	check("AppendEvents", err)
}

// leaderWrites fills the state through the leader's fenced store.
func leaderWrites(t *testing.T, f *etcd.Store, record string) {
	t.Helper()
	ctx := t.Context()
	if err := f.CreateVIP(ctx, vipsmart.VIP{Name: "web", Address: netip.MustParseAddr("192.0.2.1")}); err != nil && !vipsmart.IsCode(err, vipsmart.ECONFLICT) {
		t.Fatalf("leader CreateVIP: %v", err)
	}
	if err := f.SaveFederation(ctx, vipsmart.FederationUpdate{Record: []byte(record), ReplaceGIPs: true, PutGIPs: gipRange(0, 3)}); err != nil {
		t.Fatalf("leader SaveFederation: %v", err)
	}
	if _, err := f.AppendEvents(ctx, []vipsmart.Event{{Message: record}}); err != nil {
		t.Fatalf("leader AppendEvents: %v", err)
	}
}

// TestFencingRevoked: node a leads, its lease is revoked (as etcd does
// when a frozen node's lease expires), b takes over; every write of a
// then fails and changes nothing, b's writes succeed.
func TestFencingRevoked(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	pfx := newPrefix()
	a, b := open(t, c, pfx, 100), open(t, c, pfx, 100)
	ctx := t.Context()

	seA, err := a.NewSession(ctx, "a", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	lA := wantWon(t, campaignAsync(ctx, seA), 10*time.Second)
	fA := a.Fenced(lA)
	leaderWrites(t, fA, "by a")

	seB, err := b.NewSession(ctx, "b", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer seB.Close()
	bWon := campaignAsync(ctx, seB)
	if node, _, err := b.Leader(ctx); err != nil || node != "a" {
		t.Fatalf("Leader() = %q, %v; want a", node, err)
	}
	select {
	case <-bWon:
		t.Fatal("b won the election while a leads")
	default:
	}

	if _, err := c.Client().Revoke(ctx, seA.Lease()); err != nil {
		t.Fatal(err)
	}
	lB := wantWon(t, bWon, 10*time.Second)
	fB := b.Fenced(lB)
	if node, _, err := b.Leader(ctx); err != nil || node != "b" {
		t.Fatalf("Leader() = %q, %v; want b", node, err)
	}
	leaderWrites(t, fB, "by b")

	cli := c.Client()
	before := snapshot(t, cli, pfx)
	deposedWrites(t, fA)
	if after := snapshot(t, cli, pfx); !reflect.DeepEqual(before, after) {
		t.Errorf("the deposed leader's writes changed the state:\nbefore %v\nafter  %v", before, after)
	}
	wantDone(t, lA, 10*time.Second)
	select {
	case <-lB.Done():
		t.Fatal("the new leader's Done is closed")
	default:
	}
	// The new leader writes on.
	if err := fB.CreateVIP(ctx, vipsmart.VIP{Name: "db", Address: netip.MustParseAddr("192.0.2.2")}); err != nil {
		t.Fatalf("the new leader's CreateVIP: %v", err)
	}
}

// TestFencingFrozen freezes node a's connection to etcd (as SIGSTOP or a
// partition would) right after it issued a write as leader; its lease
// expires, b takes over and writes; when a's connection thaws, a's held
// write reaches etcd and is refused by the fence, and so are a's later
// writes.
func TestFencingFrozen(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	pfx := newPrefix()
	ctx := t.Context()
	proxy := etcdtest.NewProxy(t, strings.TrimPrefix(c.Members[0].ClientURL, "http://"))
	a, err := etcd.Open(ctx, etcd.Config{
		Endpoints: []string{"http://" + proxy.Addr()},
		Prefix:    pfx, DC: "dc-1",
		// Long enough that the frozen connection is neither dropped by
		// the client nor its write given up before the thaw.
		RequestTimeout: time.Minute,
		KeepAlive:      time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b := open(t, c, pfx, 100)

	seA, err := a.NewSession(ctx, "a", time.Second) // etcd raises it to its minimum, 2s at its defaults
	if err != nil {
		t.Fatal(err)
	}
	lA := wantWon(t, campaignAsync(ctx, seA), 10*time.Second)
	fA := a.Fenced(lA)
	leaderWrites(t, fA, "by a")
	seB, err := b.NewSession(ctx, "b", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer seB.Close()
	bWon := campaignAsync(ctx, seB)

	proxy.Freeze()
	held := make(chan error, 1)
	go func() {
		held <- fA.CreateVIP(ctx, vipsmart.VIP{Name: "held", Address: netip.MustParseAddr("192.0.2.50")})
	}()
	lB := wantWon(t, bWon, 30*time.Second) // a's lease expired: it renewed nothing while frozen
	fB := b.Fenced(lB)
	leaderWrites(t, fB, "by b")
	cli := c.Client()
	before := snapshot(t, cli, pfx)
	proxy.Thaw()

	select {
	case err := <-held:
		if !errors.Is(err, etcd.ErrNotLeader) {
			t.Fatalf("the write a issued before it froze: %v, want ErrNotLeader", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the held write did not finish within 30s of the thaw")
	}
	deposedWrites(t, fA)
	if after := snapshot(t, cli, pfx); !reflect.DeepEqual(before, after) {
		t.Errorf("the deposed leader's writes changed the state:\nbefore %v\nafter  %v", before, after)
	}
	select {
	case <-seA.Done():
	case <-time.After(10 * time.Second):
		t.Error("a's session did not end after its lease expired")
	}
	wantDone(t, lA, 10*time.Second)
}

// TestResign: a resigns; b takes over at once; a's writes fail.
func TestResign(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{Members: 3})
	pfx := newPrefix()
	a, b := open(t, c, pfx, 100), open(t, c, pfx, 100)
	ctx := t.Context()
	seA, err := a.NewSession(ctx, "a", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer seA.Close()
	seB, err := b.NewSession(ctx, "b", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer seB.Close()
	lA := wantWon(t, campaignAsync(ctx, seA), 10*time.Second)
	bWon := campaignAsync(ctx, seB)
	fA := a.Fenced(lA)
	leaderWrites(t, fA, "by a")
	if err := lA.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	wantDone(t, lA, time.Second)
	lB := wantWon(t, bWon, 10*time.Second)
	leaderWrites(t, b.Fenced(lB), "by b")
	cli := c.Client()
	before := snapshot(t, cli, pfx)
	deposedWrites(t, fA)
	if after := snapshot(t, cli, pfx); !reflect.DeepEqual(before, after) {
		t.Errorf("the resigned leader's writes changed the state:\nbefore %v\nafter  %v", before, after)
	}
	// The session lives on: a can campaign again (and waits behind b).
	again := campaignAsync(ctx, seA)
	if err := lB.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	lA2 := wantWon(t, again, 10*time.Second)
	if err := a.Fenced(lA2).CreateVIP(ctx, vipsmart.VIP{Name: "again", Address: netip.MustParseAddr("192.0.2.3")}); err != nil {
		t.Fatalf("a's write in its second term: %v", err)
	}
}

// TestClaims: each node claims its name; a second process with the same
// name is refused; the watch sees nodes come and go.
func TestClaims(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	pfx := newPrefix()
	a, b := open(t, c, pfx, 100), open(t, c, pfx, 100)
	ctx := t.Context()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	watch := a.WatchClaims(wctx)
	next := func(want ...string) {
		t.Helper()
		deadline := time.After(15 * time.Second)
		var got []string
		for {
			select {
			case cs := <-watch:
				got = nil
				for _, c := range cs {
					got = append(got, c.Node+"="+string(c.Info))
				}
				if reflect.DeepEqual(got, want) || (len(got) == 0 && len(want) == 0) {
					return
				}
			case <-deadline:
				t.Fatalf("WatchClaims: last saw %v, want %v", got, want)
			}
		}
	}
	next()

	seA, err := a.NewSession(ctx, "a", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := seA.Claim(ctx, []byte("10.0.0.1")); err != nil {
		t.Fatal(err)
	}
	next("a=10.0.0.1")
	if err := seA.Claim(ctx, []byte("10.0.0.11")); err != nil { // an update
		t.Fatal(err)
	}
	next("a=10.0.0.11")

	dup, err := b.NewSession(ctx, "a", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer dup.Close()
	// A second live process with name a waits for a's lease (2s, still
	// renewed), then gives up.
	err = dup.Claim(ctx, []byte("10.0.0.9"))
	if !vipsmart.IsCode(err, vipsmart.ECONFLICT) || !strings.Contains(err.Error(), "already claimed") {
		t.Fatalf("a second claim of name a: %v, want ECONFLICT ... already claimed", err)
	}
	if cs, err := b.Claims(ctx); err != nil || len(cs) != 1 || string(cs[0].Info) != "10.0.0.11" || cs[0].Lease != seA.Lease() {
		t.Fatalf("after the refused claim: Claims() = %+v, %v; want a's claim unchanged", cs, err)
	}

	seB, err := b.NewSession(ctx, "b", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer seB.Close()
	if err := seB.Claim(ctx, []byte("10.0.0.2")); err != nil {
		t.Fatal(err)
	}
	next("a=10.0.0.11", "b=10.0.0.2")
	claims, err := b.Claims(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(claims) != 2 || claims[0].Node != "a" || claims[1].Node != "b" {
		t.Fatalf("Claims() = %+v, want a and b", claims)
	}
	for _, cl := range claims {
		if cl.TTL <= 0 || cl.TTL > 10*time.Second || cl.Lease == 0 || cl.Since == 0 || cl.Lease == dup.Lease() {
			t.Errorf("claim %+v: want a TTL in (0, 10s], a lease and a revision", cl)
		}
	}

	// a goes (its lease revoked): its claim goes with it, and its name is
	// free for another process.
	if err := seA.Close(); err != nil {
		t.Fatal(err)
	}
	next("b=10.0.0.2")
	if err := dup.Claim(ctx, []byte("10.0.0.9")); err != nil {
		t.Fatalf("claiming a freed name: %v", err)
	}
	next("a=10.0.0.9", "b=10.0.0.2")

	// A process that dies (kill -9: no revoke, no more renewals) leaves
	// its name claimed until its lease expires; a new process with the
	// same name waits for that, then takes the name.
	crashed := open(t, c, pfx, 100)
	seC, err := crashed.NewSession(ctx, "c", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := seC.Claim(ctx, []byte("old")); err != nil {
		t.Fatal(err)
	}
	next("a=10.0.0.9", "b=10.0.0.2", "c=old")
	crashed.Close() // the connection goes, the lease stays until it expires
	restarted, err := b.NewSession(ctx, "c", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer restarted.Close()
	if err := restarted.Claim(ctx, []byte("new")); err != nil {
		t.Fatalf("claiming the name of a crashed process: %v", err)
	}
	next("a=10.0.0.9", "b=10.0.0.2", "c=new")
}

// TestSaveFederationTriesAgainWhenATryHangs: one of the store's endpoints
// stops answering while its connection stays open (a member that forwarded
// the write to a leader that died waits as long as this), so every request
// the client sends there hangs. SaveFederation gives a try half of the
// request timeout and then writes again through another endpoint: every
// save succeeds within the request timeout; when the endpoint thaws, the
// tries that hung reach etcd and change nothing (the record read back
// stays the last one written).
func TestSaveFederationTriesAgainWhenATryHangs(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{Members: 3})
	ctx := t.Context()
	proxy := etcdtest.NewProxy(t, strings.TrimPrefix(c.Members[0].ClientURL, "http://"))
	s, err := etcd.Open(ctx, etcd.Config{
		Endpoints:      []string{"http://" + proxy.Addr(), c.Members[1].ClientURL, c.Members[2].ClientURL},
		Prefix:         newPrefix(),
		DC:             "dc-1",
		RequestTimeout: 2 * time.Second,
		KeepAlive:      time.Minute, // the frozen connection stays up
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	proxy.Freeze()
	// The client's balancer takes the three endpoints in turn: of four
	// saves (each a read of the head and a transaction), several meet
	// the frozen one, and a second try reaches the other two.
	for i := range 4 {
		rec := []byte(fmt.Sprintf(`{"save":%d}`, i))
		g := vipsmart.GIP{Name: fmt.Sprintf("g%d", i), Address: netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), Mode: vipsmart.ModeFailover,
			Placements: []vipsmart.Placement{{DC: "dc-1", Priority: 100}}}
		start := time.Now()
		if err := s.SaveFederation(ctx, vipsmart.FederationUpdate{Record: rec, PutGIPs: []vipsmart.GIP{g}}); err != nil {
			t.Fatalf("save %d, %v after it began, with one endpoint frozen: %v", i, time.Since(start).Round(time.Millisecond), err)
		}
	}
	// The tries that hung reach etcd now: none may change anything (each
	// compares the revision of P gipgen it read, which later saves moved).
	proxy.Thaw()
	for end := time.Now().Add(time.Second); time.Now().Before(end); {
		got, gips, err := s.LoadFederation(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != `{"save":3}` || len(gips) != 4 {
			t.Fatalf("after the thaw: record %s and %d GIPs, want the last record and 4 GIPs", got, len(gips))
		}
	}
}

// TestLateTryChangesNothing: a save's try that read the head, then reached
// etcd only after another save was committed (a try that hung and was
// tried again), changes nothing: the state never goes back.
func TestLateTryChangesNothing(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	ctx := t.Context()
	s := open(t, c, newPrefix(), 100)
	gip := func(name string, last byte) vipsmart.GIP {
		return vipsmart.GIP{Name: name, Address: netip.AddrFrom4([4]byte{192, 0, 2, last}), Mode: vipsmart.ModeFailover,
			Placements: []vipsmart.Placement{{DC: "dc-1", Priority: 100}}}
	}
	if err := s.SaveFederation(ctx, vipsmart.FederationUpdate{Record: []byte(`{"save":1}`), PutGIPs: []vipsmart.GIP{gip("a", 1)}}); err != nil {
		t.Fatal(err)
	}
	h, err := s.ReadHead(ctx) // the late try read this
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SaveFederation(ctx, vipsmart.FederationUpdate{Record: []byte(`{"save":2}`), PutGIPs: []vipsmart.GIP{gip("b", 2)}}); err != nil {
		t.Fatal(err)
	}
	err = s.WriteIncremental(ctx, h, []byte(`{"save":1}`), map[string][]byte{"late": []byte(`{"name":"late"}`)})
	if !errors.Is(err, etcd.ErrHeadMoved) {
		t.Fatalf("the late try: %v, want it refused as the head moved", err)
	}
	rec, gips, err := s.LoadFederation(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(rec) != `{"save":2}` || len(gips) != 2 || gips[0].Name != "a" || gips[1].Name != "b" {
		t.Fatalf("after the late try: record %s, GIPs %v; want the second save's", rec, gips)
	}
}
