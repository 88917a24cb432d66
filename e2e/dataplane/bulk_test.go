package dataplane

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/bolt"
)

// seedVIPs writes count VIPs (198.18.0.1 and up, no check: always up) into
// the store of a daemon that is not running. The API adds one VIP per
// request with an fsync each; what is measured below does not depend on
// how the VIPs got into the store.
func seedVIPs(t testing.TB, dataDir string, count int) {
	t.Helper()
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	s, err := bolt.Open(filepath.Join(dataDir, "vipsmart.db"), bolt.Options{UnsafeNoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a := netip.MustParseAddr("198.18.0.0")
	now := time.Now().UTC()
	for i := 0; i < count; i++ {
		a = a.Next()
		if err := s.CreateVIP(context.Background(), vipsmart.VIP{Name: fmt.Sprintf("v%05d", i), Address: a, Created: now}); err != nil {
			t.Fatalf("seeding VIP %d: %v", i, err)
		}
	}
}

// bulkRoutes is how many routes TestBGPBulk announces.
const bulkRoutes = 10000

// TestBGPBulk starts a daemon holding 10,000 VIPs and checks, at BIRD and
// at FRR, that the router holds all 10,000 routes within 5 s of the BGP
// session coming up, then that SIGTERM (graceful shutdown withdraws before
// exit) removes all of them within 5 s.
func TestBGPBulk(t *testing.T) {
	forEachRouter(t, func(t *testing.T, k routerKind) {
		b := newBGPLab(t, k, 1)
		d := b.dcs[0]
		seedVIPs(t, d.dataDir, bulkRoutes)

		start := time.Now()
		d.start()
		up := eventually(t, 30*time.Second, "BGP session with dc-1 Established", func() error {
			ok, err := b.rt.established(dcIP(1))
			if err == nil && !ok {
				err = fmt.Errorf("not established")
			}
			return err
		})
		t.Logf("%s: daemon start to session Established: %s", k, up.Round(time.Millisecond))
		all := eventually(t, 30*time.Second, fmt.Sprintf("%s holds %d routes", k, bulkRoutes), func() error {
			n, err := b.rt.count()
			if err == nil && n != bulkRoutes {
				err = fmt.Errorf("%d routes", n)
			}
			return err
		})
		t.Logf("%s: %d routes in the router %s after the session came up (%s after daemon start)", k, bulkRoutes, all.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
		if all > 5*time.Second {
			t.Errorf("%s: %d routes took %s after the session came up, want at most 5s", k, bulkRoutes, all)
		}
		// The router counts a route when it receives it and selects it
		// as best once its next hop is resolved: FRR's zebra may take a
		// moment after the 10,000th arrives.
		eventually(t, 5*time.Second, string(k)+": the last VIP's route is best via dc-1", func() error {
			return (want{best: dcIP(1), bestLen: 1}).check(b.mustPaths("198.18.39.16/32")) // the 10,000th
		})

		start = time.Now()
		if err := d.p.term(20 * time.Second); err != nil {
			t.Error(err)
		}
		exited := time.Since(start)
		gone := eventually(t, 30*time.Second, "the router holds no route", func() error {
			n, err := b.rt.count()
			if err == nil && n != 0 {
				err = fmt.Errorf("%d routes", n)
			}
			return err
		})
		gone += exited
		t.Logf("%s: SIGTERM: daemon exited after %s, router empty after %s", k, exited.Round(time.Millisecond), gone.Round(time.Millisecond))
		if gone > 5*time.Second {
			t.Errorf("%s: withdrawing %d routes took %s, want at most 5s", k, bulkRoutes, gone)
		}
	})
}
