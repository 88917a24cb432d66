// Package tokentest is the contract test suite of token.Keeper: every
// implementation (token.File, etcd.Tokens) must pass Run unchanged.
//
// The suite sees two users of one storage, a and b: for etcd.Tokens, two
// nodes of a DC (two Tokens on one prefix); for token.File, which one
// process owns, the same value twice. What a writes, b sees within Bound;
// a revoke, a name and each join token's single use hold across both,
// even when they race.
package tokentest

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/token"
)

// Bound is how long the suite waits for b to see what a wrote.
const Bound = 5 * time.Second

// Opener opens a fresh, empty token set and returns two users of it.
type Opener func(t *testing.T) (a, b token.Keeper)

var t0 = time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC)

const (
	fp1 = vipsmart.IdentityPrefix + "1111111111111111111111111111111111111111111111111111111111111111"
	fp2 = vipsmart.IdentityPrefix + "2222222222222222222222222222222222222222222222222222222222222222"
)

// Run runs the whole contract, one fresh set per subtest.
func Run(t *testing.T, open Opener) {
	t.Run("APITokens", func(t *testing.T) { testAPITokens(t, open) })
	t.Run("JoinTokens", func(t *testing.T) { testJoinTokens(t, open) })
	t.Run("Shared", func(t *testing.T) { testShared(t, open) })
	t.Run("RevokeOnce", func(t *testing.T) { testRevokeOnce(t, open) })
	t.Run("NameOnce", func(t *testing.T) { testNameOnce(t, open) })
	t.Run("ConsumeOnce", func(t *testing.T) { testConsumeOnce(t, open) })
}

func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(Bound)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after %s: %v", what, Bound, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testAPITokens(t *testing.T, open Opener) {
	f, _ := open(t)
	admin, err := f.CreateAPI("ops", vipsmart.RoleAdmin, 0, t0)
	if err != nil {
		t.Fatal(err)
	}
	if admin.Name != "ops" || admin.Role != vipsmart.RoleAdmin || admin.Expires != nil || !strings.HasPrefix(admin.Token, token.APIPrefix+"ops_") {
		t.Fatalf("created: %+v", admin)
	}
	read, err := f.CreateAPI("viewer", vipsmart.RoleRead, time.Hour, t0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.CreateAPI("ops", vipsmart.RoleRead, 0, t0); !vipsmart.IsCode(err, vipsmart.ECONFLICT) {
		t.Fatalf("duplicate name: %v", err)
	}
	for _, c := range []struct {
		name string
		role vipsmart.Role
		ttl  time.Duration
	}{{"x", "root", 0}, {"Bad Name", vipsmart.RoleRead, 0}, {"y", vipsmart.RoleRead, -time.Second}} {
		if _, err := f.CreateAPI(c.name, c.role, c.ttl, t0); !vipsmart.IsCode(err, vipsmart.EINVALID) {
			t.Errorf("CreateAPI(%q, %q, %s): %v; want EINVALID", c.name, c.role, c.ttl, err)
		}
	}
	if a, err := f.Authenticate(admin.Token, t0.Add(100*24*time.Hour)); err != nil || a.Name != "ops" || a.Role != vipsmart.RoleAdmin {
		t.Fatalf("admin token: %+v %v", a, err)
	}
	if a, err := f.Authenticate(read.Token, t0.Add(time.Minute)); err != nil || a.Role != vipsmart.RoleRead {
		t.Fatalf("read token: %+v %v", a, err)
	}
	if _, err := f.Authenticate(read.Token, t0.Add(2*time.Hour)); !vipsmart.IsCode(err, vipsmart.EUNAUTHORIZED) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired token: %v", err)
	}
	wrong := admin.Token[:len(admin.Token)-3] + "AAA"
	if _, err := f.Authenticate(wrong, t0); !vipsmart.IsCode(err, vipsmart.EUNAUTHORIZED) {
		t.Fatalf("wrong secret: %v", err)
	}
	if _, err := f.Authenticate("garbage", t0); !vipsmart.IsCode(err, vipsmart.EUNAUTHORIZED) {
		t.Fatalf("garbage: %v", err)
	}
	// An expired token's name may be reused.
	if _, err := f.CreateAPI("viewer", vipsmart.RoleRead, 0, t0.Add(2*time.Hour)); err != nil {
		t.Fatalf("reusing an expired token's name: %v", err)
	}
	if _, err := f.Authenticate(read.Token, t0.Add(time.Minute)); !vipsmart.IsCode(err, vipsmart.EUNAUTHORIZED) {
		t.Fatalf("the replaced token still works: %v", err)
	}
	if ls := f.ListAPI(); len(ls) != 2 || ls[0].Name != "ops" || ls[1].Name != "viewer" || ls[1].Expires != nil {
		t.Fatalf("list: %+v", ls)
	}
	if err := f.RevokeAPI("ops"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Authenticate(admin.Token, t0); !vipsmart.IsCode(err, vipsmart.EUNAUTHORIZED) {
		t.Fatalf("revoked token: %v", err)
	}
	if err := f.RevokeAPI("ops"); !vipsmart.IsCode(err, vipsmart.ENOTFOUND) {
		t.Fatalf("revoke twice: %v", err)
	}
	if ls := f.ListAPI(); len(ls) != 1 || ls[0].Name != "viewer" {
		t.Fatalf("list after revoke: %+v", ls)
	}
}

func testJoinTokens(t *testing.T, open Opener) {
	f, _ := open(t)
	if f.HasUnused(t0) {
		t.Fatal("a fresh set has an unused join token")
	}
	jt, err := f.CreateJoin("dc-2", fp1, 15*time.Minute, t0)
	if err != nil {
		t.Fatal(err)
	}
	if jt.DC != "dc-2" || jt.Identity != fp1 || !jt.Expires.Equal(t0.Add(15*time.Minute)) {
		t.Fatalf("created: %+v", jt)
	}
	h, err := f.CheckJoin(jt.Token, "dc-2", fp1, t0.Add(time.Minute))
	if err != nil || h == "" {
		t.Fatalf("a good token: %q %v", h, err)
	}
	for _, c := range []struct {
		name, tok, dc, fp string
		at                time.Time
		msg               string
	}{
		{"missing", "", "dc-2", fp1, t0, "needs a join token"},
		{"another name", jt.Token, "dc-3", fp1, t0, "made for dc-2"},
		{"another key", jt.Token, "dc-2", fp2, t0, "made for dc-2"},
		{"expired", jt.Token, "dc-2", fp1, t0.Add(16 * time.Minute), "expired"},
	} {
		if _, err := f.CheckJoin(c.tok, c.dc, c.fp, c.at); err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: %v; want %q", c.name, err, c.msg)
		}
	}
	if _, err := f.CheckJoin("vsjoin1_!!", "dc-2", fp1, t0); !vipsmart.IsCode(err, vipsmart.EINVALID) {
		t.Errorf("a damaged token: %v", err)
	}
	other, _ := token.NewJoin("dc-2", fp1, t0.Add(time.Hour))
	if _, err := f.CheckJoin(other.String(), "dc-2", fp1, t0); err == nil || !strings.Contains(err.Error(), "not made on dc-2") {
		t.Errorf("a token made elsewhere: %v", err)
	}
	if !f.HasUnused(t0) || f.HasUnused(t0.Add(16*time.Minute)) {
		t.Fatal("HasUnused before and after the expiry")
	}
	n, err := f.ConsumeAll(t0.Add(2*time.Minute), "dc-2 joined federation f-7")
	if err != nil || n != 1 || f.HasUnused(t0) {
		t.Fatalf("consume: %d %v", n, err)
	}
	if _, err := f.CheckJoin(jt.Token, "dc-2", fp1, t0.Add(3*time.Minute)); err == nil || !strings.Contains(err.Error(), "already used") || !strings.Contains(err.Error(), "joined federation f-7") {
		t.Fatalf("a used token: %v", err)
	}
	if n, err := f.ConsumeAll(t0.Add(3*time.Minute), "again"); err != nil || n != 0 {
		t.Fatalf("consume again: %d %v", n, err)
	}
	for _, ttl := range []time.Duration{0, time.Millisecond, 8 * 24 * time.Hour} {
		if _, err := f.CreateJoin("dc-2", fp1, ttl, t0); !vipsmart.IsCode(err, vipsmart.EINVALID) {
			t.Fatalf("ttl %s: %v", ttl, err)
		}
	}
	// A used token is remembered for a day past its expiry, then
	// forgotten when another is made.
	later := t0.Add(15*time.Minute + 24*time.Hour)
	if _, err := f.CreateJoin("dc-2", fp1, time.Minute, later); err != nil {
		t.Fatal(err)
	}
	if _, err := f.CheckJoin(jt.Token, "dc-2", fp1, later); err == nil || !strings.Contains(err.Error(), "not made on dc-2") {
		t.Fatalf("a forgotten token: %v", err)
	}
}

// testShared: what one user writes, the other sees.
func testShared(t *testing.T, open Opener) {
	a, b := open(t)
	tok, err := a.CreateAPI("ci", vipsmart.RoleAdmin, 0, t0)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "b accepts the token a made", func() error {
		_, err := b.Authenticate(tok.Token, t0)
		return err
	})
	if ls := b.ListAPI(); len(ls) != 1 || ls[0].Name != "ci" {
		t.Fatalf("b lists %+v", ls)
	}
	if err := b.RevokeAPI("ci"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a refuses the token b revoked", func() error {
		if _, err := a.Authenticate(tok.Token, t0); !vipsmart.IsCode(err, vipsmart.EUNAUTHORIZED) {
			return errors.New("a still accepts it")
		}
		return nil
	})
	jt, err := a.CreateJoin("dc-1", fp1, time.Hour, t0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.CheckJoin(jt.Token, "dc-1", fp1, t0); err != nil {
		t.Fatalf("b checks the join token a made: %v", err)
	}
	eventually(t, "b has an unused join token", func() error {
		if !b.HasUnused(t0) {
			return errors.New("no")
		}
		return nil
	})
	if n, err := b.ConsumeAll(t0, "dc-1 joined federation f-1"); err != nil || n != 1 {
		t.Fatalf("b consumes: %d %v", n, err)
	}
	if _, err := a.CheckJoin(jt.Token, "dc-1", fp1, t0); err == nil || !strings.Contains(err.Error(), "already used") {
		t.Fatalf("a checks the token b used: %v", err)
	}
	eventually(t, "a has no unused join token", func() error {
		if a.HasUnused(t0) {
			return errors.New("it has")
		}
		return nil
	})
}

// race runs f(i) for i in [0, n) at once, half on a and half on b.
func race(n int, a, b token.Keeper, f func(k token.Keeper) error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		k := a
		if i%2 == 1 {
			k = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = f(k)
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

// testRevokeOnce: of many revokes of one token at once, exactly one
// succeeds.
func testRevokeOnce(t *testing.T, open Opener) {
	a, b := open(t)
	for round := range 3 {
		if _, err := a.CreateAPI("ci", vipsmart.RoleAdmin, 0, t0); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		ok := 0
		for _, err := range race(8, a, b, func(k token.Keeper) error { return k.RevokeAPI("ci") }) {
			switch {
			case err == nil:
				ok++
			case !vipsmart.IsCode(err, vipsmart.ENOTFOUND):
				t.Fatalf("round %d: %v", round, err)
			}
		}
		if ok != 1 {
			t.Fatalf("round %d: %d revokes succeeded; want exactly 1", round, ok)
		}
	}
}

// testNameOnce: of many creates of one name at once, exactly one
// succeeds.
func testNameOnce(t *testing.T, open Opener) {
	a, b := open(t)
	var mu sync.Mutex
	var won []string
	errs := race(8, a, b, func(k token.Keeper) error {
		tok, err := k.CreateAPI("ci", vipsmart.RoleRead, 0, t0)
		if err == nil {
			mu.Lock()
			won = append(won, tok.Token)
			mu.Unlock()
		}
		return err
	})
	for _, err := range errs {
		if err != nil && !vipsmart.IsCode(err, vipsmart.ECONFLICT) {
			t.Fatal(err)
		}
	}
	if len(won) != 1 {
		t.Fatalf("%d creates of one name succeeded; want exactly 1", len(won))
	}
	eventually(t, "both accept the winner", func() error {
		for _, k := range []token.Keeper{a, b} {
			if _, err := k.Authenticate(won[0], t0); err != nil {
				return err
			}
		}
		return nil
	})
}

// testConsumeOnce: each join token is marked used exactly once, however
// many users mark at once.
func testConsumeOnce(t *testing.T, open Opener) {
	a, b := open(t)
	const n = 3
	for range n {
		if _, err := a.CreateJoin("dc-1", fp1, time.Hour, t0); err != nil {
			t.Fatal(err)
		}
	}
	total := 0
	var mu sync.Mutex
	for _, err := range race(6, a, b, func(k token.Keeper) error {
		m, err := k.ConsumeAll(t0, "joined")
		mu.Lock()
		total += m
		mu.Unlock()
		return err
	}) {
		if err != nil {
			t.Fatal(err)
		}
	}
	if total != n {
		t.Fatalf("%d join tokens marked used in all; want exactly %d", total, n)
	}
}
