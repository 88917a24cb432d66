package sharedhost

import (
	"slices"
	"testing"
)

func TestEnv(t *testing.T) {
	for _, c := range []struct {
		daemons, cores int
		set            string
		want           []string
	}{
		{daemons: 10, cores: 2, want: []string{"GOMAXPROCS=1"}},
		{daemons: 3, cores: 2, want: []string{"GOMAXPROCS=1"}},
		{daemons: 2, cores: 2},
		{daemons: 3, cores: 8},
		{daemons: 1, cores: 1},
		{daemons: 10, cores: 2, set: "2"},
	} {
		if got := env(c.daemons, c.cores, c.set); !slices.Equal(got, c.want) {
			t.Errorf("env(%d daemons, %d cores, GOMAXPROCS=%q) = %q, want %q", c.daemons, c.cores, c.set, got, c.want)
		}
	}
}
