package etcd_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/etcd"
	"github.com/vipsmart/vipsmart/etcd/etcdtest"
	"github.com/vipsmart/vipsmart/token"
	"github.com/vipsmart/vipsmart/token/tokentest"
)

func openTokens(t *testing.T, st *etcd.Store, refresh, maxStale time.Duration) *etcd.Tokens {
	t.Helper()
	k, err := st.OpenTokens(t.Context(), refresh, maxStale)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	return k
}

// TestTokensContract runs the token.Keeper contract against two nodes of
// a DC: two stores (two etcd clients) on one prefix of a 3-member
// cluster.
func TestTokensContract(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{Members: 3})
	tokentest.Run(t, func(t *testing.T) (token.Keeper, token.Keeper) {
		p := newPrefix()
		return openTokens(t, open(t, c, p, 0), 0, 0), openTokens(t, open(t, c, p, 0), 0, 0)
	})
}

// TestTokensImport: the first node imports its file's tokens; a later
// node's are ignored.
func TestTokensImport(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	p := newPrefix()
	now := time.Now()
	api, tok, err := token.NewAPIRecord("old", vipsmart.RoleAdmin, 0, now)
	if err != nil {
		t.Fatal(err)
	}
	join, jt, err := token.NewJoinRecord("dc-1", "sha256:1111111111111111111111111111111111111111111111111111111111111111", time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	a := openTokens(t, open(t, c, p, 0), 0, 0)
	ok, n, err := a.ImportFile(t.Context(), []token.APIRecord{api}, []token.JoinRecord{join})
	if err != nil || !ok || n != 2 {
		t.Fatalf("first import: %v %d %v", ok, n, err)
	}
	if _, err := a.Authenticate(tok.Token, now); err != nil {
		t.Fatalf("imported API token: %v", err)
	}
	if _, err := a.CheckJoin(jt.Token, "dc-1", jt.Identity, now); err != nil {
		t.Fatalf("imported join token: %v", err)
	}
	api2, tok2, _ := token.NewAPIRecord("other", vipsmart.RoleAdmin, 0, now)
	b := openTokens(t, open(t, c, p, 0), 0, 0)
	if ok, _, err := b.ImportFile(t.Context(), []token.APIRecord{api2}, nil); err != nil || ok {
		t.Fatalf("second import: %v %v", ok, err)
	}
	if _, err := b.Authenticate(tok2.Token, now); !vipsmart.IsCode(err, vipsmart.EUNAUTHORIZED) {
		t.Fatalf("a later node's token: %v", err)
	}
	if _, err := b.Authenticate(tok.Token, now); err != nil {
		t.Fatalf("the first node's token on the second: %v", err)
	}
}

// TestTokensFailClosed: a node that cannot read etcd for longer than
// maxStale refuses every API token (a revoke made meanwhile must not be
// missed), and accepts again once it reads.
func TestTokensFailClosed(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	px := etcdtest.NewProxy(t, strings.TrimPrefix(c.Members[0].ClientURL, "http://"))
	p := newPrefix()
	st, err := etcd.Open(t.Context(), etcd.Config{Endpoints: []string{"http://" + px.Addr()}, Prefix: p, DC: "dc-1", RequestTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	k := openTokens(t, st, 100*time.Millisecond, time.Second)
	tok, err := k.CreateAPI("ci", vipsmart.RoleAdmin, 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Authenticate(tok.Token, time.Now()); err != nil {
		t.Fatal(err)
	}
	px.Freeze()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := k.Authenticate(tok.Token, time.Now())
		if vipsmart.IsCode(err, vipsmart.EUNAVAILABLE) && strings.Contains(err.Error(), "could not read the API tokens") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still %v 5s after etcd became unreachable (maxStale 1s)", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	px.Thaw()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for {
		if _, err := k.Authenticate(tok.Token, time.Now()); err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("not accepted again after etcd came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
