package bgp

import (
	"context"
	"errors"

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

	// Peers: the ones left out lose their sessions, new ones get one, a
	// peer whose settings changed is re-added; the others stay up.
	var errs []error
	if err := a.setPeersLocked(ctx, n.Peers); err != nil {
		errs = append(errs, err)
	}
	n.Peers = n.Peers[:0]
	for _, addr := range sortedKeys(a.peers) {
		n.Peers = append(n.Peers, a.peers[addr])
	}
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
