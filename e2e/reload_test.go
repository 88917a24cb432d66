package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	gbgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
)

// router is a GoBGP speaker in the test process standing in for a
// datacenter router: it listens on its own loopback address (127.0.0.2,
// 127.0.0.3, ...) and accepts vipsmart (AS 65001, from 127.0.0.1).
type router struct {
	addr string
	port int
	asn  uint32
	s    *server.BgpServer
}

func startRouter(t *testing.T, addr string, asn uint32) *router {
	t.Helper()
	r := &router{addr: addr, port: freePort(t), asn: asn, s: server.NewBgpServer()}
	go r.s.Serve()
	t.Cleanup(r.s.Stop)
	ctx := context.Background()
	if err := r.s.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn: asn, RouterId: addr, ListenPort: int32(r.port), ListenAddresses: []string{addr},
	}}); err != nil {
		t.Fatalf("router %s: %v", addr, err)
	}
	if err := r.s.AddPeer(ctx, &api.AddPeerRequest{Peer: &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: "127.0.0.1", PeerAsn: 65001},
		Transport: &api.Transport{PassiveMode: true},
		AfiSafis: []*api.AfiSafi{{Config: &api.AfiSafiConfig{Enabled: true,
			Family: &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}}}},
	}}); err != nil {
		t.Fatalf("router %s AddPeer: %v", addr, err)
	}
	return r
}

// peerSpec is the --bgp-peer of r.
func (r *router) peerSpec() string { return fmt.Sprintf("%s,%d,%d", r.addr, r.asn, r.port) }

// session returns the state of the router's session with vipsmart, the
// time it was established and its count of drops.
func (r *router) session(t *testing.T) (established bool, since time.Time, flops uint32) {
	t.Helper()
	err := r.s.ListPeer(context.Background(), &api.ListPeerRequest{}, func(p *api.Peer) {
		if p.State == nil {
			return
		}
		established = p.State.SessionState == api.PeerState_SESSION_STATE_ESTABLISHED
		flops = p.State.Flops
		if p.Timers != nil && p.Timers.State != nil && p.Timers.State.Uptime != nil {
			since = p.Timers.State.Uptime.AsTime()
		}
	})
	if err != nil {
		t.Fatalf("router %s ListPeer: %v", r.addr, err)
	}
	return established, since, flops
}

// has reports whether the router holds a route to prefix.
func (r *router) has(t *testing.T, prefix string) bool {
	t.Helper()
	want := netip.MustParsePrefix(prefix)
	found := false
	err := r.s.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: gbgp.RF_IPv4_UC},
		func(p gbgp.NLRI, _ []*apiutil.Path) {
			if q, err := netip.ParsePrefix(p.String()); err == nil && q == want {
				found = true
			}
		})
	if err != nil {
		t.Fatalf("router %s ListPath: %v", r.addr, err)
	}
	return found
}

// TestSIGHUPReload changes the config file under a running daemon with
// BGP sessions to two routers and sends SIGHUP: the log level and the peers
// change, the session that stays is never dropped, what cannot be reloaded
// is named, a broken file changes nothing, and the daemon stays up
// throughout.
func TestSIGHUPReload(t *testing.T) {
	r1, r2 := startRouter(t, "127.0.0.2", 65100), startRouter(t, "127.0.0.3", 65200)
	conf := filepath.Join(t.TempDir(), "vipsmart.yaml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(conf, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("log-level: info\nbgp-peer:\n  - " + r1.peerSpec() + "\n")
	d := startDaemon(t, "dc-1", "--config", conf, "--announcer", "bgp", "--bgp-asn", "65001",
		"--bgp-router-id", "10.255.0.1", "--bgp-listen-port", "-1")
	hup := func() {
		t.Helper()
		if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatalf("SIGHUP: %v", err)
		}
	}
	alive := func() {
		t.Helper()
		select {
		case <-d.done:
			t.Fatalf("the daemon exited after SIGHUP:\n%s", d.Logs())
		default:
		}
		if _, err := d.client().Status(context.Background()); err != nil {
			t.Fatalf("the daemon does not answer after SIGHUP: %v", err)
		}
	}
	mustCLI(t, d.server(), "vip", "add", "web", "192.0.2.10")
	eventually(t, 15*time.Second, "router 1 established and holding 192.0.2.10/32", func() error {
		if up, _, _ := r1.session(t); !up {
			return fmt.Errorf("no session")
		}
		if !r1.has(t, "192.0.2.10/32") {
			return fmt.Errorf("no route")
		}
		return nil
	})
	_, since1, flops1 := r1.session(t)
	if strings.Contains(d.Logs(), "level=DEBUG") {
		t.Fatalf("debug lines at log level info")
	}

	// Reload 1: a second peer, debug logs, faster heartbeats.
	write("log-level: debug\nheartbeat-interval: 100ms\nbgp-peer:\n  - " + r1.peerSpec() + "\n  - " + r2.peerSpec() + "\n")
	hup()
	eventually(t, 15*time.Second, "router 2 established and holding 192.0.2.10/32 after the reload", func() error {
		if up, _, _ := r2.session(t); !up {
			return fmt.Errorf("no session")
		}
		if !r2.has(t, "192.0.2.10/32") {
			return fmt.Errorf("no route")
		}
		return nil
	})
	alive()
	if up, since, flops := r1.session(t); !up || !since.Equal(since1) || flops != flops1 {
		t.Errorf("router 1's session was disturbed by adding a peer: established %t, up since %s (was %s), drops %d (was %d)", up, since, since1, flops, flops1)
	}
	mustCLI(t, d.server(), "status") // an API request: logged at debug now
	eventually(t, 5*time.Second, "debug lines after log-level: debug", func() error {
		if !strings.Contains(d.Logs(), "level=DEBUG") {
			return fmt.Errorf("no debug line yet")
		}
		return nil
	})
	ev := mustCLI(t, d.server(), "events")
	if !strings.Contains(ev, "configuration reloaded: changed bgp-peer, heartbeat-interval, log-level") {
		t.Errorf("event log lacks the reload:\n%s", ev)
	}
	_, since2, flops2 := r2.session(t)

	// Reload 2: router 1 goes, max-events changes (not reloadable).
	write("log-level: debug\nheartbeat-interval: 100ms\nmax-events: 500\nbgp-peer:\n  - " + r2.peerSpec() + "\n")
	hup()
	eventually(t, 15*time.Second, "router 1's session closed after its peer was removed", func() error {
		if up, _, _ := r1.session(t); up {
			return fmt.Errorf("still established")
		}
		return nil
	})
	alive()
	if up, since, flops := r2.session(t); !up || !since.Equal(since2) || flops != flops2 {
		t.Errorf("router 2's session was disturbed by removing the other peer: established %t, up since %s (was %s), drops %d (was %d)", up, since, since2, flops, flops2)
	}
	eventually(t, 5*time.Second, "the reload naming max-events as needing a restart", func() error {
		ev := mustCLI(t, d.server(), "events")
		if !strings.Contains(ev, "changed bgp-peer; changed but not reloadable, kept until a restart: max-events") {
			return fmt.Errorf("event log:\n%s", ev)
		}
		if !strings.Contains(d.Logs(), "take effect only after a restart") || !strings.Contains(d.Logs(), "max-events") {
			return fmt.Errorf("the log does not name max-events")
		}
		return nil
	})

	// Reload 3: a broken file changes nothing and stops nothing.
	write("log-level: [not, a, level\n")
	hup()
	eventually(t, 5*time.Second, "the failed reload in the event log", func() error {
		if ev := mustCLI(t, d.server(), "events"); !strings.Contains(ev, "configuration reload failed, nothing changed") {
			return fmt.Errorf("no failed reload event yet")
		}
		return nil
	})
	alive()
	if up, since, _ := r2.session(t); !up || !since.Equal(since2) {
		t.Errorf("router 2's session was disturbed by a failed reload")
	}
	if err := d.stop(); err != nil {
		t.Errorf("clean stop after the reloads: %v", err)
	}
}
