package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/vipsmart/vipsmart"
)

func newGIPCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "gip", Short: "Manage the federation's global IPs"}
	list := &cobra.Command{
		Use:   "list",
		Short: "List the federation's GIPs",
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
					gs = []vipsmart.GIP{}
				}
				return printJSON(g.stdout, gs)
			}
			rows := make([][]string, 0, len(gs))
			for _, gp := range gs {
				ps := make([]string, 0, len(gp.Placements))
				for _, p := range gp.Placements {
					s := p.DC + ":" + strconv.Itoa(p.Priority)
					if p.VIP != "" {
						s += ":" + p.VIP
					}
					ps = append(ps, s)
				}
				rows = append(rows, []string{gp.Name, gp.Address.String(), string(gp.Mode), strconv.FormatBool(gp.Preempt), orDash(strings.Join(ps, ","))})
			}
			return table(g.stdout, []string{"NAME", "ADDRESS", "MODE", "PREEMPT", "PLACEMENTS"}, rows)
		},
	}
	c.AddCommand(list)
	return c
}

// unused guard to keep fmt imported for later subcommands.
var _ = fmt.Sprint
