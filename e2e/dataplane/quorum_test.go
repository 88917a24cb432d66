package dataplane

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
)

// The consistent partition policy against BIRD (docs/gips.md,
// "Partitions"): three DCs, or two DCs and a witness, each linked to the
// router. The active DC is partitioned from the other DCs (its federation
// traffic to them is dropped) while it keeps its router link and its BGP
// sessions.

const (
	gipConsistent = "203.0.113.50"
	gipAvailable  = "203.0.113.51"
)

// quorumLab is a BGP lab of three DC namespaces; with witness, dc-3 runs
// `serve --witness` without BGP.
func quorumLab(t testing.TB, witness bool, extra ...string) *bgpLab {
	t.Helper()
	need(t, "bird", "iptables")
	b := newBGPLab(t, birdRouter, 3, extra...)
	if witness {
		b.dcs[2].extra = append([]string{"--witness"}, extra...)
	}
	b.federate()
	placements := []string{"--placement", "dc-1:200", "--placement", "dc-2:100"}
	if !witness {
		placements = append(placements, "--placement", "dc-3:50")
	}
	b.dcs[0].cli(append([]string{"gip", "add", "db", gipConsistent, "--partition", "consistent"}, placements...)...)
	b.dcs[0].cli(append([]string{"gip", "add", "av", gipAvailable}, placements...)...)
	for _, g := range []string{gipConsistent, gipAvailable} {
		b.waitRoute(30*time.Second, g+"/32", want{best: dcIP(1), bestLen: 1, other: dcIP(2), otherLen: 4})
	}
	return b
}

// partition drops DC i's traffic to and from the other DCs (IPv4: the
// federation runs on the DCs' IPv4 addresses), not to or from the router.
func (b *bgpLab) partition(i int, op string) {
	b.t.Helper()
	var rules strings.Builder
	rules.WriteString("*filter\n")
	for j := range b.dcs {
		if j+1 != i {
			fmt.Fprintf(&rules, "%s OUTPUT -d %s -j DROP\n%s INPUT -s %s -j DROP\n", op, dcIP(j+1), op, dcIP(j+1))
		}
	}
	rules.WriteString("COMMIT\n")
	nsExecStdin(b.t, b.dcs[i-1].ns, rules.String(), "iptables-restore", "--noflush")
}

// sample is what the router held for a prefix at one instant.
type sample struct {
	at    time.Time
	paths []bgpPath
}

// unprepended returns the next hops of the paths whose AS path is only
// the DC's own AS (active announcements, not standby ones).
func (s sample) unprepended() []string {
	var out []string
	for _, p := range s.paths {
		if len(p.asPath) == 1 {
			out = append(out, p.via)
		}
	}
	return out
}

// sampler reads the router's paths of prefixes continuously (about every
// 2 ms) on its own BIRD connection until stopped.
type sampler struct {
	mu      sync.Mutex
	samples map[string][]sample
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
	err     error
}

func (b *bgpLab) sample(prefixes ...string) *sampler {
	b.t.Helper()
	c, err := dialBIRD(b.rt.(birdRouterOf).conn.RemoteAddr().String())
	if err != nil {
		b.t.Fatal(err)
	}
	s := &sampler{samples: map[string][]sample{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer c.conn.Close()
		for {
			select {
			case <-s.stop:
				return
			default:
			}
			for _, p := range prefixes {
				ps, err := c.paths(p)
				now := time.Now()
				s.mu.Lock()
				if err != nil && s.err == nil {
					s.err = err
				}
				s.samples[p] = append(s.samples[p], sample{now, ps})
				s.mu.Unlock()
			}
			time.Sleep(time.Millisecond)
		}
	}()
	return s
}

func (s *sampler) end() {
	s.once.Do(func() { close(s.stop) })
	<-s.done
}

// first returns when, at or after from, f first held for prefix.
func (s *sampler) first(prefix string, from time.Time, f func(sample) bool) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range s.samples[prefix] {
		if !x.at.Before(from) && f(x) {
			return x.at, true
		}
	}
	return time.Time{}, false
}

// waitFor waits until a sample taken after from satisfies f.
func (s *sampler) waitFor(t testing.TB, timeout time.Duration, what, prefix string, from time.Time, f func(sample) bool) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if at, ok := s.first(prefix, from, f); ok {
			return at
		}
		if time.Now().After(deadline) {
			s.mu.Lock()
			last := s.samples[prefix][len(s.samples[prefix])-1]
			s.mu.Unlock()
			t.Fatalf("%s: not seen within %s; last sample %v", what, timeout, last.paths)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// longestOverlap returns the longest stretch of time in which the router
// held two or more unprepended paths for prefix (from the first sample
// that showed it to the first that did not), and how many samples there
// were.
func (s *sampler) longestOverlap(prefix string) (time.Duration, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var longest time.Duration
	var start time.Time
	for _, x := range s.samples[prefix] {
		if len(x.unprepended()) >= 2 {
			if start.IsZero() {
				start = x.at
			}
			// A single sample counts as an overlap of at least 1ns.
			longest = max(longest, x.at.Sub(start)+1)
		} else {
			start = time.Time{}
		}
	}
	return longest, len(s.samples[prefix])
}

func gipShow(t testing.TB, d *dc, name string) vipsmart.GIPInfo {
	t.Helper()
	var g vipsmart.GIPInfo
	if err := json.Unmarshal([]byte(d.cli("gip", "show", name, "-o", "json")), &g); err != nil {
		t.Fatal(err)
	}
	return g
}

// quorumBound is the documented failover bound of a consistent GIP at
// default timers (docs/gips.md): support window 800 ms, one interval for
// the fences to arrive, one for the answer, ticks; plus BGP to BIRD. The
// assertion leaves a generous margin for a busy 2-core machine.
const quorumBound = 1300 * time.Millisecond

func TestQuorumPartition(t *testing.T) {
	for _, witness := range []bool{false, true} {
		name := "3dcs"
		if witness {
			name = "2dcs+witness"
		}
		t.Run(name, func(t *testing.T) {
			b := quorumLab(t, witness)
			d1, d2, d3 := b.dcs[0], b.dcs[1], b.dcs[2]
			if witness {
				out := d1.cli("dc", "list")
				if !strings.Contains(out, "(witness)") {
					t.Fatalf("dc list does not show the witness:\n%s", out)
				}
				if _, err := nsExecErr(d3.ns, bin, "--server", d3.sock, "vip", "add", "w", "198.18.0.99"); err == nil || !strings.Contains(err.Error(), "witness") {
					t.Fatalf("a witness accepted a VIP: %v", err)
				}
			}
			g := gipShow(t, d1, "db")
			if g.Quorum == nil || !g.Quorum.InMajority || !strings.Contains(g.Quorum.Why, "active here") {
				t.Fatalf("gip show db on dc-1 before the partition: %+v", g.Quorum)
			}
			pc, pa := gipConsistent+"/32", gipAvailable+"/32"
			s := b.sample(pc, pa)
			defer s.end()

			t0 := time.Now()
			b.partition(1, "-A")
			// consistent: dc-2 takes over within the bound; dc-1 (the
			// minority) withdraws every path of the GIP.
			took := s.waitFor(t, 10*time.Second, "dc-2 active for db", pc, t0, func(x sample) bool {
				u := x.unprepended()
				return len(u) == 1 && u[0] == dcIP(2)
			}).Sub(t0)
			s.waitFor(t, 5*time.Second, "dc-1 withdrew db", pc, t0, func(x sample) bool {
				for _, p := range x.paths {
					if p.via == dcIP(1) {
						return false
					}
				}
				return true
			})
			// available: both sides announce it.
			both := s.waitFor(t, 10*time.Second, "both DCs active for av", pa, t0, func(x sample) bool {
				return len(x.unprepended()) == 2
			}).Sub(t0)
			t.Logf("%s: partition: consistent db moved to dc-2 after %s (bound %s); available av active on both sides after %s", name, took, quorumBound, both)
			if took > quorumBound+time.Second {
				t.Errorf("consistent failover took %s, more than the bound %s (+1s margin)", took, quorumBound)
			}
			g1, g2 := gipShow(t, d1, "db"), gipShow(t, d2, "db")
			if g1.Quorum.InMajority || !strings.Contains(g1.Quorum.Why, "not in the majority") {
				t.Errorf("gip show db on dc-1 (minority): %+v", g1.Quorum)
			}
			if !g2.Quorum.InMajority || !strings.Contains(g2.Quorum.Why, "active here") {
				t.Errorf("gip show db on dc-2 (majority): %+v", g2.Quorum)
			}
			evs := events(t, d1)
			if !slices.ContainsFunc(evs, func(e vipsmart.Event) bool {
				return e.Kind == vipsmart.EventQuorum && strings.Contains(e.Message, "not in the majority")
			}) {
				t.Errorf("dc-1 recorded no event for leaving the majority")
			}

			// Heal: one active, the other standby (prepended), for both.
			t1 := time.Now()
			b.partition(1, "-D")
			for _, p := range []string{pc, pa} {
				s.waitFor(t, 20*time.Second, "one active after the heal", p, t1, func(x sample) bool {
					u := x.unprepended()
					if len(u) != 1 || u[0] != dcIP(1) {
						return false
					}
					for _, q := range x.paths {
						if q.via == dcIP(2) && len(q.asPath) == 4 {
							return true
						}
					}
					return false
				})
			}

			// kill -9 of the active DC: failover within the bound.
			t2 := time.Now()
			d1.p.kill()
			killTook := s.waitFor(t, 10*time.Second, "dc-2 active for db after kill -9 of dc-1", pc, t2, func(x sample) bool {
				u := x.unprepended()
				return len(u) == 1 && u[0] == dcIP(2)
			}).Sub(t2)
			t.Logf("%s: kill -9: consistent db moved to dc-2 after %s", name, killTook)
			if killTook > quorumBound+time.Second {
				t.Errorf("consistent failover after kill -9 took %s, more than the bound %s (+1s margin)", killTook, quorumBound)
			}
			s.end()
			if s.err != nil {
				t.Fatalf("sampling BIRD: %v", s.err)
			}
			over, n := s.longestOverlap(pc)
			overA, _ := s.longestOverlap(pa)
			t.Logf("%s: %d samples of %s; longest time with two unprepended paths: consistent %s, available %s", name, n, pc, over, overA)
			if over != 0 {
				t.Errorf("the router held two unprepended paths for the consistent GIP for %s", over)
			}
			if overA == 0 {
				t.Errorf("the available GIP never had two unprepended paths during the partition: the sampler may be blind")
			}
		})
	}
}

// nsExecStdin runs a command in ns with stdin and fails t unless it
// succeeds.
func nsExecStdin(t testing.TB, ns, stdin string, args ...string) {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s in %s: %v\n%s", strings.Join(args, " "), ns, err, out)
	}
}

// nsExecErr runs a command in ns and returns its output, and an error
// with the output when it fails.
func nsExecErr(ns string, args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%v: %s", err, out)
	}
	return string(out), nil
}
