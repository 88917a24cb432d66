package etcd

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// SharedIdentity is the DC's key pair as every node of the DC presents it
// (P identity): the first node to start stores its pair there, every
// later node takes that one. Peers pin one key per DC; whichever node
// answers presents it.
type SharedIdentity struct {
	Cert []byte `json:"cert,omitempty"` // PEM certificate
	Key  []byte `json:"key,omitempty"`  // PEM private key
	// Identity is the pair's fingerprint; set in the pending pair, and
	// alone (no Cert, no Key) for an own certificate (--tls-cert), whose
	// files the operator puts on every node.
	Identity string `json:"identity,omitempty"`
}

func (k keys) identity() string        { return k.p + "identity" }
func (k keys) identityNext() string    { return k.p + "identity.next" }
func (k keys) identityCurrent() string { return k.p + "identity.current" }

// ShareIdentity stores mine as the DC's shared identity if the prefix
// holds none yet and returns the identity the DC has now: mine, or the
// one another node stored first. It is not fenced: any node may call it
// before it leads.
func (st *Store) ShareIdentity(ctx context.Context, mine SharedIdentity) (SharedIdentity, error) {
	b, err := json.Marshal(mine)
	if err != nil {
		return SharedIdentity{}, err
	}
	key := st.k.identity()
	var out SharedIdentity
	err = st.do(ctx, "share the identity of DC "+st.dc, func(ctx context.Context) error {
		resp, err := st.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
			Then(clientv3.OpPut(key, string(b))).Else(clientv3.OpGet(key)).Commit()
		if err != nil {
			return err
		}
		if resp.Succeeded {
			out = mine
			return nil
		}
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 {
			return fmt.Errorf("identity key %s vanished", key)
		}
		if err := json.Unmarshal(kvs[0].Value, &out); err != nil || len(out.Cert) == 0 || len(out.Key) == 0 {
			return fmt.Errorf("identity key %s is not a vipsmart identity (%v): remove it", key, err)
		}
		return nil
	})
	return out, err
}

// Record returns the federation record last saved (nil if none), read
// without the GIPs: what a follower needs to speak for the DC.
func (st *Store) Record(ctx context.Context) ([]byte, error) {
	var out []byte
	err := st.do(ctx, "read the federation record of DC "+st.dc, func(ctx context.Context) error {
		resp, err := st.cli.Get(ctx, st.k.record())
		if err != nil {
			return err
		}
		if len(resp.Kvs) > 0 {
			out = resp.Kvs[0].Value
		}
		return nil
	})
	return out, err
}

// A rotation of the DC's key (docs/ha.md, "One key per DC"): the leader
// stores the pending pair (P identity.next) before it proposes the new
// fingerprint, and when the federation committed it, replaces P identity
// with it, records the fingerprint (P identity.current) and deletes the
// pending pair, in one fenced transaction (PromoteIdentity); every other
// node watches these keys (WatchIdentity) and installs the new pair.
// A rotation that does not commit deletes the pending pair
// (DiscardPendingIdentity): the old key stays everywhere.

// PendingIdentity returns the pending pair of a rotation (nil if none).
func (st *Store) PendingIdentity(ctx context.Context) (*SharedIdentity, error) {
	return st.getIdentity(ctx, st.k.identityNext())
}

// CurrentIdentity returns the DC's shared pair (P identity, nil if none)
// and the fingerprint last promoted (P identity.current, "" if none).
func (st *Store) CurrentIdentity(ctx context.Context) (*SharedIdentity, string, error) {
	p, err := st.getIdentity(ctx, st.k.identity())
	if err != nil {
		return nil, "", err
	}
	var fp string
	err = st.do(ctx, "read the key fingerprint of DC "+st.dc, func(ctx context.Context) error {
		resp, err := st.cli.Get(ctx, st.k.identityCurrent())
		if err == nil && len(resp.Kvs) > 0 {
			fp = string(resp.Kvs[0].Value)
		}
		return err
	})
	return p, fp, err
}

func (st *Store) getIdentity(ctx context.Context, key string) (*SharedIdentity, error) {
	var out *SharedIdentity
	err := st.do(ctx, "read "+key, func(ctx context.Context) error {
		resp, err := st.cli.Get(ctx, key)
		if err != nil || len(resp.Kvs) == 0 {
			return err
		}
		var p SharedIdentity
		if err := json.Unmarshal(resp.Kvs[0].Value, &p); err != nil {
			return fmt.Errorf("%s is not a vipsmart identity (%v): remove it", key, err)
		}
		out = &p
		return nil
	})
	return out, err
}

// SetPendingIdentity stores p as the pending pair of a rotation (fenced).
func (st *Store) SetPendingIdentity(ctx context.Context, p SharedIdentity) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return st.do(ctx, "store the pending key of DC "+st.dc, func(ctx context.Context) error {
		_, err := st.txn(ctx, nil, []clientv3.Op{clientv3.OpPut(st.k.identityNext(), string(b))}, nil)
		return err
	})
}

// PromoteIdentity makes p, whose fingerprint the federation committed, the
// DC's key (fenced, one transaction): P identity (unless p has no key:
// an own certificate), P identity.current, and the pending pair deleted.
func (st *Store) PromoteIdentity(ctx context.Context, p SharedIdentity) error {
	ops := []clientv3.Op{clientv3.OpPut(st.k.identityCurrent(), p.Identity), clientv3.OpDelete(st.k.identityNext())}
	if len(p.Cert) > 0 {
		b, err := json.Marshal(SharedIdentity{Cert: p.Cert, Key: p.Key})
		if err != nil {
			return err
		}
		ops = append(ops, clientv3.OpPut(st.k.identity(), string(b)))
	}
	return st.do(ctx, "install the new key of DC "+st.dc, func(ctx context.Context) error {
		_, err := st.txn(ctx, nil, ops, nil)
		return err
	})
}

// DiscardPendingIdentity deletes the pending pair (fenced).
func (st *Store) DiscardPendingIdentity(ctx context.Context) error {
	return st.do(ctx, "drop the pending key of DC "+st.dc, func(ctx context.Context) error {
		_, err := st.txn(ctx, nil, []clientv3.Op{clientv3.OpDelete(st.k.identityNext())}, nil)
		return err
	})
}

// WatchIdentity sends on the channel (without blocking: one pending
// signal at most) whenever the DC's key, its fingerprint or the pending
// pair changes, and once a second whatever happens (so that a watch that
// missed a change, etcd having been unreachable, is caught up), until ctx
// ends.
func (st *Store) WatchIdentity(ctx context.Context) <-chan struct{} {
	out := make(chan struct{}, 1)
	signal := func() {
		select {
		case out <- struct{}{}:
		default:
		}
	}
	go func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for ctx.Err() == nil {
			wc := st.cli.Watch(clientv3.WithRequireLeader(ctx), st.k.identity(), clientv3.WithPrefix())
		watch:
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
					signal()
				case r, ok := <-wc:
					if !ok || r.Err() != nil {
						break watch
					}
					signal()
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(500 * time.Millisecond):
			}
		}
	}()
	return out
}
