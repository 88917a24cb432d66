package bgp

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
)

func TestReloadPeersAndAttributes(t *testing.T) {
	ctx := context.Background()
	f := newFake()
	p1, p2, p3 := mustPeer(t, "192.0.2.1,65001"), mustPeer(t, "192.0.2.2,65002"), mustPeer(t, "192.0.2.3,65003")
	base := Options{ASN: 65000, RouterID: netip.MustParseAddr("10.0.0.1"), Peers: []Peer{p1, p2}, Communities: []string{"65000:1"}}
	a, err := New(ctx, f, base)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Set(ctx, []vipsmart.Announcement{
		{Addr: netip.MustParseAddr("203.0.113.1"), Kind: vipsmart.AnnounceGIPActive, Name: "g1"},
		{Addr: netip.MustParseAddr("203.0.113.2"), Kind: vipsmart.AnnounceGIPStandby, Name: "g2"},
	}); err != nil {
		t.Fatal(err)
	}
	f.calls = nil

	// p1 stays as it is, p2 goes, p3 comes, p1 keeps its session; new
	// community and prepend re-originate both routes; a new ASN is refused
	// as needing a restart.
	next := base
	next.ASN = 65099
	next.Peers = []Peer{p1, p3}
	next.Communities = []string{"65000:2"}
	next.StandbyPrepend = 5
	needRestart, err := a.Reload(ctx, next)
	if err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if !slices.Equal(needRestart, []string{"bgp-asn"}) {
		t.Errorf("needRestart = %v, want [bgp-asn]", needRestart)
	}
	calls := strings.Join(f.calls, "\n")
	for _, want := range []string{"delpeer 192.0.2.2", "peer 192.0.2.3 as=65003",
		"add 203.0.113.1/32 nh=invalid IP aspath=[] comm=[4259840002]",
		"add 203.0.113.2/32 nh=invalid IP aspath=[65000 65000 65000 65000 65000]"} {
		if !strings.Contains(calls, want) {
			t.Errorf("calls lack %q:\n%s", want, calls)
		}
	}
	if strings.Contains(calls, "192.0.2.1") {
		t.Errorf("the unchanged peer 192.0.2.1 was touched:\n%s", calls)
	}
	if _, ok := f.peers[netip.MustParseAddr("192.0.2.2")]; ok {
		t.Errorf("removed peer still configured")
	}
	if a.opts.ASN != 65000 {
		t.Errorf("ASN changed to %d without a restart", a.opts.ASN)
	}

	// A changed peer (hold time) is re-added; bad options change nothing.
	f.calls = nil
	p3b := p3
	p3b.HoldTime = 30 * time.Second
	next.Peers = []Peer{p1, p3b}
	if _, err := a.Reload(ctx, next); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.calls, "\n"); !strings.Contains(got, "delpeer 192.0.2.3\npeer 192.0.2.3 as=65003 port=179 hold=30s") {
		t.Errorf("changed peer not re-added:\n%s", got)
	}
	f.calls = nil
	bad := next
	bad.Communities = []string{"nope"}
	if _, err := a.Reload(ctx, bad); !vipsmart.IsCode(err, vipsmart.EINVALID) {
		t.Fatalf("bad community: err %v, want invalid", err)
	}
	if len(f.calls) != 0 {
		t.Errorf("a refused reload called the speaker: %v", f.calls)
	}
}

func mustPeer(t *testing.T, s string) Peer {
	t.Helper()
	p, err := ParsePeer(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
