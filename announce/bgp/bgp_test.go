package bgp

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

// fakeSpeaker records every call.
type fakeSpeaker struct {
	mu      sync.Mutex
	calls   []string
	routes  map[netip.Prefix]Route
	peers   map[netip.Addr]Peer
	global  Global
	stopped bool
	failAdd map[netip.Prefix]error
	failRun error // Start fails
	// status is what Peers reports of each peer (default: active).
	status map[netip.Addr]PeerStatus
}

func newFake() *fakeSpeaker {
	return &fakeSpeaker{routes: map[netip.Prefix]Route{}, peers: map[netip.Addr]Peer{}, failAdd: map[netip.Prefix]error{}, status: map[netip.Addr]PeerStatus{}}
}

func (f *fakeSpeaker) record(s string) { f.calls = append(f.calls, s) }

func (f *fakeSpeaker) Start(_ context.Context, g Global) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record(fmt.Sprintf("start as=%d id=%s port=%d", g.ASN, g.RouterID, g.ListenPort))
	f.global = g
	return f.failRun
}

func (f *fakeSpeaker) AddPeer(_ context.Context, p Peer) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	rec := fmt.Sprintf("peer %s as=%d port=%d hold=%s families=%v", p.Address, p.ASN, p.Port, p.HoldTime, p.Families)
	if p.BFD != nil {
		rec += fmt.Sprintf(" bfd=%s/%s/%d", p.BFD.MinRx, p.BFD.MinTx, p.BFD.Multiplier)
	}
	f.record(rec)
	f.peers[p.Address] = p
	return nil
}

func (f *fakeSpeaker) ResetPeer(_ context.Context, a netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("reset " + a.String())
	return nil
}

func (f *fakeSpeaker) DeletePeer(_ context.Context, a netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("delpeer " + a.String())
	delete(f.peers, a)
	return nil
}

// Peers reports f.status (not recorded: the announcer polls it).
func (f *fakeSpeaker) Peers(_ context.Context, advertised bool) ([]PeerStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []PeerStatus
	for addr, p := range f.peers {
		st, ok := f.status[addr]
		if !ok {
			st = PeerStatus{State: StateActive, BFD: bfdOff(p)}
		}
		st.Address, st.ASN = addr, p.ASN
		if len(st.Families) == 0 {
			st.Families = p.Families
		}
		if !advertised {
			st.Advertised = 0
		}
		out = append(out, st)
	}
	return out, nil
}

func (f *fakeSpeaker) setStatus(addr string, st PeerStatus) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status[netip.MustParseAddr(addr)] = st
}

func routeString(r Route) string {
	return fmt.Sprintf("%s nh=%v aspath=%v comm=%v", r.Prefix, r.NextHop, r.ASPath, r.Communities)
}

func (f *fakeSpeaker) AddPath(_ context.Context, r Route) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("add " + routeString(r))
	if err := f.failAdd[r.Prefix]; err != nil {
		return err
	}
	f.routes[r.Prefix] = r
	return nil
}

func (f *fakeSpeaker) DeletePath(_ context.Context, r Route) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("del " + r.Prefix.String())
	if _, ok := f.routes[r.Prefix]; !ok {
		return errors.New("no such path")
	}
	delete(f.routes, r.Prefix)
	return nil
}

func (f *fakeSpeaker) Stop(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("stop")
	f.stopped = true
	return nil
}

func (f *fakeSpeaker) take() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

func (f *fakeSpeaker) route(p string) (Route, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.routes[netip.MustParsePrefix(p)]
	return r, ok
}

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func ann(ip string, kind vipsmart.AnnounceKind) vipsmart.Announcement {
	return vipsmart.Announcement{Addr: netip.MustParseAddr(ip), Kind: kind, Name: "n-" + ip}
}

func newTest(t *testing.T, opts Options) (*Announcer, *fakeSpeaker, *time.Time) {
	t.Helper()
	f := newFake()
	now := t0
	if opts.ASN == 0 {
		opts.ASN = 65001
	}
	if !opts.RouterID.IsValid() {
		opts.RouterID = netip.MustParseAddr("192.0.2.10")
	}
	opts.Now = func() time.Time { return now }
	opts.PollInterval = time.Hour // the tests poll by hand
	a, err := New(context.Background(), f, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	f.take()
	return a, f, &now
}

func mustSet(t *testing.T, a *Announcer, d ...vipsmart.Announcement) {
	t.Helper()
	if err := a.Set(context.Background(), d); err != nil {
		t.Fatalf("Set: %v", err)
	}
}

func TestNewStartsAndAddsPeers(t *testing.T) {
	f := newFake()
	_, err := New(context.Background(), f, Options{
		ASN: 65001, RouterID: netip.MustParseAddr("192.0.2.10"),
		Peers: []Peer{
			{Address: netip.MustParseAddr("192.0.2.1"), ASN: 65100},
			{Address: netip.MustParseAddr("2001:db8::1"), ASN: 65100, Port: 1179, HoldTime: 30 * time.Second},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"start as=65001 id=192.0.2.10 port=179",
		"peer 192.0.2.1 as=65100 port=179 hold=9s families=[ipv4]",
		"peer 2001:db8::1 as=65100 port=1179 hold=30s families=[ipv6]",
	}
	if got := f.take(); !slices.Equal(got, want) {
		t.Fatalf("calls = %q, want %q", got, want)
	}

	f = newFake()
	f.failRun = errors.New("address already in use")
	if _, err := New(context.Background(), f, Options{ASN: 65001, RouterID: netip.MustParseAddr("192.0.2.10")}); err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("New with a failing start: %v", err)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	id := netip.MustParseAddr("192.0.2.10")
	peer := Peer{Address: netip.MustParseAddr("192.0.2.1"), ASN: 65100}
	for name, o := range map[string]Options{
		"no asn":            {RouterID: id},
		"no router id":      {ASN: 1},
		"v6 router id":      {ASN: 1, RouterID: netip.MustParseAddr("2001:db8::1")},
		"bad community":     {ASN: 1, RouterID: id, Communities: []string{"65000"}},
		"big community":     {ASN: 1, RouterID: id, Communities: []string{"70000:1"}},
		"bad standby comm":  {ASN: 1, RouterID: id, StandbyCommunities: []string{"a:b"}},
		"negative prepend":  {ASN: 1, RouterID: id, StandbyPrepend: -1},
		"huge prepend":      {ASN: 1, RouterID: id, StandbyPrepend: 100},
		"peer without asn":  {ASN: 1, RouterID: id, Peers: []Peer{{Address: peer.Address}}},
		"peer twice":        {ASN: 1, RouterID: id, Peers: []Peer{peer, peer}},
		"short hold":        {ASN: 1, RouterID: id, Peers: []Peer{{Address: peer.Address, ASN: 2, HoldTime: time.Second}}},
		"v6 next hop for 4": {ASN: 1, RouterID: id, NextHop: netip.MustParseAddr("2001:db8::1")},
		"bad listen port":   {ASN: 1, RouterID: id, ListenPort: -2},
		"bfd and multihop":  {ASN: 1, RouterID: id, Peers: []Peer{{Address: peer.Address, ASN: 2, Multihop: true, BFD: &BFD{}}}},
		"bfd rx too short":  {ASN: 1, RouterID: id, Peers: []Peer{{Address: peer.Address, ASN: 2, BFD: &BFD{MinRx: time.Millisecond}}}},
		"bfd tx too long":   {ASN: 1, RouterID: id, Peers: []Peer{{Address: peer.Address, ASN: 2, BFD: &BFD{MinTx: time.Minute}}}},
		"bfd multiplier":    {ASN: 1, RouterID: id, Peers: []Peer{{Address: peer.Address, ASN: 2, BFD: &BFD{Multiplier: 256}}}},
		"bad family":        {ASN: 1, RouterID: id, Peers: []Peer{{Address: peer.Address, ASN: 2, Families: []Family{"ipx"}}}},
	} {
		f := newFake()
		_, err := New(context.Background(), f, o)
		if !vipsmart.IsCode(err, vipsmart.EINVALID) {
			t.Errorf("%s: err = %v, want invalid", name, err)
		}
		if len(f.take()) != 0 {
			t.Errorf("%s: the speaker was called", name)
		}
	}
}

func TestAnnounceAndWithdraw(t *testing.T) {
	a, f, _ := newTest(t, Options{Communities: []string{"65000:100", "65000:200"}})
	mustSet(t, a, ann("10.0.0.1", vipsmart.AnnounceVIP), ann("2001:db8::1", vipsmart.AnnounceGIPActive))
	want := []string{
		"add 10.0.0.1/32 nh=invalid IP aspath=[] comm=[4259840100 4259840200]",
		"add 2001:db8::1/128 nh=invalid IP aspath=[] comm=[4259840100 4259840200]",
	}
	if got := f.take(); !slices.Equal(got, want) {
		t.Fatalf("calls = %q, want %q", got, want)
	}
	got := a.Announced()
	if len(got) != 2 || got[0].Via != "bgp" || !got[0].Since.Equal(t0) || got[1].Kind != vipsmart.AnnounceGIPActive {
		t.Fatalf("Announced = %+v", got)
	}
	mustSet(t, a, ann("2001:db8::1", vipsmart.AnnounceGIPActive))
	if got := f.take(); !slices.Equal(got, []string{"del 10.0.0.1/32"}) {
		t.Fatalf("calls = %q", got)
	}
	if _, ok := f.route("10.0.0.1/32"); ok {
		t.Fatal("10.0.0.1/32 still announced")
	}
	if got := a.Announced(); len(got) != 1 || got[0].Addr.String() != "2001:db8::1" {
		t.Fatalf("Announced = %+v", got)
	}
}

func TestStandbyPrepend(t *testing.T) {
	a, f, _ := newTest(t, Options{ASN: 65001, Communities: []string{"65000:100"}, StandbyCommunities: []string{"65000:999"}})
	mustSet(t, a, ann("10.0.0.1", vipsmart.AnnounceGIPStandby))
	r, ok := f.route("10.0.0.1/32")
	if !ok || !slices.Equal(r.ASPath, []uint32{65001, 65001, 65001}) || !slices.Equal(r.Communities, []uint32{65000<<16 | 999}) {
		t.Fatalf("standby route = %+v", r)
	}
	b, g, _ := newTest(t, Options{ASN: 4200000001, StandbyPrepend: 5})
	mustSet(t, b, ann("2001:db8::1", vipsmart.AnnounceGIPStandby))
	r, _ = g.route("2001:db8::1/128")
	if len(r.ASPath) != 5 || r.ASPath[0] != 4200000001 || len(r.Communities) != 0 {
		t.Fatalf("standby route = %+v", r)
	}
}

func TestKindChangeReplaces(t *testing.T) {
	a, f, now := newTest(t, Options{})
	mustSet(t, a, ann("10.0.0.1", vipsmart.AnnounceGIPStandby))
	f.take()
	*now = t0.Add(time.Minute)
	mustSet(t, a, ann("10.0.0.1", vipsmart.AnnounceGIPActive))
	if got := f.take(); !slices.Equal(got, []string{"add 10.0.0.1/32 nh=invalid IP aspath=[] comm=[]"}) {
		t.Fatalf("standby -> active: calls %q, want one replacing add", got)
	}
	if got := a.Announced()[0]; got.Kind != vipsmart.AnnounceGIPActive || !got.Since.Equal(t0.Add(time.Minute)) {
		t.Fatalf("Announced = %+v", got)
	}
	mustSet(t, a, ann("10.0.0.1", vipsmart.AnnounceGIPStandby))
	if got := f.take(); len(got) != 1 || !strings.Contains(got[0], "aspath=[65001 65001 65001]") {
		t.Fatalf("active -> standby: calls %q", got)
	}
	// vip <-> gip-active: the same route, no call, Since kept.
	mustSet(t, a, ann("10.0.0.1", vipsmart.AnnounceGIPActive))
	f.take()
	*now = t0.Add(2 * time.Minute)
	mustSet(t, a, ann("10.0.0.1", vipsmart.AnnounceVIP))
	if got := f.take(); len(got) != 0 {
		t.Fatalf("gip-active -> vip: calls %q", got)
	}
	if got := a.Announced()[0]; got.Kind != vipsmart.AnnounceVIP || !got.Since.Equal(t0.Add(time.Minute)) {
		t.Fatalf("Announced = %+v", got)
	}
}

func TestIdempotent(t *testing.T) {
	a, f, now := newTest(t, Options{Communities: []string{"65000:1"}})
	set := []vipsmart.Announcement{
		ann("10.0.0.1", vipsmart.AnnounceVIP), ann("10.0.0.2", vipsmart.AnnounceGIPActive),
		ann("10.0.0.3", vipsmart.AnnounceGIPStandby), ann("2001:db8::1", vipsmart.AnnounceVIP),
	}
	mustSet(t, a, set...)
	if n := len(f.take()); n != 4 {
		t.Fatalf("%d calls, want 4", n)
	}
	*now = t0.Add(time.Hour)
	mustSet(t, a, set...)
	if got := f.take(); len(got) != 0 {
		t.Fatalf("second Set of the same set made calls: %q", got)
	}
	for _, g := range a.Announced() {
		if !g.Since.Equal(t0) {
			t.Errorf("%s: Since %v, want %v", g.Addr, g.Since, t0)
		}
	}
}

func TestDuplicatesAndBadEntries(t *testing.T) {
	a, f, _ := newTest(t, Options{})
	err := a.Set(context.Background(), []vipsmart.Announcement{
		ann("10.0.0.1", vipsmart.AnnounceGIPStandby),
		ann("10.0.0.1", vipsmart.AnnounceGIPActive), // the stronger kind wins
		{Addr: netip.MustParseAddr("10.0.0.2"), Kind: "bogus"},
		{Kind: vipsmart.AnnounceVIP},
	})
	if !vipsmart.IsCode(err, vipsmart.EINVALID) {
		t.Fatalf("err = %v, want invalid", err)
	}
	if got := f.take(); !slices.Equal(got, []string{"add 10.0.0.1/32 nh=invalid IP aspath=[] comm=[]"}) {
		t.Fatalf("calls = %q", got)
	}
}

func TestFailureKeepsOldRoute(t *testing.T) {
	a, f, _ := newTest(t, Options{})
	mustSet(t, a, ann("10.0.0.1", vipsmart.AnnounceGIPActive))
	f.failAdd[netip.MustParsePrefix("10.0.0.1/32")] = errors.New("boom")
	f.failAdd[netip.MustParsePrefix("10.0.0.2/32")] = errors.New("boom")
	err := a.Set(context.Background(), []vipsmart.Announcement{ann("10.0.0.1", vipsmart.AnnounceGIPStandby), ann("10.0.0.2", vipsmart.AnnounceVIP)})
	if !vipsmart.IsCode(err, vipsmart.EINTERNAL) || !strings.Contains(err.Error(), "10.0.0.2/32") {
		t.Fatalf("err = %v", err)
	}
	// Both wanted addresses are listed as failed (10.0.0.1's old active
	// route is still on the wire, but not what is wanted).
	got := a.Announced()
	if len(got) != 2 || got[0].State != vipsmart.AnnounceFailed || got[0].Kind != vipsmart.AnnounceGIPStandby ||
		got[1].State != vipsmart.AnnounceFailed || !strings.Contains(got[1].Reason, "boom") {
		t.Fatalf("Announced = %+v", got)
	}
	if r, _ := f.route("10.0.0.1/32"); len(r.ASPath) != 0 {
		t.Fatalf("the old active route was replaced: %+v", r)
	}
	// Once the speaker works again, the same Set applies.
	f.failAdd = map[netip.Prefix]error{}
	f.take()
	mustSet(t, a, ann("10.0.0.1", vipsmart.AnnounceGIPStandby), ann("10.0.0.2", vipsmart.AnnounceVIP))
	if got := f.take(); len(got) != 2 {
		t.Fatalf("retry calls = %q", got)
	}
}

func TestNextHops(t *testing.T) {
	a, f, _ := newTest(t, Options{NextHop: netip.MustParseAddr("192.0.2.10"), NextHop6: netip.MustParseAddr("2001:db8::10")})
	mustSet(t, a, ann("10.0.0.1", vipsmart.AnnounceVIP), ann("2001:db8::1", vipsmart.AnnounceVIP))
	if r, _ := f.route("10.0.0.1/32"); r.NextHop.String() != "192.0.2.10" {
		t.Errorf("v4 next hop %s", r.NextHop)
	}
	if r, _ := f.route("2001:db8::1/128"); r.NextHop.String() != "2001:db8::10" {
		t.Errorf("v6 next hop %s", r.NextHop)
	}
}

func TestCloseWithdrawsAll(t *testing.T) {
	a, f, _ := newTest(t, Options{})
	mustSet(t, a, ann("10.0.0.1", vipsmart.AnnounceVIP), ann("10.0.0.3", vipsmart.AnnounceGIPStandby), ann("2001:db8::1", vipsmart.AnnounceGIPActive))
	f.take()
	if err := a.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []string{"del 10.0.0.1/32", "del 10.0.0.3/32", "del 2001:db8::1/128", "stop"}
	if got := f.take(); !slices.Equal(got, want) {
		t.Fatalf("Close calls = %q, want %q (withdraw, then stop)", got, want)
	}
	if len(a.Announced()) != 0 {
		t.Fatalf("Announced = %+v", a.Announced())
	}
	if err := a.Set(context.Background(), []vipsmart.Announcement{ann("10.0.0.1", vipsmart.AnnounceVIP)}); !vipsmart.IsCode(err, vipsmart.ESTATE) {
		t.Fatalf("Set after Close: %v", err)
	}
	if err := a.Close(context.Background()); err != nil || len(f.take()) != 0 {
		t.Fatalf("second Close: %v", err)
	}
}

func TestParsePeer(t *testing.T) {
	good := map[string]Peer{
		"192.0.2.1,65001":            {Address: netip.MustParseAddr("192.0.2.1"), ASN: 65001},
		" 192.0.2.1 , 65001 , 1179 ": {Address: netip.MustParseAddr("192.0.2.1"), ASN: 65001, Port: 1179},
		"2001:db8::1,4200000000":     {Address: netip.MustParseAddr("2001:db8::1"), ASN: 4200000000},
		"2001:db8::1,65001,179":      {Address: netip.MustParseAddr("2001:db8::1"), ASN: 65001, Port: 179},
		"::ffff:192.0.2.1,1":         {Address: netip.MustParseAddr("192.0.2.1"), ASN: 1},
	}
	for s, want := range good {
		got, err := ParsePeer(s)
		if err != nil || !samePeer(got, want) {
			t.Errorf("ParsePeer(%q) = %+v, %v; want %+v", s, got, err, want)
		}
	}
	bad := map[string]string{
		"":                      "empty",
		"192.0.2.1":             "1 comma-separated fields",
		"192.0.2.1,1,2,3":       "4 comma-separated fields",
		"host.example,65001":    `"host.example" is not an IP address`,
		"192.0.2.1,":            `"" is not an AS number`,
		"192.0.2.1,0":           `"0" is not an AS number`,
		"192.0.2.1,4294967296":  `"4294967296" is not an AS number`,
		"192.0.2.1,AS65001":     `"AS65001" is not an AS number`,
		"192.0.2.1,65001,0":     `"0" is not a TCP port`,
		"192.0.2.1,65001,70000": `"70000" is not a TCP port`,
		"192.0.2.1:179,65001":   "is not an IP address",
	}
	for s, frag := range bad {
		_, err := ParsePeer(s)
		if !vipsmart.IsCode(err, vipsmart.EINVALID) || !strings.Contains(err.Error(), frag) || !strings.Contains(err.Error(), "IP,ASN[,PORT]") {
			t.Errorf("ParsePeer(%q) = %v; want invalid containing %q and the syntax", s, err, frag)
		}
	}
}

func TestPeerFamiliesAndBFD(t *testing.T) {
	f := newFake()
	_, err := New(context.Background(), f, Options{
		ASN: 65001, RouterID: netip.MustParseAddr("192.0.2.10"), PollInterval: time.Hour,
		NextHop6: netip.MustParseAddr("2001:db8::10"),
		Peers: []Peer{
			{Address: netip.MustParseAddr("192.0.2.1"), ASN: 65100, BFD: &BFD{}},
			{Address: netip.MustParseAddr("2001:db8::1"), ASN: 65100, BFD: &BFD{MinRx: 50 * time.Millisecond, MinTx: 300 * time.Millisecond, Multiplier: 5}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	// The IPv4 peer carries IPv6 too (its next hop is given); the IPv6 peer
	// only IPv6 (no IPv4 next hop). BFD defaults: 100ms, 100ms, 3.
	want := []string{
		"start as=65001 id=192.0.2.10 port=179",
		"peer 192.0.2.1 as=65100 port=179 hold=9s families=[ipv4 ipv6] bfd=100ms/100ms/3",
		"peer 2001:db8::1 as=65100 port=179 hold=9s families=[ipv6] bfd=50ms/300ms/5",
	}
	if got := f.take(); !slices.Equal(got, want) {
		t.Fatalf("calls = %q, want %q", got, want)
	}
}

// TestAnnouncedStates: an address is pending until a session of its
// family is established, announced (naming the peers that lack it) once
// one is, and failed when no peer carries its family.
func TestAnnouncedStates(t *testing.T) {
	a, f, now := newTest(t, Options{Peers: []Peer{
		{Address: netip.MustParseAddr("192.0.2.1"), ASN: 65100},
		{Address: netip.MustParseAddr("192.0.2.2"), ASN: 65100},
	}})
	var reports []string
	a.Watch(func(level, msg string) { reports = append(reports, level+": "+msg) })
	mustSet(t, a, ann("10.0.0.1", vipsmart.AnnounceVIP), ann("2001:db8::1", vipsmart.AnnounceGIPActive))
	state := func() []string {
		var out []string
		for _, x := range a.Announced() {
			out = append(out, x.Addr.String()+" "+x.StateString())
		}
		return out
	}
	a.poll()
	want := []string{
		"10.0.0.1 pending: no established BGP session (192.0.2.1 active, 192.0.2.2 active)",
		"2001:db8::1 failed: no BGP peer carries ipv6 routes: add an IPv6 BGP peer, or give --bgp-next-hop6 to send IPv6 routes over IPv4 sessions",
	}
	if got := state(); !slices.Equal(got, want) {
		t.Fatalf("before any session: %q, want %q", got, want)
	}
	*now = t0.Add(5 * time.Second)
	f.setStatus("192.0.2.1", PeerStatus{State: StateEstablished, Uptime: *now, Families: []Family{IPv4}})
	a.poll()
	if got := state(); got[0] != "10.0.0.1 announced: not sent to 192.0.2.2 active" {
		t.Fatalf("one session up: %q", got)
	}
	if got := a.Announced()[0].Since; !got.Equal(*now) {
		t.Errorf("Since = %v, want the time the session came up %v", got, *now)
	}
	f.setStatus("192.0.2.2", PeerStatus{State: StateEstablished, Uptime: *now, Families: []Family{IPv4}})
	a.poll()
	if got := state(); got[0] != "10.0.0.1 announced" {
		t.Fatalf("both up: %q", got)
	}
	// The sessions' changes were reported: up at info; a peer still down
	// one hold time (9 s) after it was added at warn.
	*now = t0.Add(20 * time.Second)
	f.setStatus("192.0.2.1", PeerStatus{State: StateActive, Downtime: *now, LastError: "hold-timer-expired"})
	a.poll()
	if got := state(); got[0] != "10.0.0.1 announced: not sent to 192.0.2.1 active" {
		t.Fatalf("one down again: %q", got)
	}
	wantReports := []string{
		"info: BGP session to 192.0.2.1 (AS 65100) established (ipv4)",
		"info: BGP session to 192.0.2.2 (AS 65100) established (ipv4)",
		"warn: BGP session to 192.0.2.1 (AS 65100) down after 15s established: hold-timer-expired; its routes are withdrawn at the router",
	}
	if !slices.Equal(reports, wantReports) {
		t.Fatalf("reports = %q, want %q", reports, wantReports)
	}
	reports = nil
	*now = t0.Add(30 * time.Second)
	a.poll()
	a.poll()
	if len(reports) != 1 || !strings.HasPrefix(reports[0], "warn: BGP session to 192.0.2.1 (AS 65100) still not established 10s after it went down: active (last error: hold-timer-expired)") {
		t.Fatalf("reports = %q, want one warning that the session stays down", reports)
	}
}

func TestBFDReportsAndPeers(t *testing.T) {
	a, f, now := newTest(t, Options{Peers: []Peer{{Address: netip.MustParseAddr("192.0.2.1"), ASN: 65100, BFD: &BFD{}}}})
	var reports []string
	// Reports made before Watch are handed over by Watch.
	f.setStatus("192.0.2.1", PeerStatus{State: StateEstablished, Uptime: t0, BFD: BFDUp, Families: []Family{IPv4}, Advertised: 7})
	a.poll()
	a.Watch(func(level, msg string) { reports = append(reports, level+": "+msg) })
	*now = t0.Add(time.Minute)
	ps := a.BGPPeers()
	if len(ps) != 1 || ps[0].State != "established" || ps[0].BFD != "up" || ps[0].RoutesSent != 7 ||
		ps[0].Uptime == nil || time.Duration(*ps[0].Uptime) != time.Minute || !slices.Equal(ps[0].Families, []string{"ipv4"}) {
		t.Fatalf("BGPPeers = %+v", ps)
	}
	// BFD fails while the session is established: the session is reset.
	f.take()
	f.setStatus("192.0.2.1", PeerStatus{State: StateEstablished, Uptime: t0, BFD: BFDDown, BFDFailed: true, Families: []Family{IPv4}})
	a.poll()
	if got := f.take(); !slices.Equal(got, []string{"reset 192.0.2.1"}) {
		t.Fatalf("calls = %q, want a reset of the session", got)
	}
	f.setStatus("192.0.2.1", PeerStatus{State: StateIdle, Downtime: *now, BFD: BFDDown, BFDFailed: true, LastError: "notification-sent cease"})
	a.poll()
	want := []string{
		"info: BGP session to 192.0.2.1 (AS 65100) established (ipv4)",
		"info: BFD with 192.0.2.1 up",
		"warn: BFD with 192.0.2.1 down: the packet path between this DC and the router failed; the BGP session is reset",
		"warn: BGP session to 192.0.2.1 (AS 65100) down after 1m0s established: notification-sent cease; its routes are withdrawn at the router",
	}
	if !slices.Equal(reports, want) {
		t.Fatalf("reports = %q, want %q", reports, want)
	}
	ps = a.BGPPeers()
	if ps[0].State != "idle" || ps[0].BFD != "down" || ps[0].Uptime != nil || ps[0].RoutesSent != 0 || ps[0].LastError != "notification-sent cease" {
		t.Fatalf("BGPPeers after the failure = %+v", ps)
	}
	// A router that ends BFD on purpose (AdminDown) resets nothing.
	f.setStatus("192.0.2.1", PeerStatus{State: StateEstablished, Uptime: *now, BFD: BFDUp, Families: []Family{IPv4}})
	a.poll()
	f.setStatus("192.0.2.1", PeerStatus{State: StateEstablished, Uptime: *now, BFD: BFDDown, Families: []Family{IPv4}})
	a.poll()
	if got := f.take(); len(got) != 0 {
		t.Fatalf("AdminDown: calls = %q", got)
	}
}

func TestNeverEstablishedPeer(t *testing.T) {
	a, _, now := newTest(t, Options{Peers: []Peer{{Address: netip.MustParseAddr("192.0.2.1"), ASN: 65100, HoldTime: 3 * time.Second}}})
	var reports []string
	a.Watch(func(level, msg string) { reports = append(reports, level+": "+msg) })
	a.poll()
	if len(reports) != 0 {
		t.Fatalf("reports at once: %q", reports)
	}
	*now = t0.Add(3 * time.Second)
	a.poll()
	a.poll()
	if len(reports) != 1 || !strings.HasPrefix(reports[0], "warn: BGP session to 192.0.2.1 (AS 65100) not established 3s after it was added: active") {
		t.Fatalf("reports = %q", reports)
	}
	if ps := a.BGPPeers(); ps[0].State != "active" || ps[0].LastError != "never established" || ps[0].Since == nil || !ps[0].Since.Equal(t0) {
		t.Fatalf("BGPPeers = %+v", ps)
	}
}

func TestSetPeersAtRunTime(t *testing.T) {
	p1 := Peer{Address: netip.MustParseAddr("192.0.2.1"), ASN: 65100}
	p2 := Peer{Address: netip.MustParseAddr("192.0.2.2"), ASN: 65100}
	a, f, _ := newTest(t, Options{Peers: []Peer{p1, p2}})
	p3 := Peer{Address: netip.MustParseAddr("192.0.2.3"), ASN: 65100}
	p2b := p2
	p2b.HoldTime = 30 * time.Second
	if err := a.SetPeers(context.Background(), []Peer{p1, p2b, p3}); err != nil {
		t.Fatal(err)
	}
	want := []string{"delpeer 192.0.2.2", "peer 192.0.2.2 as=65100 port=179 hold=30s families=[ipv4]", "peer 192.0.2.3 as=65100 port=179 hold=9s families=[ipv4]"}
	if got := f.take(); !slices.Equal(got, want) {
		t.Fatalf("calls = %q, want %q (192.0.2.1 untouched)", got, want)
	}
	if err := a.SetPeers(context.Background(), []Peer{p3}); err != nil {
		t.Fatal(err)
	}
	if got := f.take(); !slices.Equal(got, []string{"delpeer 192.0.2.1", "delpeer 192.0.2.2"}) {
		t.Fatalf("calls = %q", got)
	}
	if err := a.SetPeers(context.Background(), []Peer{p3, p3}); !vipsmart.IsCode(err, vipsmart.EINVALID) || len(f.take()) != 0 {
		t.Fatalf("bad peers: %v", err)
	}
	if ps := a.BGPPeers(); len(ps) != 1 || ps[0].Address != p3.Address {
		t.Fatalf("BGPPeers = %+v", ps)
	}
}
