package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestBadServeSettingsAreRefused is the daemon's half of the bad-input
// suite (issue 15, finding 7): durations and counts out of their
// documented ranges are refused from every source (flag, environment,
// config file) with a message naming that source, the range and the fix,
// exit status 2, and nothing is created.
func TestBadServeSettingsAreRefused(t *testing.T) {
	cases := []struct {
		name   string
		config string
		env    []string
		flags  []string
		msg    string
	}{
		{"invite-ttl 1ns in the config file", "invite-ttl: 1ns\n", nil, nil, "config key invite-ttl (in CONFIG) is 1ns, out of range: give a duration from 1s to 10m0s"},
		{"phase-timeout 100h in the config file", "phase-timeout: 100h\n", nil, nil, "config key phase-timeout (in CONFIG) is 100h0m0s, out of range: give a duration from 100ms to 1m0s"},
		{"shutdown-timeout -5s in the config file", "shutdown-timeout: -5s\n", nil, nil, "config key shutdown-timeout (in CONFIG) is -5s, out of range: give a duration from 0s to 10m0s"},
		{"max-events 1e20 in the config file", "max-events: 99999999999999999999\n", nil, nil, `config key max-events: "99999999999999999999" is not valid: give a whole number from 100 to 1000000`},
		{"heartbeat-misses 0 in the environment", "", []string{"VIPSMART_HEARTBEAT_MISSES=0"}, nil, "environment variable VIPSMART_HEARTBEAT_MISSES is 0, out of range: give a whole number from 1 to 100"},
		{"garp-count 1000 on the command line", "", nil, []string{"--garp-count", "1000"}, "--garp-count is 1000, out of range: give a whole number from 0 to 100"},
		{"phase-timeout not shorter than the TTLs", "", nil, []string{"--phase-timeout", "20s"}, "--phase-timeout (20s) must be shorter than --invite-ttl (default) (10s)"},
		{"a map in the config file", "bgp-peer:\n  a: b\n", nil, nil, "key bgp-peer (line 2) holds a map"},
		{"a bad BGP peer", "", nil, []string{"--announcer", "bgp", "--bgp-asn", "65000", "--bgp-router-id", "192.0.2.1", "--bgp-peer", "300.1.1.1,65001"}, "--bgp-peer: "},
		{"rebuild flags alone", "", nil, []string{"--rebuild-federation", "f-x"}, "--rebuild-federation, --rebuild-from and --rebuild-identity go together"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			dataDir := filepath.Join(dir, "data")
			args := []string{"serve", "--name", "dc-1", "--listen", "127.0.0.1:" + strconv.Itoa(freePort(t)), "--data-dir", dataDir}
			msg := c.msg
			if c.config != "" {
				conf := filepath.Join(dir, "vipsmart.yaml")
				if err := os.WriteFile(conf, []byte(c.config), 0o600); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--config", conf)
				msg = strings.ReplaceAll(msg, "CONFIG", conf)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, append(args, c.flags...)...)
			cmd.Env = append(os.Environ(), c.env...)
			out, err := cmd.CombinedOutput()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != 2 {
				t.Errorf("exit status %d; want 2 (output: %s)", code, out)
			}
			if !strings.Contains(string(out), msg) {
				t.Errorf("output %q does not say %q", out, msg)
			}
			if _, err := os.Stat(filepath.Join(dataDir, "vipsmart.db")); err == nil {
				t.Errorf("a refused start created the store")
			}
		})
	}
}
