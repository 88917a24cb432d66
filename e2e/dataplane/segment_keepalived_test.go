package dataplane

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// kaNode is Debian's keepalived (VRRPv3 only) on one node of the segment,
// holding segVIP on eth0, with the same health check as the vipsmart
// tests: a TCP connect to the node's service (:8080) every second, 2
// failures to fail, 2 successes to recover (vipsmart's defaults).
type kaNode struct {
	s      *segment
	i      int
	advert string
	prio   int
	dir    string
	p      *proc
}

// segKeepalivedConf is the keepalived.conf of docs/ha.md ("Migrating
// from keepalived"), as written for n1, made into node role's with its
// priority, advert_int and check script. nopreempt: a node that comes back
// does not take the VIP back (vipsmart's default, --preempt=false).
func segKeepalivedConf(t testing.TB, role string, prio int, advert, check string) string {
	t.Helper()
	conf := haDocConfig(t, "keepalived.conf")
	for _, r := range [][2]string{
		{"router_id n1\n", "router_id " + role + "\n"},
		{"priority 150\n", "priority " + strconv.Itoa(prio) + "\n"},
		{"advert_int 1\n", "advert_int " + advert + "\n"},
		{`script "/usr/local/bin/chk_service"`, `script "` + check + `"`},
		{"\t" + segVIP + "/32 dev eth0\n", "\t" + segVIP + "/32 dev eth0\n"},
	} {
		if strings.Count(conf, r[0]) != 1 {
			t.Fatalf("docs/ha.md's keepalived.conf does not hold %q once:\n%s", r[0], conf)
		}
		conf = strings.Replace(conf, r[0], r[1], 1)
	}
	return conf
}

// startKeepalived starts keepalived on node i (priority prio, advert_int
// advert) and returns it.
func (s *segment) startKeepalived(i, prio int, advert string) *kaNode {
	s.t.Helper()
	k := &kaNode{s: s, i: i, advert: advert, prio: prio, dir: s.t.TempDir()}
	check := filepath.Join(k.dir, "chk_service")
	if err := os.WriteFile(check, []byte("#!/bin/bash\nexec 3<>/dev/tcp/127.0.0.1/"+strconv.Itoa(segServicePort)+"\n"), 0o755); err != nil {
		s.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(k.dir, "keepalived.conf"), []byte(segKeepalivedConf(s.t, "n"+strconv.Itoa(i+1), prio, advert, check)), 0o644); err != nil {
		s.t.Fatal(err)
	}
	k.start()
	// keepalived's VRRP child outlives its parent's SIGKILL: kill it too.
	s.t.Cleanup(k.killVRRP)
	return k
}

func (k *kaNode) start() {
	k.s.t.Helper()
	_ = os.Remove(filepath.Join(k.dir, "v.pid"))
	k.p = startProc(k.s.t, k.s.nodes[k.i], "keepalived n"+strconv.Itoa(k.i+1), "keepalived", "--dont-fork", "--log-console", "--log-detail", "--vrrp",
		"--use-file", filepath.Join(k.dir, "keepalived.conf"), "--pid", filepath.Join(k.dir, "k.pid"),
		"--vrrp_pid", filepath.Join(k.dir, "v.pid"), "--checkers_pid", filepath.Join(k.dir, "c.pid"))
	eventually(k.s.t, 10*time.Second, "keepalived's VRRP process started", func() error {
		if k.vrrpPID() == 0 {
			return fmt.Errorf("no %s", filepath.Join(k.dir, "v.pid"))
		}
		return nil
	})
}

func (k *kaNode) vrrpPID() int {
	b, err := os.ReadFile(filepath.Join(k.dir, "v.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

func (k *kaNode) killVRRP() {
	if pid := k.vrrpPID(); pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// kill9 is kill -9 of keepalived on the node: its VRRP process and its
// parent at once (the parent alone would restart the VRRP process). The
// address stays bound: nothing removes it.
func (k *kaNode) kill9() {
	k.killVRRP()
	k.p.kill()
}

// restart starts keepalived again on a node whose keepalived was killed
// (after removing the address the killed one left, as an operator or a
// reboot would), and waits until it is a backup.
func (k *kaNode) restart() {
	k.s.t.Helper()
	_, _ = execOut("ip", "-n", k.s.nodes[k.i], "addr", "del", segVIP+"/32", "dev", "eth0")
	k.start()
	k.waitState("BACKUP", 20*time.Second)
}

// waitState waits until the node's keepalived logged that it entered
// state (MASTER, BACKUP, FAULT) since its start.
func (k *kaNode) waitState(state string, timeout time.Duration) {
	k.s.t.Helper()
	eventually(k.s.t, timeout, "keepalived n"+strconv.Itoa(k.i+1)+" in "+state, func() error {
		logs := k.p.logs.String()
		if j := strings.LastIndex(logs, "Entering "); j < 0 || !strings.HasPrefix(logs[j:], "Entering "+state+" STATE") {
			return fmt.Errorf("not in %s yet", state)
		}
		return nil
	})
}

// holder returns the index of the node that has the VIP bound, failing
// unless exactly one has (-1 with an error).
func (s *segment) boundOn() ([]int, error) {
	var on []int
	for i := range s.nodes {
		out, err := execOut("ip", "-n", s.nodes[i], "-o", "addr", "show", "dev", "eth0")
		if err != nil {
			return nil, err
		}
		if strings.Contains(out, " "+segVIP+"/") {
			on = append(on, i)
		}
	}
	return on, nil
}

// waitHolder waits until the VIP is bound on node i alone and the client's
// pings are answered from its MAC (after since).
func (s *segment) waitHolder(i int, since time.Time, timeout time.Duration, what string) {
	s.t.Helper()
	eventually(s.t, timeout, what+": the VIP bound on n"+strconv.Itoa(i+1)+" alone", func() error {
		on, err := s.boundOn()
		if err != nil {
			return err
		}
		if len(on) != 1 || on[0] != i {
			return fmt.Errorf("VIP bound on nodes %v (0-based)", on)
		}
		return nil
	})
	s.probe.waitEcho(s.t, s.mac(i), since, timeout, what+": pings answered from n"+strconv.Itoa(i+1))
}

// waitMoved waits until the client's last pings (5 in a row) are answered
// from one node other than old, which has the VIP bound, and returns that
// node. (With two masters for a moment, the first answer may come from
// the one that yields.)
func (s *segment) waitMoved(old int, since time.Time, timeout time.Duration, what string) int {
	s.t.Helper()
	to := -1
	eventually(s.t, timeout, what+": pings answered from a node other than n"+strconv.Itoa(old+1), func() error {
		_, es := s.probe.snapshot()
		if len(es) < 5 || !es[len(es)-5].at.After(since) {
			return fmt.Errorf("fewer than 5 answers since the failure")
		}
		m := es[len(es)-1].mac
		for _, e := range es[len(es)-5:] {
			if e.mac != m {
				return fmt.Errorf("answers from several MACs")
			}
		}
		if m == s.mac(old) {
			return fmt.Errorf("still answered by n%d", old+1)
		}
		if to = s.holderByMAC(m); to < 0 {
			return fmt.Errorf("echo reply from %s, no node's MAC", m)
		}
		if on, err := s.boundOn(); err != nil || !slices.Contains(on, to) {
			return fmt.Errorf("n%d answers but the VIP is bound on %v (0-based), %v", to+1, on, err)
		}
		return nil
	})
	return to
}

// TestSegmentKeepalived: keepalived (VRRPv3) on n1-n3 with priorities
// 200/150/100, nopreempt, advert_int 0.1 (tuned, to keep the test short;
// the benchmark also runs the default 1 s), the TCP health check of
// vipsmart's tests. Asserted: the VIP moves off the holder to a live node
// after a link cut of the holder, after its health check fails, and after
// kill -9 of its keepalived, and the client's outage is measured. Which
// backup wins is not asserted: at advert_int 0.1 VRRP's priority skew
// between 150 and 100 is 20 ms, less than the scheduling jitter of a busy
// machine, and keepalived does pick the lower one now and then. Logged,
// not asserted, because it is keepalived's behaviour and not ours: after
// kill -9 the old holder keeps the address and answers ARP alongside the
// new holder (two MACs), which is what vipsmart's tests assert never
// happens.
func TestSegmentKeepalived(t *testing.T) {
	need(t, "keepalived")
	s := newSegment(t, false)
	var ks []*kaNode
	for i, prio := range []int{200, 150, 100} {
		ks = append(ks, s.startKeepalived(i, prio, "0.1"))
	}
	s.waitHolder(0, time.Time{}, 20*time.Second, "start")
	report := func(what string, ev time.Time, from, to int) {
		t.Helper()
		time.Sleep(500 * time.Millisecond)
		m := s.analyse(ev.Add(-time.Second), ev, time.Now(), s.mac(from), s.mac(to))
		t.Logf("keepalived advert_int 0.1, %s: n%d -> n%d: %s", what, from+1, to+1, m)
	}

	// Link cut of the holder.
	ev := time.Now()
	s.cutLink(0)
	h := s.waitMoved(0, ev, 10*time.Second, "n1's link cut")
	report("link cut", ev, 0, h)
	s.healLink(0)
	ks[0].waitState("BACKUP", 10*time.Second) // nopreempt: it stays a backup

	// Health check fails on the holder.
	ev = time.Now()
	s.failService(h)
	h2 := s.waitMoved(h, ev, 15*time.Second, "the holder's health check fails")
	report("health check failing", ev, h, h2)
	s.serve(h)
	ks[h].waitState("BACKUP", 10*time.Second)

	// kill -9 of the holder's keepalived: another node takes it; the
	// killed one keeps its address.
	ev = time.Now()
	ks[h2].kill9()
	h3 := s.waitMoved(h2, ev, 10*time.Second, "kill -9 of the holder's keepalived")
	time.Sleep(500 * time.Millisecond)
	m := s.analyse(ev.Add(-time.Second), ev, time.Now(), s.mac(h2), s.mac(h3))
	on, err := s.boundOn()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("keepalived advert_int 0.1, kill -9: n%d -> n%d: %s; the VIP is bound on nodes %v (0-based)", h2+1, h3+1, m, on)
}
