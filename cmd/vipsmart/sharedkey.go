package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/daemon"
	"github.com/vipsmart/vipsmart/etcd"
	"github.com/vipsmart/vipsmart/identity"
)

// The DC's key on a DC with several nodes (docs/ha.md, "One key per DC"):
// sharedKeys is the leader's daemon.Keyring, which keeps the pending pair
// of a rotation and the promoted pair in etcd as well as in its data
// directory; watchKey makes every other node install the pair the leader
// promoted.

// sharedKeys is the daemon.Keyring of the leader of a DC on etcd. Its
// writes go through the leader's fenced store.
type sharedKeys struct {
	id      *identity.Identity
	retired func(old string)   // told of the key a promotion replaced
	store   func() *etcd.Store // the fenced store
	own     bool               // --tls-cert: the operator's files, not shared
	log     *slog.Logger
}

var _ daemon.Keyring = (*sharedKeys)(nil)

// newSharedKeys is the keyring of a node that now leads. It first takes
// the DC's state of the key from etcd: the pair another leader promoted
// (if this node missed it), and the pending pair of a rotation that leader
// began (the daemon then promotes it if its fingerprint committed, or
// discards it: reconcileKeys), so that a rotation survives a failover.
func newSharedKeys(ctx context.Context, log *slog.Logger, id *identity.Identity, st *openedStore, own bool) (*sharedKeys, error) {
	k := &sharedKeys{id: id, store: func() *etcd.Store { return st.Store.(*etcd.Store) }, own: own, log: log}
	if err := installShared(ctx, log, st.etcd, id, own); err != nil {
		return nil, err
	}
	p, err := st.etcd.PendingIdentity(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the pending key of a rotation from etcd: %w", err)
	}
	switch {
	case p == nil && id.Pending() != "":
		// Prepared here and never stored: no proposal was made.
		if err := id.Discard(); err != nil {
			return nil, err
		}
	case p != nil && p.Identity != id.Pending() && len(p.Cert) > 0 && !own:
		if err := id.SetPending(p.Cert, p.Key); err != nil {
			return nil, fmt.Errorf("taking the pending key of a rotation from etcd: %w", err)
		}
	case p != nil && p.Identity != id.Pending() && own:
		// The operator's pending pair (--tls-cert.next) on this node.
		if fp, err := id.Prepare(); err != nil || fp != p.Identity {
			log.Error("a rotation of the DC's own certificate is pending, but this node has not the new pair at --tls-cert.next/--tls-key.next: put it there on every node", "pending", p.Identity, "err", err)
			if err == nil {
				_ = id.Discard()
			}
		}
	}
	return k, nil
}

func (k *sharedKeys) Fingerprint() string { return k.id.Fingerprint() }
func (k *sharedKeys) Pending() string     { return k.id.Pending() }

func (k *sharedKeys) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), etcd.DefaultRequestTimeout)
}

// Prepare makes the pending pair and stores it in etcd before the
// proposal, so that a new leader can finish the rotation.
func (k *sharedKeys) Prepare() (string, error) {
	fp, err := k.id.Prepare()
	if err != nil {
		return "", err
	}
	p := etcd.SharedIdentity{Identity: fp}
	if !k.own {
		if p.Cert, p.Key, err = k.id.PEM(true); err != nil {
			_ = k.id.Discard()
			return "", err
		}
	}
	ctx, cancel := k.ctx()
	defer cancel()
	if err := k.store().SetPendingIdentity(ctx, p); err != nil {
		_ = k.id.Discard()
		return "", err
	}
	return fp, nil
}

// Promote makes the pending pair the DC's key in etcd (the other nodes
// install it from there) and here.
func (k *sharedKeys) Promote() error {
	fp := k.id.Pending()
	if fp == "" {
		return errors.New("identity: no pending key to promote")
	}
	p := etcd.SharedIdentity{Identity: fp}
	if !k.own {
		var err error
		if p.Cert, p.Key, err = k.id.PEM(true); err != nil {
			return err
		}
	}
	ctx, cancel := k.ctx()
	defer cancel()
	if err := k.store().PromoteIdentity(ctx, p); err != nil {
		return err
	}
	old := k.id.Fingerprint()
	if err := k.id.Promote(); err != nil {
		return err
	}
	if k.retired != nil {
		k.retired(old)
	}
	return nil
}

// Discard drops the pending pair, in etcd and here.
func (k *sharedKeys) Discard() error {
	ctx, cancel := k.ctx()
	defer cancel()
	err := k.store().DiscardPendingIdentity(ctx)
	return errors.Join(err, k.id.Discard())
}

// installShared makes this node present the key the DC's leader promoted
// last: the shared pair (P identity), or, with --tls-cert, the operator's
// pending pair whose fingerprint was promoted (P identity.current). It
// returns nil when there is nothing to do.
func installShared(ctx context.Context, log *slog.Logger, st *etcd.Store, id *identity.Identity, own bool) error {
	cur, fp, err := st.CurrentIdentity(ctx)
	if err != nil {
		return err
	}
	if !own {
		if cur == nil || len(cur.Cert) == 0 {
			return nil
		}
		got, err := identity.FingerprintPEM(cur.Cert, cur.Key)
		if err != nil {
			return fmt.Errorf("the DC's key in etcd: %w", err)
		}
		if got == id.Fingerprint() {
			return nil
		}
		old := id.Fingerprint()
		if _, err := id.Install(cur.Cert, cur.Key); err != nil {
			return err
		}
		log.Info("installed the DC's new key, promoted by its leader", "old", vipsmart.ShortIdentity(old), "new", vipsmart.ShortIdentity(got))
		return nil
	}
	if fp == "" || fp == id.Fingerprint() {
		return nil
	}
	if id.Pending() != fp {
		if p, err := id.Prepare(); err != nil || p != fp {
			_ = id.Discard()
			return fmt.Errorf("the DC's leader installed its new certificate %s, but this node has not that pair at --tls-cert.next/--tls-key.next (%v): put it there", vipsmart.ShortIdentity(fp), err)
		}
	}
	old := id.Fingerprint()
	if err := id.Promote(); err != nil {
		return err
	}
	log.Info("installed the DC's new certificate (--tls-cert.next), promoted by its leader", "old", vipsmart.ShortIdentity(old), "new", vipsmart.ShortIdentity(fp))
	return nil
}

// watchKey makes this node, while it does not lead, present the key its
// leader promoted, within a watch event of the promotion (a second at
// most while etcd answers). After a change it drops its idle connections
// (to the leader and to other DCs) so that the next ones present the new
// key, and publishes it in its claim. pending is kept to the fingerprint
// of a rotation's pending pair, which this node accepts from the leader
// as its own key (the leader presents it a moment before this node
// installs it).
func (n *nodeRuntime) watchKey(ctx context.Context, id *identity.Identity, own bool, pending *atomic.Value) {
	for range n.st.WatchIdentity(ctx) {
		p, err := n.st.PendingIdentity(ctx)
		if err != nil {
			continue
		}
		if p != nil {
			pending.Store(p.Identity)
		}
		if n.leading.Load() {
			continue // the leader's keyring (sharedKeys) installs
		}
		// Install first, then forget the pending key: the leader may
		// present it from the commit on.
		old := id.Fingerprint()
		err = installShared(ctx, n.log, n.st, id, own)
		if p == nil {
			pending.Store("")
		}
		if err != nil {
			n.log.Warn("installing the DC's key", "err", err)
			continue
		}
		if id.Fingerprint() == old {
			continue
		}
		n.tr.CloseIdleConnections()
		n.peers.ResetConnections()
		n.reclaim(ctx)
	}
}

// reclaim publishes this node's claim again (its key changed).
func (n *nodeRuntime) reclaim(ctx context.Context) {
	n.store.mu.Lock()
	se := n.store.session
	n.store.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, etcd.DefaultRequestTimeout)
	defer cancel()
	if err := se.Claim(ctx, n.claimInfo()); err != nil {
		n.log.Warn("publishing the new key in this node's claim", "err", err)
	}
}

// pendingFP is the fingerprint of a rotation's pending key, "" if none.
func (n *nodeRuntime) pendingFP() string {
	s, _ := n.pendingKey.Load().(string)
	return s
}

// retiredGrace is how long the leader still takes the DC's former key
// from its own nodes after a rotation (on its node routes only): they
// install the new key within a watch event, and requests in flight
// meanwhile are not refused. Other DCs refuse the former key from the
// commit on.
const retiredGrace = 5 * time.Second

type retiredKey struct {
	fp    string
	until time.Time
}

// retire is told by the leader's keyring of the key it replaced.
func (n *nodeRuntime) retire(old string) {
	n.retired.Store(&retiredKey{fp: old, until: time.Now().Add(retiredGrace)})
	go n.reclaim(context.Background())
}

// ownKey reports whether key is the DC's key, as the leader's node routes
// take it: the current key, or the one a rotation replaced less than
// retiredGrace ago.
func (n *nodeRuntime) ownKey(key string) bool {
	if key == "" {
		return false
	}
	if key == n.id.Fingerprint() {
		return true
	}
	r := n.retired.Load()
	return r != nil && key == r.fp && time.Now().Before(r.until)
}
