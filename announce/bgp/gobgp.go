package bgp

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	gbgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"

	"github.com/vipsmart/vipsmart/announce/bgp/bfd"
)

// GoBGP is the real Speaker: an embedded GoBGP v4 server, with BFD
// sessions of our own next to it (package bfd: GoBGP's BFD resets the BGP
// session on every BFD change and can keep a session from ever coming
// back; see the package doc of bfd).
type GoBGP struct {
	s   *server.BgpServer
	bfd *bfd.Server

	mu sync.Mutex
	// lastErr is why each peer's session last failed, from the server's
	// peer events (ListPeer does not carry it).
	lastErr map[netip.Addr]string
	// peers are the neighbours as added, for ResetPeer.
	peers     map[netip.Addr]Peer
	stopWatch context.CancelFunc
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
	return &GoBGP{s: s, bfd: bfd.NewServer(bfd.Options{Logger: logger}), lastErr: map[netip.Addr]string{}, peers: map[netip.Addr]Peer{}}
}

// Server returns the embedded GoBGP server, for inspection.
func (g *GoBGP) Server() *server.BgpServer { return g.s }

// Start implements Speaker. It also starts watching the peers' state
// changes, to keep the reason of each session's last failure.
func (g *GoBGP) Start(ctx context.Context, gl Global) error {
	if err := g.s.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn:        gl.ASN,
		RouterId:   gl.RouterID.String(),
		ListenPort: gl.ListenPort,
	}}); err != nil {
		return err
	}
	wctx, cancel := context.WithCancel(context.Background())
	g.stopWatch = cancel
	return g.s.WatchEvent(wctx, server.WatchEventMessageCallbacks{OnPeerUpdate: g.onPeer}, server.WatchPeer())
}

// onPeer keeps the reason of a session that leaves established or fails
// during OPEN.
func (g *GoBGP) onPeer(ev *apiutil.WatchEventMessage_PeerEvent, _ time.Time) {
	st := ev.Peer.State
	if ev.Type != apiutil.PEER_EVENT_STATE || st.DisconnectMessage == "" {
		return
	}
	if st.SessionState != gbgp.BGP_FSM_IDLE && st.SessionState != gbgp.BGP_FSM_ACTIVE {
		return
	}
	switch st.DisconnectReason {
	case api.PeerState_DISCONNECT_REASON_HOLD_TIMER_EXPIRED, api.PeerState_DISCONNECT_REASON_NOTIFICATION_SENT,
		api.PeerState_DISCONNECT_REASON_NOTIFICATION_RECEIVED, api.PeerState_DISCONNECT_REASON_READ_FAILED,
		api.PeerState_DISCONNECT_REASON_WRITE_FAILED, api.PeerState_DISCONNECT_REASON_INVALID_MSG,
		api.PeerState_DISCONNECT_REASON_HARD_RESET, api.PeerState_DISCONNECT_REASON_BAD_PEER_AS:
	default:
		return // not a failure (timers of the FSM, our own changes)
	}
	g.mu.Lock()
	g.lastErr[st.NeighborAddress.Unmap()] = st.DisconnectMessage
	g.mu.Unlock()
}

// gobgpFamily is the GoBGP form of f.
func gobgpFamily(f Family) *api.Family {
	if f == IPv6 {
		return &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
	}
	return &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
}

// apiPeer is the GoBGP configuration of p.
func apiPeer(p Peer) *api.Peer {
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
			// After a reset (BFD down resets the session) reconnect
			// after a second rather than GoBGP's default 30.
			IdleHoldTimeAfterReset: 1,
		}},
		Transport: &api.Transport{RemotePort: uint32(p.Port)},
	}
	for _, f := range p.Families {
		peer.AfiSafis = append(peer.AfiSafis, &api.AfiSafi{Config: &api.AfiSafiConfig{Enabled: true, Family: gobgpFamily(f)}})
	}
	if p.Multihop {
		peer.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: 255}
	}
	return peer
}

// AddPeer implements Speaker. The session carries p.Families (multiprotocol
// BGP) and, with p.BFD, a BFD session (single hop, RFC 5881) runs next to
// it.
func (g *GoBGP) AddPeer(ctx context.Context, p Peer) error {
	peer := apiPeer(p)
	g.mu.Lock()
	delete(g.lastErr, p.Address)
	g.peers[p.Address] = p
	g.mu.Unlock()
	if err := g.s.AddPeer(ctx, &api.AddPeerRequest{Peer: peer}); err != nil {
		return err
	}
	if b := p.BFD; b != nil {
		if err := g.bfd.Add(p.Address, bfd.Config{MinRx: b.MinRx, MinTx: b.MinTx, Multiplier: uint8(b.Multiplier)}); err != nil {
			_ = g.s.DeletePeer(ctx, &api.DeletePeerRequest{Address: p.Address.String()})
			return err
		}
	}
	return nil
}

// Peers implements Speaker.
func (g *GoBGP) Peers(ctx context.Context, advertised bool) ([]PeerStatus, error) {
	var out []PeerStatus
	err := g.s.ListPeer(ctx, &api.ListPeerRequest{EnableAdvertised: advertised}, func(p *api.Peer) {
		addr, err := netip.ParseAddr(p.GetConf().GetNeighborAddress())
		if err != nil {
			return
		}
		addr = addr.Unmap()
		ps := PeerStatus{Address: addr, ASN: p.GetConf().GetPeerAsn(), State: sessionState(p.GetState().GetSessionState()), BFD: BFDOff}
		if st, failed, ok := g.bfd.Status(addr); ok {
			ps.BFD, ps.BFDFailed = bfd.StateName(st), failed
		}
		if t := p.GetTimers().GetState().GetUptime(); t != nil && t.GetSeconds() > 0 {
			ps.Uptime = t.AsTime()
		}
		if t := p.GetTimers().GetState().GetDowntime(); t != nil && t.GetSeconds() > 0 {
			ps.Downtime = t.AsTime()
		}
		var configured []Family
		for _, af := range p.GetAfiSafis() {
			f := familyFrom(af.GetConfig().GetFamily())
			if f == "" || !af.GetConfig().GetEnabled() {
				continue
			}
			configured = append(configured, f)
			if st := af.GetState(); st != nil {
				ps.Advertised += int(st.GetAdvertised())
			}
		}
		ps.Families = configured
		if ps.State == StateEstablished {
			ps.Families = negotiated(configured, p.GetState().GetRemoteCap())
		}
		g.mu.Lock()
		ps.LastError = g.lastErr[addr]
		g.mu.Unlock()
		out = append(out, ps)
	})
	return out, err
}

// negotiated returns the families of configured the peer announced in its
// multiprotocol capabilities (IPv4 alone if it announced none, RFC 4760).
func negotiated(configured []Family, remote []*api.Capability) []Family {
	var theirs []Family
	for _, c := range remote {
		if mp := c.GetMultiProtocol(); mp != nil {
			if f := familyFrom(mp.GetFamily()); f != "" {
				theirs = append(theirs, f)
			}
		}
	}
	if len(theirs) == 0 {
		theirs = []Family{IPv4}
	}
	var out []Family
	for _, f := range configured {
		if slices.Contains(theirs, f) {
			out = append(out, f)
		}
	}
	return out
}

func familyFrom(f *api.Family) Family {
	if f.GetSafi() != api.Family_SAFI_UNICAST {
		return ""
	}
	switch f.GetAfi() {
	case api.Family_AFI_IP:
		return IPv4
	case api.Family_AFI_IP6:
		return IPv6
	}
	return ""
}

func sessionState(s api.PeerState_SessionState) string {
	switch s {
	case api.PeerState_SESSION_STATE_CONNECT:
		return StateConnect
	case api.PeerState_SESSION_STATE_ACTIVE:
		return StateActive
	case api.PeerState_SESSION_STATE_OPENSENT:
		return StateOpenSent
	case api.PeerState_SESSION_STATE_OPENCONFIRM:
		return StateOpenConfirm
	case api.PeerState_SESSION_STATE_ESTABLISHED:
		return StateEstablished
	}
	return StateIdle
}

// ResetPeer implements Speaker: it deletes the neighbour from GoBGP and
// adds it again (its BFD session is left alone). GoBGP's own ResetPeer
// queues a NOTIFICATION that, on a session that is not established, kills
// the next one the moment it is established.
func (g *GoBGP) ResetPeer(ctx context.Context, addr netip.Addr) error {
	g.mu.Lock()
	p, ok := g.peers[addr]
	g.mu.Unlock()
	if !ok {
		return fmt.Errorf("no BGP peer %s", addr)
	}
	if err := g.s.DeletePeer(ctx, &api.DeletePeerRequest{Address: addr.String()}); err != nil {
		return err
	}
	return g.s.AddPeer(ctx, &api.AddPeerRequest{Peer: apiPeer(p)})
}

// DeletePeer implements Speaker.
func (g *GoBGP) DeletePeer(ctx context.Context, addr netip.Addr) error {
	g.bfd.Remove(addr)
	g.mu.Lock()
	delete(g.peers, addr)
	g.mu.Unlock()
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

// DeletePaths withdraws every route of rs in one GoBGP operation (Close
// withdraws 10,000 routes in milliseconds rather than one call each).
func (g *GoBGP) DeletePaths(_ context.Context, rs []Route) error {
	ps := make([]*apiutil.Path, 0, len(rs))
	for _, r := range rs {
		p, err := toPath(r)
		if err != nil {
			return err
		}
		p.Withdrawal = true
		ps = append(ps, p)
	}
	return g.s.DeletePath(apiutil.DeletePathRequest{Paths: ps})
}

// Stop implements Speaker: it closes the sessions (NOTIFICATION cease) and
// stops the server, or gives up when ctx ends.
func (g *GoBGP) Stop(ctx context.Context) error {
	if g.stopWatch != nil {
		g.stopWatch()
	}
	done := make(chan struct{})
	go func() { g.s.Stop(); g.bfd.Close(); close(done) }()
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
