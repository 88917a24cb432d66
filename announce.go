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

// Announced is an address as an announcer has made it real: where (Via,
// e.g. "netlink eth0" or "bgp") and since when.
type Announced struct {
	Announcement
	Via   string    `json:"via"`
	Since time.Time `json:"since"`
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
