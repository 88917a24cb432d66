package etcd

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/vipsmart/vipsmart"
)

// ErrNotLeader is wrapped by the error of every write of a fenced store
// whose leadership has ended: the write changed nothing.
var ErrNotLeader = errors.New("not the leader")

// Session is one node's lease on etcd, kept alive in the background by
// the etcd client (concurrency.Session). The node's claim and its
// candidacy are bound to it: they vanish when the lease ends, by Close or
// by expiry after the node stops renewing it (crash, freeze, partition).
type Session struct {
	store *Store
	node  string
	s     *concurrency.Session
}

// NewSession grants a lease of ttl (rounded up to whole seconds, at least
// one; etcd itself raises a TTL below its minimum, about 1.5 times its
// election timeout) for node and keeps it alive until Close or until it
// can no longer be renewed.
func (st *Store) NewSession(ctx context.Context, node string, ttl time.Duration) (*Session, error) {
	if node == "" {
		return nil, errors.New("new etcd session: no node name")
	}
	secs := max(1, int(math.Ceil(ttl.Seconds())))
	var cs *concurrency.Session
	err := st.do(ctx, "new etcd session for node "+node, func(ctx context.Context) error {
		// The lease is granted under ctx; its keepalives run until Close.
		lease, err := st.cli.Grant(ctx, int64(secs))
		if err != nil {
			return err
		}
		cs, err = concurrency.NewSession(st.cli, concurrency.WithLease(lease.ID), concurrency.WithTTL(secs))
		return err
	})
	if err != nil {
		return nil, err
	}
	return &Session{store: st, node: node, s: cs}, nil
}

// Node returns the node name of the session.
func (se *Session) Node() string { return se.node }

// Lease returns the session's etcd lease.
func (se *Session) Lease() clientv3.LeaseID { return se.s.Lease() }

// Done is closed when the session's lease can no longer be renewed
// (expired, revoked, or the session closed).
func (se *Session) Done() <-chan struct{} { return se.s.Done() }

// Close stops renewing the lease and revokes it, which deletes the node's
// claim and candidacy at once (others need not wait for the TTL).
func (se *Session) Close() error {
	if err := se.s.Close(); err != nil {
		return fmt.Errorf("close etcd session of node %s: %w", se.node, err)
	}
	return nil
}

// Leadership is a node's term as the DC's leader, won by Campaign. It
// ends when the node resigns, when its session's lease ends, or when its
// election key is otherwise deleted; from then on every write of a store
// fenced by it fails with ErrNotLeader and changes nothing.
type Leadership struct {
	se   *Session
	e    *concurrency.Election
	key  string // the election key of this term
	rev  int64  // its create revision: the fence
	done chan struct{}
	once sync.Once
}

// Campaign blocks until the session's node is the DC's leader (or ctx
// ends), through the DC's etcd election (concurrency.Election: the live
// candidate with the oldest key leads).
func (se *Session) Campaign(ctx context.Context) (*Leadership, error) {
	st := se.store
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("campaign: %w", err)
	}
	if st.closed.Load() {
		return nil, fmt.Errorf("campaign: %w", errClosed)
	}
	e := concurrency.NewElection(se.s, st.k.election())
	if err := e.Campaign(ctx, se.node); err != nil {
		return nil, st.fail(ctx, "campaign for the leadership of DC "+st.dc, err)
	}
	l := &Leadership{se: se, e: e, key: e.Key(), rev: e.Rev(), done: make(chan struct{})}
	go l.watch()
	return l, nil
}

// watch closes l.done when the session ends or the election key of the
// term is deleted or replaced.
func (l *Leadership) watch() {
	defer l.end()
	ctx, cancel := context.WithCancel(l.se.s.Ctx())
	defer cancel()
	wch := l.se.store.cli.Watch(ctx, l.key, clientv3.WithRev(l.rev))
	for {
		select {
		case <-l.se.s.Done():
			return
		case <-l.done:
			return
		case wr, ok := <-wch:
			if !ok || wr.Err() != nil {
				// The watch broke (compaction, or the client closed):
				// check the key directly, then watch again.
				if l.se.store.closed.Load() || !l.holds(ctx) {
					return
				}
				wch = l.se.store.cli.Watch(ctx, l.key)
				continue
			}
			for _, ev := range wr.Events {
				if ev.Type == clientv3.EventTypeDelete || ev.Kv.CreateRevision != l.rev {
					return
				}
			}
		}
	}
}

// holds reports whether the term's key still exists with its revision; a
// read that fails counts as holding (the fence decides at write time).
func (l *Leadership) holds(ctx context.Context) bool {
	rctx, cancel := context.WithTimeout(ctx, l.se.store.timeout)
	defer cancel()
	resp, err := l.se.store.cli.Get(rctx, l.key)
	if err != nil {
		return ctx.Err() == nil
	}
	return len(resp.Kvs) > 0 && resp.Kvs[0].CreateRevision == l.rev
}

func (l *Leadership) end() { l.once.Do(func() { close(l.done) }) }

// Done is closed when the term has ended as far as this node can see:
// resigned, lease lost, or key deleted. A node must stop acting as leader
// then; the fence makes sure its writes fail even before it notices.
func (l *Leadership) Done() <-chan struct{} { return l.done }

// Node returns the leader's node name.
func (l *Leadership) Node() string { return l.se.node }

// Key and Rev identify the term: its election key and that key's create
// revision, which every fenced write compares.
func (l *Leadership) Key() string { return l.key }

// Rev returns the create revision of the term's election key.
func (l *Leadership) Rev() int64 { return l.rev }

// Resign ends the term at once (another candidate may win at once).
func (l *Leadership) Resign(ctx context.Context) error {
	defer l.end()
	return l.se.store.do(ctx, "resign the leadership of DC "+l.se.store.dc, func(ctx context.Context) error {
		return l.e.Resign(ctx)
	})
}

// cmp is the fence: the term's election key still exists and is the same
// key (its create revision is unchanged).
func (l *Leadership) cmp() clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(l.key), "=", l.rev)
}

// notLeader is the error of a write refused by the fence.
func (l *Leadership) notLeader() error {
	l.end()
	return &vipsmart.Error{
		Code: vipsmart.EUNAVAILABLE,
		Message: fmt.Sprintf("node %s is no longer the leader of DC %s (its election key %s is gone): the write changed nothing; retry, the new leader will take it",
			l.se.node, l.se.store.dc, l.key),
		Err: ErrNotLeader,
	}
}

// Fenced returns a view of st whose every write commits only while l's
// term lasts; once it has ended they fail with ErrNotLeader (code
// EUNAVAILABLE) and change nothing. Reads are not fenced. The view shares
// st's connection: closing either closes both.
func (st *Store) Fenced(l *Leadership) *Store {
	return &Store{shared: st.shared, fence: l}
}

// Leader returns the node name of the DC's current leader and the create
// revision of its election key, or ENOTFOUND if no node leads.
func (st *Store) Leader(ctx context.Context) (node string, rev int64, err error) {
	err = st.do(ctx, "read the leader of DC "+st.dc, func(ctx context.Context) error {
		resp, err := st.cli.Get(ctx, st.k.election()+"/", clientv3.WithFirstCreate()...)
		if err != nil {
			return err
		}
		if len(resp.Kvs) == 0 {
			return vipsmart.Errorf(vipsmart.ENOTFOUND, "", "DC %s has no leader", st.dc)
		}
		node, rev = string(resp.Kvs[0].Value), resp.Kvs[0].CreateRevision
		return nil
	})
	return node, rev, err
}
