package main

import (
	"log/slog"
	"os"
	"runtime/debug"
)

// defaultMemoryLimit is the soft memory limit of `vipsmart serve` when the
// environment sets none (GOMEMLIMIT): above it Go's garbage collector works
// harder (it never refuses an allocation). With the request limits of
// httpapi (limits.go) it keeps a flood of maximum-size peer bodies under
// the RSS bound stated in docs/operations.md.
const defaultMemoryLimit = 192 << 20

func setMemoryLimit(log *slog.Logger) {
	if v := os.Getenv("GOMEMLIMIT"); v != "" {
		log.Debug("memory limit from GOMEMLIMIT", "limit", v)
		return
	}
	debug.SetMemoryLimit(defaultMemoryLimit)
}
