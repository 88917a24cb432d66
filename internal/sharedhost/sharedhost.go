// Package sharedhost holds the one rule for running many vipsmart daemons
// on one host (the demo, the end-to-end benchmarks, a lab): when there are
// more daemons than the host has cores, each daemon runs Go code on one
// thread at a time (GOMAXPROCS=1).
//
// Why: a daemon's work is short messages handed between goroutines. With
// Go's default (one thread per core), a process that gets a message wakes a
// second thread for the goroutine it hands the message to; with ten
// processes on two cores almost every hand-off is a context switch between
// threads that compete for the same cores. One thread per daemon keeps the
// hand-offs inside a thread, and the processes, not their threads, share
// the cores. A daemon alone on its host (production: one per DC) keeps
// Go's default. An explicit GOMAXPROCS in the environment always wins.
package sharedhost

import (
	"os"
	"runtime"
)

// Env returns the environment entries to add to each of daemons daemon
// processes started on this host: GOMAXPROCS=1 when daemons exceeds the
// host's cores and the environment does not set GOMAXPROCS; otherwise
// none.
func Env(daemons int) []string {
	return env(daemons, runtime.NumCPU(), os.Getenv("GOMAXPROCS"))
}

func env(daemons, cores int, set string) []string {
	if set != "" || daemons <= cores {
		return nil
	}
	return []string{"GOMAXPROCS=1"}
}
