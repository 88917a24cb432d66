package daemon

import (
	"context"
	"fmt"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/federation"
)

// RebuildState hands the state of this DC's federation to member name,
// which is rebuilding its lost store (see federation.Node.RebuildState).
// The request must come over mutual TLS with the key the federation has
// committed for name: a DC that lost its store keeps its identity, and
// nobody else gets the state.
func (d *Daemon) RebuildState(ctx context.Context, name, fedID string) (*federation.State, error) {
	c, _ := vipsmart.CallerFrom(ctx)
	if c.Via != vipsmart.ViaPeer || c.Identity == "" {
		err := vipsmart.Errorf(vipsmart.EFORBIDDEN, "", "the state is handed out only over mutual TLS")
		d.PeerRefused(c.Addr, name, "", "rebuild: "+err.Message)
		return nil, err
	}
	var st *federation.State
	err := d.call(ctx, func() error {
		var err error
		st, err = d.node.RebuildState(d.cfg.Now(), name, fedID)
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, m := range st.Members {
		if m.Name == name && m.Identity != c.Identity {
			err := vipsmart.Errorf(vipsmart.EFORBIDDEN, "", "%s's committed key is %s, but the request came with key %s: a DC rebuilds with its own identity (keep identity.key in its data directory)", name, vipsmart.ShortIdentity(m.Identity), vipsmart.ShortIdentity(c.Identity))
			d.PeerRefused(c.Addr, name, c.Identity, fmt.Sprintf("rebuild: %s", err.Message))
			return nil, err
		}
	}
	return st, nil
}
