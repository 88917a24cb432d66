package main

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vipsmart/vipsmart"
)

// asFlags rewrites an input error (from local validation or from the
// daemon) so that it names what the user typed (--check-timeout, NAME)
// instead of the API's field (check.timeout, name). names maps API fields
// to flags or arguments; fields it does not know stay as they are.
func asFlags(err error, names map[string]string) error {
	var e *vipsmart.Error
	if !errors.As(err, &e) || e.Field == "" {
		return err
	}
	if _, ok := names[e.Field]; !ok {
		return err
	}
	out := *e
	msg := e.Message
	keys := make([]string, 0, len(names))
	for k := range names {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return len(b) - len(a) }) // check.timeout before check
	for _, k := range keys {
		if strings.ContainsAny(k, ".-_") {
			// A dotted field is unambiguous: rename it wherever it appears.
			re := regexp.MustCompile(`(^|[^\w.-])` + regexp.QuoteMeta(k) + `($|[^\w.-])`)
			msg = re.ReplaceAllString(msg, "${1}"+names[k]+"${2}")
		} else if rest, ok := strings.CutPrefix(msg, k+" "); ok && k == e.Field {
			// A plain word ("name", "address") only where the message
			// starts with it, which is where it names the field.
			msg = names[k] + " " + rest
		}
	}
	out.Message = msg
	out.Field = names[e.Field]
	return &out
}

// The API fields of the commands that take flags, as the user types them.
var (
	vipAddFlags = map[string]string{
		"name": "NAME", "address": "ADDRESS", "interface": "--interface",
		"check.url": "--check", "check.interval": "--check-interval", "check.timeout": "--check-timeout",
		"check.rise": "--check-rise", "check.fall": "--check-fall", "check.expect_status": "--check-expect-status",
	}
	gipAddFlags = map[string]string{
		"name": "NAME", "address": "ADDRESS", "mode": "--mode", "placements": "--placement",
		"placement dc": "--placement DC", "placement vip": "--placement VIP",
	}
	gipUpdateFlags = map[string]string{
		"name": "NAME", "address": "--address", "mode": "--mode", "placements": "--placement",
		"placement dc": "--placement DC", "placement vip": "--placement VIP",
	}
)

// withFlags wraps a command's RunE so that its input errors name flags.
func withFlags(names map[string]string, run func(*cobra.Command, []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		return asFlags(run(cmd, args), names)
	}
}

// suggest is the "did you mean" of a group command's unknown subcommand:
// the close names, quoted, or "".
func suggest(cmd *cobra.Command, typed string) string {
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2
	}
	s := cmd.SuggestionsFor(typed)
	if len(s) == 0 {
		return ""
	}
	for i := range s {
		s[i] = strconv.Quote(s[i])
	}
	return strings.Join(s, " or ")
}

// ---- completion from the daemon ----

// completeNames completes the argument with the names list returns, asked
// of the daemon with a short timeout (a daemon that does not answer gives
// no completion, never a hang).
func (g *globals) completeNames(list func(ctx context.Context) ([]string, error)) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		_ = bindEnv(cmd.Root().PersistentFlags(), nil) // VIPSMART_SERVER: completion runs no PreRun
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		names, err := list(ctx)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
		}
		var out []cobra.Completion
		for _, n := range names {
			if strings.HasPrefix(n, toComplete) {
				out = append(out, n)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

func (g *globals) vipNames(ctx context.Context) ([]string, error) {
	vs, err := g.client().ListVIPs(ctx)
	var out []string
	for _, v := range vs {
		out = append(out, v.Name)
	}
	return out, err
}

func (g *globals) gipNames(ctx context.Context) ([]string, error) {
	gs, err := g.client().ListGIPs(ctx)
	var out []string
	for _, x := range gs {
		out = append(out, x.Name)
	}
	return out, err
}

func (g *globals) dcNames(ctx context.Context) ([]string, error) {
	ds, err := g.client().ListDCs(ctx)
	var out []string
	for _, d := range ds {
		out = append(out, d.Name)
	}
	return out, err
}

// completePlacement completes --placement with the members' names
// followed by ':' (DC:PRIORITY[:VIP]).
func (g *globals) completePlacement(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	prefix, cur := "", toComplete
	if i := strings.LastIndexByte(toComplete, ','); i >= 0 {
		prefix, cur = toComplete[:i+1], toComplete[i+1:]
	}
	if strings.Contains(cur, ":") {
		return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
	}
	_ = bindEnv(cmd.Root().PersistentFlags(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	names, err := g.dcNames(ctx)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
	}
	var out []cobra.Completion
	for _, n := range names {
		if strings.HasPrefix(n, cur) {
			out = append(out, prefix+n+":")
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
}

// completions wires the daemon-backed completions into the command tree:
// VIP names for vip show/remove, GIP names for gip show/update/remove, DC
// names for dc remove and --placement.
func (g *globals) completions(root *cobra.Command) {
	find := func(path ...string) *cobra.Command {
		c, _, err := root.Find(path)
		if err != nil {
			return nil
		}
		return c
	}
	set := func(f cobra.CompletionFunc, paths ...[]string) {
		for _, p := range paths {
			if c := find(p...); c != nil {
				c.ValidArgsFunction = f
			}
		}
	}
	set(g.completeNames(g.vipNames), []string{"vip", "show"}, []string{"vip", "remove"})
	set(g.completeNames(g.gipNames), []string{"gip", "show"}, []string{"gip", "remove"}, []string{"gip", "update"})
	set(g.completeNames(g.dcNames), []string{"dc", "remove"})
	for _, p := range [][]string{{"gip", "add"}, {"gip", "update"}} {
		if c := find(p...); c != nil {
			_ = c.RegisterFlagCompletionFunc("placement", g.completePlacement)
		}
	}
}
