package bgp

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	gbgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
)

// GoBGP is the real Speaker: an embedded GoBGP v4 server.
type GoBGP struct {
	s *server.BgpServer
}

var _ Speaker = (*GoBGP)(nil)

// NewGoBGP returns a GoBGP speaker that logs to logger (nil: discard) at
// info and above (sessions up and down); Start starts it.
func NewGoBGP(logger *slog.Logger) *GoBGP {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	lvl := &slog.LevelVar{}
	lvl.Set(slog.LevelInfo)
	s := server.NewBgpServer(server.LoggerOption(logger.With("component", "gobgp"), lvl))
	go s.Serve()
	return &GoBGP{s: s}
}

// Server returns the embedded GoBGP server, for inspection.
func (g *GoBGP) Server() *server.BgpServer { return g.s }

// Start implements Speaker.
func (g *GoBGP) Start(ctx context.Context, gl Global) error {
	return g.s.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn:        gl.ASN,
		RouterId:   gl.RouterID.String(),
		ListenPort: gl.ListenPort,
	}})
}

// AddPeer implements Speaker. The session carries IPv4 and IPv6 unicast
// (multiprotocol BGP), whatever the family of the peer's address.
func (g *GoBGP) AddPeer(ctx context.Context, p Peer) error {
	hold := uint64(p.HoldTime.Seconds())
	peer := &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: p.Address.String(),
			PeerAsn:         p.ASN,
			AuthPassword:    p.Password,
		},
		Timers: &api.Timers{Config: &api.TimersConfig{
			HoldTime:          hold,
			KeepaliveInterval: max(hold/3, 1),
			ConnectRetry:      1, // reconnect within a second once a link heals
		}},
		Transport: &api.Transport{RemotePort: uint32(p.Port)},
		AfiSafis: []*api.AfiSafi{
			{Config: &api.AfiSafiConfig{Enabled: true, Family: &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}}},
			{Config: &api.AfiSafiConfig{Enabled: true, Family: &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}}},
		},
	}
	if p.Multihop {
		peer.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: 255}
	}
	return g.s.AddPeer(ctx, &api.AddPeerRequest{Peer: peer})
}

// DeletePeer implements Speaker.
func (g *GoBGP) DeletePeer(ctx context.Context, addr netip.Addr) error {
	return g.s.DeletePeer(ctx, &api.DeletePeerRequest{Address: addr.String()})
}

// AddPath implements Speaker.
func (g *GoBGP) AddPath(_ context.Context, r Route) error {
	p, err := toPath(r)
	if err != nil {
		return err
	}
	_, err = g.s.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{p}})
	return err
}

// DeletePath implements Speaker.
func (g *GoBGP) DeletePath(_ context.Context, r Route) error {
	p, err := toPath(r)
	if err != nil {
		return err
	}
	p.Withdrawal = true
	return g.s.DeletePath(apiutil.DeletePathRequest{Paths: []*apiutil.Path{p}})
}

// Stop implements Speaker: it closes the sessions (NOTIFICATION cease) and
// stops the server, or gives up when ctx ends.
func (g *GoBGP) Stop(ctx context.Context) error {
	done := make(chan struct{})
	go func() { g.s.Stop(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stopping the BGP speaker: %w", ctx.Err())
	}
}

// toPath converts r to a GoBGP path.
func toPath(r Route) (*apiutil.Path, error) {
	nlri, err := gbgp.NewIPAddrPrefix(r.Prefix)
	if err != nil {
		return nil, fmt.Errorf("route %s: %w", r.Prefix, err)
	}
	attrs := []gbgp.PathAttributeInterface{gbgp.NewPathAttributeOrigin(gbgp.BGP_ORIGIN_ATTR_TYPE_IGP)}
	var params []gbgp.AsPathParamInterface
	if len(r.ASPath) > 0 {
		params = []gbgp.AsPathParamInterface{gbgp.NewAs4PathParam(gbgp.BGP_ASPATH_ATTR_TYPE_SEQ, r.ASPath)}
	}
	attrs = append(attrs, gbgp.NewPathAttributeAsPath(params))
	p := &apiutil.Path{Nlri: nlri}
	if r.Prefix.Addr().Is4() {
		nh := r.NextHop
		if !nh.Is4() {
			nh = netip.IPv4Unspecified()
		}
		a, err := gbgp.NewPathAttributeNextHop(nh)
		if err != nil {
			return nil, fmt.Errorf("route %s: next hop %s: %w", r.Prefix, nh, err)
		}
		attrs = append(attrs, a)
		p.Family = gbgp.RF_IPv4_UC
	} else {
		nh := r.NextHop
		if !nh.Is6() {
			nh = netip.IPv6Unspecified()
		}
		a, err := gbgp.NewPathAttributeMpReachNLRI(gbgp.RF_IPv6_UC, []gbgp.PathNLRI{{NLRI: nlri}}, nh)
		if err != nil {
			return nil, fmt.Errorf("route %s: next hop %s: %w", r.Prefix, nh, err)
		}
		attrs = append(attrs, a)
		p.Family = gbgp.RF_IPv6_UC
	}
	if len(r.Communities) > 0 {
		attrs = append(attrs, gbgp.NewPathAttributeCommunities(r.Communities))
	}
	p.Attrs = attrs
	return p, nil
}
