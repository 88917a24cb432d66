package daemon

import (
	"context"
	"net/netip"
	"slices"
	"time"

	"github.com/vipsmart/vipsmart"
)

// A DC run by several nodes records the federation addresses of its live
// nodes in its member record (federation.SetNodes, docs/ha.md). The
// leader's node runtime hands the live set to SyncNodes as etcd's claims
// change; the daemon proposes the change once the set has been the same
// for nodesSettle (a node restarting, or a lease running out, does not
// make two changes), and again after a failure, backing off up to
// nodesMaxBackoff. A DC of one node (bbolt) never calls SyncNodes and
// never makes the change.
const (
	nodesSettle     = time.Second
	nodesMinBackoff = time.Second
	nodesMaxBackoff = 30 * time.Second
)

// nodesSync is the loop's state of SyncNodes.
type nodesSync struct {
	seen    []netip.AddrPort // the live set last handed in, sorted
	since   time.Time        // when it last changed
	retryAt time.Time        // no proposal before then
	backoff time.Duration
}

// SyncNodes tells the daemon the federation addresses of its DC's live
// nodes (this one included) and, when they have settled and differ from
// what the DC's member record lists, starts the federation change that
// records them (it does not wait for its outcome). It says whether it
// started one.
func (d *Daemon) SyncNodes(ctx context.Context, addrs []netip.AddrPort) (bool, error) {
	addrs = slices.Clone(addrs)
	slices.SortFunc(addrs, func(a, b netip.AddrPort) int { return a.Compare(b) })
	addrs = slices.Compact(addrs)
	started := false
	err := d.call(ctx, func() error {
		now := d.cfg.Now()
		s := &d.nodes
		if !slices.Equal(s.seen, addrs) || s.since.IsZero() {
			s.seen, s.since = addrs, now
			d.node.SetLocalNodes(addrs)
		}
		p, ok := d.node.NodesChanged()
		if !ok {
			s.backoff = 0
			return nil
		}
		if now.Sub(s.since) < nodesSettle || now.Before(s.retryAt) {
			return nil
		}
		s.backoff = min(max(2*s.backoff, nodesMinBackoff), nodesMaxBackoff)
		s.retryAt = now.Add(s.backoff)
		p.By = "vipsmart: the DC's live nodes changed"
		id, err := d.node.Propose(now, p)
		if err != nil {
			if vipsmart.ErrorCodeOf(err) != vipsmart.EBUSY {
				d.log.Warn("recording the DC's node addresses", "nodes", addrs, "err", err, "retry_in", s.backoff)
			}
			return nil
		}
		started = true
		d.log.Info("recording the DC's node addresses in the federation", "op", id, "nodes", p.DC.Nodes)
		return nil
	})
	return started, err
}
