package bgp

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	gbgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"

	"github.com/vipsmart/vipsmart"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// seen is a route as the router holds it.
type seen struct {
	asPath      []uint32
	communities []uint32
}

// routerRIB returns the router's routes of family.
func routerRIB(t *testing.T, s *server.BgpServer, family gbgp.Family) map[netip.Prefix]seen {
	t.Helper()
	out := map[netip.Prefix]seen{}
	err := s.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: family},
		func(prefix gbgp.NLRI, paths []*apiutil.Path) {
			p, err := netip.ParsePrefix(prefix.String())
			if err != nil || len(paths) == 0 {
				return
			}
			var r seen
			for _, a := range paths[0].Attrs {
				switch a := a.(type) {
				case *gbgp.PathAttributeAsPath:
					for _, v := range a.Value {
						r.asPath = append(r.asPath, v.GetAS()...)
					}
				case *gbgp.PathAttributeCommunities:
					r.communities = a.Value
				}
			}
			out[p] = r
		})
	if err != nil {
		t.Fatalf("ListPath: %v", err)
	}
	return out
}

// waitRIB polls the router until ok accepts its RIB.
func waitRIB(t *testing.T, s *server.BgpServer, what string, ok func(v4, v6 map[netip.Prefix]seen) bool) {
	t.Helper()
	deadline := time.Now().Add(8 * time.Second)
	for {
		v4, v6 := routerRIB(t, s, gbgp.RF_IPv4_UC), routerRIB(t, s, gbgp.RF_IPv6_UC)
		if ok(v4, v6) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("router never saw %s; it holds %v %v", what, v4, v6)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestGoBGPLoopback(t *testing.T) {
	ctx := context.Background()
	port := freePort(t)

	// The router: a plain GoBGP server, AS 65100, passive towards us.
	router := server.NewBgpServer()
	go router.Serve()
	t.Cleanup(router.Stop)
	if err := router.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn: 65100, RouterId: "10.255.0.1", ListenPort: int32(port), ListenAddresses: []string{"127.0.0.1"},
	}}); err != nil {
		t.Fatalf("router StartBgp: %v", err)
	}
	if err := router.AddPeer(ctx, &api.AddPeerRequest{Peer: &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: "127.0.0.1", PeerAsn: 65001},
		Transport: &api.Transport{PassiveMode: true},
		AfiSafis: []*api.AfiSafi{
			{Config: &api.AfiSafiConfig{Enabled: true, Family: &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}}},
			{Config: &api.AfiSafiConfig{Enabled: true, Family: &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}}},
		},
	}}); err != nil {
		t.Fatalf("router AddPeer: %v", err)
	}

	// The announcer: AS 65001, no listener, one peer: the router.
	peer, err := ParsePeer("127.0.0.1,65100," + itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(ctx, NewGoBGP(nil), Options{
		ASN: 65001, RouterID: netip.MustParseAddr("10.255.0.2"), ListenPort: -1,
		Peers:       []Peer{peer},
		Communities: []string{"65001:100"}, StandbyCommunities: []string{"65001:200"},
		NextHop6: netip.MustParseAddr("2001:db8::2"),
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			a.Close(ctx)
		}
	})

	vip := netip.MustParsePrefix("10.0.0.1/32")
	standby := netip.MustParsePrefix("10.0.0.2/32")
	vip6 := netip.MustParsePrefix("2001:db8::1/128")
	if err := a.Set(ctx, []vipsmart.Announcement{
		{Addr: vip.Addr(), Kind: vipsmart.AnnounceVIP, Name: "web"},
		{Addr: standby.Addr(), Kind: vipsmart.AnnounceGIPStandby, Name: "g"},
		{Addr: vip6.Addr(), Kind: vipsmart.AnnounceGIPActive, Name: "g6"},
	}); err != nil {
		t.Fatalf("Set: %v", err)
	}
	waitRIB(t, router, "the active /32, the standby /32 and the /128", func(v4, v6 map[netip.Prefix]seen) bool {
		return len(v4[vip].asPath) > 0 && len(v4[standby].asPath) > 0 && len(v6[vip6].asPath) > 0
	})
	v4, v6 := routerRIB(t, router, gbgp.RF_IPv4_UC), routerRIB(t, router, gbgp.RF_IPv6_UC)
	if got := v4[vip]; !slices.Equal(got.asPath, []uint32{65001}) || !slices.Equal(got.communities, []uint32{65001<<16 | 100}) {
		t.Errorf("active %s at the router: %+v, want AS path [65001] and community 65001:100", vip, got)
	}
	if got := v4[standby]; !slices.Equal(got.asPath, []uint32{65001, 65001, 65001, 65001}) || !slices.Equal(got.communities, []uint32{65001<<16 | 200}) {
		t.Errorf("standby %s at the router: %+v, want AS path 65001 x4 and community 65001:200", standby, got)
	}
	if got := v6[vip6]; !slices.Equal(got.asPath, []uint32{65001}) {
		t.Errorf("active %s at the router: %+v", vip6, got)
	}

	// Standby -> active (and the VIP withdrawn): replaced, not duplicated.
	if err := a.Set(ctx, []vipsmart.Announcement{
		{Addr: standby.Addr(), Kind: vipsmart.AnnounceGIPActive, Name: "g"},
	}); err != nil {
		t.Fatalf("Set: %v", err)
	}
	waitRIB(t, router, "the withdraw of the VIP and the standby turned active", func(v4, v6 map[netip.Prefix]seen) bool {
		_, hasVIP := v4[vip]
		_, hasVIP6 := v6[vip6]
		return !hasVIP && !hasVIP6 && slices.Equal(v4[standby].asPath, []uint32{65001})
	})

	// Close withdraws and closes the session.
	if err := a.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	closed = true
	waitRIB(t, router, "the withdraw on Close", func(v4, v6 map[netip.Prefix]seen) bool {
		return len(v4) == 0 && len(v6) == 0
	})
}

func itoa(i int) string { return strconv.Itoa(i) }
