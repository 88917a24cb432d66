package daemon

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/announce/none"
)

// TestInheritedAnnouncements: a daemon that starts with the set its node
// announced as a follower keeps each inherited entry announced until it
// knows better (hold-down over, the backing VIP's health known, the GIP
// or VIP gone), at most ActivationWait, and publishes what it hands its
// announcer for the other nodes to mirror.
func TestInheritedAnnouncements(t *testing.T) {
	d := newTestDaemon(t)
	now := time.Unix(1000, 0)
	d.cfg.Now = func() time.Time { return now }
	rec := none.New(none.WithClock(d.cfg.Now))
	d.cfg.Announcer = rec
	vipAddr, gipAddr, goneAddr := netip.MustParseAddr("10.1.0.1"), netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.9")
	d.vips = map[string]vipsmart.VIP{"web": {Name: "web", Address: vipAddr, Check: &vipsmart.Check{URL: "tcp://10.1.0.10:80"}}}
	gs := []vipsmart.GIP{{Name: "g1", Address: gipAddr, Mode: vipsmart.ModeFailover, Placements: []vipsmart.Placement{{DC: "dc-1", Priority: 100, VIP: "web"}}}}
	inherited := []vipsmart.Announcement{
		{Addr: vipAddr, Kind: vipsmart.AnnounceVIP, Name: "web"},
		{Addr: gipAddr, Kind: vipsmart.AnnounceGIPActive, Name: "g1"},
		{Addr: goneAddr, Kind: vipsmart.AnnounceGIPActive, Name: "gone"}, // removed while following
	}
	start := func() {
		d.cfg.Inherited = slices.Clone(inherited)
		d.inheritUntil = now.Add(10 * time.Second)
		d.lastDesired, d.lastAnnErr = nil, ""
		d.active = map[string][]string{}
	}
	announced := func() []string {
		var out []string
		for _, a := range rec.Announced() {
			out = append(out, a.Addr.String()+" "+string(a.Kind))
		}
		return out
	}
	want := func(step string, w ...string) {
		t.Helper()
		if got := announced(); !slices.Equal(got, w) {
			t.Fatalf("%s: announced %q, want %q", step, got, w)
		}
		gen, pub := d.Announcements()
		if gen == 0 || len(pub) != len(w) {
			t.Fatalf("%s: published generation %d, %d entries; want what was handed to the announcer (%d)", step, gen, len(pub), len(w))
		}
	}
	view := vipsmart.HealthView{Reachable: map[string]bool{"dc-1": true}}

	start()
	// Hold-down, VIP health unknown: the inherited set stays (less the
	// removed GIP): nothing is withdrawn.
	d.announce(gs, view, true)
	want("hold-down", "10.1.0.1 vip", "192.0.2.1 gip-active")
	gen1, _ := d.Announcements()
	// Hold-down over, VIP health still unknown: still kept.
	now = now.Add(time.Second)
	d.announce(gs, view, false)
	want("unknown health", "10.1.0.1 vip", "192.0.2.1 gip-active")
	if gen2, _ := d.Announcements(); gen2 != gen1 {
		t.Fatalf("generation moved from %d to %d with the same set", gen1, gen2)
	}
	// The health is known (up: no check) and the daemon computes the same
	// set itself: the inheritance ends, nothing changes on the wire.
	d.vips["web"] = vipsmart.VIP{Name: "web", Address: vipAddr}
	d.active["g1"] = []string{"dc-1"}
	d.announce(gs, view, false)
	want("known", "10.1.0.1 vip", "192.0.2.1 gip-active")
	if d.cfg.Inherited != nil {
		t.Fatalf("inheritance did not end once the daemon knew better: %v", d.cfg.Inherited)
	}

	// The daemon knows better: the VIP is gone (and with it the GIP's
	// backing health): both inherited entries go once the hold-down ends.
	start()
	d.vips = map[string]vipsmart.VIP{}
	d.announce(gs, view, true)
	want("vip gone, hold-down", "192.0.2.1 gip-active")
	d.announce(gs, view, false)
	want("vip gone")

	// Never longer than ActivationWait, even if the health stays unknown.
	start()
	d.vips = map[string]vipsmart.VIP{"web": {Name: "web", Address: vipAddr, Check: &vipsmart.Check{URL: "tcp://10.1.0.10:80"}}}
	d.announce(gs, view, false)
	want("unknown health", "10.1.0.1 vip", "192.0.2.1 gip-active")
	now = now.Add(11 * time.Second)
	d.announce(gs, view, false)
	want("after ActivationWait")
}
