package vipsmart

import (
	"context"
	"net/netip"
	"time"
)

// AnnounceKind says why an address is announced.
type AnnounceKind string

// The kinds of announcement.
const (
	// AnnounceVIP is a healthy local VIP.
	AnnounceVIP AnnounceKind = "vip"
	// AnnounceGIPActive is a GIP this DC is active for.
	AnnounceGIPActive AnnounceKind = "gip-active"
	// AnnounceGIPStandby is a GIP this DC is a healthy standby placement
	// for: only BGP announces it, with a longer AS path, so that routers
	// already hold the alternate path.
	AnnounceGIPStandby AnnounceKind = "gip-standby"
)

// Announcement is one address a DC wants the network to see. Interface,
// if set, overrides the netlink announcer's default interface (a VIP's
// `--interface`).
type Announcement struct {
	Addr      netip.Addr   `json:"address"`
	Kind      AnnounceKind `json:"kind"`
	Name      string       `json:"name"`
	Interface string       `json:"interface,omitempty"`
}

// AnnounceState says whether an address an announcer was handed is on the
// wire.
type AnnounceState string

// The states of an announced address.
const (
	// AnnounceUp: on the wire (bound on its interface; its route sent on at
	// least one established BGP session; recorded, for none).
	AnnounceUp AnnounceState = "announced"
	// AnnouncePending: accepted by the announcer but not on the wire yet,
	// e.g. no BGP session is established.
	AnnouncePending AnnounceState = "pending"
	// AnnounceFailed: the announcer cannot make it real (no interface for
	// it, a kernel or speaker error).
	AnnounceFailed AnnounceState = "failed"
)

// Announced is an address as an announcer handles it: where (Via, e.g.
// "netlink eth0" or "bgp"), whether it is on the wire (State, with the
// Reason when it is not, or only partly) and since when it is in that
// state. An announcer lists every address it was handed and is meant to
// make real, so that nothing wanted is silently missing.
type Announced struct {
	Announcement
	Via   string        `json:"via"`
	Since time.Time     `json:"since"`
	State AnnounceState `json:"state"`
	// Reason says why the address is pending or failed ("no established
	// BGP session", "no interface for 10.0.0.1: ..."), or, when it is
	// announced to some BGP peers only, which ones lack it.
	Reason string `json:"reason,omitempty"`
}

// StateString is the state with its reason: "announced", "pending: no
// established BGP session".
func (a Announced) StateString() string {
	if a.Reason == "" {
		return string(a.State)
	}
	return string(a.State) + ": " + a.Reason
}

// Announcer makes a set of addresses real. It is declarative: Set is handed
// the full desired set each time; what is left out is withdrawn; calling
// Set twice with the same set changes nothing. Implementations: none (state
// only), netlink, bgp.
type Announcer interface {
	// Set makes desired the announced set.
	Set(ctx context.Context, desired []Announcement) error
	// Announced returns what is announced now, sorted by address.
	Announced() []Announced
	// Close withdraws everything this announcer announced and releases it.
	Close(ctx context.Context) error
}

// Reannouncer is an Announcer that can repeat its announcements without
// changing them (the netlink announcer's gratuitous ARP burst). The daemon
// calls Reannounce when another DC becomes reachable again.
type Reannouncer interface {
	Reannounce(ctx context.Context) error
}

// Preflighter is an Announcer that can tell, before an address is wanted,
// why it could not announce it (the netlink announcer without an interface
// for it). The daemon asks when a VIP is added, so that `vip add` warns at
// once rather than when the VIP's check first passes.
type Preflighter interface {
	Preflight(a Announcement) error
}

// The levels of events and announcer reports.
const (
	LevelInfo  = "info"
	LevelWarn  = "warn"
	LevelError = "error"
)

// Watcher is an Announcer whose state also changes by itself: a BGP session
// that goes down or comes up, BFD. The daemon calls Watch once, before it
// runs; the announcer then calls report (from any goroutine; report never
// blocks) with a level (LevelInfo, LevelWarn, LevelError) and a message for
// the event log.
type Watcher interface {
	Watch(report func(level, message string))
}

// BGPPeer is one session of the embedded BGP speaker, as `vipsmart bgp
// peers` and the bgp_peers section of `vipsmart status` show it (like
// `birdc show protocols` or `gobgp neighbor`).
type BGPPeer struct {
	Address netip.Addr `json:"address"`
	ASN     uint32     `json:"asn"`
	// State is the session's state: idle, connect, active, opensent,
	// openconfirm or established.
	State string `json:"state"`
	// Since is when the session reached State (for established, the start
	// of its uptime); Uptime is how long it has been established.
	Since  *time.Time `json:"since,omitempty"`
	Uptime *Duration  `json:"uptime,omitempty"`
	// BFD is the state of the peer's BFD session: off (not configured),
	// down, init, up or admin-down.
	BFD string `json:"bfd"`
	// Families are the address families the session carries (ipv4,
	// ipv6): negotiated when established, configured otherwise.
	Families []string `json:"families"`
	// RoutesSent is how many routes the speaker has sent the peer (its
	// Adj-RIB-Out), 0 unless established.
	RoutesSent int `json:"routes_sent"`
	// LastError is why the session last went down or failed to come up.
	LastError string `json:"last_error,omitempty"`
}

// PeerLister is an Announcer with BGP sessions (the bgp announcer, or a
// combination that holds it).
type PeerLister interface {
	BGPPeers() []BGPPeer
}
