package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/vipsmart/vipsmart"
)

// parsePlacement parses DC:PRIORITY[:VIP].
func parsePlacement(s string) (vipsmart.Placement, error) {
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return vipsmart.Placement{}, vipsmart.Errorf(vipsmart.EINVALID, "placement", "--placement %q is not DC:PRIORITY[:VIP]: give for example dc-1:200:web", s)
	}
	p := vipsmart.Placement{DC: parts[0]}
	if err := vipsmart.ValidateName("placement dc", p.DC); err != nil {
		return p, err
	}
	n, err := strconv.Atoi(parts[1])
	if err != nil || n < 1 || n > 255 {
		return p, vipsmart.Errorf(vipsmart.EINVALID, "placement", "--placement %q: priority %q must be a number from 1 to 255 (higher wins)", s, parts[1])
	}
	p.Priority = n
	if len(parts) == 3 {
		p.VIP = parts[2]
		if err := vipsmart.ValidateName("placement vip", p.VIP); err != nil {
			return p, err
		}
	}
	return p, nil
}

func parsePlacements(specs []string) ([]vipsmart.Placement, error) {
	out := make([]vipsmart.Placement, 0, len(specs))
	for _, s := range specs {
		for _, one := range strings.Split(s, ",") {
			p, err := parsePlacement(strings.TrimSpace(one))
			if err != nil {
				return nil, err
			}
			out = append(out, p)
		}
	}
	return out, nil
}

func placementsString(ps []vipsmart.Placement) string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		s := p.DC + ":" + strconv.Itoa(p.Priority)
		if p.VIP != "" {
			s += ":" + p.VIP
		}
		out = append(out, s)
	}
	return orDash(strings.Join(out, ","))
}

func newGIPCmd(g *globals) *cobra.Command {
	c := group(&cobra.Command{Use: "gip", Short: "Manage the federation's global IPs"})

	var placements []string
	var mode string
	var preempt bool
	add := &cobra.Command{
		Use:   "add NAME ADDRESS --placement DC:PRIORITY[:VIP] ...",
		Short: "Add a GIP on every member of the federation",
		Long: `Add creates a global IP on every member of the federation, or on none. Each
--placement puts it in a member DC with a priority from 1 to 255 (higher wins;
ties go to the DC name that sorts first) and optionally the local VIP of that DC
whose health backs it. --mode failover (default) activates the healthy placement
with the best priority; anycast activates every healthy placement. With
--preempt=false a failover GIP stays where it failed over to when the better
placement recovers.`,
		Example: "  vipsmart gip add www 203.0.113.10 --placement dc-1:200:web --placement dc-2:100:web",
		Args:    exactArgs(2),
		RunE: withFlags(gipAddFlags, func(cmd *cobra.Command, args []string) error {
			gp := vipsmart.GIP{Name: args[0], Mode: vipsmart.GIPMode(mode), Preempt: preempt}
			if err := vipsmart.ValidateName("name", gp.Name); err != nil {
				return err
			}
			a, err := vipsmart.ParseHostAddr("address", args[1])
			if err != nil {
				return err
			}
			gp.Address = a
			if gp.Placements, err = parsePlacements(placements); err != nil {
				return err
			}
			if err := gp.Validate(); err != nil {
				return err
			}
			ctx, cancel := g.ctx()
			defer cancel()
			out, err := g.client().AddGIP(ctx, gp)
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(g.stdout, out)
			}
			fmt.Fprintf(g.stdout, "GIP %s %s added\n", out.Name, out.Address)
			if len(out.Placements) == 0 {
				fmt.Fprintf(g.stderr, "warning: GIP %s has no placement, so no DC announces it: give it some with `vipsmart gip update %s --placement DC:PRIORITY[:VIP]`\n", out.Name, out.Name)
			}
			return nil
		}),
	}
	add.Flags().StringArrayVar(&placements, "placement", nil, "DC:PRIORITY[:VIP], repeatable (or comma-separated)")
	add.Flags().StringVar(&mode, "mode", "failover", "failover or anycast")
	add.Flags().BoolVar(&preempt, "preempt", true, "move back to a better placement when it recovers (failover mode)")

	var uPlacements []string
	var uMode, uAddress string
	var uPreempt bool
	update := &cobra.Command{
		Use:   "update NAME [--address A] [--placement DC:PRIORITY[:VIP] ...] [--mode M] [--preempt=B]",
		Short: "Change a GIP on every member of the federation",
		Long: `Update changes the fields given and keeps the others. --placement, when given,
replaces the whole placement list.`,
		Args: exactArgs(1),
		RunE: withFlags(gipUpdateFlags, func(cmd *cobra.Command, args []string) error {
			if err := vipsmart.ValidateName("name", args[0]); err != nil {
				return err
			}
			f := cmd.Flags()
			if !f.Changed("address") && !f.Changed("placement") && !f.Changed("mode") && !f.Changed("preempt") {
				return usageError{fmt.Errorf("nothing to update: give --address, --placement, --mode or --preempt")}
			}
			var ps []vipsmart.Placement
			if f.Changed("placement") {
				var err error
				if ps, err = parsePlacements(uPlacements); err != nil {
					return err
				}
			}
			ctx, cancel := g.ctx()
			defer cancel()
			cl := g.client()
			cur, err := cl.GetGIP(ctx, args[0])
			if err != nil {
				return err
			}
			gp := cur.GIP
			if f.Changed("address") {
				a, err := vipsmart.ParseHostAddr("address", uAddress)
				if err != nil {
					return err
				}
				gp.Address = a
			}
			if f.Changed("placement") {
				gp.Placements = ps
			}
			if f.Changed("mode") {
				gp.Mode = vipsmart.GIPMode(uMode)
			}
			if f.Changed("preempt") {
				gp.Preempt = uPreempt
			}
			if err := gp.Validate(); err != nil {
				return err
			}
			out, err := cl.UpdateGIP(ctx, gp)
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(g.stdout, out)
			}
			fmt.Fprintf(g.stdout, "GIP %s updated\n", out.Name)
			if len(out.Placements) == 0 {
				fmt.Fprintf(g.stderr, "warning: GIP %s has no placement, so no DC announces it\n", out.Name)
			}
			return nil
		}),
	}
	update.Flags().StringArrayVar(&uPlacements, "placement", nil, "DC:PRIORITY[:VIP], repeatable; replaces every placement")
	update.Flags().StringVar(&uMode, "mode", "", "failover or anycast")
	update.Flags().StringVar(&uAddress, "address", "", "new address")
	update.Flags().BoolVar(&uPreempt, "preempt", true, "move back to a better placement when it recovers")

	remove := &cobra.Command{
		Use:     "remove NAME",
		Aliases: []string{"rm"},
		Short:   "Remove a GIP from every member of the federation",
		Args:    exactArgs(1),
		RunE: g.namedRun(func(ctx context.Context, name string) error {
			if err := g.client().RemoveGIP(ctx, name); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "GIP %s removed\n", name)
			return nil
		}),
	}
	show := &cobra.Command{
		Use:   "show NAME",
		Short: "Show a GIP: which DCs are active for it now, and why the others are not",
		Args:  exactArgs(1),
		RunE: g.namedRun(func(ctx context.Context, name string) error {
			gp, err := g.client().GetGIP(ctx, name)
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(g.stdout, gp)
			}
			w := g.stdout
			fmt.Fprintf(w, "Name:     %s\nAddress:  %s\nMode:     %s\nPreempt:  %t\nActive:   %s\n",
				gp.Name, gp.Address, gp.Mode, gp.Preempt, orDash(strings.Join(gp.Active, ", ")))
			rows := make([][]string, 0, len(gp.Placements))
			for _, p := range gp.Placements {
				rows = append(rows, []string{p.DC, strconv.Itoa(p.Priority), orDash(p.VIP), orDash(gp.Why[p.DC])})
			}
			fmt.Fprintln(w, "Placements:")
			if len(rows) == 0 {
				fmt.Fprintln(w, "  none: the GIP is inactive everywhere")
				return nil
			}
			return table(w, []string{"  DC", "PRIORITY", "VIP", "STATE"}, indent(rows))
		}),
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List the federation's GIPs with the DCs active for each",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := g.ctx()
			defer cancel()
			gs, err := g.client().ListGIPs(ctx)
			if err != nil {
				return err
			}
			if g.output == "json" {
				if gs == nil {
					gs = []vipsmart.GIPInfo{}
				}
				return printJSON(g.stdout, gs)
			}
			return gipTable(g.stdout, gs)
		},
	}
	c.AddCommand(add, update, remove, show, list)
	return c
}

func indent(rows [][]string) [][]string {
	for _, r := range rows {
		r[0] = "  " + r[0]
	}
	return rows
}

// gipTable is the table of `gip list`.
func gipTable(w io.Writer, gs []vipsmart.GIPInfo) error {
	rows := make([][]string, 0, len(gs))
	for _, gp := range gs {
		rows = append(rows, []string{gp.Name, gp.Address.String(), string(gp.Mode), strconv.FormatBool(gp.Preempt),
			placementsString(gp.Placements), orDash(strings.Join(gp.Active, ","))})
	}
	return table(w, []string{"NAME", "ADDRESS", "MODE", "PREEMPT", "PLACEMENTS", "ACTIVE"}, rows)
}
