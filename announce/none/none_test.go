package none

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
)

func TestNone(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	t0 := now
	a := New(WithClock(func() time.Time { return now }))
	ctx := context.Background()
	web := vipsmart.Announcement{Addr: netip.MustParseAddr("10.0.0.2"), Kind: vipsmart.AnnounceVIP, Name: "web", Interface: "eth1"}
	g := vipsmart.Announcement{Addr: netip.MustParseAddr("10.0.0.1"), Kind: vipsmart.AnnounceGIPStandby, Name: "g"}
	if err := a.Set(ctx, []vipsmart.Announcement{web, g}); err != nil {
		t.Fatal(err)
	}
	got := a.Announced()
	if len(got) != 2 || got[0].Addr != g.Addr || got[1].Announcement != web {
		t.Fatalf("Announced = %+v, want sorted by address", got)
	}
	for _, x := range got {
		if x.Via != "none" || !x.Since.Equal(t0) {
			t.Errorf("%s: Via %q Since %v", x.Addr, x.Via, x.Since)
		}
	}

	// The same set later keeps Since; a kind change or a new address gets now.
	now = now.Add(time.Minute)
	g.Kind = vipsmart.AnnounceGIPActive
	v6 := vipsmart.Announcement{Addr: netip.MustParseAddr("2001:db8::1"), Kind: vipsmart.AnnounceVIP, Name: "v6"}
	if err := a.Set(ctx, []vipsmart.Announcement{web, g, v6}); err != nil {
		t.Fatal(err)
	}
	got = a.Announced()
	if len(got) != 3 || !got[1].Since.Equal(t0) || !got[0].Since.Equal(now) || !got[2].Since.Equal(now) || got[0].Kind != vipsmart.AnnounceGIPActive {
		t.Fatalf("Announced = %+v", got)
	}

	// Left out: withdrawn. Bad entries: reported, the rest recorded.
	err := a.Set(ctx, []vipsmart.Announcement{web, {Addr: netip.MustParseAddr("10.0.0.9"), Kind: "nope"}})
	if !vipsmart.IsCode(err, vipsmart.EINVALID) {
		t.Fatalf("err = %v, want invalid", err)
	}
	if got = a.Announced(); len(got) != 1 || got[0].Addr != web.Addr || !got[0].Since.Equal(t0) {
		t.Fatalf("Announced = %+v", got)
	}

	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if len(a.Announced()) != 0 {
		t.Fatal("Close left announcements")
	}
	if err := a.Set(ctx, []vipsmart.Announcement{web}); !vipsmart.IsCode(err, vipsmart.ESTATE) {
		t.Fatalf("Set after Close: %v", err)
	}
}

func TestDefaultClock(t *testing.T) {
	a := New()
	before := time.Now()
	if err := a.Set(context.Background(), []vipsmart.Announcement{{Addr: netip.MustParseAddr("::ffff:10.0.0.1"), Kind: vipsmart.AnnounceVIP}}); err != nil {
		t.Fatal(err)
	}
	got := a.Announced()
	if len(got) != 1 || got[0].Since.Before(before) || got[0].Addr.String() != "10.0.0.1" {
		t.Fatalf("Announced = %+v (want the mapped address unmapped)", got)
	}
}
