package bgp

import (
	"context"
	"net/netip"
	"slices"
	"time"
)

// Global is the speaker's own configuration.
type Global struct {
	ASN      uint32
	RouterID netip.Addr
	// ListenPort is the TCP port the speaker accepts sessions on; -1: none.
	ListenPort int32
}

// Family is an address family a session carries.
type Family string

// The families: IPv4 unicast and IPv6 unicast.
const (
	IPv4 Family = "ipv4"
	IPv6 Family = "ipv6"
)

// familyOf returns the family of the routes of ip.
func familyOf(ip netip.Addr) Family {
	if ip.Unmap().Is4() {
		return IPv4
	}
	return IPv6
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

// The session states of PeerStatus.State, as RFC 4271 names them.
const (
	StateIdle        = "idle"
	StateConnect     = "connect"
	StateActive      = "active"
	StateOpenSent    = "opensent"
	StateOpenConfirm = "openconfirm"
	StateEstablished = "established"
)

// The BFD states of PeerStatus.BFD (RFC 5880), and BFDOff for a peer
// without BFD.
const (
	BFDOff       = "off"
	BFDDown      = "down"
	BFDInit      = "init"
	BFDUp        = "up"
	BFDAdminDown = "admin-down"
)

// PeerStatus is what the speaker knows of one neighbour's session.
type PeerStatus struct {
	Address netip.Addr
	ASN     uint32
	// State is one of the State* constants.
	State string
	// Uptime is when the session was last established, Downtime when it
	// last went down (zero: never).
	Uptime, Downtime time.Time
	// BFD is one of the BFD* constants; BFDFailed is set when BFD is down
	// because of a failure (no packet from the peer within the detection
	// time, or the peer saying Down), not because the peer went AdminDown
	// on purpose.
	BFD       string
	BFDFailed bool
	// Families are the families the session carries: negotiated with the
	// peer when established, configured otherwise.
	Families []Family
	// Advertised is how many routes were sent to the peer; filled only
	// when Peers is asked for it, and 0 unless established.
	Advertised int
	// LastError is why the session last left established, or failed in
	// OPEN ("hold-timer-expired", "notification-received ..."); "" if
	// it never did.
	LastError string
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
	// ResetPeer closes the session with the neighbour at addr, which then
	// connects again at once (BFD found the path down).
	ResetPeer(ctx context.Context, addr netip.Addr) error
	// Peers returns the state of every neighbour, with the count of routes
	// sent to each when advertised is true (that costs a walk of the
	// routes).
	Peers(ctx context.Context, advertised bool) ([]PeerStatus, error)
	// AddPath originates r, replacing the route of the same prefix if any.
	AddPath(ctx context.Context, r Route) error
	// DeletePath withdraws the route of r's prefix.
	DeletePath(ctx context.Context, r Route) error
	// Stop closes every session and stops the speaker.
	Stop(ctx context.Context) error
}
