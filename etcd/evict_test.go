package etcd_test

import (
	"testing"
	"time"

	"github.com/vipsmart/vipsmart/etcd"
	"github.com/vipsmart/vipsmart/etcd/etcdtest"
)

// EvictLeader ends the term of the node whose lease holds the
// leadership, and leaves a node that does not lead alone; the shared
// identity goes to the first node that offers one.
func TestEvictLeaderAndSharedIdentity(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	st := open(t, c, newPrefix(), 0)
	ctx := t.Context()
	s1, err := st.NewSession(ctx, "n1", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := st.NewSession(ctx, "n2", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, se := range []*etcd.Session{s1, s2} {
		if err := se.Claim(ctx, []byte(se.Node())); err != nil {
			t.Fatal(err)
		}
	}
	l1 := wantWon(t, campaignAsync(ctx, s1), 5*time.Second)
	won2 := campaignAsync(ctx, s2)
	claims, err := st.Claims(ctx)
	if err != nil || len(claims) != 2 {
		t.Fatalf("claims %v %v", claims, err)
	}
	// n2 does not lead: evicting it changes nothing.
	if err := st.EvictLeader(ctx, claims[1]); err != nil {
		t.Fatal(err)
	}
	if cs, _ := st.Claims(ctx); len(cs) != 2 {
		t.Fatalf("evicting a follower removed a claim: %v", cs)
	}
	// n1 leads: evicting it ends its term and n2 leads.
	if err := st.EvictLeader(ctx, claims[0]); err != nil {
		t.Fatal(err)
	}
	wantDone(t, l1, 5*time.Second)
	wantWon(t, won2, 5*time.Second)
	if leader, _, err := st.Leader(ctx); err != nil || leader != "n2" {
		t.Fatalf("leader %q %v, want n2", leader, err)
	}

	a := etcd.SharedIdentity{Cert: []byte("cert-a"), Key: []byte("key-a")}
	b := etcd.SharedIdentity{Cert: []byte("cert-b"), Key: []byte("key-b")}
	if got, err := st.ShareIdentity(ctx, a); err != nil || string(got.Key) != "key-a" {
		t.Fatalf("first share: %+v %v", got, err)
	}
	if got, err := st.ShareIdentity(ctx, b); err != nil || string(got.Key) != "key-a" || string(got.Cert) != "cert-a" {
		t.Fatalf("second share: %+v %v, want the first node's pair", got, err)
	}
}
