package e2e

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestServeRefusesBadBFDFlags: bad BFD settings are refused with exit
// status 2 and a message naming the flag, before the daemon serves.
func TestServeRefusesBadBFDFlags(t *testing.T) {
	base := []string{"serve", "--name", "dc-1", "--announcer", "bgp", "--bgp-asn", "65001", "--bgp-router-id", "10.0.0.1",
		"--bgp-peer", "127.0.0.1,65000", "--bgp-listen-port", "-1"}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--bgp-bfd", "--bfd-min-rx", "1ms"}, "BFD interval 1ms: want 10ms to 10s"},
		{[]string{"--bgp-bfd", "--bfd-min-tx", "1m"}, "BFD interval 1m0s: want 10ms to 10s"},
		{[]string{"--bgp-bfd", "--bfd-multiplier", "0"}, "BFD multiplier 0: want 1 to 255"},
		{[]string{"--bgp-bfd", "--bgp-multihop"}, "BFD cannot be combined with --bgp-multihop"},
		{[]string{"--bfd-multiplier", "5"}, "--bfd-multiplier has no effect without --bgp-bfd"},
	} {
		args := append(append([]string{}, base...), "--listen", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "--data-dir", t.TempDir())
		args = append(args, c.args...)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
		cancel()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), c.want) {
			t.Errorf("serve %s: %v, want exit status 2 and %q:\n%s", strings.Join(c.args, " "), err, c.want, out)
		}
	}
}
