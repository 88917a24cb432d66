// Package bgp is the announcer that speaks BGP: an embedded GoBGP speaker
// originates a /32 or /128 route for each announced address and withdraws it
// when the address leaves the desired set.
//
// Addresses of kind vip and gip-active are announced plainly (the peer sees
// an AS path of the local AS only, on eBGP) with [Options].Communities.
// Addresses of kind gip-standby are pre-announced with the local AS
// prepended [Options].StandbyPrepend more times (default 3) and with
// [Options].StandbyCommunities, so that routers already hold the alternate
// path and switch to it the moment the active DC withdraws. A change of kind
// between standby and active re-announces the route with its new
// attributes (a BGP implicit withdraw: no gap); a change between vip and
// gip-active changes no route. Set is declarative and idempotent: the same
// set twice makes no speaker call.
//
// The speaker sits behind the small [Speaker] interface; [NewGoBGP] is the
// real one and the unit tests use a recording fake.
//
// # Sessions, states and reports
//
// A peer carries the routes of its own address family (plus the other
// one when its next hop is given). The announcer reads its sessions'
// state every PollInterval: [Announcer.Announced] says, per address,
// whether it is on the wire (announced on at least one established session
// of its family), pending (no such session) or failed (refused by the
// speaker, or no peer of its family); [Announcer.BGPPeers] lists the
// sessions (state, uptime, BFD, routes sent, last error); a watcher
// ([Announcer.Watch]) gets sessions and BFD going down (warn) and up
// (info), and a warning when a session is still not established one hold
// time after it was added or went down. [Announcer.SetPeers] changes the
// peers at run time without touching the others' sessions.
//
// # BFD
//
// With [Peer].BFD, a BFD session (package bfd, single hop) runs next to
// the BGP session, so that a router running BFD drops a silent DC's routes
// in about Multiplier x MinTx (300 ms by default) instead of the hold
// time. When BFD fails, the BGP session is closed and reopened (by
// deleting and re-adding the peer); an AdminDown from the router resets
// nothing.
//
// # GoBGP v4
//
// The speaker is github.com/osrg/gobgp/v4 (v4.8.0), embedded as a library
// (server.NewBgpServer). v4 is GoBGP's current major version: v3 has seen no
// release since v3.37.0 (May 2025), while v4 is maintained and its library
// API is native Go (paths are apiutil.Path values built from bgp.NLRI and
// netip.Addr) rather than protobuf Any-wrapped messages, which keeps the
// adapter small and typed. Only gobgp.go knows GoBGP; moving major versions
// touches that file alone.
//
// # Timers
//
// A peer's hold time defaults to 9 s (keepalive every 3 s), the data-centre
// profile of FRR, rather than the 90 s of RFC 4271: when a DC's host dies
// without closing its sessions, routers drop its routes, and fail over to
// the pre-announced standby path, after the hold time; 9 s bounds that gap.
// A graceful Close withdraws every route and then closes the sessions, so a
// planned stop never waits for the hold time. The hold time a session uses
// is the smaller of the two sides' offers.
package bgp
