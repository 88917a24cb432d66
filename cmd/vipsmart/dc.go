package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"github.com/vipsmart/vipsmart"
)

func newDCCmd(g *globals) *cobra.Command {
	c := group(&cobra.Command{Use: "dc", Short: "Manage the federation's datacenters"})
	add := &cobra.Command{
		Use:   "add NAME,IP,PORT",
		Short: "Add a candidate DC to the local DC's federation (declaring one if standalone)",
		Long: `Add tells the local DC to add the candidate DC to its federation, following the
seed's workflow: the candidate is checked and invited, every other member is put
into candidate-review, and the change commits on every member or nowhere. A
standalone local DC declares a federation of itself, but only if the add
succeeds. PORT defaults to 9610; IPv6 addresses are written bare
(dc-2,2001:db8::2,9610).`,
		Example: "  vipsmart dc add dc-1,192.168.0.99,9610",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := vipsmart.ParseDCSpec(args[0])
			if err != nil {
				return err
			}
			ctx, cancel := g.ctx()
			defer cancel()
			st, err := g.client().AddDC(ctx, d)
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
	var force bool
	remove := &cobra.Command{
		Use:     "remove NAME",
		Aliases: []string{"rm"},
		Short:   "Remove a member DC from the federation",
		Long: `Remove takes the named member out of the federation; it ends standalone with no
DC or GIP objects. Run it on any member other than NAME (NAME itself runs
"vipsmart dc leave"). With --force a member that cannot be reached is removed
without it; if it comes back it finds itself fenced out and turns standalone.`,
		Args: exactArgs(1),
		RunE: g.namedRun(func(ctx context.Context, name string) error {
			st, err := g.client().RemoveDC(ctx, name, force)
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(g.stdout, st)
			}
			fmt.Fprintf(g.stdout, "DC %s removed\n", name)
			printStatus(g, st)
			return nil
		}),
	}
	remove.Flags().BoolVar(&force, "force", false, "remove a member that cannot be reached")
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
	c.AddCommand(add, remove, leave, list)
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
		rows = append(rows, []string{name, d.AddrPort().String(), reach, orDash(string(d.Status)),
			strconv.FormatUint(d.LastEpoch, 10), ago(now, d.LastSeen)})
	}
	return table(w, []string{"NAME", "ADDRESS", "REACHABLE", "STATUS", "EPOCH", "LAST SEEN"}, rows)
}
