package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/token"
)

func newDCCmd(g *globals) *cobra.Command {
	c := group(&cobra.Command{Use: "dc", Short: "Manage the federation's datacenters"})
	var joinToken string
	add := &cobra.Command{
		Use:   "add NAME,IP,PORT --token TOKEN",
		Short: "Add a candidate DC to the local DC's federation (declaring one if standalone)",
		Long: `Add tells the local DC to add the candidate DC to its federation, following the
seed's workflow: the candidate is checked and invited, every other member is put
into candidate-review, and the change commits on every member or nowhere. A
standalone local DC declares a federation of itself, but only if the add
succeeds. PORT defaults to 9610; IPv6 addresses are written bare
(dc-2,2001:db8::2,9610).

--token is the join token made on the candidate with "vipsmart dc join-token"
(or VIPSMART_JOIN_TOKEN): it pins the candidate's key and proves to it that
its operator allowed this. (On this command --token is the join token; the
API token of an https:// --server then comes from VIPSMART_TOKEN.)`,
		Example: `  TOKEN=$(vipsmart dc join-token)                           # on dc-2
  vipsmart dc add dc-2,192.168.0.99,9610 --token "$TOKEN"   # on a member`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := vipsmart.ParseDCSpec(args[0])
			if err != nil {
				return err
			}
			tok, err := joinTokenArg(cmd, joinToken, d)
			if err != nil {
				return err
			}
			ctx, cancel := g.ctx()
			defer cancel()
			st, err := g.client().AddDC(ctx, d, tok)
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(g.stdout, st)
			}
			fmt.Fprintf(g.stdout, "DC %s added\n", d.Name)
			printStatus(g, st)
			return nil
		},
	}
	add.Flags().StringVar(&joinToken, "token", "", "join token made on the candidate with `vipsmart dc join-token` (env VIPSMART_JOIN_TOKEN)")
	var force bool
	remove := &cobra.Command{
		Use:     "remove NAME[,NAME...] [--force]",
		Aliases: []string{"rm"},
		Short:   "Remove a member DC from the federation",
		Long: `Remove takes the named member out of the federation; it ends standalone with no
DC or GIP objects. Run it on any member other than NAME (NAME itself runs
"vipsmart dc leave").

With --force, members that cannot be reached are removed without them, several
at once in one change (NAMEs separated by commas, or as separate arguments),
committed among the members that stay; those must be more than half of the
members. A member that is reachable is refused: remove it without --force. When
a removed DC comes back it finds itself fenced out and turns standalone; it can
then be added again. See docs/federation.md, "Two of five DCs dead".`,
		Example: `  vipsmart dc remove dc-3
  vipsmart dc remove --force dc-4,dc-5`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError{fmt.Errorf("%s needs the NAME of the member to remove: usage: %s", cmd.CommandPath(), cmd.UseLine())}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			var names []string
			for _, arg := range args {
				for _, name := range strings.Split(arg, ",") {
					if err := vipsmart.ValidateName("name", name); err != nil {
						return err
					}
					if !slices.Contains(names, name) {
						names = append(names, name)
					}
				}
			}
			if len(names) > 1 && !force {
				return usageError{fmt.Errorf("a plain dc remove takes one DC (it needs that DC's answer); to remove several unreachable DCs at once add --force")}
			}
			ctx, cancel := g.ctx()
			defer cancel()
			st, err := g.client().RemoveDC(ctx, names, force)
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(g.stdout, st)
			}
			fmt.Fprintf(g.stdout, "DC %s removed\n", strings.Join(names, ", "))
			printStatus(g, st)
			return nil
		},
	}
	remove.Flags().BoolVar(&force, "force", false, "remove members that cannot be reached (several at once: NAME,NAME...)")
	leave := &cobra.Command{
		Use:   "leave",
		Short: "Take the local DC out of its federation",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := g.ctx()
			defer cancel()
			st, err := g.client().Leave(ctx)
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(g.stdout, st)
			}
			fmt.Fprintln(g.stdout, "Left the federation")
			printStatus(g, st)
			return nil
		},
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List the federation's members with reachability and last-seen epoch",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := g.ctx()
			defer cancel()
			ds, err := g.client().ListDCs(ctx)
			if err != nil {
				return err
			}
			if g.output == "json" {
				if ds == nil {
					ds = []vipsmart.DCInfo{}
				}
				return printJSON(g.stdout, ds)
			}
			return dcTable(g.stdout, ds)
		},
	}
	c.AddCommand(add, remove, leave, list, newJoinTokenCmd(g), newRotateIdentityCmd(g))
	return c
}

// dcTable is the table of `dc list`.
func dcTable(w io.Writer, ds []vipsmart.DCInfo) error {
	now := time.Now()
	rows := make([][]string, 0, len(ds))
	for _, d := range ds {
		name := d.Name
		if d.Self {
			name += " (self)"
		}
		reach := "no"
		if d.Reachable {
			reach = "yes"
		}
		addr := d.AddrPort().String()
		if len(d.Nodes) > 0 {
			addr += fmt.Sprintf(" (%d nodes)", len(d.Nodes)) // the addresses: -o json
		}
		rows = append(rows, []string{name, addr, reach, orDash(string(d.Status)) + witnessMark(d.DC),
			strconv.FormatUint(d.LastEpoch, 10), ago(now, d.LastSeen)})
	}
	return table(w, []string{"NAME", "ADDRESS", "REACHABLE", "STATUS", "EPOCH", "LAST SEEN"}, rows)
}

// joinTokenArg returns dc add's join token (--token, else
// VIPSMART_JOIN_TOKEN), checked against the DC to add: a missing,
// damaged, mistaken or expired token is a usage error naming the fix.
func joinTokenArg(cmd *cobra.Command, flag string, d vipsmart.DC) (string, error) {
	tok := flag
	if !cmd.Flags().Changed("token") {
		tok = os.Getenv("VIPSMART_JOIN_TOKEN")
	}
	tok = strings.TrimSpace(tok)
	if tok == "" {
		return "", usageError{fmt.Errorf("dc add needs a join token made on %s: run `vipsmart dc join-token` on %s and pass what it prints with --token (or VIPSMART_JOIN_TOKEN)", d.Name, d.Name)}
	}
	j, err := token.ParseJoin(tok)
	if err != nil {
		if strings.HasPrefix(tok, token.APIPrefix) {
			return "", usageError{fmt.Errorf("--token is an API token; dc add --token takes the join token made on %s (give the API token of an https:// --server with VIPSMART_TOKEN)", d.Name)}
		}
		return "", err
	}
	if j.DC != d.Name {
		return "", usageError{fmt.Errorf("the join token was made on %s, not on %s: check the NAME in %s, or make a token on %s", j.DC, d.Name, d, d.Name)}
	}
	if !time.Now().Before(j.Expires) {
		return "", usageError{fmt.Errorf("the join token expired at %s: make a new one on %s with `vipsmart dc join-token`", j.Expires.Local().Format(time.RFC3339), d.Name)}
	}
	return tok, nil
}
