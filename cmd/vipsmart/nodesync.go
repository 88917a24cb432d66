package main

import (
	"context"
	"errors"
	"time"

	"github.com/vipsmart/vipsmart/daemon"
	"github.com/vipsmart/vipsmart/etcd"
)

// syncNodes hands the DC's live nodes (etcd's claims, as watched) to the
// leader's daemon twice per second until ctx ends; the daemon records
// them in the DC's member record when they settle (daemon/dcnodes.go,
// docs/ha.md "Other DCs reach every node").
func (n *nodeRuntime) syncNodes(ctx context.Context, d *daemon.Daemon) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		if addrs := n.nodeAddrs(); len(addrs) > 0 {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			if _, err := d.SyncNodes(cctx, addrs); err != nil && ctx.Err() == nil {
				n.log.Debug("handing the live nodes to the daemon", "err", err)
			}
			cancel()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// fencedOut reports whether the daemon stopped because a write of a node
// whose term ended was fenced (etcd.ErrNotLeader): the node lost the
// leadership, which its supervisor's restart turns into following.
func fencedOut(err error) bool { return errors.Is(err, etcd.ErrNotLeader) }
