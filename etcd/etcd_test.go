package etcd_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/etcd"
	"github.com/vipsmart/vipsmart/etcd/etcdtest"
	"github.com/vipsmart/vipsmart/storetest"
)

var prefixes atomic.Int64

// newPrefix returns a prefix no other store of this test process uses.
func newPrefix() string { return fmt.Sprintf("/test/%d/", prefixes.Add(1)) }

func open(t *testing.T, c *etcdtest.Cluster, prefix string, maxEvents int) *etcd.Store {
	t.Helper()
	s, err := etcd.Open(t.Context(), etcd.Config{
		Endpoints: c.Endpoints(),
		TLS:       c.TLSConfig(),
		Prefix:    prefix,
		DC:        "dc-1",
		MaxEvents: maxEvents,
	})
	if err != nil {
		t.Fatalf("Open(%s): %v", prefix, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestContract(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	storetest.Run(t, func(t *testing.T, maxEvents int) vipsmart.Store {
		return open(t, c, newPrefix(), maxEvents)
	})
}

func TestContractThreeMembers(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{Members: 3})
	storetest.Run(t, func(t *testing.T, maxEvents int) vipsmart.Store {
		return open(t, c, newPrefix(), maxEvents)
	})
}

// TestContractReopen maps each directory of the suite to a prefix of one
// etcd cluster: reopening is a new client on the same prefix.
func TestContractReopen(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	storetest.RunReopen(t, func(t *testing.T, dir string, maxEvents int) vipsmart.Store {
		h := sha256.Sum256([]byte(dir))
		return open(t, c, "/reopen/"+hex.EncodeToString(h[:8])+"/", maxEvents)
	})
}

// TestContractTLS runs the contract over https with client certificates.
func TestContractTLS(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{TLS: true})
	storetest.Run(t, func(t *testing.T, maxEvents int) vipsmart.Store {
		return open(t, c, newPrefix(), maxEvents)
	})
	// Without a client certificate the server refuses the connection.
	tlsNoCert, err := etcd.TLSConfig("", "", c.CA)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	s, err := etcd.Open(ctx, etcd.Config{Endpoints: c.Endpoints(), TLS: tlsNoCert, Prefix: newPrefix(), DC: "dc-1", RequestTimeout: 2 * time.Second})
	if err == nil {
		s.Close()
		t.Fatal("Open without a client certificate succeeded against a server that requires one")
	}
	t.Logf("without a client certificate: %v", err)
}

func gipN(i int) vipsmart.GIP {
	return vipsmart.GIP{
		Name:    fmt.Sprintf("gip-%05d", i),
		Address: netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}),
		Mode:    vipsmart.ModeFailover,
		Placements: []vipsmart.Placement{
			{DC: "dc-1", Priority: 200, VIP: fmt.Sprintf("web-%05d", i)},
			{DC: "dc-2", Priority: 100},
			{DC: "dc-3", Priority: 50},
		},
	}
}

func gipRange(from, to int) []vipsmart.GIP {
	var gs []vipsmart.GIP
	for i := from; i < to; i++ {
		gs = append(gs, gipN(i))
	}
	return gs
}

func checkGIPSet(t *testing.T, s vipsmart.Store, wantRecord string, want []vipsmart.GIP) {
	t.Helper()
	rec, gips, err := s.LoadFederation(t.Context())
	if err != nil {
		t.Fatalf("LoadFederation: %v", err)
	}
	if string(rec) != wantRecord {
		t.Errorf("record = %q, want %q", rec, wantRecord)
	}
	if len(gips) != len(want) {
		t.Fatalf("LoadFederation returned %d GIPs, want %d", len(gips), len(want))
	}
	for i := range want {
		if gips[i].Name != want[i].Name || gips[i].Address != want[i].Address || len(gips[i].Placements) != len(want[i].Placements) {
			t.Fatalf("GIP %d = %+v, want %+v", i, gips[i], want[i])
		}
	}
}

// countKeys returns how many keys there are under prefix.
func countKeys(t *testing.T, cli *clientv3.Client, prefix string) int64 {
	t.Helper()
	resp, err := cli.Get(t.Context(), prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	return resp.Count
}

// head reads P gipgen: the base's generation and number of chunks.
func readGen(t *testing.T, cli *clientv3.Client, pfx string) (gen uint64, chunks int) {
	t.Helper()
	resp, err := cli.Get(t.Context(), pfx+"gipgen")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("reading gipgen: %v %v", resp, err)
	}
	if _, err := fmt.Sscanf(string(resp.Kvs[0].Value), "%x %d", &gen, &chunks); err != nil {
		t.Fatalf("gipgen %q: %v", resp.Kvs[0].Value, err)
	}
	return gen, chunks
}

// TestLargeGIPSets replaces, updates and shrinks a set of 10,000 GIPs
// (about 2 MB of JSON: more than one etcd request may carry, and far more
// GIPs than one transaction may hold operations).
func TestLargeGIPSets(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	pfx := newPrefix()
	s := open(t, c, pfx, 100)
	cli := c.Client()
	ctx := t.Context()

	all := gipRange(0, 10000)
	start := time.Now()
	if err := s.SaveFederation(ctx, vipsmart.FederationUpdate{Record: []byte("r1"), ReplaceGIPs: true, PutGIPs: all}); err != nil {
		t.Fatalf("replacing with 10,000 GIPs: %v", err)
	}
	t.Logf("replace with 10,000 GIPs took %s", time.Since(start))
	checkGIPSet(t, s, "r1", all)
	_, chunks := readGen(t, cli, pfx)
	if chunks < 5 || countKeys(t, cli, pfx+"gips/") != int64(chunks) {
		t.Errorf("10,000 GIPs stored as %d chunks and %d keys under gips/, want 5 or more chunks and nothing else", chunks, countKeys(t, cli, pfx+"gips/"))
	}

	// A small incremental change on the big set: overlay keys, one put
	// and one tombstone.
	add := gipN(10000)
	if err := s.SaveFederation(ctx, vipsmart.FederationUpdate{Record: []byte("r2"), PutGIPs: []vipsmart.GIP{add}, DeleteGIPs: []string{"gip-00000"}}); err != nil {
		t.Fatal(err)
	}
	checkGIPSet(t, s, "r2", append(gipRange(1, 10000), add))
	if p, d := countKeys(t, cli, pfx+"gips/put/"), countKeys(t, cli, pfx+"gips/del/"); p != 1 || d != 1 {
		t.Errorf("after one put and one delete: %d put and %d del keys, want 1 and 1", p, d)
	}
	// Putting back a deleted name removes its tombstone.
	if err := s.SaveFederation(ctx, vipsmart.FederationUpdate{Record: []byte("r2b"), PutGIPs: []vipsmart.GIP{gipN(0)}}); err != nil {
		t.Fatal(err)
	}
	checkGIPSet(t, s, "r2b", gipRange(0, 10001))
	if d := countKeys(t, cli, pfx+"gips/del/"); d != 0 {
		t.Errorf("after putting a deleted GIP back: %d del keys, want 0", d)
	}

	// An incremental change too large for one transaction (500 puts, 500
	// deletes): folded into a new base, the overlay gone.
	var del []string
	for i := 0; i <= 500; i++ {
		del = append(del, gipN(i).Name)
	}
	if err := s.SaveFederation(ctx, vipsmart.FederationUpdate{Record: []byte("r3"), PutGIPs: gipRange(10001, 10501), DeleteGIPs: del}); err != nil {
		t.Fatalf("a large incremental update: %v", err)
	}
	checkGIPSet(t, s, "r3", gipRange(501, 10501))
	_, chunks = readGen(t, cli, pfx)
	if n := countKeys(t, cli, pfx+"gips/"); n != int64(chunks) {
		t.Errorf("%d keys under gips/ after the large update, want its %d chunks alone (overlay or old base left?)", n, chunks)
	}

	// Shrink to a small set in one replace: the old base goes.
	if err := s.SaveFederation(ctx, vipsmart.FederationUpdate{Record: []byte("r4"), ReplaceGIPs: true, PutGIPs: gipRange(7, 10)}); err != nil {
		t.Fatal(err)
	}
	checkGIPSet(t, s, "r4", gipRange(7, 10))
	if _, chunks := readGen(t, cli, pfx); chunks != 1 || countKeys(t, cli, pfx+"gips/") != 1 {
		t.Errorf("3 GIPs stored as %d chunks and %d keys under gips/, want 1 and 1", chunks, countKeys(t, cli, pfx+"gips/"))
	}
}

// TestOverlayFolds: once the overlay would pass its bound, an incremental
// update folds it into a new base.
func TestOverlayFolds(t *testing.T) {
	defer etcd.SetOverlayMax(5)()
	c := etcdtest.Start(t, etcdtest.Options{})
	pfx := newPrefix()
	s := open(t, c, pfx, 100)
	cli := c.Client()
	ctx := t.Context()
	want := map[int]bool{}
	check := func(rec string) {
		t.Helper()
		var gs []vipsmart.GIP
		for i := range 100 {
			if want[i] {
				gs = append(gs, gipN(i))
			}
		}
		checkGIPSet(t, s, rec, gs)
		if n := countKeys(t, cli, pfx+"gips/put/") + countKeys(t, cli, pfx+"gips/del/"); n > 5 {
			t.Fatalf("%d overlay keys, more than the bound of 5", n)
		}
	}
	if err := s.SaveFederation(ctx, vipsmart.FederationUpdate{Record: []byte("r0"), ReplaceGIPs: true, PutGIPs: gipRange(0, 4)}); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		want[i] = true
	}
	check("r0")
	gen0, _ := readGen(t, cli, pfx)
	for i := 4; i < 24; i++ {
		u := vipsmart.FederationUpdate{Record: []byte(fmt.Sprint("r", i)), PutGIPs: []vipsmart.GIP{gipN(i)}}
		want[i] = true
		if i%3 == 0 {
			u.DeleteGIPs = []string{gipN(i - 4).Name}
			want[i-4] = false
		}
		if err := s.SaveFederation(ctx, u); err != nil {
			t.Fatal(err)
		}
		check(fmt.Sprint("r", i))
	}
	if gen, _ := readGen(t, cli, pfx); gen < gen0+3 {
		t.Errorf("after 20 updates with an overlay bound of 5: base %d, started at %d: want at least 3 folds", gen, gen0)
	}
}

// TestInterruptedReplace leaves behind what replacements that did not
// finish leave (chunks of the next base): readers do not see them, and
// the next replacement clears them, whether it fits in one transaction or
// is staged.
func TestInterruptedReplace(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	pfx := newPrefix()
	s := open(t, c, pfx, 100)
	cli := c.Client()
	ctx := t.Context()
	if err := s.SaveFederation(ctx, vipsmart.FederationUpdate{Record: []byte("r1"), ReplaceGIPs: true, PutGIPs: gipRange(0, 3)}); err != nil {
		t.Fatal(err)
	}
	strays := func() {
		t.Helper()
		gen, _ := readGen(t, cli, pfx)
		for i := range 20 {
			for _, g := range []uint64{gen + 1, gen - 1} {
				if _, err := cli.Put(ctx, fmt.Sprintf("%sgips/base/%016x/%08x", pfx, g, i), `[{"name":"stray"}]`); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	strays()
	checkGIPSet(t, s, "r1", gipRange(0, 3))
	// An incremental update does not mind them...
	if err := s.SaveFederation(ctx, vipsmart.FederationUpdate{Record: []byte("r2"), PutGIPs: gipRange(3, 4)}); err != nil {
		t.Fatal(err)
	}
	checkGIPSet(t, s, "r2", gipRange(0, 4))
	// ...a replacement in one transaction removes them...
	if err := s.SaveFederation(ctx, vipsmart.FederationUpdate{Record: []byte("r3"), ReplaceGIPs: true, PutGIPs: gipRange(0, 300)}); err != nil {
		t.Fatal(err)
	}
	checkGIPSet(t, s, "r3", gipRange(0, 300))
	if _, chunks := readGen(t, cli, pfx); countKeys(t, cli, pfx+"gips/") != int64(chunks) {
		t.Errorf("%d keys under gips/, want the %d chunks alone: stray chunks were not cleared", countKeys(t, cli, pfx+"gips/"), chunks)
	}
	// ...and so does a staged one.
	strays()
	if err := s.SaveFederation(ctx, vipsmart.FederationUpdate{Record: []byte("r4"), ReplaceGIPs: true, PutGIPs: gipRange(0, 8000)}); err != nil {
		t.Fatal(err)
	}
	checkGIPSet(t, s, "r4", gipRange(0, 8000))
	if _, chunks := readGen(t, cli, pfx); chunks < 4 || countKeys(t, cli, pfx+"gips/") != int64(chunks) {
		t.Errorf("%d keys under gips/, want the %d (4 or more) chunks alone: stray chunks were not cleared", countKeys(t, cli, pfx+"gips/"), chunks)
	}
}

func TestOpenRefusals(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	cli := c.Client()
	ctx := t.Context()
	cfg := func(prefix, dc string) etcd.Config {
		return etcd.Config{Endpoints: c.Endpoints(), Prefix: prefix, DC: dc}
	}
	wantErr := func(what string, cfg etcd.Config, contains string) {
		t.Helper()
		s, err := etcd.Open(ctx, cfg)
		if err == nil {
			s.Close()
			t.Fatalf("%s: Open succeeded", what)
		}
		if !strings.Contains(err.Error(), contains) {
			t.Fatalf("%s: error %q does not say %q", what, err, contains)
		}
	}

	// Another DC's prefix.
	pfx := newPrefix()
	s := open(t, c, pfx, 100)
	if err := s.CreateVIP(ctx, vipsmart.VIP{Name: "web", Address: netip.MustParseAddr("192.0.2.1")}); err != nil {
		t.Fatal(err)
	}
	wantErr("another DC's prefix", cfg(pfx, "dc-2"), "holds the state of DC dc-1, not of DC dc-2")

	// Another program's data.
	other := newPrefix()
	if _, err := cli.Put(ctx, other+"config", "x"); err != nil {
		t.Fatal(err)
	}
	wantErr("foreign keys", cfg(other, "dc-1"), "not a vipsmart store")

	// A newer schema.
	newer := newPrefix()
	open(t, c, newer, 100).Close()
	if _, err := cli.Put(ctx, newer+"schema", "2"); err != nil {
		t.Fatal(err)
	}
	wantErr("a newer schema", cfg(newer, "dc-1"), "upgrade vipsmart")

	// Bad configurations.
	wantErr("a prefix without a trailing /", cfg("/vipsmart/dc-1", "dc-1"), "must end with /")
	wantErr("no DC", cfg(newPrefix(), ""), "no DC name")

	// The refusals changed nothing.
	v, err := s.GetVIP(ctx, "web")
	if err != nil || v.Address != netip.MustParseAddr("192.0.2.1") {
		t.Fatalf("GetVIP after the refusals: %+v %v", v, err)
	}
	if n := countKeys(t, cli, other); n != 1 {
		t.Errorf("the foreign prefix now holds %d keys, want 1", n)
	}
}

// TestUnavailable stops etcd under an open store: every call fails within
// the request timeout with EUNAVAILABLE, "store unavailable: ...", and
// works again once etcd is back.
func TestUnavailable(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	ctx := t.Context()
	s, err := etcd.Open(ctx, etcd.Config{Endpoints: c.Endpoints(), Prefix: newPrefix(), DC: "dc-1", RequestTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	web := vipsmart.VIP{Name: "web", Address: netip.MustParseAddr("192.0.2.1")}
	if err := s.CreateVIP(ctx, web); err != nil {
		t.Fatal(err)
	}
	c.Members[0].Kill()

	check := func(what string, err error) {
		t.Helper()
		if !vipsmart.IsCode(err, vipsmart.EUNAVAILABLE) {
			t.Errorf("%s with etcd down: error %v (code %q), want code %q", what, err, vipsmart.ErrorCodeOf(err), vipsmart.EUNAVAILABLE)
			return
		}
		if !strings.HasPrefix(err.Error(), "store unavailable: ") {
			t.Errorf("%s: error %q does not start with \"store unavailable: \"", what, err)
		}
	}
	start := time.Now()
	_, err = s.ListVIPs(ctx)
	check("ListVIPs", err)
	t.Logf("ListVIPs with etcd down: %v (after %s)", err, time.Since(start).Round(time.Millisecond))
	_, err = s.GetVIP(ctx, "web")
	check("GetVIP", err)
	check("CreateVIP", s.CreateVIP(ctx, vipsmart.VIP{Name: "db", Address: netip.MustParseAddr("192.0.2.2")}))
	check("DeleteVIP", s.DeleteVIP(ctx, "web"))
	_, _, err = s.LoadFederation(ctx)
	check("LoadFederation", err)
	check("SaveFederation", s.SaveFederation(ctx, vipsmart.FederationUpdate{Record: []byte("r")}))
	_, err = s.AppendEvents(ctx, []vipsmart.Event{{Message: "x"}})
	check("AppendEvents", err)
	_, err = s.ListEvents(ctx, 0, 10)
	check("ListEvents", err)
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("8 calls with etcd down took %s, want each bounded by the 500ms request timeout", d)
	}

	if err := c.Members[0].Start(); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	// The same store works again, without reopening.
	deadline := time.Now().Add(20 * time.Second)
	for {
		vips, err := s.ListVIPs(ctx)
		if err == nil {
			if len(vips) != 1 || vips[0].Name != "web" {
				t.Fatalf("after etcd came back: VIPs %+v, want only web", vips)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the store did not recover within 20s of etcd's return: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := s.CreateVIP(ctx, vipsmart.VIP{Name: "db", Address: netip.MustParseAddr("192.0.2.2")}); err != nil {
		t.Fatalf("CreateVIP after etcd came back: %v", err)
	}
}

func TestCancelledCampaign(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	s := open(t, c, newPrefix(), 100)
	se, err := s.NewSession(t.Context(), "n1", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer se.Close()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := se.Campaign(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Campaign with a cancelled context: %v, want context.Canceled", err)
	}
}
