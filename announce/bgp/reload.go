package bgp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/vipsmart/vipsmart"
)

// Reload applies o to the running announcer without restarting the
// speaker (SIGHUP): peers that were added get a session, peers that were
// removed lose theirs, a peer whose settings changed (ASN, port, password,
// hold time, multihop) is re-added (only its session restarts), and every
// other session stays up. New communities, standby prepend and next hops
// re-originate the routes they change. ASN, RouterID and ListenPort cannot
// change without restarting the speaker: when o changes them they keep their
// running values and their flag names are returned in needRestart. Bad
// options change nothing and give an error of code invalid.
func (a *Announcer) Reload(ctx context.Context, o Options) (needRestart []string, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil, vipsmart.Errorf(vipsmart.ESTATE, "", "the BGP announcer is closed")
	}
	if o.Now == nil {
		o.Now = a.opts.Now
	}
	if o.Logger == nil {
		o.Logger = a.opts.Logger
	}
	next := &Announcer{}
	if err := next.setOptions(o); err != nil {
		return nil, err
	}
	n, cur := next.opts, a.opts
	if n.ASN != cur.ASN {
		needRestart = append(needRestart, "bgp-asn")
		n.ASN = cur.ASN
	}
	if n.RouterID != cur.RouterID {
		needRestart = append(needRestart, "bgp-router-id")
		n.RouterID = cur.RouterID
	}
	if n.ListenPort != cur.ListenPort {
		needRestart = append(needRestart, "bgp-listen-port")
		n.ListenPort = cur.ListenPort
	}

	var errs []error
	old := map[netip.Addr]Peer{}
	for _, p := range cur.Peers {
		old[p.Address] = p
	}
	want := map[netip.Addr]Peer{}
	for _, p := range n.Peers {
		want[p.Address] = p
	}
	// The peers that end up configured, in the order of o (those that
	// failed to change keep their old settings).
	var peers []Peer
	for _, p := range cur.Peers {
		w, keep := want[p.Address]
		if keep && w == p {
			continue
		}
		if err := a.sp.DeletePeer(ctx, p.Address); err != nil {
			errs = append(errs, fmt.Errorf("removing BGP peer %s: %w", p.Address, err))
			if keep {
				delete(want, p.Address) // keep the old one as it is
			}
			peers = append(peers, p)
			continue
		}
		if keep {
			a.log.Info("BGP peer changed: its session restarts", "peer", p.Address.String())
		} else {
			a.log.Info("BGP peer removed", "peer", p.Address.String(), "asn", p.ASN)
		}
	}
	for _, p := range n.Peers {
		w, ok := want[p.Address]
		if !ok {
			continue
		}
		if was, had := old[p.Address]; had && was == w {
			peers = append(peers, p)
			continue
		}
		if err := a.sp.AddPeer(ctx, p); err != nil {
			errs = append(errs, fmt.Errorf("adding BGP peer %s (AS %d): %w", p.Address, p.ASN, err))
			continue
		}
		a.log.Info("BGP peer added", "peer", p.Address.String(), "asn", p.ASN, "port", p.Port)
		peers = append(peers, p)
	}
	n.Peers = peers
	a.opts = n
	a.communities, a.standbyCommunities = next.communities, next.standbyCommunities

	// Re-originate what the new route attributes change.
	for _, ip := range sortedKeys(a.routes) {
		ann := a.announced[ip]
		r := a.routeFor(ip, ann.Kind)
		if r.Route.Equal(a.routes[ip].Route) {
			continue
		}
		if err := a.sp.AddPath(ctx, r.Route); err != nil {
			errs = append(errs, &vipsmart.Error{Code: vipsmart.EINTERNAL, Message: "re-announcing " + r.Prefix.String(), Err: err})
			continue
		}
		a.routes[ip] = r
		ann.Since = a.opts.Now()
		a.announced[ip] = ann
		a.log.Info("route re-announced with new attributes", "prefix", r.Prefix.String(), "as_path_prepend", len(r.ASPath))
	}
	return needRestart, errors.Join(errs...)
}
