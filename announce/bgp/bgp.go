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
	// DefaultPollInterval is how often the announcer reads its sessions'
	// state (for Announced, BGPPeers and the reports of Watch).
	DefaultPollInterval = 200 * time.Millisecond
)

// BFD defaults: a session is declared down after 3 packets 100 ms apart
// are missed, about 300 ms after the peer fell silent.
const (
	DefaultBFDMinRx      = 100 * time.Millisecond
	DefaultBFDMinTx      = 100 * time.Millisecond
	DefaultBFDMultiplier = 3
	// MinBFDInterval and MaxBFDInterval bound MinRx and MinTx.
	MinBFDInterval = 10 * time.Millisecond
	MaxBFDInterval = 10 * time.Second
)

// Via is the Via of everything this announcer announces.
const Via = "bgp"

// BFD configures Bidirectional Forwarding Detection (RFC 5880, single hop
// RFC 5881) next to a peer's session: both sides send small UDP packets
// every MinTx, and a router that misses Multiplier of ours in a row (or
// hears ours say Down) declares the DC down and drops its BGP session, so
// it withdraws a silent DC's routes in about Multiplier x MinTx rather
// than after the hold time. vipsmart's side only reports BFD's state: it
// needs no route from the router, so BFD does not reset its BGP session.
type BFD struct {
	// MinRx is the shortest interval between received packets this side
	// asks for (RequiredMinRxInterval; default 100ms, 10ms to 10s).
	MinRx time.Duration
	// MinTx is the interval this side sends at (DesiredMinTxInterval;
	// default 100ms, 10ms to 10s).
	MinTx time.Duration
	// Multiplier is how many packets in a row may be missed (default 3,
	// 1 to 255).
	Multiplier int
}

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
	// (TTL 255). It cannot be combined with BFD (single hop only).
	Multihop bool
	// BFD, if set, runs BFD next to the session.
	BFD *BFD
	// Families are the address families the session carries. Default
	// (empty): the family of Address, plus the other family when its next
	// hop is given (Options.NextHop6 for IPv6 routes over an IPv4
	// session, Options.NextHop for IPv4 over IPv6): next-hop self only
	// works within the session's own family.
	Families []Family
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
	// PollInterval is how often the sessions' state is read (default
	// 200ms).
	PollInterval time.Duration
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

// failure is an address the speaker refused.
type failure struct {
	ann   vipsmart.Announcement
	err   string
	since time.Time
}

// peerView is the last state read of one peer, with what the monitor
// tracks of it.
type peerView struct {
	PeerStatus
	// added is when the peer was configured; since when State was first
	// seen.
	added, since time.Time
	// warnedDown is set once a "not established" report was made for the
	// current down period.
	warnedDown bool
}

// Announcer originates and withdraws routes through a Speaker, and watches
// the speaker's sessions. It is safe for concurrent use.
type Announcer struct {
	sp                 Speaker
	opts               Options
	log                *slog.Logger
	communities        []uint32
	standbyCommunities []uint32

	mu        sync.Mutex
	peers     map[netip.Addr]Peer
	views     map[netip.Addr]*peerView
	routes    map[netip.Addr]route
	announced map[netip.Addr]vipsmart.Announced
	failed    map[netip.Addr]failure
	// onWire is, per family, whether a session carrying it was
	// established at the last poll and since when that holds.
	onWire      map[Family]bool
	onWireSince map[Family]time.Time
	report      func(level, msg string)
	reports     [][2]string // made before Watch
	closed      bool

	stop chan struct{}
	done chan struct{}
	// spMu guards the speaker's reads by BGPPeers against Stop.
	spMu      sync.RWMutex
	spStopped bool
}

var (
	_ vipsmart.Announcer  = (*Announcer)(nil)
	_ vipsmart.Watcher    = (*Announcer)(nil)
	_ vipsmart.PeerLister = (*Announcer)(nil)
)

// New checks opts, starts sp with them and adds the peers. On error the
// speaker is stopped again. Bad options give an error of code invalid.
// The announcer reads its sessions' state every PollInterval until Close.
func New(ctx context.Context, sp Speaker, opts Options) (*Announcer, error) {
	a := &Announcer{sp: sp, peers: map[netip.Addr]Peer{}, views: map[netip.Addr]*peerView{},
		routes: map[netip.Addr]route{}, announced: map[netip.Addr]vipsmart.Announced{}, failed: map[netip.Addr]failure{},
		onWire: map[Family]bool{}, onWireSince: map[Family]time.Time{},
		stop: make(chan struct{}), done: make(chan struct{})}
	if err := a.setOptions(opts); err != nil {
		return nil, err
	}
	o := a.opts
	if err := sp.Start(ctx, Global{ASN: o.ASN, RouterID: o.RouterID, ListenPort: o.ListenPort}); err != nil {
		return nil, &vipsmart.Error{Code: vipsmart.EINTERNAL,
			Message: fmt.Sprintf("starting the BGP speaker (AS %d, router id %s, port %d)", o.ASN, o.RouterID, o.ListenPort), Err: err}
	}
	for _, p := range o.Peers {
		if err := a.addPeer(ctx, p); err != nil {
			_ = sp.Stop(ctx)
			return nil, err
		}
	}
	now := o.Now()
	for _, f := range []Family{IPv4, IPv6} {
		a.onWireSince[f] = now
	}
	go a.monitor()
	return a, nil
}

// addPeer adds p to the speaker and to a.peers. a.mu is held, or a is not
// shared yet.
func (a *Announcer) addPeer(ctx context.Context, p Peer) error {
	if err := a.sp.AddPeer(ctx, p); err != nil {
		return &vipsmart.Error{Code: vipsmart.EINTERNAL,
			Message: fmt.Sprintf("adding BGP peer %s (AS %d)", p.Address, p.ASN), Err: err}
	}
	now := a.opts.Now()
	a.peers[p.Address] = p
	a.views[p.Address] = &peerView{PeerStatus: PeerStatus{Address: p.Address, ASN: p.ASN, State: StateIdle, BFD: bfdOff(p), Families: p.Families},
		added: now, since: now}
	a.log.Info("BGP peer added", "peer", p.Address.String(), "asn", p.ASN, "port", p.Port, "families", p.Families, "bfd", p.BFD != nil)
	return nil
}

func bfdOff(p Peer) string {
	if p.BFD != nil {
		return BFDDown
	}
	return BFDOff
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
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	var err error
	if a.communities, err = parseCommunities("bgp-community", o.Communities); err != nil {
		return err
	}
	if a.standbyCommunities, err = parseCommunities("bgp-standby-community", o.StandbyCommunities); err != nil {
		return err
	}
	if o.Peers, err = checkPeers(o.Peers, o.NextHop, o.NextHop6); err != nil {
		return err
	}
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

// checkPeers checks ps and fills in their defaults. Errors have code
// invalid and name the flag.
func checkPeers(ps []Peer, nh4, nh6 netip.Addr) ([]Peer, error) {
	invalid := func(field, format string, args ...any) error {
		return vipsmart.Errorf(vipsmart.EINVALID, field, format, args...)
	}
	peers := make([]Peer, 0, len(ps))
	seen := map[netip.Addr]bool{}
	for _, p := range ps {
		if !p.Address.IsValid() {
			return nil, invalid("bgp-peer", "a BGP peer has no address")
		}
		p.Address = p.Address.Unmap()
		if seen[p.Address] {
			return nil, invalid("bgp-peer", "BGP peer %s is given twice", p.Address)
		}
		seen[p.Address] = true
		if p.ASN == 0 {
			return nil, invalid("bgp-peer", "BGP peer %s has no AS number", p.Address)
		}
		if p.Port == 0 {
			p.Port = DefaultPeerPort
		}
		switch {
		case p.HoldTime == 0:
			p.HoldTime = DefaultHoldTime
		case p.HoldTime < 3*time.Second || p.HoldTime > 65535*time.Second:
			return nil, invalid("bgp-hold-time", "BGP peer %s: hold time %s: want 3s to 65535s", p.Address, p.HoldTime)
		}
		p.HoldTime = p.HoldTime.Truncate(time.Second)
		if b := p.BFD; b != nil {
			c := *b
			if p.Multihop {
				return nil, invalid("bgp-bfd", "BGP peer %s: BFD cannot be combined with --bgp-multihop: GoBGP's BFD is single-hop only (RFC 5881); drop one of them", p.Address)
			}
			for _, x := range []struct {
				d    *time.Duration
				def  time.Duration
				flag string
			}{{&c.MinRx, DefaultBFDMinRx, "bfd-min-rx"}, {&c.MinTx, DefaultBFDMinTx, "bfd-min-tx"}} {
				if *x.d == 0 {
					*x.d = x.def
				}
				if *x.d < MinBFDInterval || *x.d > MaxBFDInterval {
					return nil, invalid(x.flag, "BFD interval %s: want %s to %s (e.g. 100ms)", *x.d, MinBFDInterval, MaxBFDInterval)
				}
				*x.d = x.d.Truncate(time.Microsecond)
			}
			if c.Multiplier == 0 {
				c.Multiplier = DefaultBFDMultiplier
			}
			if c.Multiplier < 1 || c.Multiplier > 255 {
				return nil, invalid("bfd-multiplier", "BFD multiplier %d: want 1 to 255 (e.g. 3)", c.Multiplier)
			}
			p.BFD = &c
		}
		if len(p.Families) == 0 {
			p.Families = []Family{familyOf(p.Address)}
			if p.Address.Is4() && nh6.IsValid() {
				p.Families = append(p.Families, IPv6)
			}
			if p.Address.Is6() && nh4.IsValid() {
				p.Families = append([]Family{IPv4}, p.Families...)
			}
		}
		for _, f := range p.Families {
			if f != IPv4 && f != IPv6 {
				return nil, invalid("bgp-peer", "BGP peer %s: unknown family %q (want ipv4 or ipv6)", p.Address, f)
			}
		}
		peers = append(peers, p)
	}
	return peers, nil
}

// SetPeers makes peers the speaker's neighbours at run time: it removes
// the neighbours left out (closing their sessions), adds the new ones and
// re-adds those whose configuration changed; the sessions of the others
// are left alone. Bad peers give an error of code invalid and change
// nothing.
func (a *Announcer) SetPeers(ctx context.Context, peers []Peer) error {
	ps, err := checkPeers(peers, a.opts.NextHop, a.opts.NextHop6)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return vipsmart.Errorf(vipsmart.ESTATE, "", "the BGP announcer is closed")
	}
	return a.setPeersLocked(ctx, ps)
}

// setPeersLocked is SetPeers for checked peers, with a.mu held.
func (a *Announcer) setPeersLocked(ctx context.Context, ps []Peer) error {
	want := map[netip.Addr]Peer{}
	for _, p := range ps {
		want[p.Address] = p
	}
	var errs []error
	for _, addr := range sortedKeys(a.peers) {
		old := a.peers[addr]
		if p, ok := want[addr]; ok && samePeer(old, p) {
			continue
		}
		if err := a.sp.DeletePeer(ctx, addr); err != nil {
			errs = append(errs, &vipsmart.Error{Code: vipsmart.EINTERNAL, Message: "removing BGP peer " + addr.String(), Err: err})
			continue
		}
		delete(a.peers, addr)
		delete(a.views, addr)
		a.log.Info("BGP peer removed", "peer", addr.String())
	}
	for _, addr := range sortedKeys(want) {
		if _, ok := a.peers[addr]; ok {
			continue
		}
		if err := a.addPeer(ctx, want[addr]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func samePeer(a, b Peer) bool {
	bfdSame := (a.BFD == nil) == (b.BFD == nil) && (a.BFD == nil || *a.BFD == *b.BFD)
	return a.Address == b.Address && a.ASN == b.ASN && a.Port == b.Port && a.Password == b.Password &&
		a.HoldTime == b.HoldTime && a.Multihop == b.Multihop && bfdSame && slices.Equal(a.Families, b.Families)
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
// the same attributes is left alone. Failures are reported together (and
// listed as failed by Announced); what succeeded stays applied.
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
	for ip := range a.failed {
		if _, ok := want[ip]; !ok {
			delete(a.failed, ip)
		}
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
				e := &vipsmart.Error{Code: vipsmart.EINTERNAL,
					Message: fmt.Sprintf("announcing %s (%s %q)", r.Prefix, d.Kind, d.Name), Err: err}
				errs = append(errs, e)
				if f, ok := a.failed[ip]; !ok || f.err != e.Error() || f.ann != d {
					a.failed[ip] = failure{ann: d, err: e.Error(), since: now}
				}
				continue // an older route of the address, if any, stays
			}
			delete(a.failed, ip)
			a.routes[ip] = r
			a.announced[ip] = vipsmart.Announced{Announcement: d, Via: Via, Since: now}
			a.log.Info("route announced", "prefix", r.Prefix.String(), "kind", string(d.Kind), "name", d.Name, "as_path_prepend", len(r.ASPath))
			continue
		}
		delete(a.failed, ip)
		ann := a.announced[ip]
		ann.Announcement = d // a vip <-> gip-active change or a new name: same route
		a.announced[ip] = ann
	}
	return errors.Join(errs...)
}

// Announced returns every address handed to the last Set, sorted by
// address, with Via "bgp" and its state: announced when its route was sent
// on at least one established session of its family (Reason names the
// peers that lack it, if any), pending when no such session is established
// ("no established BGP session"), failed when the speaker refused the
// route or no peer carries its family. Since is when the route took its
// current attributes or state.
func (a *Announcer) Announced() []vipsmart.Announced {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[netip.Addr]vipsmart.Announced, len(a.announced)+len(a.failed))
	type famState struct {
		state  vipsmart.AnnounceState
		reason string
	}
	fams := map[Family]famState{}
	for _, f := range []Family{IPv4, IPv6} {
		var up, down []string
		for _, addr := range sortedKeys(a.views) {
			v := a.views[addr]
			if !slices.Contains(a.peers[addr].Families, f) {
				continue
			}
			if v.State == StateEstablished && slices.Contains(v.Families, f) {
				up = append(up, addr.String())
			} else {
				down = append(down, addr.String()+" "+v.State)
			}
		}
		switch {
		case len(up)+len(down) == 0:
			how := "add an IPv4 BGP peer"
			if f == IPv6 {
				how = "add an IPv6 BGP peer, or give --bgp-next-hop6 to send IPv6 routes over IPv4 sessions"
			}
			fams[f] = famState{vipsmart.AnnounceFailed, fmt.Sprintf("no BGP peer carries %s routes: %s", f, how)}
		case len(up) == 0:
			fams[f] = famState{vipsmart.AnnouncePending, "no established BGP session (" + strings.Join(down, ", ") + ")"}
		case len(down) > 0:
			fams[f] = famState{vipsmart.AnnounceUp, "not sent to " + strings.Join(down, ", ")}
		default:
			fams[f] = famState{vipsmart.AnnounceUp, ""}
		}
	}
	for ip, ann := range a.announced {
		f := familyOf(ip)
		st := fams[f]
		ann.State, ann.Reason = st.state, st.reason
		if since := a.onWireSince[f]; since.After(ann.Since) {
			ann.Since = since
		}
		out[ip] = ann
	}
	for ip, f := range a.failed {
		if _, ok := out[ip]; ok && a.announced[ip].Announcement == f.ann {
			continue // the same announcement is still up with its old route
		}
		out[ip] = vipsmart.Announced{Announcement: f.ann, Via: Via, Since: f.since, State: vipsmart.AnnounceFailed, Reason: f.err}
	}
	return annset.Sorted(out)
}

// Watch implements vipsmart.Watcher: report gets the sessions going up
// and down (warn when down, info when up), BFD going down and up, and a
// warning when a session is still not established one hold time after it
// was added or went down. Reports made before Watch are handed over at
// once.
func (a *Announcer) Watch(report func(level, msg string)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.report = report
	for _, r := range a.reports {
		report(r[0], r[1])
	}
	a.reports = nil
}

// emit reports an event. a.mu is held.
func (a *Announcer) emit(level, msg string) {
	switch level {
	case vipsmart.LevelInfo:
		a.log.Info(msg)
	default:
		a.log.Warn(msg)
	}
	if a.report != nil {
		a.report(level, msg)
		return
	}
	a.reports = append(a.reports, [2]string{level, msg})
}

// monitor reads the sessions' state every PollInterval until Close.
func (a *Announcer) monitor() {
	defer close(a.done)
	t := time.NewTicker(a.opts.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-t.C:
			a.poll()
		}
	}
}

// poll reads the sessions' state once and reports what changed.
func (a *Announcer) poll() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ps, err := a.sp.Peers(ctx, false)
	if err != nil {
		a.log.Warn("reading the BGP sessions' state", "err", err)
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return
	}
	a.observe(ps)
}

// observe takes in a read of the sessions' state. a.mu is held.
func (a *Announcer) observe(ps []PeerStatus) {
	now := a.opts.Now()
	for _, p := range ps {
		v, ok := a.views[p.Address]
		if !ok {
			continue // removed meanwhile
		}
		old := v.PeerStatus
		who := fmt.Sprintf("BGP session to %s (AS %d)", p.Address, v.ASN)
		if p.State != old.State {
			v.since = now
			switch {
			case p.State == StateEstablished:
				v.warnedDown = false
				a.emit(vipsmart.LevelInfo, fmt.Sprintf("%s established (%s)", who, familyList(p.Families)))
			case old.State == StateEstablished:
				msg := fmt.Sprintf("%s down after %s established", who, now.Sub(old.Uptime).Round(time.Second))
				if p.LastError != "" {
					msg += ": " + p.LastError
				}
				if p.BFD != BFDUp && old.BFD == BFDUp {
					msg += " (BFD down)"
				}
				a.emit(vipsmart.LevelWarn, msg+"; its routes are withdrawn at the router")
			}
		}
		if p.BFD != old.BFD && old.BFD != BFDOff {
			switch {
			case p.BFD == BFDUp:
				a.emit(vipsmart.LevelInfo, fmt.Sprintf("BFD with %s up", p.Address))
			case old.BFD == BFDUp && p.BFDFailed:
				// The path failed: the router drops its session (it
				// stopped hearing us, or hears us say Down); close ours
				// too, so that a new one comes up as soon as the path
				// heals rather than after our hold time.
				msg := fmt.Sprintf("BFD with %s down: the packet path between this DC and the router failed", p.Address)
				if p.State == StateEstablished {
					ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
					if err := a.sp.ResetPeer(ctx, p.Address); err != nil {
						msg += fmt.Sprintf("; resetting the BGP session failed: %v", err)
					} else {
						msg += "; the BGP session is reset"
					}
					cancel()
				}
				a.emit(vipsmart.LevelWarn, msg)
			case old.BFD == BFDUp:
				a.emit(vipsmart.LevelInfo, fmt.Sprintf("BFD with %s down: the router ended the BFD session (AdminDown)", p.Address))
			}
		}
		hold := a.peers[p.Address].HoldTime
		if p.State != StateEstablished && !v.warnedDown {
			from := v.added
			if !p.Downtime.IsZero() && p.Downtime.After(from) {
				from = p.Downtime
			}
			if now.Sub(from) >= hold {
				v.warnedDown = true
				msg := fmt.Sprintf("%s not established %s after it was added: %s", who, now.Sub(from).Round(time.Second), p.State)
				if !p.Downtime.IsZero() {
					msg = fmt.Sprintf("%s still not established %s after it went down: %s", who, now.Sub(from).Round(time.Second), p.State)
				}
				if p.LastError != "" {
					msg += " (last error: " + p.LastError + ")"
				}
				a.emit(vipsmart.LevelWarn, msg+"; check the router's configuration and the path to it")
			}
		}
		fam := v.Families
		v.PeerStatus = p
		if len(p.Families) == 0 {
			v.Families = fam
		}
	}
	for _, f := range []Family{IPv4, IPv6} {
		up := false
		for addr, v := range a.views {
			if v.State == StateEstablished && slices.Contains(v.Families, f) && slices.Contains(a.peers[addr].Families, f) {
				up = true
			}
		}
		if up != a.onWire[f] {
			a.onWire[f] = up
			a.onWireSince[f] = now
		}
	}
}

func familyList(fs []Family) string {
	s := make([]string, len(fs))
	for i, f := range fs {
		s[i] = string(f)
	}
	return strings.Join(s, ", ")
}

// BGPPeers implements vipsmart.PeerLister: every neighbour's session as
// the speaker holds it now, with the routes sent to it, sorted by
// address. If the speaker cannot be read, it returns the last state read.
func (a *Announcer) BGPPeers() []vipsmart.BGPPeer {
	var ps []PeerStatus
	err := errors.New("closed")
	a.spMu.RLock()
	if !a.spStopped {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		ps, err = a.sp.Peers(ctx, true)
		cancel()
	}
	a.spMu.RUnlock()
	a.mu.Lock()
	defer a.mu.Unlock()
	if err == nil && !a.closed {
		a.observe(ps)
	}
	now := a.opts.Now()
	out := make([]vipsmart.BGPPeer, 0, len(a.views))
	for _, addr := range sortedKeys(a.views) {
		v := a.views[addr]
		bp := vipsmart.BGPPeer{Address: addr, ASN: v.ASN, State: v.State, BFD: v.BFD, LastError: v.LastError, Families: []string{}}
		for _, f := range v.Families {
			bp.Families = append(bp.Families, string(f))
		}
		since := v.since
		if v.State == StateEstablished {
			if !v.Uptime.IsZero() {
				since = v.Uptime
			}
			up := vipsmart.Duration(now.Sub(since).Round(time.Second))
			bp.Uptime = &up
			bp.RoutesSent = v.Advertised
		} else if !v.Downtime.IsZero() {
			since = v.Downtime
		}
		bp.Since = &since
		if bp.LastError == "" && v.State != StateEstablished && v.Downtime.IsZero() {
			bp.LastError = "never established"
		}
		out = append(out, bp)
	}
	return out
}

// Close withdraws every route, then stops the speaker, closing the
// sessions (so routers drop the routes at once, not after the hold time).
// Later Sets fail.
func (a *Announcer) Close(ctx context.Context) error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	close(a.stop)
	a.mu.Unlock()
	<-a.done // no read of the speaker once it stops
	a.mu.Lock()
	defer a.mu.Unlock()
	var errs []error
	if b, ok := a.sp.(batchDeleter); ok && len(a.routes) > 0 {
		rs := make([]Route, 0, len(a.routes))
		for _, ip := range sortedKeys(a.routes) {
			rs = append(rs, a.routes[ip].Route)
		}
		if err := b.DeletePaths(ctx, rs); err != nil {
			errs = append(errs, &vipsmart.Error{Code: vipsmart.EINTERNAL, Message: fmt.Sprintf("withdrawing %d routes", len(rs)), Err: err})
		}
	} else {
		for _, ip := range sortedKeys(a.routes) {
			r := a.routes[ip]
			if err := a.sp.DeletePath(ctx, r.Route); err != nil {
				errs = append(errs, &vipsmart.Error{Code: vipsmart.EINTERNAL, Message: "withdrawing " + r.Prefix.String(), Err: err})
			}
		}
	}
	a.routes = map[netip.Addr]route{}
	a.announced = map[netip.Addr]vipsmart.Announced{}
	a.failed = map[netip.Addr]failure{}
	a.spMu.Lock() // wait for BGPPeers' reads in flight
	a.spStopped = true
	a.spMu.Unlock()
	if err := a.sp.Stop(ctx); err != nil {
		errs = append(errs, &vipsmart.Error{Code: vipsmart.EINTERNAL, Message: "stopping the BGP speaker", Err: err})
	}
	return errors.Join(errs...)
}

// batchDeleter is a Speaker that withdraws many routes in one call.
type batchDeleter interface {
	DeletePaths(ctx context.Context, rs []Route) error
}

func sortedKeys[V any](m map[netip.Addr]V) []netip.Addr {
	out := make([]netip.Addr, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}
