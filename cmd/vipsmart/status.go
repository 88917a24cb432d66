package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/vipsmart/vipsmart"
)

func newStatusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the local DC: name, address, status, federation",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := g.ctx()
			defer cancel()
			st, err := g.client().Status(ctx)
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(g.stdout, st)
			}
			printStatus(g, st)
			return nil
		},
	}
}

func printStatus(g *globals, st vipsmart.StatusInfo) {
	w := g.stdout
	fmt.Fprintf(w, "DC:          %s (%s)\n", st.Name, vipsmart.DC{Name: st.Name, Address: st.Address, Port: st.Port}.AddrPort())
	fmt.Fprintf(w, "Identity:    %s\n", orDash(st.Identity))
	status := string(st.Status)
	if st.Status.Temporary() {
		left := "-"
		if st.TimeLeft != nil {
			left = time.Duration(*st.TimeLeft).Round(100 * time.Millisecond).String()
		}
		status += fmt.Sprintf(" (operation %s, %s left)", orDash(st.OpID), left)
	}
	fmt.Fprintf(w, "Status:      %s\n", status)
	if st.Federation == nil {
		fmt.Fprintf(w, "Federation:  none (standalone; epoch %d)\n", st.Epoch)
	} else {
		names := make([]string, 0, len(st.Federation.Members))
		for _, m := range st.Federation.Members {
			names = append(names, m.Name)
		}
		fmt.Fprintf(w, "Federation:  %s\n", st.Federation.ID)
		fmt.Fprintf(w, "Epoch:       %d\n", st.Federation.Epoch)
		fmt.Fprintf(w, "Members:     %d (%s)\n", len(names), strings.Join(names, ", "))
	}
	fmt.Fprintf(w, "VIPs:        %d\n", st.VIPs)
	fmt.Fprintf(w, "GIPs:        %d\n", st.GIPs)
	if st.BGPPeers != nil {
		up := 0
		for _, p := range st.BGPPeers {
			if p.State == "established" {
				up++
			}
		}
		fmt.Fprintf(w, "BGP peers:   %d of %d established\n", up, len(st.BGPPeers))
		if len(st.BGPPeers) > 0 {
			_ = printPeers(w, st.BGPPeers, "  ")
		}
	}
	if len(st.Announced) == 0 {
		fmt.Fprintln(w, "Announced:   nothing")
		return
	}
	n := 0
	for _, a := range st.Announced {
		if a.State == vipsmart.AnnounceUp {
			n++
		}
	}
	fmt.Fprintf(w, "Announced:   %d of %d wanted\n", n, len(st.Announced))
	rows := make([][]string, 0, len(st.Announced))
	for _, a := range st.Announced {
		rows = append(rows, []string{"  " + a.Addr.String(), string(a.Kind), a.Name, a.Via, a.Since.Local().Format(time.RFC3339), a.StateString()})
	}
	_ = table(w, []string{"  ADDRESS", "KIND", "NAME", "VIA", "SINCE", "STATE"}, rows)
}
