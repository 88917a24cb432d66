package announce

import (
	"context"
	"errors"
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

// rich is an announcer with every optional interface.
type rich struct {
	*none.Announcer
	watched bool
}

func (r *rich) Preflight(a vipsmart.Announcement) error {
	return errors.New("no interface for " + a.Addr.String())
}
func (r *rich) Watch(func(level, msg string)) { r.watched = true }
func (r *rich) BGPPeers() []vipsmart.BGPPeer {
	return []vipsmart.BGPPeer{{Address: netip.MustParseAddr("192.0.2.254"), State: "active"}}
}

func TestMultiDelegatesTheOptionalInterfaces(t *testing.T) {
	r := &rich{Announcer: none.New()}
	m := Multi{none.New(), r}
	a := vipsmart.Announcement{Addr: netip.MustParseAddr("192.0.2.1"), Kind: vipsmart.AnnounceVIP}
	if err := m.Preflight(a); err == nil || err.Error() != "no interface for 192.0.2.1" {
		t.Errorf("Preflight = %v", err)
	}
	m.Watch(func(string, string) {})
	if !r.watched {
		t.Error("Watch was not handed on")
	}
	if ps := m.BGPPeers(); len(ps) != 1 || ps[0].State != "active" {
		t.Errorf("BGPPeers = %+v", ps)
	}
	if err := (Multi{none.New()}).Preflight(a); err != nil {
		t.Errorf("Preflight without objection = %v", err)
	}
}
