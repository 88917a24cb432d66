package daemonenv

import (
	"slices"
	"testing"
)

func TestEnv(t *testing.T) {
	const pace = "GODEBUG=" + SysmonPace
	for _, c := range []struct {
		daemons, cores int
		godebug        string
		maxprocs       string
		want           []string
	}{
		{daemons: 10, cores: 2, want: []string{pace, "GOMAXPROCS=1"}},
		{daemons: 3, cores: 2, want: []string{pace, "GOMAXPROCS=1"}},
		{daemons: 2, cores: 2, want: []string{pace}},
		{daemons: 3, cores: 8, want: []string{pace}},
		{daemons: 1, cores: 1, want: []string{pace}},
		{daemons: 10, cores: 2, maxprocs: "2", want: []string{pace}},
		{daemons: 1, cores: 2, godebug: "madvdontneed=1", want: []string{"GODEBUG=madvdontneed=1," + SysmonPace}},
		{daemons: 1, cores: 2, godebug: "schedtrace=0"},
		{daemons: 10, cores: 2, godebug: "gctrace=1,schedtrace=1000", want: []string{"GOMAXPROCS=1"}},
	} {
		got := env(c.daemons, c.cores, c.godebug, c.maxprocs)
		if !slices.Equal(got, c.want) {
			t.Errorf("env(%d daemons, %d cores, GODEBUG=%q, GOMAXPROCS=%q) = %q, want %q", c.daemons, c.cores, c.godebug, c.maxprocs, got, c.want)
		}
	}
}
