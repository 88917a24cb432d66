package main

import (
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/vipsmart/vipsmart"
)

func newBGPCmd(g *globals) *cobra.Command {
	c := group(&cobra.Command{Use: "bgp", Short: "Inspect the embedded BGP speaker"})
	peers := &cobra.Command{
		Use:   "peers",
		Short: "Show the BGP sessions: state, uptime, BFD, routes sent, last error",
		Long: `Peers shows each BGP session of the local daemon's embedded speaker, like
birdc show protocols or gobgp neighbor: its state (idle, connect, active,
opensent, openconfirm, established), since when, BFD state (off, down, init,
up), the families it carries, how many routes were sent and why it last went
down. It reads the bgp_peers section of GET /v1/status.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := g.ctx()
			defer cancel()
			st, err := g.client().Status(ctx)
			if err != nil {
				return err
			}
			ps := st.BGPPeers
			if ps == nil {
				ps = []vipsmart.BGPPeer{}
			}
			if g.output == "json" {
				return printJSON(g.stdout, ps)
			}
			if st.BGPPeers == nil {
				fmt.Fprintln(g.stdout, "no BGP speaker: the daemon runs without --announcer bgp")
				return nil
			}
			return printPeers(g.stdout, ps, "")
		},
	}
	c.AddCommand(peers)
	return c
}

// printPeers writes the BGP sessions as a table, each line after indent.
func printPeers(w io.Writer, ps []vipsmart.BGPPeer, indent string) error {
	now := time.Now()
	rows := make([][]string, 0, len(ps))
	for _, p := range ps {
		since := "-"
		if p.Uptime != nil {
			since = "up " + time.Duration(*p.Uptime).String()
		} else if p.Since != nil {
			since = ago(now, p.Since)
		}
		fams := "-"
		if len(p.Families) > 0 {
			fams = fmt.Sprint(p.Families)
			fams = fams[1 : len(fams)-1]
		}
		rows = append(rows, []string{indent + p.Address.String(), strconv.FormatUint(uint64(p.ASN), 10), p.State, since, p.BFD, fams,
			strconv.Itoa(p.RoutesSent), orDash(p.LastError)})
	}
	return table(w, []string{indent + "PEER", "ASN", "STATE", "SINCE", "BFD", "FAMILIES", "SENT", "LAST ERROR"}, rows)
}
