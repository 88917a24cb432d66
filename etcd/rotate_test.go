package etcd_test

import (
	"errors"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart/etcd"
	"github.com/vipsmart/vipsmart/etcd/etcdtest"
)

// TestRotateIdentity: the leader stores a pending pair, promotes it (the
// shared pair, the fingerprint, the pending pair gone, at once), another
// node's watch is told of each step; a deposed leader's rotation writes
// fail and change nothing.
func TestRotateIdentity(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	pfx := newPrefix()
	a, b := open(t, c, pfx, 100), open(t, c, pfx, 100)
	ctx := t.Context()
	if _, err := a.ShareIdentity(ctx, etcd.SharedIdentity{Cert: []byte("cert-1"), Key: []byte("key-1")}); err != nil {
		t.Fatal(err)
	}
	watch := b.WatchIdentity(ctx)
	seen := func(what string) {
		t.Helper()
		select {
		case <-watch:
		case <-time.After(5 * time.Second):
			t.Fatalf("the watch was not told of %s", what)
		}
	}
	seA, err := a.NewSession(ctx, "a", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	lA := wantWon(t, campaignAsync(ctx, seA), 10*time.Second)
	fA := a.Fenced(lA)

	next := etcd.SharedIdentity{Cert: []byte("cert-2"), Key: []byte("key-2"), Identity: "sha256:2"}
	if err := fA.SetPendingIdentity(ctx, next); err != nil {
		t.Fatal(err)
	}
	seen("the pending pair")
	if p, err := b.PendingIdentity(ctx); err != nil || p == nil || p.Identity != "sha256:2" || string(p.Key) != "key-2" {
		t.Fatalf("pending read by another node: %+v %v", p, err)
	}
	// An aborted rotation: the pending pair goes, the key stays.
	if err := fA.DiscardPendingIdentity(ctx); err != nil {
		t.Fatal(err)
	}
	seen("the discard")
	if p, err := b.PendingIdentity(ctx); err != nil || p != nil {
		t.Fatalf("pending after a discard: %+v %v", p, err)
	}
	if cur, fp, err := b.CurrentIdentity(ctx); err != nil || string(cur.Key) != "key-1" || fp != "" {
		t.Fatalf("current after a discard: %+v %q %v", cur, fp, err)
	}
	// A committed one.
	if err := fA.SetPendingIdentity(ctx, next); err != nil {
		t.Fatal(err)
	}
	if err := fA.PromoteIdentity(ctx, next); err != nil {
		t.Fatal(err)
	}
	seen("the promotion")
	cur, fp, err := b.CurrentIdentity(ctx)
	if err != nil || string(cur.Key) != "key-2" || string(cur.Cert) != "cert-2" || fp != "sha256:2" {
		t.Fatalf("current after the promotion: %+v %q %v", cur, fp, err)
	}
	if p, err := b.PendingIdentity(ctx); err != nil || p != nil {
		t.Fatalf("pending after the promotion: %+v %v", p, err)
	}
	// An own certificate: only the fingerprint is shared.
	if err := fA.PromoteIdentity(ctx, etcd.SharedIdentity{Identity: "sha256:3"}); err != nil {
		t.Fatal(err)
	}
	if cur, fp, err := b.CurrentIdentity(ctx); err != nil || string(cur.Key) != "key-2" || fp != "sha256:3" {
		t.Fatalf("current after an own certificate's promotion: %+v %q %v", cur, fp, err)
	}

	// Deposed: every rotation write fails, nothing changes.
	if _, err := c.Client().Revoke(ctx, seA.Lease()); err != nil {
		t.Fatal(err)
	}
	for what, err := range map[string]error{
		"SetPendingIdentity":     fA.SetPendingIdentity(ctx, etcd.SharedIdentity{Identity: "sha256:4", Cert: []byte("c"), Key: []byte("k")}),
		"PromoteIdentity":        fA.PromoteIdentity(ctx, etcd.SharedIdentity{Identity: "sha256:4", Cert: []byte("c"), Key: []byte("k")}),
		"DiscardPendingIdentity": fA.DiscardPendingIdentity(ctx),
	} {
		if !errors.Is(err, etcd.ErrNotLeader) {
			t.Errorf("%s by a deposed leader: %v; want ErrNotLeader", what, err)
		}
	}
	if cur, fp, err := b.CurrentIdentity(ctx); err != nil || string(cur.Key) != "key-2" || fp != "sha256:3" {
		t.Fatalf("current after a deposed leader's writes: %+v %q %v", cur, fp, err)
	}
	if p, err := b.PendingIdentity(ctx); err != nil || p != nil {
		t.Fatalf("pending after a deposed leader's writes: %+v %v", p, err)
	}
}
