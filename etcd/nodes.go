package etcd

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vipsmart/vipsmart"
)

// Claim is one node's key P nodes/<node>, bound to its session's lease:
// it exists exactly while the node keeps its lease alive, so the claims
// are the DC's live nodes.
type Claim struct {
	Node  string           // the node name
	Info  []byte           // what the node published (opaque here)
	Lease clientv3.LeaseID // the node's session lease
	// TTL is the time left on the lease when it was read (0 if unknown).
	TTL time.Duration
	// Since is the etcd revision at which the node claimed its name.
	Since int64
}

// Claim publishes info as the session's node claim, or updates it. If
// another session holds the name, Claim waits for that lease to end, up to
// its granted TTL and a second more: a process restarted right after a
// crash (kill -9) finds its name still held by its former lease, which no
// one renews any more. If the name is still held then, another live
// process claims it: Claim fails with ECONFLICT, changing nothing.
func (se *Session) Claim(ctx context.Context, info []byte) error {
	other, err := se.tryClaim(ctx, info)
	if err != nil || other == 0 {
		return err
	}
	st := se.store
	op := "claim node name " + se.node
	var wait time.Duration
	err = st.do(ctx, op, func(ctx context.Context) error {
		ttl, err := st.cli.TimeToLive(ctx, other)
		if err != nil {
			return err
		}
		wait = time.Duration(ttl.GrantedTTL)*time.Second + time.Second
		return nil
	})
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for wctx.Err() == nil {
		// A read every 100ms for a few seconds at most: simpler than a
		// watch, and cheap.
		select {
		case <-wctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
		if other, err = se.tryClaim(ctx, info); err != nil || other == 0 {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return vipsmart.Errorf(vipsmart.ECONFLICT, "node", "node name %s is already claimed in DC %s by another live process (lease %x, still renewed after %s): give each node its own name", se.node, st.dc, other, wait)
}

// tryClaim writes the claim if the name is free or already the session's;
// otherwise it returns the lease that holds it.
func (se *Session) tryClaim(ctx context.Context, info []byte) (clientv3.LeaseID, error) {
	st := se.store
	key := st.k.node(se.node)
	var other clientv3.LeaseID
	err := st.do(ctx, "claim node name "+se.node, func(ctx context.Context) error {
		mine := clientv3.OpPut(key, string(info), clientv3.WithLease(se.Lease()))
		resp, err := st.cli.Txn(ctx).If(
			clientv3.Compare(clientv3.CreateRevision(key), "=", 0),
		).Then(mine).Else(
			clientv3.OpTxn([]clientv3.Cmp{clientv3.Compare(clientv3.LeaseValue(key), "=", se.Lease())}, []clientv3.Op{mine}, []clientv3.Op{clientv3.OpGet(key)}),
		).Commit()
		if err != nil {
			return err
		}
		if resp.Succeeded {
			return nil
		}
		nested := resp.Responses[0].GetResponseTxn()
		if nested.Succeeded {
			return nil // ours: updated
		}
		kvs := nested.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 || kvs[0].Lease == 0 {
			return vipsmart.Errorf(vipsmart.ECONFLICT, "node", "node key %s exists without a lease (not written by vipsmart): remove it", key)
		}
		other = clientv3.LeaseID(kvs[0].Lease)
		return nil
	})
	return other, err
}

// Claims returns the live node claims of the DC, sorted by node name,
// each with the time left on its lease.
func (st *Store) Claims(ctx context.Context) ([]Claim, error) {
	var out []Claim
	err := st.do(ctx, "list the nodes of DC "+st.dc, func(ctx context.Context) error {
		resp, err := st.cli.Get(ctx, st.k.nodes(), clientv3.WithPrefix())
		if err != nil {
			return err
		}
		out = make([]Claim, 0, len(resp.Kvs))
		for _, kv := range resp.Kvs {
			c := Claim{
				Node:  strings.TrimPrefix(string(kv.Key), st.k.nodes()),
				Info:  bytes.Clone(kv.Value),
				Lease: clientv3.LeaseID(kv.Lease),
				Since: kv.CreateRevision,
			}
			if kv.Lease != 0 {
				ttl, err := st.cli.TimeToLive(ctx, clientv3.LeaseID(kv.Lease))
				if err != nil {
					return err
				}
				if ttl.TTL > 0 {
					c.TTL = time.Duration(ttl.TTL) * time.Second
				}
			}
			out = append(out, c)
		}
		return nil
	})
	return out, err
}

// WatchClaims sends the DC's live claims (as Claims returns them, TTL
// left out) once at the start and again after every change, until ctx
// ends; then it closes the channel. Only the latest list matters: a slow
// reader skips intermediate ones.
func (st *Store) WatchClaims(ctx context.Context) <-chan []Claim {
	ch := make(chan []Claim, 1)
	go func() {
		defer close(ch)
		for ctx.Err() == nil {
			rctx, cancel := context.WithTimeout(ctx, st.timeout)
			resp, err := st.cli.Get(rctx, st.k.nodes(), clientv3.WithPrefix())
			cancel()
			if err != nil {
				if st.closed.Load() {
					return
				}
				select {
				case <-ctx.Done():
				case <-time.After(250 * time.Millisecond):
				}
				continue
			}
			claims := map[string]Claim{}
			for _, kv := range resp.Kvs {
				n := strings.TrimPrefix(string(kv.Key), st.k.nodes())
				claims[n] = Claim{Node: n, Info: bytes.Clone(kv.Value), Lease: clientv3.LeaseID(kv.Lease), Since: kv.CreateRevision}
			}
			send(ctx, ch, sorted(claims))
			wch := st.cli.Watch(clientv3.WithRequireLeader(ctx), st.k.nodes(), clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
			for wr := range wch {
				if wr.Err() != nil {
					break
				}
				for _, ev := range wr.Events {
					n := strings.TrimPrefix(string(ev.Kv.Key), st.k.nodes())
					if ev.Type == clientv3.EventTypeDelete {
						delete(claims, n)
					} else {
						claims[n] = Claim{Node: n, Info: bytes.Clone(ev.Kv.Value), Lease: clientv3.LeaseID(ev.Kv.Lease), Since: ev.Kv.CreateRevision}
					}
				}
				send(ctx, ch, sorted(claims))
			}
			// The watch ended (ctx, lost leader, compaction): list again.
		}
	}()
	return ch
}

// send replaces whatever unread list ch holds with cs.
func send(ctx context.Context, ch chan []Claim, cs []Claim) {
	for {
		select {
		case ch <- cs:
			return
		case <-ctx.Done():
			return
		default:
		}
		select {
		case <-ch: // drop the stale list
		default:
		}
	}
}

func sorted(m map[string]Claim) []Claim {
	out := make([]Claim, 0, len(m))
	for _, c := range m {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Claim) int { return strings.Compare(a.Node, b.Node) })
	return out
}
