package main

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/announce"
	"github.com/vipsmart/vipsmart/announce/bgp"
	"github.com/vipsmart/vipsmart/announce/netlink"
	"github.com/vipsmart/vipsmart/announce/none"
)

// recSpeaker is a BGP speaker that records the routes it is asked to add
// and withdraw.
type recSpeaker struct {
	mu    sync.Mutex
	calls []string
}

func (s *recSpeaker) rec(c string) { s.mu.Lock(); s.calls = append(s.calls, c); s.mu.Unlock() }
func (s *recSpeaker) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.calls
	s.calls = nil
	slices.Sort(c)
	return c
}
func (s *recSpeaker) Start(context.Context, bgp.Global) error               { return nil }
func (s *recSpeaker) AddPeer(context.Context, bgp.Peer) error               { return nil }
func (s *recSpeaker) DeletePeer(context.Context, netip.Addr) error          { return nil }
func (s *recSpeaker) ResetPeer(context.Context, netip.Addr) error           { return nil }
func (s *recSpeaker) Peers(context.Context, bool) ([]bgp.PeerStatus, error) { return nil, nil }
func (s *recSpeaker) AddPath(_ context.Context, r bgp.Route) error {
	s.rec("add " + r.Prefix.String())
	return nil
}
func (s *recSpeaker) DeletePath(_ context.Context, r bgp.Route) error {
	s.rec("del " + r.Prefix.String())
	return nil
}
func (s *recSpeaker) Stop(context.Context) error { s.rec("stop"); return nil }

// TestFollowerMirrorsLeaderSet: a follower announces the leader's set
// through its own BGP announcer, follows its changes, withdraws nothing
// when the leader is gone, and hands over the set it announced when it
// leads, so that the daemon's first Set changes nothing on the wire.
func TestFollowerMirrorsLeaderSet(t *testing.T) {
	ctx := context.Background()
	sp := &recSpeaker{}
	a, err := bgp.New(ctx, sp, bgp.Options{ASN: 65001, RouterID: netip.MustParseAddr("10.0.0.2"),
		Peers: []bgp.Peer{{Address: netip.MustParseAddr("10.0.0.1"), ASN: 65000}}, PollInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(ctx)
	an := func(ip string, k vipsmart.AnnounceKind) vipsmart.Announcement {
		return vipsmart.Announcement{Addr: netip.MustParseAddr(ip), Kind: k, Name: "n" + ip}
	}
	var mu sync.Mutex
	leader := map[string]announceSet{} // generation -> set; a missing one: the leader is gone
	fetches := 0
	fetch := func(_ context.Context, addr string) (announceSet, error) {
		mu.Lock()
		defer mu.Unlock()
		fetches++
		if addr != "10.0.0.5:9610" {
			t.Errorf("fetched from %s", addr)
		}
		for _, s := range leader {
			return s, nil
		}
		return announceSet{}, errors.New("connection refused")
	}
	setLeader := func(s *announceSet) {
		mu.Lock()
		defer mu.Unlock()
		leader = map[string]announceSet{}
		if s != nil {
			leader[s.Generation] = *s
		}
	}
	waitCalls := func(step string, want ...string) {
		t.Helper()
		var got []string
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			got = append(got, sp.take()...)
			slices.Sort(got)
			if len(got) >= len(want) {
				break
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s: speaker calls %q, want %q", step, got, want)
		}
	}
	m := newMirror(slog.New(slog.DiscardHandler), a, fetch)
	m.start(ctx)

	s1 := announceSet{Generation: "r-1", Announcements: []vipsmart.Announcement{an("10.1.0.1", vipsmart.AnnounceVIP), an("192.0.2.1", vipsmart.AnnounceGIPActive), an("192.0.2.2", vipsmart.AnnounceGIPActive)}}
	setLeader(&s1)
	m.want("", "10.0.0.5:9610") // a leader not announcing yet: nothing
	m.want("r-1", "10.0.0.5:9610")
	waitCalls("first set", "add 10.1.0.1/32", "add 192.0.2.1/32", "add 192.0.2.2/32")

	// The leader's set changes: the follower follows, withdrawing only
	// what the leader withdrew.
	s2 := announceSet{Generation: "r-2", Announcements: []vipsmart.Announcement{an("10.1.0.1", vipsmart.AnnounceVIP), an("192.0.2.1", vipsmart.AnnounceGIPActive)}}
	setLeader(&s2)
	m.want("r-2", "10.0.0.5:9610")
	waitCalls("leader withdrew 192.0.2.2", "del 192.0.2.2/32")

	// The leader is gone (its report named a new generation, then it
	// died): fetches fail and are retried; nothing is withdrawn.
	setLeader(nil)
	m.want("r-3", "10.0.0.5:9610")
	time.Sleep(1500 * time.Millisecond) // the kick and at least one retry
	mu.Lock()
	n := fetches
	mu.Unlock()
	if n < 4 {
		t.Fatalf("%d fetches; want the kick of r-3 and a retry besides the two sets", n)
	}
	if c := sp.take(); len(c) != 0 {
		t.Fatalf("the follower changed its routes with its leader gone: %q", c)
	}

	// The follower leads: it gets the set it announced and the daemon
	// hands the announcer that set (or more): nothing is withdrawn.
	inherited := m.stop()
	if !slices.Equal(inherited, s2.Announcements) {
		t.Fatalf("inherited %v; want %v", inherited, s2.Announcements)
	}
	if err := a.Set(ctx, append(inherited, an("192.0.2.3", vipsmart.AnnounceGIPActive))); err != nil {
		t.Fatal(err)
	}
	waitCalls("leader's first set", "add 192.0.2.3/32")
	// The mirror no longer touches the announcer.
	setLeader(&s1)
	m.want("r-4", "10.0.0.5:9610")
	time.Sleep(100 * time.Millisecond)
	if c := sp.take(); len(c) != 0 {
		t.Fatalf("a stopped mirror changed the routes: %q", c)
	}
}

// TestFollowerAnnouncer: a follower announces through every announcer
// but netlink (an address bound on several hosts of one segment would
// conflict); with netlink alone it announces nothing.
func TestFollowerAnnouncer(t *testing.T) {
	nl := netlink.New(nil, netlink.Options{})
	no := none.New()
	if got := followerAnnouncer(nl); got != nil {
		t.Fatalf("netlink alone: %T; want none", got)
	}
	if got := followerAnnouncer(no); got != vipsmart.Announcer(no) {
		t.Fatalf("none alone: %T", got)
	}
	if got := followerAnnouncer(announce.Multi{nl, no}); got != vipsmart.Announcer(no) {
		t.Fatalf("netlink,none: %T; want none only", got)
	}
	no2 := none.New()
	got, ok := followerAnnouncer(announce.Multi{no, nl, no2}).(announce.Multi)
	if !ok || len(got) != 2 || got[0] != vipsmart.Announcer(no) || got[1] != vipsmart.Announcer(no2) {
		t.Fatalf("none,netlink,none: %v", got)
	}
}
