// Package storetest is the contract test suite of vipsmart.Store. Every
// implementation must pass Run (and, if it persists to a directory,
// RunReopen) unchanged.
//
// The suite closes every store it opens (ignoring the error of a second
// Close), so open functions need not register their own cleanup.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
)

// BigBound is the event bound the suite asks for when a test does not
// exercise bounding: larger than any test appends.
const BigBound = 1000

// SmallBound is the event bound the suite asks for to exercise bounding.
const SmallBound = 5

// Opener opens a fresh, empty store that keeps at most maxEvents events.
type Opener func(t *testing.T, maxEvents int) vipsmart.Store

// DirOpener opens the store kept in dir (creating it empty on the first
// call for a dir), keeping at most maxEvents events. The suite closes each
// store before opening dir again.
type DirOpener func(t *testing.T, dir string, maxEvents int) vipsmart.Store

// Run runs the whole contract against stores made by open, one fresh store
// per subtest.
func Run(t *testing.T, open Opener) {
	t.Helper()
	o := func(t *testing.T, maxEvents int) vipsmart.Store {
		t.Helper()
		s := open(t, maxEvents)
		if s == nil {
			t.Fatal("open returned a nil store")
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, open Opener)
	}{
		{"EmptyStore", testEmptyStore},
		{"VIPRoundTrip", testVIPRoundTrip},
		{"ListVIPsSorted", testListVIPsSorted},
		{"CreateVIPDuplicateName", testCreateVIPDuplicateName},
		{"CreateVIPDuplicateAddress", testCreateVIPDuplicateAddress},
		{"GetVIPNotFound", testGetVIPNotFound},
		{"DeleteVIP", testDeleteVIP},
		{"DeleteVIPNotFound", testDeleteVIPNotFound},
		{"ConcurrentCreateSameAddress", testConcurrentCreateSameAddress},
		{"ConcurrentCreateSameName", testConcurrentCreateSameName},
		{"FederationEmpty", testFederationEmpty},
		{"FederationReplace", testFederationReplace},
		{"FederationIncremental", testFederationIncremental},
		{"FederationRecordBytes", testFederationRecordBytes},
		{"FederationRecordCleared", testFederationRecordCleared},
		{"EventsNumbering", testEventsNumbering},
		{"EventsRoundTrip", testEventsRoundTrip},
		{"EventsPaging", testEventsPaging},
		{"EventsBound", testEventsBound},
		{"EventsBoundOneBatch", testEventsBoundOneBatch},
		{"CancelledContext", testCancelledContext},
		{"AfterClose", testAfterClose},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, o) })
	}
}

// RunReopen checks durability: what one store writes in a directory, the
// next store opened on that directory (after the first is closed) reads.
func RunReopen(t *testing.T, open DirOpener) {
	t.Helper()
	o := func(t *testing.T, dir string, maxEvents int) vipsmart.Store {
		t.Helper()
		s := open(t, dir, maxEvents)
		if s == nil {
			t.Fatal("open returned a nil store")
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	t.Run("ReopenKeepsEverything", func(t *testing.T) { testReopenKeepsEverything(t, o) })
	t.Run("ReopenKeepsEventBound", func(t *testing.T) { testReopenKeepsEventBound(t, o) })
}

// ---- fixtures ----

var created = time.Date(2024, 3, 9, 14, 5, 6, 123456789, time.UTC)

func vipWeb() vipsmart.VIP {
	return vipsmart.VIP{
		Name:      "web",
		Address:   netip.MustParseAddr("192.0.2.10"),
		Interface: "eth1",
		Check: &vipsmart.Check{
			URL:          "http://192.0.2.10:8080/healthz",
			Interval:     vipsmart.Duration(1500 * time.Millisecond),
			Timeout:      vipsmart.Duration(250 * time.Millisecond),
			Rise:         3,
			Fall:         4,
			ExpectStatus: 204,
		},
		Created: created,
	}
}

func vipDB() vipsmart.VIP {
	return vipsmart.VIP{
		Name:    "db",
		Address: netip.MustParseAddr("2001:db8::1:5"),
		Check: &vipsmart.Check{
			URL:      "tcp://[2001:db8::1:5]:5432",
			Interval: vipsmart.Duration(2 * time.Second),
			Timeout:  vipsmart.Duration(time.Second),
			Rise:     1,
			Fall:     2,
		},
		Created: time.Date(2023, 12, 31, 23, 59, 59, 1, time.FixedZone("CET", 3600)),
	}
}

func vipPlain(name, addr string) vipsmart.VIP {
	return vipsmart.VIP{Name: name, Address: netip.MustParseAddr(addr), Created: created.Add(time.Minute)}
}

func gip(name, addr string, mode vipsmart.GIPMode, preempt bool, ps ...vipsmart.Placement) vipsmart.GIP {
	return vipsmart.GIP{Name: name, Address: netip.MustParseAddr(addr), Mode: mode, Preempt: preempt, Placements: ps}
}

func event(i int) vipsmart.Event {
	return vipsmart.Event{
		Time:    created.Add(time.Duration(i) * time.Second),
		DC:      fmt.Sprintf("dc%d", i%3+1),
		Kind:    vipsmart.EventVIP,
		OpID:    fmt.Sprintf("op-%d", i),
		Message: fmt.Sprintf("event number %d", i),
	}
}

func events(from, n int) []vipsmart.Event {
	var es []vipsmart.Event
	for i := from; i < from+n; i++ {
		es = append(es, event(i))
	}
	return es
}

// ---- helpers ----

func ctx(t *testing.T) context.Context { return t.Context() }

func mustCreate(t *testing.T, s vipsmart.Store, v vipsmart.VIP) {
	t.Helper()
	if err := s.CreateVIP(ctx(t), v); err != nil {
		t.Fatalf("CreateVIP(%s): %v", v.Name, err)
	}
}

func mustAppend(t *testing.T, s vipsmart.Store, es []vipsmart.Event) []vipsmart.Event {
	t.Helper()
	got, err := s.AppendEvents(ctx(t), es)
	if err != nil {
		t.Fatalf("AppendEvents(%d events): %v", len(es), err)
	}
	return got
}

func mustSave(t *testing.T, s vipsmart.Store, u vipsmart.FederationUpdate) {
	t.Helper()
	if err := s.SaveFederation(ctx(t), u); err != nil {
		t.Fatalf("SaveFederation: %v", err)
	}
}

func mustLoad(t *testing.T, s vipsmart.Store) ([]byte, []vipsmart.GIP) {
	t.Helper()
	rec, gips, err := s.LoadFederation(ctx(t))
	if err != nil {
		t.Fatalf("LoadFederation: %v", err)
	}
	return rec, gips
}

func mustListEvents(t *testing.T, s vipsmart.Store, after uint64, limit int) []vipsmart.Event {
	t.Helper()
	es, err := s.ListEvents(ctx(t), after, limit)
	if err != nil {
		t.Fatalf("ListEvents(%d, %d): %v", after, limit, err)
	}
	return es
}

// sameVIP reports how got differs from want: every field exactly, Created
// as the same instant.
func sameVIP(got, want vipsmart.VIP) string {
	if !got.Created.Equal(want.Created) {
		return fmt.Sprintf("Created = %s, want %s", got.Created.Format(time.RFC3339Nano), want.Created.Format(time.RFC3339Nano))
	}
	got.Created, want.Created = time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		return fmt.Sprintf("got %s, want %s", fmtVIP(got), fmtVIP(want))
	}
	return ""
}

func fmtVIP(v vipsmart.VIP) string {
	s := fmt.Sprintf("{Name:%q Address:%s Interface:%q Created:%s", v.Name, v.Address, v.Interface, v.Created.Format(time.RFC3339Nano))
	if v.Check != nil {
		s += fmt.Sprintf(" Check:%+v", *v.Check)
	}
	return s + "}"
}

func checkVIP(t *testing.T, s vipsmart.Store, want vipsmart.VIP) {
	t.Helper()
	got, err := s.GetVIP(ctx(t), want.Name)
	if err != nil {
		t.Fatalf("GetVIP(%s): %v", want.Name, err)
	}
	if d := sameVIP(got, want); d != "" {
		t.Errorf("GetVIP(%s): %s", want.Name, d)
	}
}

func checkVIPs(t *testing.T, s vipsmart.Store, want ...vipsmart.VIP) {
	t.Helper()
	got, err := s.ListVIPs(ctx(t))
	if err != nil {
		t.Fatalf("ListVIPs: %v", err)
	}
	if len(got) != len(want) {
		t.Fatalf("ListVIPs returned %d VIPs %v, want %d %v", len(got), vipNames(got), len(want), vipNames(want))
	}
	for i := range want {
		if d := sameVIP(got[i], want[i]); d != "" {
			t.Errorf("ListVIPs[%d]: %s", i, d)
		}
	}
}

func vipNames(vs []vipsmart.VIP) []string {
	var ns []string
	for _, v := range vs {
		ns = append(ns, v.Name)
	}
	return ns
}

func checkGIPs(t *testing.T, got []vipsmart.GIP, want ...vipsmart.GIP) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("GIPs:\n got %+v\nwant %+v", got, want)
	}
}

// sameEvent reports how got differs from want: every field exactly, Time
// as the same instant.
func sameEvent(got, want vipsmart.Event) string {
	if !got.Time.Equal(want.Time) {
		return fmt.Sprintf("Time = %s, want %s", got.Time.Format(time.RFC3339Nano), want.Time.Format(time.RFC3339Nano))
	}
	got.Time, want.Time = time.Time{}, time.Time{}
	if got != want {
		return fmt.Sprintf("got %+v, want %+v", got, want)
	}
	return ""
}

func seqs(es []vipsmart.Event) []uint64 {
	ss := []uint64{}
	for _, e := range es {
		ss = append(ss, e.Seq)
	}
	return ss
}

func seqRange(from, to uint64) []uint64 {
	ss := []uint64{}
	for i := from; i <= to; i++ {
		ss = append(ss, i)
	}
	return ss
}

func checkSeqs(t *testing.T, what string, got []vipsmart.Event, want []uint64) {
	t.Helper()
	if g := seqs(got); !reflect.DeepEqual(g, want) {
		t.Errorf("%s: seqs %v, want %v", what, g, want)
	}
}

func wantCode(t *testing.T, what string, err error, code vipsmart.ErrorCode) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s succeeded, want a %s error", what, code)
	}
	if !vipsmart.IsCode(err, code) {
		t.Fatalf("%s: error %q has code %q, want %q", what, err, vipsmart.ErrorCodeOf(err), code)
	}
}

// ---- VIPs ----

func testEmptyStore(t *testing.T, open Opener) {
	s := open(t, BigBound)
	checkVIPs(t, s)
	es := mustListEvents(t, s, 0, 100)
	if len(es) != 0 {
		t.Errorf("ListEvents on an empty store returned %d events, want 0", len(es))
	}
}

func testVIPRoundTrip(t *testing.T, open Opener) {
	s := open(t, BigBound)
	web, db, plain := vipWeb(), vipDB(), vipPlain("mail", "198.51.100.7")
	for _, v := range []vipsmart.VIP{web, db, plain} {
		mustCreate(t, s, v)
	}
	// The caller's value must not be shared with the store.
	web.Check.Rise = 99
	web = vipWeb()
	checkVIP(t, s, web)
	checkVIP(t, s, db)
	checkVIP(t, s, plain)
	checkVIPs(t, s, db, plain, web)

	// A value read back must not be shared with the store either.
	got, err := s.GetVIP(ctx(t), "web")
	if err != nil {
		t.Fatal(err)
	}
	got.Check.Fall = 77
	got.Interface = "changed"
	checkVIP(t, s, web)

	// IPv4 and IPv6 addresses keep their family.
	got, err = s.GetVIP(ctx(t), "db")
	if err != nil {
		t.Fatal(err)
	}
	if !got.Address.Is6() || got.Address.Is4In6() || got.Address != netip.MustParseAddr("2001:db8::1:5") {
		t.Errorf("db address = %s, want IPv6 2001:db8::1:5", got.Address)
	}
	got, err = s.GetVIP(ctx(t), "mail")
	if err != nil {
		t.Fatal(err)
	}
	if !got.Address.Is4() || got.Check != nil || got.Interface != "" {
		t.Errorf("mail = %s, want IPv4 address, no check, no interface", fmtVIP(got))
	}
}

func testListVIPsSorted(t *testing.T, open Opener) {
	s := open(t, BigBound)
	names := []string{"web", "api", "zeta", "db", "alpha-2", "alpha", "m1", "m10", "m2"}
	var vs []vipsmart.VIP
	for i, n := range names {
		v := vipPlain(n, fmt.Sprintf("192.0.2.%d", 100+i))
		vs = append(vs, v)
		mustCreate(t, s, v)
	}
	byName := map[string]vipsmart.VIP{}
	for _, v := range vs {
		byName[v.Name] = v
	}
	var want []vipsmart.VIP
	for _, n := range []string{"alpha", "alpha-2", "api", "db", "m1", "m10", "m2", "web", "zeta"} {
		want = append(want, byName[n])
	}
	checkVIPs(t, s, want...)
}

func testCreateVIPDuplicateName(t *testing.T, open Opener) {
	s := open(t, BigBound)
	web := vipWeb()
	mustCreate(t, s, web)
	dup := vipPlain("web", "192.0.2.99")
	wantCode(t, "CreateVIP with a duplicate name", s.CreateVIP(ctx(t), dup), vipsmart.ECONFLICT)
	// Nothing changed: the original is intact and the new address is free.
	checkVIP(t, s, web)
	checkVIPs(t, s, web)
	free := vipPlain("other", "192.0.2.99")
	mustCreate(t, s, free)
	checkVIPs(t, s, free, web)
}

func testCreateVIPDuplicateAddress(t *testing.T, open Opener) {
	s := open(t, BigBound)
	web, db := vipWeb(), vipDB()
	mustCreate(t, s, web)
	mustCreate(t, s, db)
	dup := vipPlain("api", "192.0.2.10")
	wantCode(t, "CreateVIP with a duplicate IPv4 address", s.CreateVIP(ctx(t), dup), vipsmart.ECONFLICT)
	dup6 := vipPlain("api6", "2001:db8::1:5")
	wantCode(t, "CreateVIP with a duplicate IPv6 address", s.CreateVIP(ctx(t), dup6), vipsmart.ECONFLICT)
	// Nothing changed: the rejected names do not exist.
	for _, n := range []string{"api", "api6"} {
		_, err := s.GetVIP(ctx(t), n)
		wantCode(t, "GetVIP of a rejected VIP "+n, err, vipsmart.ENOTFOUND)
	}
	checkVIPs(t, s, db, web)
	// The rejected names are free.
	api := vipPlain("api", "192.0.2.11")
	mustCreate(t, s, api)
	checkVIPs(t, s, api, db, web)
}

func testGetVIPNotFound(t *testing.T, open Opener) {
	s := open(t, BigBound)
	_, err := s.GetVIP(ctx(t), "web")
	wantCode(t, "GetVIP on an empty store", err, vipsmart.ENOTFOUND)
	mustCreate(t, s, vipWeb())
	_, err = s.GetVIP(ctx(t), "we")
	wantCode(t, "GetVIP of a prefix of an existing name", err, vipsmart.ENOTFOUND)
	_, err = s.GetVIP(ctx(t), "web2")
	wantCode(t, "GetVIP of an extension of an existing name", err, vipsmart.ENOTFOUND)
	checkVIP(t, s, vipWeb())
}

func testDeleteVIP(t *testing.T, open Opener) {
	s := open(t, BigBound)
	web, db := vipWeb(), vipDB()
	mustCreate(t, s, web)
	mustCreate(t, s, db)
	if err := s.DeleteVIP(ctx(t), "web"); err != nil {
		t.Fatalf("DeleteVIP(web): %v", err)
	}
	_, err := s.GetVIP(ctx(t), "web")
	wantCode(t, "GetVIP after DeleteVIP", err, vipsmart.ENOTFOUND)
	checkVIPs(t, s, db)
	wantCode(t, "DeleteVIP twice", s.DeleteVIP(ctx(t), "web"), vipsmart.ENOTFOUND)
	// Deleting frees both the name and the address.
	reuse := vipPlain("other", "192.0.2.10")
	mustCreate(t, s, reuse)
	again := vipPlain("web", "192.0.2.20")
	mustCreate(t, s, again)
	checkVIPs(t, s, db, reuse, again)
}

func testDeleteVIPNotFound(t *testing.T, open Opener) {
	s := open(t, BigBound)
	wantCode(t, "DeleteVIP on an empty store", s.DeleteVIP(ctx(t), "web"), vipsmart.ENOTFOUND)
	mustCreate(t, s, vipWeb())
	wantCode(t, "DeleteVIP of a missing name", s.DeleteVIP(ctx(t), "db"), vipsmart.ENOTFOUND)
	checkVIPs(t, s, vipWeb())
}

func testConcurrentCreateSameAddress(t *testing.T, open Opener) {
	s := open(t, BigBound)
	const n = 24
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = s.CreateVIP(context.Background(), vipPlain(fmt.Sprintf("vip%02d", i), "203.0.113.1"))
		})
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("CreateVIP of vip%02d and vip%02d with the same address both succeeded", winner, i)
		case err == nil:
			winner = i
		case !vipsmart.IsCode(err, vipsmart.ECONFLICT):
			t.Errorf("CreateVIP(vip%02d): error %q has code %q, want %q", i, err, vipsmart.ErrorCodeOf(err), vipsmart.ECONFLICT)
		}
	}
	if winner < 0 {
		t.Fatal("no concurrent CreateVIP succeeded")
	}
	checkVIPs(t, s, vipPlain(fmt.Sprintf("vip%02d", winner), "203.0.113.1"))
}

func testConcurrentCreateSameName(t *testing.T, open Opener) {
	s := open(t, BigBound)
	const n = 24
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = s.CreateVIP(context.Background(), vipPlain("web", fmt.Sprintf("203.0.113.%d", i+1)))
		})
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("two concurrent CreateVIP of name web succeeded (addresses %d and %d)", winner+1, i+1)
		case err == nil:
			winner = i
		case !vipsmart.IsCode(err, vipsmart.ECONFLICT):
			t.Errorf("CreateVIP(web #%d): error %q has code %q, want %q", i, err, vipsmart.ErrorCodeOf(err), vipsmart.ECONFLICT)
		}
	}
	if winner < 0 {
		t.Fatal("no concurrent CreateVIP succeeded")
	}
	checkVIPs(t, s, vipPlain("web", fmt.Sprintf("203.0.113.%d", winner+1)))
	// The losers' addresses were not reserved.
	loser := (winner + 1) % n
	mustCreate(t, s, vipPlain("other", fmt.Sprintf("203.0.113.%d", loser+1)))
}

// ---- federation ----

var (
	gipA = gip("alpha", "198.51.100.1", vipsmart.ModeFailover, true,
		vipsmart.Placement{DC: "par", Priority: 200, VIP: "web"},
		vipsmart.Placement{DC: "ams", Priority: 100})
	gipB = gip("bravo", "2001:db8:ffff::2", vipsmart.ModeAnycast, false,
		vipsmart.Placement{DC: "fra", Priority: 1},
		vipsmart.Placement{DC: "ams", Priority: 255, VIP: "db"},
		vipsmart.Placement{DC: "par", Priority: 50})
	gipC = gip("charlie", "198.51.100.3", vipsmart.ModeFailover, false,
		vipsmart.Placement{DC: "par", Priority: 10})
	gipD = gip("delta", "198.51.100.4", vipsmart.ModeAnycast, true,
		vipsmart.Placement{DC: "fra", Priority: 7, VIP: "mail"})
)

func testFederationEmpty(t *testing.T, open Opener) {
	s := open(t, BigBound)
	rec, gips := mustLoad(t, s)
	if rec != nil {
		t.Errorf("LoadFederation on an empty store returned record %q, want nil", rec)
	}
	if len(gips) != 0 {
		t.Errorf("LoadFederation on an empty store returned %d GIPs, want 0", len(gips))
	}
}

func testFederationReplace(t *testing.T, open Opener) {
	s := open(t, BigBound)
	mustSave(t, s, vipsmart.FederationUpdate{Record: []byte(`{"epoch":1}`), ReplaceGIPs: true, PutGIPs: []vipsmart.GIP{gipC, gipA, gipB}})
	rec, gips := mustLoad(t, s)
	if string(rec) != `{"epoch":1}` {
		t.Errorf("record = %q, want %q", rec, `{"epoch":1}`)
	}
	checkGIPs(t, gips, gipA, gipB, gipC)

	// Replace: exactly the new set, even though DeleteGIPs names others.
	d2 := gipD
	d2.Placements = []vipsmart.Placement{{DC: "ams", Priority: 9}}
	mustSave(t, s, vipsmart.FederationUpdate{Record: []byte(`{"epoch":2}`), ReplaceGIPs: true, PutGIPs: []vipsmart.GIP{d2, gipB}})
	rec, gips = mustLoad(t, s)
	if string(rec) != `{"epoch":2}` {
		t.Errorf("record = %q, want %q", rec, `{"epoch":2}`)
	}
	checkGIPs(t, gips, gipB, d2)

	// Replace with nothing empties the set.
	mustSave(t, s, vipsmart.FederationUpdate{Record: []byte(`{"epoch":3}`), ReplaceGIPs: true})
	rec, gips = mustLoad(t, s)
	if string(rec) != `{"epoch":3}` {
		t.Errorf("record = %q, want %q", rec, `{"epoch":3}`)
	}
	if len(gips) != 0 {
		t.Errorf("after replacing with no GIPs, LoadFederation returned %d GIPs, want 0: %+v", len(gips), gips)
	}
}

func testFederationIncremental(t *testing.T, open Opener) {
	s := open(t, BigBound)
	mustSave(t, s, vipsmart.FederationUpdate{Record: []byte("r1"), ReplaceGIPs: true, PutGIPs: []vipsmart.GIP{gipA, gipB, gipC}})

	// Put a new one, overwrite one by name, delete one.
	a2 := gipA
	a2.Preempt = false
	a2.Placements = []vipsmart.Placement{{DC: "lon", Priority: 42, VIP: "x"}}
	mustSave(t, s, vipsmart.FederationUpdate{Record: []byte("r2"), PutGIPs: []vipsmart.GIP{gipD, a2}, DeleteGIPs: []string{"bravo"}})
	rec, gips := mustLoad(t, s)
	if string(rec) != "r2" {
		t.Errorf("record = %q, want %q", rec, "r2")
	}
	checkGIPs(t, gips, a2, gipC, gipD)

	// An update that only deletes leaves the rest alone.
	mustSave(t, s, vipsmart.FederationUpdate{Record: []byte("r3"), DeleteGIPs: []string{"alpha", "delta"}})
	rec, gips = mustLoad(t, s)
	if string(rec) != "r3" {
		t.Errorf("record = %q, want %q", rec, "r3")
	}
	checkGIPs(t, gips, gipC)

	// An update with no GIP changes only changes the record.
	mustSave(t, s, vipsmart.FederationUpdate{Record: []byte("r4")})
	rec, gips = mustLoad(t, s)
	if string(rec) != "r4" {
		t.Errorf("record = %q, want %q", rec, "r4")
	}
	checkGIPs(t, gips, gipC)
}

func testFederationRecordBytes(t *testing.T, open Opener) {
	s := open(t, BigBound)
	rec := make([]byte, 0, 600)
	for i := range 600 {
		rec = append(rec, byte(i*7))
	}
	want := bytes.Clone(rec)
	mustSave(t, s, vipsmart.FederationUpdate{Record: rec})
	rec[0], rec[599] = 0xAA, 0xBB // the store must not keep the caller's slice
	got, gips := mustLoad(t, s)
	if !bytes.Equal(got, want) {
		t.Fatalf("record of %d bytes came back as %d bytes %x..., want %x...", len(want), len(got), head(got), head(want))
	}
	if len(gips) != 0 {
		t.Errorf("LoadFederation returned %d GIPs, want 0", len(gips))
	}
	got[1] = 0xCC // nor hand out its own
	got2, _ := mustLoad(t, s)
	if !bytes.Equal(got2, want) {
		t.Errorf("changing a loaded record changed the stored one: %x..., want %x...", head(got2), head(want))
	}
}

func head(b []byte) []byte { return b[:min(len(b), 8)] }

func testFederationRecordCleared(t *testing.T, open Opener) {
	s := open(t, BigBound)
	mustSave(t, s, vipsmart.FederationUpdate{Record: []byte("member"), ReplaceGIPs: true, PutGIPs: []vipsmart.GIP{gipA}})
	mustSave(t, s, vipsmart.FederationUpdate{Record: nil, ReplaceGIPs: true})
	rec, gips := mustLoad(t, s)
	if len(rec) != 0 {
		t.Errorf("after saving a nil record, LoadFederation returned %q, want an empty record", rec)
	}
	if len(gips) != 0 {
		t.Errorf("LoadFederation returned %d GIPs, want 0", len(gips))
	}
}

// ---- events ----

func testEventsNumbering(t *testing.T, open Opener) {
	s := open(t, BigBound)
	in := events(1, 3)
	got := mustAppend(t, s, in)
	checkSeqs(t, "first AppendEvents", got, []uint64{1, 2, 3})
	for i := range in {
		want := in[i]
		want.Seq = uint64(i + 1)
		if d := sameEvent(got[i], want); d != "" {
			t.Errorf("AppendEvents returned event %d: %s", i, d)
		}
	}
	if len(mustAppend(t, s, nil)) != 0 {
		t.Error("AppendEvents(nil) returned events")
	}
	got = mustAppend(t, s, events(4, 1))
	checkSeqs(t, "AppendEvents after an empty append", got, []uint64{4})
	// Seqs set by the caller are ignored.
	e := event(5)
	e.Seq = 1
	got = mustAppend(t, s, []vipsmart.Event{e, e})
	checkSeqs(t, "AppendEvents of events with Seq set", got, []uint64{5, 6})
	checkSeqs(t, "ListEvents", mustListEvents(t, s, 0, 100), seqRange(1, 6))
}

func testEventsRoundTrip(t *testing.T, open Opener) {
	s := open(t, BigBound)
	in := []vipsmart.Event{
		{Time: created, DC: "par", Kind: vipsmart.EventStatus, Message: "standalone → member"},
		{Time: created.Add(time.Nanosecond).In(time.FixedZone("X", -7*3600)), DC: "ams", Kind: vipsmart.EventFederation, OpID: "op-9f", Message: "add DC fra: committed"},
		{Time: created.Add(time.Hour), DC: "fra", Kind: vipsmart.EventHealth, Message: `VIP "web" down: dial tcp: refused`},
	}
	mustAppend(t, s, in)
	got := mustListEvents(t, s, 0, 10)
	if len(got) != len(in) {
		t.Fatalf("ListEvents returned %d events, want %d", len(got), len(in))
	}
	for i := range in {
		want := in[i]
		want.Seq = uint64(i + 1)
		if d := sameEvent(got[i], want); d != "" {
			t.Errorf("ListEvents[%d]: %s", i, d)
		}
	}
}

func testEventsPaging(t *testing.T, open Opener) {
	s := open(t, BigBound)
	mustAppend(t, s, events(1, 4))
	mustAppend(t, s, events(5, 6))
	for _, tc := range []struct {
		after uint64
		limit int
		want  []uint64
	}{
		{0, 100, seqRange(1, 10)},
		{0, 10, seqRange(1, 10)},
		{0, 3, seqRange(1, 3)},
		{3, 3, seqRange(4, 6)},
		{6, 3, seqRange(7, 9)},
		{9, 3, []uint64{10}},
		{10, 3, []uint64{}},
		{1000, 3, []uint64{}},
		{4, 1, []uint64{5}},
	} {
		got := mustListEvents(t, s, tc.after, tc.limit)
		checkSeqs(t, fmt.Sprintf("ListEvents(%d, %d)", tc.after, tc.limit), got, tc.want)
		for _, e := range got {
			if d := sameEvent(e, withSeq(event(int(e.Seq)), e.Seq)); d != "" {
				t.Errorf("ListEvents(%d, %d) event %d: %s", tc.after, tc.limit, e.Seq, d)
			}
		}
	}
	// Paging through everything visits each event once, in order.
	var all []vipsmart.Event
	var after uint64
	for range 20 {
		page := mustListEvents(t, s, after, 4)
		if len(page) == 0 {
			break
		}
		all = append(all, page...)
		after = page[len(page)-1].Seq
	}
	checkSeqs(t, "paging by 4", all, seqRange(1, 10))
}

func withSeq(e vipsmart.Event, seq uint64) vipsmart.Event {
	e.Seq = seq
	return e
}

func testEventsBound(t *testing.T, open Opener) {
	s := open(t, SmallBound)
	mustAppend(t, s, events(1, 3))
	checkSeqs(t, "ListEvents under the bound", mustListEvents(t, s, 0, 100), seqRange(1, 3))
	mustAppend(t, s, events(4, 2))
	checkSeqs(t, "ListEvents at the bound", mustListEvents(t, s, 0, 100), seqRange(1, 5))
	got := mustAppend(t, s, events(6, 3))
	checkSeqs(t, "AppendEvents past the bound", got, seqRange(6, 8))
	kept := mustListEvents(t, s, 0, 100)
	checkSeqs(t, "ListEvents past the bound", kept, seqRange(4, 8))
	for _, e := range kept {
		if d := sameEvent(e, withSeq(event(int(e.Seq)), e.Seq)); d != "" {
			t.Errorf("kept event %d: %s", e.Seq, d)
		}
	}
	checkSeqs(t, "ListEvents after a dropped seq", mustListEvents(t, s, 2, 2), seqRange(4, 5))
	for i := 9; i <= 20; i++ {
		got := mustAppend(t, s, events(i, 1))
		checkSeqs(t, fmt.Sprintf("AppendEvents #%d", i), got, []uint64{uint64(i)})
	}
	checkSeqs(t, "ListEvents after many appends", mustListEvents(t, s, 0, 100), seqRange(16, 20))
}

func testEventsBoundOneBatch(t *testing.T, open Opener) {
	s := open(t, SmallBound)
	got := mustAppend(t, s, events(1, 12))
	checkSeqs(t, "AppendEvents of a batch larger than the bound", got, seqRange(1, 12))
	checkSeqs(t, "ListEvents", mustListEvents(t, s, 0, 100), seqRange(8, 12))
	got = mustAppend(t, s, events(13, 1))
	checkSeqs(t, "next AppendEvents", got, []uint64{13})
	checkSeqs(t, "ListEvents", mustListEvents(t, s, 0, 100), seqRange(9, 13))
}

// ---- context and Close ----

func testCancelledContext(t *testing.T, open Opener) {
	s := open(t, BigBound)
	web := vipWeb()
	mustCreate(t, s, web)
	mustSave(t, s, vipsmart.FederationUpdate{Record: []byte("r1"), ReplaceGIPs: true, PutGIPs: []vipsmart.GIP{gipA}})
	mustAppend(t, s, events(1, 2))

	c, cancel := context.WithCancel(context.Background())
	cancel()
	check := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Errorf("%s with a cancelled context succeeded", what)
		} else if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: error %q does not wrap context.Canceled", what, err)
		}
	}
	_, err := s.ListVIPs(c)
	check("ListVIPs", err)
	_, err = s.GetVIP(c, "web")
	check("GetVIP", err)
	check("CreateVIP", s.CreateVIP(c, vipDB()))
	check("DeleteVIP", s.DeleteVIP(c, "web"))
	_, _, err = s.LoadFederation(c)
	check("LoadFederation", err)
	check("SaveFederation", s.SaveFederation(c, vipsmart.FederationUpdate{Record: []byte("r2"), ReplaceGIPs: true}))
	_, err = s.AppendEvents(c, events(3, 1))
	check("AppendEvents", err)
	_, err = s.ListEvents(c, 0, 10)
	check("ListEvents", err)

	// Nothing changed.
	checkVIPs(t, s, web)
	rec, gips := mustLoad(t, s)
	if string(rec) != "r1" {
		t.Errorf("record = %q, want %q", rec, "r1")
	}
	checkGIPs(t, gips, gipA)
	checkSeqs(t, "ListEvents", mustListEvents(t, s, 0, 10), seqRange(1, 2))
	checkSeqs(t, "AppendEvents", mustAppend(t, s, events(3, 1)), []uint64{3})
}

func testAfterClose(t *testing.T, open Opener) {
	s := open(t, BigBound)
	mustCreate(t, s, vipWeb())
	mustAppend(t, s, events(1, 1))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	c := context.Background()
	check := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Errorf("%s after Close succeeded", what)
		}
	}
	_, err := s.ListVIPs(c)
	check("ListVIPs", err)
	_, err = s.GetVIP(c, "web")
	check("GetVIP", err)
	check("CreateVIP", s.CreateVIP(c, vipDB()))
	check("DeleteVIP", s.DeleteVIP(c, "web"))
	_, _, err = s.LoadFederation(c)
	check("LoadFederation", err)
	check("SaveFederation", s.SaveFederation(c, vipsmart.FederationUpdate{Record: []byte("r")}))
	_, err = s.AppendEvents(c, events(2, 1))
	check("AppendEvents", err)
	_, err = s.ListEvents(c, 0, 10)
	check("ListEvents", err)
}

// ---- reopen ----

func testReopenKeepsEverything(t *testing.T, open DirOpener) {
	dir := t.TempDir()
	s := open(t, dir, BigBound)
	web, db := vipWeb(), vipDB()
	mustCreate(t, s, web)
	mustCreate(t, s, db)
	mustCreate(t, s, vipPlain("gone", "192.0.2.30"))
	if err := s.DeleteVIP(ctx(t), "gone"); err != nil {
		t.Fatal(err)
	}
	mustSave(t, s, vipsmart.FederationUpdate{Record: []byte("r1"), ReplaceGIPs: true, PutGIPs: []vipsmart.GIP{gipA, gipB, gipC}})
	mustSave(t, s, vipsmart.FederationUpdate{Record: []byte{0, 1, 2, 255}, PutGIPs: []vipsmart.GIP{gipD}, DeleteGIPs: []string{"bravo"}})
	mustAppend(t, s, events(1, 3))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = open(t, dir, BigBound)
	checkVIPs(t, s, db, web)
	_, err := s.GetVIP(ctx(t), "gone")
	wantCode(t, "GetVIP of a VIP deleted before reopen", err, vipsmart.ENOTFOUND)
	rec, gips := mustLoad(t, s)
	if !bytes.Equal(rec, []byte{0, 1, 2, 255}) {
		t.Errorf("record after reopen = %x, want 000102ff", rec)
	}
	checkGIPs(t, gips, gipA, gipC, gipD)
	got := mustListEvents(t, s, 0, 100)
	checkSeqs(t, "ListEvents after reopen", got, seqRange(1, 3))
	for _, e := range got {
		if d := sameEvent(e, withSeq(event(int(e.Seq)), e.Seq)); d != "" {
			t.Errorf("event %d after reopen: %s", e.Seq, d)
		}
	}

	// The invariants still hold on the reopened store.
	wantCode(t, "CreateVIP of a duplicate address after reopen", s.CreateVIP(ctx(t), vipPlain("api", "192.0.2.10")), vipsmart.ECONFLICT)
	wantCode(t, "CreateVIP of a duplicate name after reopen", s.CreateVIP(ctx(t), vipPlain("web", "192.0.2.77")), vipsmart.ECONFLICT)
	mustCreate(t, s, vipPlain("reuse", "192.0.2.30")) // freed before the reopen
	checkSeqs(t, "AppendEvents after reopen", mustAppend(t, s, events(4, 2)), seqRange(4, 5))
	if err := s.DeleteVIP(ctx(t), "web"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	s = open(t, dir, BigBound)
	checkVIPs(t, s, db, vipPlain("reuse", "192.0.2.30"))
	mustCreate(t, s, vipPlain("web2", "192.0.2.10")) // freed before the reopen
	checkSeqs(t, "ListEvents after second reopen", mustListEvents(t, s, 0, 100), seqRange(1, 5))
}

func testReopenKeepsEventBound(t *testing.T, open DirOpener) {
	dir := t.TempDir()
	s := open(t, dir, SmallBound)
	mustAppend(t, s, events(1, 8))
	checkSeqs(t, "ListEvents", mustListEvents(t, s, 0, 100), seqRange(4, 8))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = open(t, dir, SmallBound)
	checkSeqs(t, "ListEvents after reopen", mustListEvents(t, s, 0, 100), seqRange(4, 8))
	checkSeqs(t, "AppendEvents after reopen", mustAppend(t, s, events(9, 2)), seqRange(9, 10))
	checkSeqs(t, "ListEvents after reopen and append", mustListEvents(t, s, 0, 100), seqRange(6, 10))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	// Seqs are never reused, even once every earlier event is dropped.
	s = open(t, dir, SmallBound)
	checkSeqs(t, "AppendEvents after second reopen", mustAppend(t, s, events(11, 6)), seqRange(11, 16))
	checkSeqs(t, "ListEvents after second reopen", mustListEvents(t, s, 0, 100), seqRange(12, 16))
}
