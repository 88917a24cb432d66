package daemon

import (
	"context"

	"github.com/vipsmart/vipsmart/federation"
)

// RebuildState hands the state of this DC's federation to member name,
// which is rebuilding its lost store (see federation.Node.RebuildState).
func (d *Daemon) RebuildState(ctx context.Context, name, fedID string) (*federation.State, error) {
	var st *federation.State
	err := d.call(ctx, func() error {
		var err error
		st, err = d.node.RebuildState(d.cfg.Now(), name, fedID)
		return err
	})
	return st, err
}
