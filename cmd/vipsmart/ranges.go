package main

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"github.com/vipsmart/vipsmart/announce/bgp"
)

// A flagRange is the documented range of a duration or count flag (the
// README's flag table says the same). It is checked for every source the
// value can come from (command line, environment, config file), and the
// refusal names that source.
type flagRange struct {
	flag     string
	min, max int64 // nanoseconds for durations
	zero     bool  // 0 is allowed besides [min, max] (it means "off")
	hint     string
}

func dur(d time.Duration) int64 { return int64(d) }

// serveRanges are the ranges of `vipsmart serve`'s flags.
var serveRanges = []flagRange{
	{flag: "heartbeat-interval", min: dur(10 * time.Millisecond), max: dur(10 * time.Second)},
	{flag: "heartbeat-misses", min: 1, max: 100},
	{flag: "invite-ttl", min: dur(time.Second), max: dur(10 * time.Minute)},
	{flag: "review-ttl", min: dur(time.Second), max: dur(10 * time.Minute)},
	{flag: "phase-timeout", min: dur(100 * time.Millisecond), max: dur(time.Minute)},
	{flag: "shutdown-timeout", min: 0, max: dur(10 * time.Minute), hint: "0 does not wait"},
	{flag: "max-events", min: 100, max: 1_000_000},
	{flag: "garp-count", min: 0, max: 100},
	{flag: "garp-interval", min: dur(10 * time.Millisecond), max: dur(10 * time.Second)},
	{flag: "bgp-hold-time", min: dur(3 * time.Second), max: dur(65535 * time.Second), zero: true, hint: "0 turns keepalives off"},
	{flag: "bgp-standby-prepend", min: 1, max: 16},
	{flag: "bgp-listen-port", min: -1, max: 65535, hint: "-1 does not listen"},
	{flag: "rebuild-timeout", min: dur(time.Second), max: dur(time.Hour)},
}

// clientRanges are the ranges of the global flags of the client commands.
var clientRanges = []flagRange{
	{flag: "timeout", min: dur(100 * time.Millisecond), max: dur(24 * time.Hour)},
}

func rangeOf(rules []flagRange, name string) (flagRange, bool) {
	for _, r := range rules {
		if r.flag == name {
			return r, true
		}
	}
	return flagRange{}, false
}

// changedFlags returns the flags given on the command line (call it
// before bindEnv, which marks the others it sets as changed too).
func changedFlags(fs *pflag.FlagSet) map[string]bool {
	out := map[string]bool{}
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed {
			out[f.Name] = true
		}
	})
	return out
}

// flagSource names where flag f's value came from, as the user wrote it,
// following bindEnv's precedence: command line, environment, config file.
func flagSource(f *pflag.Flag, given map[string]bool, conf map[string]any, configPath string) string {
	switch {
	case given[f.Name]:
		return "--" + f.Name
	case os.Getenv(envName(f.Name)) != "":
		return "environment variable " + envName(f.Name)
	case conf != nil && conf[f.Name] != nil:
		return fmt.Sprintf("config key %s (in %s)", f.Name, configPath)
	}
	return "--" + f.Name + " (default)"
}

func (r flagRange) isDuration(f *pflag.Flag) bool { return f.Value.Type() == "duration" }

func (r flagRange) format(f *pflag.Flag, v int64) string {
	if r.isDuration(f) {
		return time.Duration(v).String()
	}
	return strconv.FormatInt(v, 10)
}

// describe is the range in words: "from 1s to 10m0s (0: ...)".
func (r flagRange) describe(f *pflag.Flag) string {
	s := fmt.Sprintf("from %s to %s", r.format(f, r.min), r.format(f, r.max))
	if r.zero {
		s = "0, or " + s
	}
	if r.hint != "" {
		s += " (" + r.hint + ")"
	}
	return s
}

// checkRanges checks every flag of fs that has a range.
func checkRanges(fs *pflag.FlagSet, rules []flagRange, given map[string]bool, conf map[string]any, configPath string) error {
	for _, r := range rules {
		f := fs.Lookup(r.flag)
		if f == nil {
			continue
		}
		var v int64
		if r.isDuration(f) {
			d, err := time.ParseDuration(f.Value.String())
			if err != nil {
				return fmt.Errorf("%s: %q is not valid: give %s", flagSource(f, given, conf, configPath), f.Value.String(), rangeHint(f))
			}
			v = int64(d)
		} else {
			n, err := strconv.ParseInt(f.Value.String(), 10, 64)
			if err != nil {
				return fmt.Errorf("%s: %q is not valid: give %s", flagSource(f, given, conf, configPath), f.Value.String(), rangeHint(f))
			}
			v = n
		}
		if (v == 0 && r.zero) || (v >= r.min && v <= r.max) {
			continue
		}
		return fmt.Errorf("%s is %s, out of range: give %s (see the flag table in README.md)", flagSource(f, given, conf, configPath), r.format(f, v), rangeHint(f))
	}
	return nil
}

// rangeHint says what a flag with a range takes ("a duration from 1s to
// 10m0s"), for a value that does not even parse; "" for other flags.
func rangeHint(f *pflag.Flag) string {
	for _, rules := range [][]flagRange{serveRanges, clientRanges} {
		if r, ok := rangeOf(rules, f.Name); ok {
			kind := "a whole number"
			if r.isDuration(f) {
				kind = "a duration"
			}
			return kind + " " + r.describe(f)
		}
	}
	return ""
}

// checkServeFlags checks the ranges of serve's flags and the rules
// between them.
func checkServeFlags(fs *pflag.FlagSet, given map[string]bool, conf map[string]any, configPath string) error {
	if err := checkRanges(fs, serveRanges, given, conf, configPath); err != nil {
		return err
	}
	get := func(name string) (time.Duration, string) {
		f := fs.Lookup(name)
		d, _ := time.ParseDuration(f.Value.String())
		return d, flagSource(f, given, conf, configPath)
	}
	if peers, err := fs.GetStringArray("bgp-peer"); err == nil {
		for _, p := range peers {
			if _, err := bgp.ParsePeer(p); err != nil {
				return fmt.Errorf("%s: %w", flagSource(fs.Lookup("bgp-peer"), given, conf, configPath), err)
			}
		}
	}
	phase, ps := get("phase-timeout")
	for _, ttl := range []string{"invite-ttl", "review-ttl"} {
		if d, src := get(ttl); phase >= d {
			return fmt.Errorf("%s (%s) must be shorter than %s (%s): a coordinator must be able to hear every answer of a phase while its lock holds; lower the phase timeout or raise the TTL", ps, phase, src, d)
		}
	}
	return nil
}

// configPath is the config file serve reads ("" if none).
func configPath(cmd interface{ Flags() *pflag.FlagSet }, o *serveOptions) string {
	if cmd.Flags().Changed("config") && o.config != "" {
		return o.config
	}
	if p := os.Getenv(envName("config")); p != "" {
		return p
	}
	return o.config
}

// configValues decodes a YAML config file into flag values as written:
// a scalar's text (so that 99999999999999999999 stays that, not 1e+20),
// or a list of them.
func configValues(path string, b []byte) (map[string]any, error) {
	var doc map[string]yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("config file %s is not valid YAML: %w", path, err)
	}
	conf := make(map[string]any, len(doc))
	for k, n := range doc {
		switch n.Kind {
		case yaml.ScalarNode:
			if n.Tag == "!!null" {
				return nil, fmt.Errorf("config file %s: key %s has no value: give one or remove the key", path, k)
			}
			conf[k] = n.Value
		case yaml.SequenceNode:
			var list []any
			for _, c := range n.Content {
				if c.Kind != yaml.ScalarNode {
					return nil, fmt.Errorf("config file %s: key %s (line %d) holds a list of lists or maps: give a list of values", path, k, c.Line)
				}
				list = append(list, c.Value)
			}
			conf[k] = list
		default:
			return nil, fmt.Errorf("config file %s: key %s (line %d) holds a map: give a value (keys are the flag names of `vipsmart serve`)", path, k, n.Line)
		}
	}
	return conf, nil
}
