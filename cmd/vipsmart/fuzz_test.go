package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vipsmart/vipsmart"
)

// FuzzPlacements: --placement values from operators. They are refused
// with EINVALID or parse to placements with a valid DC, a priority of
// 1-255 and a valid VIP name, which print back to an equal list.
func FuzzPlacements(f *testing.F) {
	for _, s := range []string{"dc-1:200", "dc-1:200:web,dc-2:150", " dc-1:1 , dc-2:255:v ", "dc-1", "dc-1:0", "dc-1:256", "dc-1:x", "DC:1", "dc-1:1:Web", "dc-1:1:a:b", ",", "dc-1:+5", "dc-1:0x10"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ps, err := parsePlacements([]string{s})
		if err != nil {
			if !vipsmart.IsCode(err, vipsmart.EINVALID) {
				t.Fatalf("parsePlacements(%q): %v", s, err)
			}
			return
		}
		g := vipsmart.GIP{Name: "g", Mode: vipsmart.ModeFailover, Placements: ps}
		g.Address, _ = vipsmart.ParseHostAddr("", "192.0.2.1")
		for _, p := range ps {
			if vipsmart.ValidateName("dc", p.DC) != nil || p.Priority < 1 || p.Priority > 255 || (p.VIP != "" && vipsmart.ValidateName("vip", p.VIP) != nil) {
				t.Fatalf("parsePlacements(%q) = %+v", s, ps)
			}
		}
		back, err := parsePlacements([]string{placementsString(ps)})
		if err != nil || len(back) != len(ps) {
			t.Fatalf("parsePlacements(%q) = %+v prints as %q, which parses to %+v, %v", s, ps, placementsString(ps), back, err)
		}
		for i := range ps {
			if back[i] != ps[i] {
				t.Fatalf("round trip of %q: %+v != %+v", s, back, ps)
			}
		}
		_ = g.Validate() // duplicate DCs are the GIP's rule, not the parser's
	})
}

// FuzzConfigFile: the YAML file of serve --config. A file is refused with
// an error, or every key it has is a flag of serve and setting the flags
// from it either works or fails with an error (never a panic).
func FuzzConfigFile(f *testing.F) {
	for _, s := range []string{"name: dc-1\nlisten: 127.0.0.1:9610\ndata-dir: /tmp/x\n", "heartbeat-interval: 100ms\nbgp-peer: [10.0.0.1,65000, 10.0.0.2,65001]\n",
		"colour: red\n", "name: [a, b]\n", ": :\n", "- a\n- b\n", "invite-ttl: forever\n", "config: /etc/x\n", "socket: /run/x.sock\napi-listen: 127.0.0.1:1\n", "{}", "name: &a x\nlisten: *a\n"} {
		f.Add(s)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data string) {
		path := filepath.Join(dir, "vipsmart.yaml")
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		g := &globals{}
		cmd := newServeCmd(g)
		if err := cmd.Flags().Set("config", path); err != nil {
			t.Fatal(err)
		}
		conf, err := loadConfig(cmd, &serveOptions{config: path})
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an empty error")
			}
			return
		}
		for k := range conf {
			if k == "config" || cmd.Flags().Lookup(k) == nil || strings.TrimSpace(k) == "" {
				t.Fatalf("config key %q accepted", k)
			}
		}
		_ = bindEnv(cmd.Flags(), conf)
	})
}
