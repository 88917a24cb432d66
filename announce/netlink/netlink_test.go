package netlink

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
)

// fakeOS is a recording fake of the kernel.
type fakeOS struct {
	mu      sync.Mutex
	links   map[string]bool
	addrs   []Addr
	calls   []string // "add ...", "del ...", "announce LINK IP"; lists are not recorded
	noProto bool     // a kernel older than 5.18: IFA_PROTO is dropped
	failAdd map[netip.Addr]error
}

func newFakeOS(links ...string) *fakeOS {
	f := &fakeOS{links: map[string]bool{}, failAdd: map[netip.Addr]error{}}
	for _, l := range links {
		f.links[l] = true
	}
	return f
}

func (f *fakeOS) Addrs(link string) ([]Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Addr
	for _, a := range f.addrs {
		if link == "" || a.Link == link {
			out = append(out, a)
		}
	}
	return out, nil
}

func (f *fakeOS) HasLink(link string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.links[link], nil
}

func (f *fakeOS) AddAddr(a Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "add "+a.String())
	if !f.links[a.Link] {
		return fmt.Errorf("link %q not found", a.Link)
	}
	if err := f.failAdd[a.Prefix.Addr()]; err != nil {
		return err
	}
	for _, x := range f.addrs {
		if x.Link == a.Link && x.Prefix == a.Prefix {
			return errors.New("file exists")
		}
	}
	if f.noProto {
		a.Proto = 0
	}
	f.addrs = append(f.addrs, a)
	return nil
}

func (f *fakeOS) DelAddr(a Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "del "+a.String())
	for i, x := range f.addrs {
		if x.Link == a.Link && x.Prefix == a.Prefix {
			f.addrs = slices.Delete(f.addrs, i, i+1)
			return nil
		}
	}
	return errors.New("cannot assign requested address")
}

func (f *fakeOS) Announce(link string, ip netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "announce "+link+" "+ip.String())
	return nil
}

// takeCalls returns the calls recorded since the last takeCalls.
func (f *fakeOS) takeCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

func (f *fakeOS) has(link, prefix string) (Addr, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, x := range f.addrs {
		if x.Link == link && x.Prefix == netip.MustParsePrefix(prefix) {
			return x, true
		}
	}
	return Addr{}, false
}

func (f *fakeOS) put(a Addr) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.addrs = append(f.addrs, a)
}

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newTest(t *testing.T, f *fakeOS, opts Options) (*Announcer, *clock) {
	t.Helper()
	c := &clock{t: t0}
	if opts.DefaultInterface == "" {
		opts.DefaultInterface = "eth0"
	}
	if opts.GARPInterval == 0 {
		opts.GARPInterval = time.Millisecond
	}
	opts.Now = c.now
	a := New(f, opts)
	t.Cleanup(func() { a.wg.Wait() })
	return a, c
}

func vip(ip, name string) vipsmart.Announcement {
	return vipsmart.Announcement{Addr: netip.MustParseAddr(ip), Kind: vipsmart.AnnounceVIP, Name: name}
}

func gip(ip, name string, kind vipsmart.AnnounceKind) vipsmart.Announcement {
	return vipsmart.Announcement{Addr: netip.MustParseAddr(ip), Kind: kind, Name: name}
}

func mustSet(t *testing.T, a *Announcer, d ...vipsmart.Announcement) {
	t.Helper()
	if err := a.Set(context.Background(), d); err != nil {
		t.Fatalf("Set: %v", err)
	}
	a.wg.Wait() // let the bursts end, so that calls are all recorded
}

func changing(calls []string) []string {
	var out []string
	for _, c := range calls {
		if strings.HasPrefix(c, "add ") || strings.HasPrefix(c, "del ") || strings.HasPrefix(c, "announce ") {
			out = append(out, c)
		}
	}
	return out
}

func TestBindUnbind(t *testing.T) {
	f := newFakeOS("eth0")
	a, _ := newTest(t, f, Options{})
	mustSet(t, a, vip("10.0.0.1", "web"), gip("2001:db8::1", "g", vipsmart.AnnounceGIPActive))

	v4, ok := f.has("eth0", "10.0.0.1/32")
	if !ok || v4.Label != "eth0:vs" || v4.Proto != AddrProto {
		t.Fatalf("10.0.0.1/32 = %+v, %v; want label eth0:vs and proto %#x", v4, ok, AddrProto)
	}
	v6, ok := f.has("eth0", "2001:db8::1/128")
	if !ok || v6.Label != "" || v6.Proto != AddrProto || v6.Flags&IfaFlagNoDAD == 0 {
		t.Fatalf("2001:db8::1/128 = %+v, %v; want proto %#x and nodad", v6, ok, AddrProto)
	}
	got := a.Announced()
	if len(got) != 2 || got[0].Addr.String() != "10.0.0.1" || got[1].Addr.String() != "2001:db8::1" {
		t.Fatalf("Announced = %+v", got)
	}
	for _, g := range got {
		if g.Via != "netlink eth0" || !g.Since.Equal(t0) {
			t.Errorf("%s: Via %q Since %v", g.Addr, g.Via, g.Since)
		}
	}
	f.takeCalls()

	mustSet(t, a)
	if _, ok := f.has("eth0", "10.0.0.1/32"); ok {
		t.Error("10.0.0.1/32 still bound after Set(empty)")
	}
	if _, ok := f.has("eth0", "2001:db8::1/128"); ok {
		t.Error("2001:db8::1/128 still bound after Set(empty)")
	}
	if c := changing(f.takeCalls()); len(c) != 2 {
		t.Errorf("calls = %q, want two deletions", c)
	}
	if got := a.Announced(); len(got) != 0 {
		t.Errorf("Announced = %+v, want none", got)
	}
}

func TestIdempotent(t *testing.T) {
	f := newFakeOS("eth0")
	a, c := newTest(t, f, Options{})
	set := []vipsmart.Announcement{vip("10.0.0.1", "web"), gip("2001:db8::1", "g", vipsmart.AnnounceGIPActive)}
	mustSet(t, a, set...)
	f.takeCalls()
	c.add(time.Minute)
	mustSet(t, a, set...)
	if calls := changing(f.takeCalls()); len(calls) != 0 {
		t.Fatalf("second Set of the same set made changing calls: %q", calls)
	}
	for _, g := range a.Announced() {
		if !g.Since.Equal(t0) {
			t.Errorf("%s: Since %v, want it kept at %v", g.Addr, g.Since, t0)
		}
	}
	// A kind change between vip and gip-active keeps the binding.
	mustSet(t, a, gip("10.0.0.1", "web", vipsmart.AnnounceGIPActive), gip("2001:db8::1", "g", vipsmart.AnnounceGIPActive))
	if calls := changing(f.takeCalls()); len(calls) != 0 {
		t.Fatalf("vip -> gip-active made changing calls: %q", calls)
	}
	if got := a.Announced()[0]; got.Kind != vipsmart.AnnounceGIPActive || !got.Since.Equal(t0) {
		t.Errorf("after kind change: %+v", got)
	}
}

func TestNeverTouchesForeign(t *testing.T) {
	f := newFakeOS("eth0")
	foreign := []Addr{
		{Link: "eth0", Prefix: netip.MustParsePrefix("10.0.0.5/24"), Label: "eth0"},
		{Link: "eth0", Prefix: netip.MustParsePrefix("10.0.0.7/32"), Label: "eth0:keepalived"},
		{Link: "eth0", Prefix: netip.MustParsePrefix("2001:db8::7/128"), Flags: IfaFlagNoDAD},
		{Link: "eth0", Prefix: netip.MustParsePrefix("fe80::1/64"), Proto: 3},
	}
	for _, x := range foreign {
		f.put(x)
	}
	a, _ := newTest(t, f, Options{})
	// 10.0.0.5 is desired but already there, foreign: it counts as bound.
	mustSet(t, a, vip("10.0.0.5", "web"), vip("10.0.0.1", "api"))
	if calls := changing(f.takeCalls()); !slices.Equal(calls, []string{
		"add 10.0.0.1/32 dev eth0 label eth0:vs proto 0x56",
		"announce eth0 10.0.0.1", "announce eth0 10.0.0.1", "announce eth0 10.0.0.1",
	}) {
		t.Fatalf("calls = %q", calls)
	}
	if got := a.Announced(); len(got) != 2 || got[1].Addr.String() != "10.0.0.5" {
		t.Fatalf("Announced = %+v", got)
	}
	mustSet(t, a)
	if err := a.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, c := range changing(f.takeCalls()) {
		if !strings.Contains(c, "10.0.0.1/32") {
			t.Errorf("touched a foreign address: %s", c)
		}
	}
	for _, x := range foreign {
		if _, ok := f.has(x.Link, x.Prefix.String()); !ok {
			t.Errorf("foreign %s is gone", x)
		}
	}
}

func TestInterfaceOverride(t *testing.T) {
	f := newFakeOS("eth0", "eth1", "eth2", "averyverylong0")
	a, _ := newTest(t, f, Options{})
	w := vip("10.0.0.1", "web")
	w.Interface = "eth1"
	mustSet(t, a, w, vip("10.0.0.2", "api"))
	if _, ok := f.has("eth1", "10.0.0.1/32"); !ok {
		t.Fatal("10.0.0.1 not on eth1")
	}
	if x, ok := f.has("eth1", "10.0.0.1/32"); !ok || x.Label != "eth1:vs" {
		t.Fatalf("10.0.0.1 on eth1: %+v", x)
	}
	if _, ok := f.has("eth0", "10.0.0.2/32"); !ok {
		t.Fatal("10.0.0.2 not on the default eth0")
	}
	if got := a.Announced(); got[0].Via != "netlink eth1" || got[1].Via != "netlink eth0" {
		t.Fatalf("Announced = %+v", got)
	}
	f.takeCalls()

	// Moving the VIP to eth2: removed from eth1, bound on eth2, announced there.
	w.Interface = "eth2"
	mustSet(t, a, w, vip("10.0.0.2", "api"))
	want := []string{
		"del 10.0.0.1/32 dev eth1 label eth1:vs proto 0x56",
		"add 10.0.0.1/32 dev eth2 label eth2:vs proto 0x56",
		"announce eth2 10.0.0.1", "announce eth2 10.0.0.1", "announce eth2 10.0.0.1",
	}
	if calls := changing(f.takeCalls()); !slices.Equal(calls, want) {
		t.Fatalf("calls = %q, want %q", calls, want)
	}

	// A name too long for a label: the protocol mark only.
	w.Interface = "averyverylong0"
	mustSet(t, a, w)
	if x, ok := f.has("averyverylong0", "10.0.0.1/32"); !ok || x.Label != "" || x.Proto != AddrProto {
		t.Fatalf("on averyverylong0: %+v %v", x, ok)
	}
}

func TestNoInterface(t *testing.T) {
	f := newFakeOS("eth0")
	a := New(f, Options{GARPCount: -1})
	w := vip("10.0.0.2", "api")
	w.Interface = "eth0"
	err := a.Set(context.Background(), []vipsmart.Announcement{vip("10.0.0.1", "web"), w})
	if !vipsmart.IsCode(err, vipsmart.EINVALID) || !strings.Contains(err.Error(), "10.0.0.1") {
		t.Fatalf("err = %v, want invalid naming 10.0.0.1", err)
	}
	if _, ok := f.has("eth0", "10.0.0.2/32"); !ok {
		t.Fatal("the other address was not bound")
	}
	// Announced lists the address it could not bind as failed, with why.
	got := a.Announced()
	if len(got) != 2 || got[0].State != vipsmart.AnnounceFailed || !strings.HasPrefix(got[0].Reason, "no interface for 10.0.0.1: give `vipsmart vip add --interface IF`") ||
		got[1].State != vipsmart.AnnounceUp || got[1].Via != "netlink eth0" {
		t.Fatalf("Announced = %+v", got)
	}
	// Preflight says the same before the address is even wanted.
	if err := a.Preflight(vip("10.0.0.1", "web")); err == nil || !strings.Contains(err.Error(), "no interface for 10.0.0.1") {
		t.Fatalf("Preflight = %v", err)
	}
	if err := a.Preflight(w); err != nil {
		t.Fatalf("Preflight of a bindable address = %v", err)
	}
	// A missing interface: the error names the address and the interface.
	w.Interface = "eth9"
	if err := a.Preflight(w); err == nil || !strings.Contains(err.Error(), "eth9") {
		t.Fatalf("Preflight on a missing interface = %v", err)
	}
	err = a.Set(context.Background(), []vipsmart.Announcement{w})
	if err == nil || !strings.Contains(err.Error(), "10.0.0.2") || !strings.Contains(err.Error(), "eth9") {
		t.Fatalf("err = %v", err)
	}
	if got := a.Announced(); len(got) != 1 || got[0].State != vipsmart.AnnounceFailed || !strings.Contains(got[0].Reason, "eth9") {
		t.Fatalf("Announced = %+v", got)
	}
	// Once nothing is wanted, nothing is listed.
	if err := a.Set(context.Background(), nil); err != nil || len(a.Announced()) != 0 {
		t.Fatalf("Set(nil) = %v; Announced = %+v", err, a.Announced())
	}
}

func TestBurstOnlyOnTakeover(t *testing.T) {
	f := newFakeOS("eth0")
	a, _ := newTest(t, f, Options{GARPCount: 4})
	mustSet(t, a, vip("10.0.0.1", "web"), vip("2001:db8::1", "web6"))
	calls := f.takeCalls()
	n4, n6 := 0, 0
	for _, c := range calls {
		switch c {
		case "announce eth0 10.0.0.1":
			n4++
		case "announce eth0 2001:db8::1":
			n6++
		}
	}
	if n4 != 4 || n6 != 4 {
		t.Fatalf("announcements: %d for 10.0.0.1, %d for 2001:db8::1; want 4 each (%q)", n4, n6, calls)
	}
	mustSet(t, a, vip("10.0.0.1", "web"), vip("2001:db8::1", "web6"))
	if calls := changing(f.takeCalls()); len(calls) != 0 {
		t.Fatalf("no takeover, yet calls %q", calls)
	}
	// Someone removed our address: the next Set binds it again, a takeover.
	f.DelAddr(Addr{Link: "eth0", Prefix: netip.MustParsePrefix("10.0.0.1/32")})
	f.takeCalls()
	mustSet(t, a, vip("10.0.0.1", "web"), vip("2001:db8::1", "web6"))
	calls = changing(f.takeCalls())
	if len(calls) != 5 || !strings.HasPrefix(calls[0], "add 10.0.0.1/32") || calls[4] != "announce eth0 10.0.0.1" {
		t.Fatalf("calls = %q", calls)
	}
}

func TestBurstDoesNotBlockAndStops(t *testing.T) {
	f := newFakeOS("eth0")
	a := New(f, Options{DefaultInterface: "eth0", GARPCount: 3, GARPInterval: time.Hour})
	start := time.Now()
	if err := a.Set(context.Background(), []vipsmart.Announcement{vip("10.0.0.1", "web")}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Set blocked %v for the burst", d)
	}
	if err := a.Set(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.Close(ctx); err != nil {
		t.Fatalf("Close: %v (the burst did not stop)", err)
	}
	n := 0
	for _, c := range f.takeCalls() {
		if strings.HasPrefix(c, "announce ") {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d announcements, want the first one only", n)
	}
}

func TestStandbyIgnored(t *testing.T) {
	f := newFakeOS("eth0")
	a, _ := newTest(t, f, Options{})
	mustSet(t, a, gip("10.0.0.1", "g", vipsmart.AnnounceGIPStandby), gip("2001:db8::1", "g", vipsmart.AnnounceGIPStandby))
	if calls := changing(f.takeCalls()); len(calls) != 0 {
		t.Fatalf("standby made calls %q", calls)
	}
	if got := a.Announced(); len(got) != 0 {
		t.Fatalf("Announced = %+v", got)
	}
	// active -> standby withdraws the binding.
	mustSet(t, a, gip("10.0.0.1", "g", vipsmart.AnnounceGIPActive))
	mustSet(t, a, gip("10.0.0.1", "g", vipsmart.AnnounceGIPStandby))
	if _, ok := f.has("eth0", "10.0.0.1/32"); ok {
		t.Fatal("a standby stays bound")
	}
}

func TestReconcileAfterCrash(t *testing.T) {
	f := newFakeOS("eth0", "eth1")
	leftovers := []Addr{
		{Link: "eth0", Prefix: netip.MustParsePrefix("10.0.0.1/32"), Label: "eth0:vs"},                          // label only (old kernel)
		{Link: "eth1", Prefix: netip.MustParsePrefix("10.0.0.2/32"), Label: "eth1:vs", Proto: AddrProto},        // both marks
		{Link: "eth0", Prefix: netip.MustParsePrefix("2001:db8::1/128"), Proto: AddrProto, Flags: IfaFlagNoDAD}, // proto
		{Link: "eth0", Prefix: netip.MustParsePrefix("2001:db8::2/128"), Proto: AddrProto, Flags: IfaFlagNoDAD}, // proto, still wanted
		{Link: "eth0", Prefix: netip.MustParsePrefix("10.0.0.3/32"), Label: "eth0:vs", Proto: AddrProto},        // still wanted
	}
	foreign := []Addr{
		{Link: "eth0", Prefix: netip.MustParsePrefix("10.0.0.9/32"), Label: "eth0"},
		{Link: "eth0", Prefix: netip.MustParsePrefix("2001:db8::9/128"), Flags: IfaFlagNoDAD},
	}
	for _, x := range append(slices.Clone(leftovers), foreign...) {
		f.put(x)
	}
	// Reconcile with nothing desired removes every leftover.
	a, _ := newTest(t, f, Options{})
	if err := a.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, x := range leftovers {
		if _, ok := f.has(x.Link, x.Prefix.String()); ok {
			t.Errorf("leftover %s still there", x)
		}
	}
	for _, x := range foreign {
		if _, ok := f.has(x.Link, x.Prefix.String()); !ok {
			t.Errorf("foreign %s removed", x)
		}
	}

	// Equivalently, the first Set: it keeps the leftovers that are wanted
	// (no change, no burst) and removes the others.
	f2 := newFakeOS("eth0", "eth1")
	for _, x := range append(slices.Clone(leftovers), foreign...) {
		f2.put(x)
	}
	b, _ := newTest(t, f2, Options{})
	mustSet(t, b, vip("10.0.0.3", "web"), vip("2001:db8::2", "web6"))
	calls := changing(f2.takeCalls())
	if len(calls) != 3 {
		t.Fatalf("calls = %q, want three deletions", calls)
	}
	for _, c := range calls {
		if !strings.HasPrefix(c, "del ") {
			t.Errorf("unexpected call %s", c)
		}
	}
	if got := b.Announced(); len(got) != 2 {
		t.Fatalf("Announced = %+v", got)
	}
}

func TestOldKernelWithoutProto(t *testing.T) {
	f := newFakeOS("eth0")
	f.noProto = true
	a, _ := newTest(t, f, Options{})
	mustSet(t, a, vip("2001:db8::1", "web6"), vip("10.0.0.1", "web"))
	if x, _ := f.has("eth0", "2001:db8::1/128"); x.Proto != 0 {
		t.Fatal("fake kept the protocol")
	}
	mustSet(t, a)
	if _, ok := f.has("eth0", "2001:db8::1/128"); ok {
		t.Fatal("an IPv6 address added in this run was not removed")
	}
	if _, ok := f.has("eth0", "10.0.0.1/32"); ok {
		t.Fatal("10.0.0.1 was not removed")
	}
}

func TestCloseWithdraws(t *testing.T) {
	f := newFakeOS("eth0", "eth1")
	f.put(Addr{Link: "eth0", Prefix: netip.MustParsePrefix("192.0.2.1/24"), Label: "eth0"})
	a, _ := newTest(t, f, Options{})
	w := vip("10.0.0.2", "api")
	w.Interface = "eth1"
	mustSet(t, a, vip("10.0.0.1", "web"), w, vip("2001:db8::1", "web6"))
	if err := a.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, _ := f.Addrs("")
	if len(got) != 1 || got[0].Prefix.String() != "192.0.2.1/24" {
		t.Fatalf("after Close: %v", got)
	}
	if len(a.Announced()) != 0 {
		t.Fatalf("Announced after Close = %+v", a.Announced())
	}
	if err := a.Set(context.Background(), []vipsmart.Announcement{vip("10.0.0.1", "web")}); !vipsmart.IsCode(err, vipsmart.ESTATE) {
		t.Fatalf("Set after Close: %v", err)
	}
	if err := a.Close(context.Background()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestAddFailureReported(t *testing.T) {
	f := newFakeOS("eth0")
	f.failAdd[netip.MustParseAddr("10.0.0.1")] = errors.New("operation not permitted")
	a, _ := newTest(t, f, Options{})
	err := a.Set(context.Background(), []vipsmart.Announcement{vip("10.0.0.1", "web"), vip("10.0.0.2", "api")})
	if !vipsmart.IsCode(err, vipsmart.EINTERNAL) || !strings.Contains(err.Error(), "10.0.0.1/32") {
		t.Fatalf("err = %v", err)
	}
	a.wg.Wait()
	if got := a.Announced(); len(got) != 2 || got[0].State != vipsmart.AnnounceFailed || !strings.Contains(got[0].Reason, "operation not permitted") ||
		got[1].Addr.String() != "10.0.0.2" || got[1].State != vipsmart.AnnounceUp {
		t.Fatalf("Announced = %+v", got)
	}
}

// TestReannounceRepeatsTheBurst: Reannounce sends a new burst for every bound
// address and changes nothing else.
func TestReannounceRepeatsTheBurst(t *testing.T) {
	f := newFakeOS("eth0")
	a, _ := newTest(t, f, Options{GARPCount: 2})
	mustSet(t, a, vip("10.0.0.1", "web"), vip("2001:db8::1", "web6"))
	f.takeCalls()
	if err := a.Reannounce(context.Background()); err != nil {
		t.Fatal(err)
	}
	a.wg.Wait() // let the bursts end
	calls := f.takeCalls()
	n4, n6 := 0, 0
	for _, c := range calls {
		switch c {
		case "announce eth0 10.0.0.1":
			n4++
		case "announce eth0 2001:db8::1":
			n6++
		default:
			if strings.HasPrefix(c, "add") || strings.HasPrefix(c, "del") {
				t.Fatalf("Reannounce changed addresses: %q", calls)
			}
		}
	}
	if n4 != 2 || n6 != 2 {
		t.Fatalf("announcements after Reannounce: %d and %d; want 2 each (%q)", n4, n6, calls)
	}
}
