// Package daemonenv holds the Go runtime settings that vipsmart's own
// launchers give a `vipsmart serve` process through its environment: the
// demo and the e2e harness through Env, the systemd unit and the container
// image (packaging/) statically. A setting the environment already has
// always wins.
//
// Two settings (docs/operations.md, "Go runtime settings"; the figures in
// BENCHMARKS.md, "hop9" and "daemonenv"):
//
//   - GODEBUG=schedtrace=2147483647 for every daemon. Go's sysmon thread
//     sleeps deeply while every P is idle; the next system call wakes it,
//     and it then polls every 20 µs for about a millisecond before backing
//     off to 10 ms. A daemon's life is short messages (a heartbeat, a lock,
//     a commit) with idle gaps between them, so nearly every message
//     started such a burst: 43% of the daemons' context switches and a
//     quarter of their CPU at rest. A schedtrace period is the runtime's
//     only switch that keeps sysmon out of its deep sleep (it then stays
//     at its 10 ms pace; golang/go#18236 is the upstream issue about
//     sysmon's fixed pace). The price is one "SCHED" line on stderr every
//     2147483647 ms (24.8 days, the largest period) of the host's uptime.
//   - GOMAXPROCS=1 when one host runs more daemons than it has cores (the
//     demo, a lab, the benchmarks): with Go's default of a thread per
//     core, a hand-off between goroutines may wake a second thread, a
//     context switch between threads that compete for the same cores. A
//     daemon alone on its host (one per DC, as in production) keeps Go's
//     default: applying a 10,000-GIP batch wants every core.
package daemonenv

import (
	"os"
	"runtime"
	"strings"
)

// SysmonPace is the GODEBUG setting that keeps sysmon out of its deep
// sleep (see the package comment).
const SysmonPace = "schedtrace=2147483647"

// Env returns the environment entries to add to each of daemons daemon
// processes started on this host (nil when there are none to add).
func Env(daemons int) []string {
	return env(daemons, runtime.NumCPU(), os.Getenv("GODEBUG"), os.Getenv("GOMAXPROCS"))
}

func env(daemons, cores int, godebug, maxprocs string) []string {
	var out []string
	if !strings.Contains(godebug, "schedtrace=") {
		if godebug != "" {
			out = append(out, "GODEBUG="+godebug+","+SysmonPace)
		} else {
			out = append(out, "GODEBUG="+SysmonPace)
		}
	}
	if maxprocs == "" && daemons > cores {
		out = append(out, "GOMAXPROCS=1")
	}
	return out
}
