package dataplane

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkSilentFailure times a silent failure of the active side, side by
// side in one run: its packets are dropped (iptables DROP on its uplink, in
// and out) with every link up, so no FIN, RST or link event reaches anyone.
//
//		flock /work/brief/bench.lock go test ./e2e/dataplane -run '^$' -bench BenchmarkSilentFailure -benchtime 20x -timeout 120m
//
//	  - bgp/{bird,frr}/no-bfd: two DCs announcing a failover GIP (dc-1:200,
//	    dc-2:100) to the router with its documented config, without BFD, at
//	    the default hold time (9 s on both sides). Timed: the drop to the
//	    router's best path for the GIP moving to dc-2. dc-2 announces the GIP
//	    as active within its heartbeat window, but its route only ties with
//	    dc-1's stale one, which the router keeps (lower router id for BIRD,
//	    older route for FRR) until its hold timer drops dc-1's session.
//	  - bgp/{bird,frr}/bfd: the same with --bgp-bfd at its defaults (100 ms,
//	    100 ms, 3: detection in 300 ms at the router).
//	  - keepalived/advert={1,0.1,0.01}: Debian's keepalived (VRRPv3) moving
//	    an address between two hosts on a bridge, the master's packets
//	    dropped the same way; timed until a client's ICMP echo is answered
//	    from the backup's MAC. 1 s is keepalived's default, 0.01 s its
//	    fastest (VRRPv3 counts in centiseconds). keepalived's BFD (track_bfd)
//	    puts an instance into FAULT when a BFD peer is lost; it does not make
//	    a backup take over from a master that went silent, so VRRP's own
//	    advertisements are what compare here.
//
// Each run then restores the failed side (not timed) and waits until
// everything is back. The figures are p50 and p99 in milliseconds (with
// 20 runs, p99 is the slowest run).
func BenchmarkSilentFailure(b *testing.B) {
	for _, k := range routerKinds {
		for _, bfd := range []bool{false, true} {
			name := fmt.Sprintf("bgp/%s/no-bfd", k)
			if bfd {
				name = fmt.Sprintf("bgp/%s/bfd", k)
			}
			b.Run(name, func(b *testing.B) { benchSilentBGP(b, k, bfd) })
		}
	}
	for _, adv := range []string{"1", "0.1", "0.01"} {
		b.Run("keepalived/advert="+adv, func(b *testing.B) { benchSilentKeepalived(b, adv) })
	}
}

func benchSilentBGP(b *testing.B, k routerKind, bfd bool) {
	need(b, append(k.bins(), "iptables", "ip6tables")...)
	var extra []string
	if bfd {
		extra = []string{"--bgp-bfd"}
	}
	x := newBGPLab(b, k, 2, extra...)
	x.federate()
	x.dcs[0].cli("gip", "add", "g1", gipPreempt, "--placement", "dc-1:200", "--placement", "dc-2:100")
	prefix := gipPreempt + "/32"
	steady := want{best: dcIP(1), bestLen: 1, other: dcIP(2), otherLen: 4}
	ready := func() {
		x.waitRoute(90*time.Second, prefix, steady)
		if bfd {
			x.waitBFD(dcIP(1))
		}
	}
	ready()
	var moved []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		x.drop(1)
		moved = append(moved, x.waitMoved(start, 30*time.Second, prefix, dcIP(2)))
		b.StopTimer()
		x.undrop(1)
		ready()
		b.StartTimer()
	}
	b.StopTimer()
	report(b, "best-moved", moved)
}

func benchSilentKeepalived(b *testing.B, advert string) {
	need(b, "keepalived", "iptables")
	x := newLANLab(b)
	client := x.host("client", 100)
	ka := x.host("ka", 1)
	kb := x.host("kb", 2)
	startKeepalived(b, ka, "ka", 200, advert)
	startKeepalived(b, kb, "kb", 100, advert)
	p := newPinger(b, client)
	waitOwner(b, client, p, ka, "steady", 30*time.Second)
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		dropAll(b, ka, "-A")
		at := waitOwner(b, client, p, kb, fmt.Sprintf("run %d", i), 20*time.Second)
		lat = append(lat, at.Sub(start))
		b.StopTimer()
		dropAll(b, ka, "-D")
		eventually(b, 20*time.Second, "kb goes back to backup", func() error {
			if hasAddr(b, kb, "eth0", lanVIP) {
				return fmt.Errorf("kb still has it")
			}
			return nil
		})
		sh(b, "ip", "-n", client, "neigh", "flush", "to", lanVIP)
		waitOwner(b, client, p, ka, "restored", 30*time.Second)
		b.StartTimer()
	}
	b.StopTimer()
	report(b, "answers", lat)
}
