package etcd

import (
	"context"
	"encoding/json"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// SharedIdentity is the DC's key pair as every node of the DC presents it
// (P identity): the first node to start stores its pair there, every
// later node takes that one. Peers pin one key per DC; whichever node
// answers presents it.
type SharedIdentity struct {
	Cert []byte `json:"cert"` // PEM certificate
	Key  []byte `json:"key"`  // PEM private key
}

func (k keys) identity() string { return k.p + "identity" }

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
