package bgp

import (
	"context"
	"net/netip"
	"strings"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/prometheus/client_golang/prometheus"
)

// sessionStater is a Speaker that can tell the state of its sessions
// (GoBGP). The announcer's collector reports the sessions of speakers
// that implement it.
type sessionStater interface {
	sessionStates(ctx context.Context) (map[netip.Addr]string, error)
}

// The BGP finite state machine's states, as vipsmart_bgp_session_state
// labels them.
var sessionStates = []string{"idle", "connect", "active", "opensent", "openconfirm", "established"}

func (g *GoBGP) sessionStates(ctx context.Context) (map[netip.Addr]string, error) {
	out := map[netip.Addr]string{}
	err := g.s.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
		if p.State == nil {
			return
		}
		a, err := netip.ParseAddr(p.State.NeighborAddress)
		if err != nil {
			return
		}
		st := strings.ToLower(strings.TrimPrefix(p.State.SessionState.String(), "SESSION_STATE_"))
		if st == "unspecified" {
			st = "idle"
		}
		out[a.Unmap()] = st
	})
	return out, err
}

var (
	descSessionUp = prometheus.NewDesc("vipsmart_bgp_session_up",
		"1 if the BGP session with the configured peer is established, else 0.", []string{"peer"}, nil)
	descSessionState = prometheus.NewDesc("vipsmart_bgp_session_state",
		"State of the BGP session with the configured peer: 1 for the current one of idle, connect, active, opensent, openconfirm, established.", []string{"peer", "state"}, nil)
	descRoutes = prometheus.NewDesc("vipsmart_bgp_routes",
		"Routes the embedded BGP speaker originates, by kind (active: VIPs and active GIPs; standby: GIPs announced with the standby AS-path prepend).", []string{"kind"}, nil)
)

// Collector returns a Prometheus collector of the announcer's sessions (one
// series per configured peer, labelled with its address) and routes. The
// speaker is asked at scrape time.
func (a *Announcer) Collector() prometheus.Collector { return collector{a} }

type collector struct{ a *Announcer }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descSessionUp
	ch <- descSessionState
	ch <- descRoutes
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	a := c.a
	a.mu.Lock()
	peers := make([]Peer, 0, len(a.peers))
	for _, addr := range sortedKeys(a.peers) {
		peers = append(peers, a.peers[addr])
	}
	var active, standby int
	for _, r := range a.routes {
		if r.standby {
			standby++
		} else {
			active++
		}
	}
	closed := a.closed
	a.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(descRoutes, prometheus.GaugeValue, float64(active), "active")
	ch <- prometheus.MustNewConstMetric(descRoutes, prometheus.GaugeValue, float64(standby), "standby")
	ss, ok := a.sp.(sessionStater)
	if !ok || closed {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	states, err := ss.sessionStates(ctx)
	if err != nil {
		return
	}
	for _, p := range peers {
		st, ok := states[p.Address]
		if !ok {
			st = "idle"
		}
		peer := p.Address.String()
		up := 0.0
		if st == "established" {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descSessionUp, prometheus.GaugeValue, up, peer)
		for _, s := range sessionStates {
			v := 0.0
			if s == st {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(descSessionState, prometheus.GaugeValue, v, peer, s)
		}
	}
}
