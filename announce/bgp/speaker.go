package bgp

import (
	"context"
	"net/netip"
	"slices"
)

// Global is the speaker's own configuration.
type Global struct {
	ASN      uint32
	RouterID netip.Addr
	// ListenPort is the TCP port the speaker accepts sessions on; -1: none.
	ListenPort int32
}

// Route is one route the speaker originates.
type Route struct {
	// Prefix is the /32 or /128 announced.
	Prefix netip.Prefix
	// NextHop is the next hop; invalid or unspecified lets the speaker use
	// its own address of each session ("next-hop self").
	NextHop netip.Addr
	// ASPath is the AS path the route is originated with (the speaker adds
	// the local AS again towards eBGP peers); empty for a plain route.
	ASPath []uint32
	// Communities are standard communities, each high<<16 | low.
	Communities []uint32
}

// Equal reports whether r and o are the same route.
func (r Route) Equal(o Route) bool {
	return r.Prefix == o.Prefix && r.NextHop == o.NextHop &&
		slices.Equal(r.ASPath, o.ASPath) && slices.Equal(r.Communities, o.Communities)
}

// Speaker is the seam between the announcer and a BGP implementation.
// Implementations must be safe for concurrent use.
type Speaker interface {
	// Start starts the speaker with its global configuration.
	Start(ctx context.Context, g Global) error
	// AddPeer configures a neighbour; the speaker keeps connecting to it.
	AddPeer(ctx context.Context, p Peer) error
	// DeletePeer removes the neighbour at addr, closing its session.
	DeletePeer(ctx context.Context, addr netip.Addr) error
	// AddPath originates r, replacing the route of the same prefix if any.
	AddPath(ctx context.Context, r Route) error
	// DeletePath withdraws the route of r's prefix.
	DeletePath(ctx context.Context, r Route) error
	// Stop closes every session and stops the speaker.
	Stop(ctx context.Context) error
}
