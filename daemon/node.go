package daemon

import (
	"context"

	"github.com/vipsmart/vipsmart/federation"
)

// Report returns the health report this DC gives the other members in
// its heartbeats now. The follower nodes of a DC run by several nodes
// fetch it from the leader, so that the heartbeats they send for the DC
// while it has no reachable leader carry the same report (docs/ha.md).
func (d *Daemon) Report(ctx context.Context) (federation.Report, error) {
	var r federation.Report
	err := d.call(ctx, func() error {
		r = d.localReport()
		return nil
	})
	return r, err
}
