package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/vipsmart/vipsmart"
)

func newVIPCmd(g *globals) *cobra.Command {
	c := group(&cobra.Command{Use: "vip", Short: "Manage the local DC's virtual IPs"})
	var iface, check string
	var chk vipsmart.Check
	var interval, timeout time.Duration
	var nodes []string
	var preempt bool
	add := &cobra.Command{
		Use:   "add NAME ADDRESS",
		Short: "Add a VIP (a host address) to the local DC",
		Example: `  vipsmart vip add web 192.0.2.10 --interface eth0 --check tcp://10.0.0.5:443
  vipsmart vip add api 2001:db8::10 --check http://10.0.0.6:8080/healthz --check-rise 3`,
		Args: exactArgs(2),
		RunE: withFlags(vipAddFlags, func(cmd *cobra.Command, args []string) error {
			v := vipsmart.VIP{Name: args[0], Interface: iface}
			if err := vipsmart.ValidateName("name", v.Name); err != nil {
				return err
			}
			a, err := vipsmart.ParseHostAddr("address", args[1])
			if err != nil {
				return err
			}
			v.Address = a
			if v.Nodes, err = parseVIPNodes(nodes); err != nil {
				return err
			}
			v.Preempt = preempt
			if check != "" {
				chk.URL = check
				chk.Interval, chk.Timeout = vipsmart.Duration(interval), vipsmart.Duration(timeout)
				v.Check = &chk
			} else if cmd.Flags().Changed("check-interval") || cmd.Flags().Changed("check-timeout") || cmd.Flags().Changed("check-rise") || cmd.Flags().Changed("check-fall") || cmd.Flags().Changed("check-expect-status") {
				return usageError{fmt.Errorf("--check-* flags need --check URL")}
			}
			if err := v.Validate(); err != nil {
				return err
			}
			ctx, cancel := g.ctx()
			defer cancel()
			out, err := g.client().AddVIP(ctx, v)
			if err != nil {
				return err
			}
			// Read it back: the daemon says at once if an announcer
			// cannot announce it (no interface for it).
			info, ierr := g.client().GetVIP(ctx, out.Name)
			if ierr != nil {
				info = vipsmart.VIPInfo{VIP: out}
			}
			for _, w := range info.Warnings {
				fmt.Fprintf(g.stderr, "warning: VIP %s %s: %s\n", out.Name, out.Address, w)
			}
			if g.output == "json" {
				return printJSON(g.stdout, info)
			}
			fmt.Fprintf(g.stdout, "VIP %s %s added\n", out.Name, out.Address)
			return nil
		}),
	}
	f := add.Flags()
	f.StringVar(&iface, "interface", "", "interface the netlink announcer binds the VIP on (default: the daemon's --netlink-interface)")
	f.StringVar(&check, "check", "", "health check: tcp://HOST:PORT (TCP connect) or http://HOST:PORT/PATH (HTTP GET)")
	f.DurationVar(&interval, "check-interval", 0, "time between checks (default 1s)")
	f.DurationVar(&timeout, "check-timeout", 0, "timeout of one check, shorter than the interval (default 500ms)")
	f.IntVar(&chk.Rise, "check-rise", 0, "consecutive successes that mark the VIP up (default 2)")
	f.IntVar(&chk.Fall, "check-fall", 0, "consecutive failures that mark the VIP down (default 2)")
	f.IntVar(&chk.ExpectStatus, "check-expect-status", 0, "HTTP status an http:// check expects (default 200)")
	vipMoveFlags(f, &nodes, &preempt)

	list := &cobra.Command{
		Use:   "list",
		Short: "List the local DC's VIPs with their health",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := g.ctx()
			defer cancel()
			vs, err := g.client().ListVIPs(ctx)
			if err != nil {
				return err
			}
			if g.output == "json" {
				if vs == nil {
					vs = []vipsmart.VIPInfo{}
				}
				return printJSON(g.stdout, vs)
			}
			rows := make([][]string, 0, len(vs))
			for _, v := range vs {
				rows = append(rows, vipRow(v))
			}
			head := []string{"NAME", "ADDRESS", "INTERFACE", "CHECK", "STATE", "ANNOUNCED"}
			if anyHolders(vs) {
				// A DC of several nodes on etcd: who holds each VIP.
				head = append(head, "HOLDER")
				for i, v := range vs {
					rows[i] = append(rows[i], holderCell(v))
				}
			}
			return table(g.stdout, head, rows)
		},
	}
	show := &cobra.Command{
		Use:   "show NAME",
		Short: "Show one VIP",
		Args:  exactArgs(1),
		RunE: g.namedRun(func(ctx context.Context, name string) error {
			v, err := g.client().GetVIP(ctx, name)
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(g.stdout, v)
			}
			w := g.stdout
			fmt.Fprintf(w, "Name:       %s\nAddress:    %s\nInterface:  %s\nState:      %s\nCreated:    %s\n",
				v.Name, v.Address, orDash(v.Interface), v.State, v.Created.Format(time.RFC3339))
			if v.Check != nil {
				c := v.Check
				fmt.Fprintf(w, "Check:      %s every %s, timeout %s, rise %d, fall %d\n", c.URL,
					time.Duration(c.Interval), time.Duration(c.Timeout), c.Rise, c.Fall)
			}
			if v.LastError != "" {
				fmt.Fprintf(w, "Last error: %s\n", v.LastError)
			}
			for _, a := range v.Announced {
				fmt.Fprintf(w, "Announced:  %s since %s: %s\n", a.Via, a.Since.Format(time.RFC3339), a.StateString())
			}
			for _, x := range v.Warnings {
				fmt.Fprintf(w, "Warning:    %s\n", x)
			}
			printHolder(w, v)
			return nil
		}),
	}
	remove := &cobra.Command{
		Use:     "remove NAME",
		Aliases: []string{"rm"},
		Short:   "Remove a VIP",
		Args:    exactArgs(1),
		RunE: g.namedRun(func(ctx context.Context, name string) error {
			if err := g.client().RemoveVIP(ctx, name); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "VIP %s removed\n", name)
			return nil
		}),
	}
	c.AddCommand(add, list, show, remove, newVIPUpdateCmd(g))
	return c
}

func vipRow(v vipsmart.VIPInfo) []string {
	chk := "-"
	if v.Check != nil {
		chk = v.Check.URL
	}
	return []string{v.Name, v.Address.String(), orDash(v.Interface), chk, string(v.State), vipAnnounced(v)}
}

// vipAnnounced sums up how the announcers handle a VIP: "netlink eth0",
// "bgp pending", "failed (see vip show)", "-".
func vipAnnounced(v vipsmart.VIPInfo) string {
	var parts []string
	for _, a := range v.Announced {
		if a.State == vipsmart.AnnounceUp {
			parts = append(parts, a.Via)
		} else {
			parts = append(parts, a.Via+" "+string(a.State))
		}
	}
	if len(parts) == 0 && len(v.Warnings) > 0 {
		return "cannot (see vip show)"
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}
