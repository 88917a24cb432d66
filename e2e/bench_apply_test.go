package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/manifest"
)

// BenchmarkApply measures `vipsmart apply` of 10,000 GIPs, each placed in
// every DC, in federations of N real daemons: the whole command (reading
// the JSON file, the diff, and the one federation change committed on
// every member or none) until it exits (apply-s), until every member holds
// the 10,000 GIPs at the new epoch (all-members-s), the same apply again
// (nothing to change, no federation change: noop-apply-s), the CPU time
// the CLI spent in the first (cli-cpu-s: reading the file, sending it,
// reading and printing the 10,000 changes with -o json, to a file as
// `> FILE` does: through a pipe, the test process reading it would be
// measured too), the CPU time
// all daemons spent from the start of the apply until every member held
// the GIPs (daemons-cpu-s: on a busy machine the wall-clock figures grow
// with the load, this one much less), the minor page faults they took
// meanwhile (daemons-minflt: first touches of fresh memory, which cost
// 30-50 µs each on this VM, BENCHMARKS.md "daemonenv"), and the largest
// resident memory of a DC afterwards (max-rss-MB, peak-rss-MB: VmHWM).
// Against it, "one-by-one" adds 1,000 GIPs with `gip add` (the API call
// the CLI makes), one federation change each, in a fresh federation of N,
// and extrapolates to 10,000 (one-by-one-10k-s; an under-estimate, since
// each change costs more as the set grows).
//
//	flock /work/brief/bench.lock go test ./e2e -run '^$' -bench BenchmarkApply -benchtime 1x -timeout 30m
func BenchmarkApply(b *testing.B) {
	const count, oneByOne = 10000, 1000
	for _, n := range []int{2, 5, 10} {
		b.Run(fmt.Sprintf("members=%d/apply-10000", n), func(b *testing.B) {
			ds := startFederation(b, n, benchFlags()...)
			waitSettled(b, ds)
			gips := make([]vipsmart.GIP, count)
			for i := range gips {
				g := vipsmart.GIP{Name: fmt.Sprintf("g%05d", i), Address: netip.AddrFrom4([4]byte{10, byte(100 + i>>16), byte(i >> 8), byte(i)}), Mode: vipsmart.ModeFailover, Preempt: true}
				for j, d := range ds {
					g.Placements = append(g.Placements, vipsmart.Placement{DC: d.name, Priority: 200 - j})
				}
				gips[i] = g
			}
			f := filepath.Join(b.TempDir(), "gips.json")
			fh, err := os.Create(f)
			if err != nil {
				b.Fatal(err)
			}
			if err := manifest.WriteJSON(fh, manifest.Objects(nil, gips)); err != nil {
				b.Fatal(err)
			}
			fh.Close()
			fi, _ := os.Stat(f)
			st0, _ := ds[0].client().Status(context.Background())
			for i := 0; i < b.N; i++ {
				out, err := os.Create(filepath.Join(b.TempDir(), "apply-out.json"))
				if err != nil {
					b.Fatal(err)
				}
				cpu0, faults0 := daemonStat(ds)
				start := time.Now()
				r, cliCPU := runCLITo(b, 5*time.Minute, out, ds[0].server(), "apply", "-f", f, "-o", "json", "--timeout", "5m")
				applied := time.Since(start)
				out.Close()
				if r.code != 0 {
					b.Fatalf("apply: exit %d\n%s", r.code, r.stderr)
				}
				printed, err := os.ReadFile(out.Name())
				if err != nil {
					b.Fatal(err)
				}
				if n := bytes.Count(printed, []byte(`"action": "add"`)); n != count {
					b.Fatalf("apply -o json printed %d added objects, want %d", n, count)
				}
				waitGIPs(b, ds, st0.Epoch+1, count)
				all := time.Since(start)
				cpu, faults := daemonStat(ds)
				cpu, faults = cpu-cpu0, faults-faults0
				start = time.Now()
				r = cli(b, ds[0].server(), "apply", "-f", f, "--timeout", "5m")
				noop := time.Since(start)
				if r.code != 0 || !strings.Contains(r.stdout, "nothing to change") {
					b.Fatalf("second apply: exit %d\n%s%s", r.code, r.stdout, r.stderr)
				}
				b.ReportMetric(applied.Seconds(), "apply-s")
				b.ReportMetric(all.Seconds(), "all-members-s")
				b.ReportMetric(noop.Seconds(), "noop-apply-s")
				b.ReportMetric(cpu.Seconds(), "daemons-cpu-s")
				b.ReportMetric(cliCPU.Seconds(), "cli-cpu-s")
				b.ReportMetric(float64(faults), "daemons-minflt")
			}
			time.Sleep(2 * time.Second) // heartbeats and GIP activation over the new set
			var maxRSS, peak int
			for _, d := range ds {
				maxRSS = max(maxRSS, procStatusKB(b, d, "VmRSS"))
				peak = max(peak, procStatusKB(b, d, "VmHWM"))
			}
			b.ReportMetric(float64(maxRSS)/1024, "max-rss-MB")
			b.ReportMetric(float64(peak)/1024, "peak-rss-MB")
			time.Sleep(4 * time.Second) // past the daemons' collection after a large update (daemon/apply.go, freeAfter)
			maxRSS = 0
			for _, d := range ds {
				maxRSS = max(maxRSS, procStatusKB(b, d, "VmRSS"))
			}
			b.ReportMetric(float64(maxRSS)/1024, "later-rss-MB")
			b.ReportMetric(float64(fi.Size())/(1<<20), "file-MiB")
			b.ReportMetric(float64(unreachableEvents(ds)), "unreachable-events")
			b.ReportMetric(0, "ns/op")
		})
		b.Run(fmt.Sprintf("members=%d/one-by-one-1000", n), func(b *testing.B) {
			ds := startFederation(b, n, benchFlags()...)
			waitSettled(b, ds)
			c := ds[0].client()
			ctx := context.Background()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				for j := range oneByOne {
					g := vipsmart.GIP{Name: fmt.Sprintf("o%d-%05d", i, j), Address: netip.AddrFrom4([4]byte{10, byte(200 + i), byte(j >> 8), byte(j)}), Mode: vipsmart.ModeFailover, Preempt: true}
					for k, d := range ds {
						g.Placements = append(g.Placements, vipsmart.Placement{DC: d.name, Priority: 200 - k})
					}
					if _, err := c.AddGIP(ctx, g); err != nil {
						b.Fatalf("gip add %d: %v", j, err)
					}
				}
				took := time.Since(start)
				b.ReportMetric(took.Seconds(), "one-by-one-1000-s")
				b.ReportMetric(took.Seconds()*count/oneByOne, "one-by-one-10k-s")
			}
			b.ReportMetric(0, "ns/op")
		})
	}
}

// waitGIPs waits until every daemon of ds is a member at epoch with count
// GIPs.
func waitGIPs(b testing.TB, ds []*daemon, epoch uint64, count int) {
	b.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(2 * time.Minute)
	for _, d := range ds {
		for {
			st, err := d.client().Status(ctx)
			if err == nil && st.Status == vipsmart.StatusMember && st.Epoch == epoch && st.GIPs == count {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%s: not a member at epoch %d with %d GIPs after 2m: %+v %v", d.name, epoch, count, st, err)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
}

func procStatusKB(b testing.TB, d *daemon, key string) int {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		b.Skipf("no /proc: %v", err)
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(l, key+":") {
			f := strings.Fields(l)
			kb, _ := strconv.Atoi(f[1])
			return kb
		}
	}
	b.Fatalf("no %s line", key)
	return 0
}

// unreachableEvents counts the "is unreachable" events the daemons of ds
// logged so far: each is one reachability flap seen by one DC (and makes
// it evaluate every GIP again).
func unreachableEvents(ds []*daemon) int {
	n := 0
	for _, d := range ds {
		n += strings.Count(d.Logs(), " is unreachable: not heard from")
	}
	return n
}
