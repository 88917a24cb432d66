package announce

import (
	"context"
	"net/netip"
	"testing"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/announce/none"
)

func TestMultiSetsEveryAnnouncer(t *testing.T) {
	a, b := none.New(), none.New()
	m := Multi{a, b}
	want := []vipsmart.Announcement{{Addr: netip.MustParseAddr("192.0.2.1"), Kind: vipsmart.AnnounceVIP, Name: "web"}}
	if err := m.Set(context.Background(), want); err != nil {
		t.Fatal(err)
	}
	if len(a.Announced()) != 1 || len(b.Announced()) != 1 || len(m.Announced()) != 2 {
		t.Fatalf("announced: a %v b %v multi %v", a.Announced(), b.Announced(), m.Announced())
	}
	if err := m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(a.Announced()) != 0 || len(b.Announced()) != 0 {
		t.Fatalf("after Close: a %v b %v", a.Announced(), b.Announced())
	}
}
