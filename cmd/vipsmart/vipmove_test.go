package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/announce"
	"github.com/vipsmart/vipsmart/announce/netlink"
	"github.com/vipsmart/vipsmart/announce/none"
)

type guardOS struct {
	mu  sync.Mutex
	del []string
	at  []time.Time
}

func (o *guardOS) Addrs(string) ([]netlink.Addr, error) { return nil, nil }
func (o *guardOS) HasLink(string) (bool, error)         { return true, nil }
func (o *guardOS) AddAddr(netlink.Addr) error           { return nil }
func (o *guardOS) Announce(string, netip.Addr) error    { return nil }
func (o *guardOS) DelAddr(a netlink.Addr) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.del = append(o.del, a.Prefix.String())
	o.at = append(o.at, time.Now())
	return nil
}

func (o *guardOS) deleted() ([]string, []time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.del...), append([]time.Time(nil), o.at...)
}

// TestGuard: the guard removes the addresses it was told about when their
// deadline passes, not before, and at once when the daemon's end closes.
func TestGuard(t *testing.T) {
	r, w := io.Pipe()
	os := &guardOS{}
	done := make(chan struct{})
	var inc int64
	go func() { inc = runGuard(r, os, slog.New(slog.DiscardHandler)); close(done) }()
	send := func(m guardMsg) {
		b, _ := json.Marshal(m)
		if _, err := w.Write(append(b, '\n')); err != nil {
			t.Fatal(err)
		}
	}
	a := netlink.Addr{Link: "eth0", Prefix: netip.MustParsePrefix("192.0.2.10/32")}
	b := netlink.Addr{Link: "eth0", Prefix: netip.MustParsePrefix("192.0.2.11/32")}
	start := time.Now()
	send(guardMsg{Deadline: monoNow() + int64(300*time.Millisecond), Addrs: []netlink.Addr{a}})
	time.Sleep(100 * time.Millisecond)
	if d, _ := os.deleted(); len(d) != 0 {
		t.Fatalf("removed %v before the deadline", d)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		if d, at := os.deleted(); len(d) == 1 {
			if d[0] != "192.0.2.10/32" || at[0].Sub(start) < 290*time.Millisecond {
				t.Fatalf("removed %v after %s: want 192.0.2.10/32 after 300ms", d, at[0].Sub(start))
			}
			t.Logf("removed %s after %s (deadline 300ms)", d[0], at[0].Sub(start))
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the guard did not remove the address after its deadline")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// A renewed deadline keeps it; the daemon gone removes it at once.
	send(guardMsg{Deadline: monoNow() + int64(time.Hour), Addrs: []netlink.Addr{b}, Inc: 7})
	time.Sleep(50 * time.Millisecond)
	closed := time.Now()
	w.Close()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("the guard did not end when its input closed")
	}
	if inc != 7 {
		t.Errorf("the guard returned incarnation %d: want 7, the daemon's last, to fence", inc)
	}
	d, at := os.deleted()
	if len(d) != 2 || d[1] != "192.0.2.11/32" || at[1].Sub(closed) > 500*time.Millisecond {
		t.Fatalf("removed %v: want 192.0.2.11/32 at once when the daemon's end closed", d)
	}
}

// TestSplitAnnouncer: the daemon's part never carries VIPs, the mover's
// does; both reach every announcer.
func TestSplitAnnouncer(t *testing.T) {
	a1, a2 := none.New(), none.New()
	s := newSplitAnnouncer(announce.Multi{a1, a2})
	main := mainPart{s}
	ctx := context.Background()
	vip := vipsmart.Announcement{Addr: netip.MustParseAddr("192.0.2.10"), Kind: vipsmart.AnnounceVIP, Name: "web"}
	gip := vipsmart.Announcement{Addr: netip.MustParseAddr("198.51.100.1"), Kind: vipsmart.AnnounceGIPActive, Name: "www"}
	other := vipsmart.Announcement{Addr: netip.MustParseAddr("192.0.2.11"), Kind: vipsmart.AnnounceVIP, Name: "api"}
	if err := main.Set(ctx, []vipsmart.Announcement{vip, gip}); err != nil {
		t.Fatal(err)
	}
	if err := s.setVIPs(ctx, []vipsmart.Announcement{other}); err != nil {
		t.Fatal(err)
	}
	for _, a := range []*none.Announcer{a1, a2} {
		got := a.Announced()
		if len(got) != 2 || got[0].Addr != other.Addr || got[1].Addr != gip.Addr {
			t.Fatalf("announced %+v: want the mover's VIP api and the GIP, not the daemon's VIP web", got)
		}
	}
	if err := main.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.setVIPs(ctx, []vipsmart.Announcement{vip}); err != nil {
		t.Fatal(err)
	}
	if got := a1.Announced(); len(got) != 0 {
		t.Fatalf("after Close: %+v", got)
	}
}
