package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/announce/internal/annset"
)

// Defaults of Options and Peer.
const (
	DefaultListenPort     = 179
	DefaultPeerPort       = 179
	DefaultHoldTime       = 9 * time.Second
	DefaultStandbyPrepend = 3
	// MaxStandbyPrepend bounds StandbyPrepend.
	MaxStandbyPrepend = 16
)

// Via is the Via of everything this announcer announces.
const Via = "bgp"

// Peer is one BGP neighbour.
type Peer struct {
	// Address is the neighbour's address.
	Address netip.Addr
	// ASN is the neighbour's AS number; equal to Options.ASN for iBGP.
	ASN uint32
	// Port is the neighbour's TCP port (default 179).
	Port uint16
	// Password, if set, turns on TCP MD5 signatures (RFC 2385).
	Password string
	// HoldTime is the hold time offered (default 9s; 0 or at least 3s,
	// whole seconds); keepalives go every third of it.
	HoldTime time.Duration
	// Multihop allows an eBGP neighbour that is not directly connected
	// (TTL 255).
	Multihop bool
}

// Options configure an Announcer.
type Options struct {
	// ASN is the local AS number (required).
	ASN uint32
	// RouterID is the BGP identifier, an IPv4 address (required).
	RouterID netip.Addr
	// ListenPort is the TCP port the speaker accepts sessions on (default
	// 179; -1: do not listen, only connect out).
	ListenPort int32
	// Peers are the neighbours the routes go to.
	Peers []Peer
	// Communities ("65000:100") go with the routes of vip and gip-active.
	Communities []string
	// StandbyPrepend is how many extra times the local AS is put on the AS
	// path of gip-standby routes (default 3, at most 16).
	StandbyPrepend int
	// StandbyCommunities go with the routes of gip-standby.
	StandbyCommunities []string
	// NextHop is the next hop of IPv4 routes (default: next-hop self, the
	// local address of each session).
	NextHop netip.Addr
	// NextHop6 is the next hop of IPv6 routes (default: next-hop self;
	// set it when IPv6 routes go over IPv4 sessions).
	NextHop6 netip.Addr
	// Now stamps Since (default time.Now).
	Now func() time.Time
	// Logger gets the announcements and withdrawals, at info (default:
	// discard).
	Logger *slog.Logger
}

// route is what the announcer originates for one address.
type route struct {
	Route
	standby bool
}

// Announcer originates and withdraws routes through a Speaker. It is safe
// for concurrent use.
type Announcer struct {
	sp                 Speaker
	opts               Options
	log                *slog.Logger
	communities        []uint32
	standbyCommunities []uint32

	mu        sync.Mutex
	routes    map[netip.Addr]route
	announced map[netip.Addr]vipsmart.Announced
	closed    bool
}

var _ vipsmart.Announcer = (*Announcer)(nil)

// New checks opts, starts sp with them and adds the peers. On error the
// speaker is stopped again. Bad options give an error of code invalid.
func New(ctx context.Context, sp Speaker, opts Options) (*Announcer, error) {
	a := &Announcer{sp: sp, routes: map[netip.Addr]route{}, announced: map[netip.Addr]vipsmart.Announced{}}
	if err := a.setOptions(opts); err != nil {
		return nil, err
	}
	o := a.opts
	if err := sp.Start(ctx, Global{ASN: o.ASN, RouterID: o.RouterID, ListenPort: o.ListenPort}); err != nil {
		return nil, &vipsmart.Error{Code: vipsmart.EINTERNAL,
			Message: fmt.Sprintf("starting the BGP speaker (AS %d, router id %s, port %d)", o.ASN, o.RouterID, o.ListenPort), Err: err}
	}
	for _, p := range o.Peers {
		if err := sp.AddPeer(ctx, p); err != nil {
			_ = sp.Stop(ctx)
			return nil, &vipsmart.Error{Code: vipsmart.EINTERNAL,
				Message: fmt.Sprintf("adding BGP peer %s (AS %d)", p.Address, p.ASN), Err: err}
		}
		a.log.Info("BGP peer added", "peer", p.Address.String(), "asn", p.ASN, "port", p.Port)
	}
	return a, nil
}

func (a *Announcer) setOptions(o Options) error {
	invalid := func(field, format string, args ...any) error {
		return vipsmart.Errorf(vipsmart.EINVALID, field, format, args...)
	}
	if o.ASN == 0 {
		return invalid("bgp-asn", "the BGP announcer needs the local AS number (1-4294967295)")
	}
	if !o.RouterID.Is4() {
		return invalid("bgp-router-id", "the BGP router id must be an IPv4 address, got %q", o.RouterID)
	}
	switch {
	case o.ListenPort == 0:
		o.ListenPort = DefaultListenPort
	case o.ListenPort < -1 || o.ListenPort > 65535:
		return invalid("bgp-listen-port", "BGP listen port %d: want 1-65535, or -1 not to listen", o.ListenPort)
	}
	switch {
	case o.StandbyPrepend == 0:
		o.StandbyPrepend = DefaultStandbyPrepend
	case o.StandbyPrepend < 0 || o.StandbyPrepend > MaxStandbyPrepend:
		return invalid("bgp-standby-prepend", "standby prepend %d: want 1-%d", o.StandbyPrepend, MaxStandbyPrepend)
	}
	if o.NextHop.IsValid() && !o.NextHop.Is4() {
		return invalid("bgp-next-hop", "BGP next hop %s: want an IPv4 address", o.NextHop)
	}
	if o.NextHop6.IsValid() && !o.NextHop6.Is6() {
		return invalid("bgp-next-hop6", "BGP IPv6 next hop %s: want an IPv6 address", o.NextHop6)
	}
	var err error
	if a.communities, err = parseCommunities("bgp-community", o.Communities); err != nil {
		return err
	}
	if a.standbyCommunities, err = parseCommunities("bgp-standby-community", o.StandbyCommunities); err != nil {
		return err
	}
	peers := make([]Peer, 0, len(o.Peers))
	seen := map[netip.Addr]bool{}
	for _, p := range o.Peers {
		if !p.Address.IsValid() {
			return invalid("bgp-peer", "a BGP peer has no address")
		}
		if seen[p.Address] {
			return invalid("bgp-peer", "BGP peer %s is given twice", p.Address)
		}
		seen[p.Address] = true
		if p.ASN == 0 {
			return invalid("bgp-peer", "BGP peer %s has no AS number", p.Address)
		}
		if p.Port == 0 {
			p.Port = DefaultPeerPort
		}
		switch {
		case p.HoldTime == 0:
			p.HoldTime = DefaultHoldTime
		case p.HoldTime < 3*time.Second || p.HoldTime > 65535*time.Second:
			return invalid("bgp-hold-time", "BGP peer %s: hold time %s: want 3s to 65535s", p.Address, p.HoldTime)
		}
		p.HoldTime = p.HoldTime.Truncate(time.Second)
		peers = append(peers, p)
	}
	o.Peers = peers
	if o.Now == nil {
		o.Now = time.Now
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a.log = log.With("announcer", "bgp")
	a.opts = o
	return nil
}

// ParsePeer parses the command-line form of a peer, IP,ASN[,PORT], e.g.
// "192.0.2.1,65001" or "2001:db8::1,65001,1179". The other fields of Peer
// keep their zero values (defaults). Errors have code invalid.
func ParsePeer(s string) (Peer, error) {
	bad := func(format string, args ...any) (Peer, error) {
		return Peer{}, vipsmart.Errorf(vipsmart.EINVALID, "bgp-peer",
			"BGP peer %q: %s; want IP,ASN[,PORT], e.g. 192.0.2.1,65001 or 192.0.2.1,65001,1179", s, fmt.Sprintf(format, args...))
	}
	parts := strings.Split(s, ",")
	if strings.TrimSpace(s) == "" {
		return bad("empty")
	}
	if len(parts) < 2 || len(parts) > 3 {
		return bad("%d comma-separated fields", len(parts))
	}
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	ip, err := netip.ParseAddr(parts[0])
	if err != nil {
		return bad("%q is not an IP address", parts[0])
	}
	asn, err := strconv.ParseUint(parts[1], 10, 32)
	if err != nil || asn == 0 {
		return bad("%q is not an AS number (1-4294967295)", parts[1])
	}
	p := Peer{Address: ip.Unmap(), ASN: uint32(asn)}
	if len(parts) == 3 {
		port, err := strconv.ParseUint(parts[2], 10, 16)
		if err != nil || port == 0 {
			return bad("%q is not a TCP port (1-65535)", parts[2])
		}
		p.Port = uint16(port)
	}
	return p, nil
}

// parseCommunities parses standard communities of the form "65000:100".
func parseCommunities(field string, ss []string) ([]uint32, error) {
	var out []uint32
	for _, s := range ss {
		hi, lo, ok := strings.Cut(strings.TrimSpace(s), ":")
		h, err1 := strconv.ParseUint(hi, 10, 16)
		l, err2 := strconv.ParseUint(lo, 10, 16)
		if !ok || err1 != nil || err2 != nil {
			return nil, vipsmart.Errorf(vipsmart.EINVALID, field, "BGP community %q: want AS:VALUE, both 0-65535, e.g. 65000:100", s)
		}
		c := uint32(h)<<16 | uint32(l)
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out, nil
}

// routeFor returns the route that announces d.
func (a *Announcer) routeFor(ip netip.Addr, kind vipsmart.AnnounceKind) route {
	r := route{Route: Route{Prefix: annset.HostPrefix(ip)}}
	if ip.Is4() {
		r.NextHop = a.opts.NextHop
	} else {
		r.NextHop = a.opts.NextHop6
	}
	if kind == vipsmart.AnnounceGIPStandby {
		r.standby = true
		r.ASPath = make([]uint32, a.opts.StandbyPrepend)
		for i := range r.ASPath {
			r.ASPath[i] = a.opts.ASN
		}
		r.Communities = a.standbyCommunities
	} else {
		r.Communities = a.communities
	}
	return r
}

// Set originates a route for each address of desired and withdraws the
// routes of the addresses left out. A route that is already announced with
// the same attributes is left alone. Failures are reported together; what
// succeeded stays applied.
func (a *Announcer) Set(ctx context.Context, desired []vipsmart.Announcement) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	want, err := annset.Normalize(desired)
	errs := []error{err}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return vipsmart.Errorf(vipsmart.ESTATE, "", "the BGP announcer is closed")
	}
	// Withdraw first, in address order.
	for _, ip := range sortedKeys(a.routes) {
		if _, ok := want[ip]; ok {
			continue
		}
		r := a.routes[ip]
		if err := a.sp.DeletePath(ctx, r.Route); err != nil {
			errs = append(errs, &vipsmart.Error{Code: vipsmart.EINTERNAL, Message: "withdrawing " + r.Prefix.String(), Err: err})
			continue
		}
		delete(a.routes, ip)
		delete(a.announced, ip)
		a.log.Info("route withdrawn", "prefix", r.Prefix.String())
	}
	now := a.opts.Now()
	for _, ip := range sortedKeys(want) {
		d := want[ip]
		r := a.routeFor(ip, d.Kind)
		old, had := a.routes[ip]
		if !had || !old.Route.Equal(r.Route) {
			if err := a.sp.AddPath(ctx, r.Route); err != nil {
				errs = append(errs, &vipsmart.Error{Code: vipsmart.EINTERNAL,
					Message: fmt.Sprintf("announcing %s (%s %q)", r.Prefix, d.Kind, d.Name), Err: err})
				continue // an older route of the address, if any, stays
			}
			a.routes[ip] = r
			a.announced[ip] = vipsmart.Announced{Announcement: d, Via: Via, Since: now}
			a.log.Info("route announced", "prefix", r.Prefix.String(), "kind", string(d.Kind), "name", d.Name, "as_path_prepend", len(r.ASPath))
			continue
		}
		ann := a.announced[ip]
		ann.Announcement = d // a vip <-> gip-active change or a new name: same route
		a.announced[ip] = ann
	}
	return errors.Join(errs...)
}

// Announced returns the announced routes' addresses, sorted by address; Via
// is "bgp" and Since is when the route took its current attributes.
func (a *Announcer) Announced() []vipsmart.Announced {
	a.mu.Lock()
	defer a.mu.Unlock()
	return annset.Sorted(a.announced)
}

// Close withdraws every route, then stops the speaker, closing the
// sessions (so routers drop the routes at once, not after the hold time).
// Later Sets fail.
func (a *Announcer) Close(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil
	}
	a.closed = true
	var errs []error
	for _, ip := range sortedKeys(a.routes) {
		r := a.routes[ip]
		if err := a.sp.DeletePath(ctx, r.Route); err != nil {
			errs = append(errs, &vipsmart.Error{Code: vipsmart.EINTERNAL, Message: "withdrawing " + r.Prefix.String(), Err: err})
		}
	}
	a.routes = map[netip.Addr]route{}
	a.announced = map[netip.Addr]vipsmart.Announced{}
	if err := a.sp.Stop(ctx); err != nil {
		errs = append(errs, &vipsmart.Error{Code: vipsmart.EINTERNAL, Message: "stopping the BGP speaker", Err: err})
	}
	return errors.Join(errs...)
}

func sortedKeys[V any](m map[netip.Addr]V) []netip.Addr {
	out := make([]netip.Addr, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}
