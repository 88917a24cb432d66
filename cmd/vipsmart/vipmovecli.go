package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/vipsmart/vipsmart"
)

// The VIP commands' part for VIPs that move between the nodes of a DC on
// etcd (docs/ha.md, "VIPs that move between nodes").

func vipMoveFlags(f *pflag.FlagSet, nodes *[]string, preempt *bool) {
	f.StringArrayVar(nodes, "node", nil, "NODE:PRIORITY: a node of a DC on etcd that may hold the VIP, with its priority (1-255, default 100); repeat for each node; none: every node, at equal priority")
	f.BoolVar(preempt, "preempt", false, "an eligible node of higher priority takes the VIP from a live holder (orderly handover); false: the holder keeps it while it is eligible")
}

func parseVIPNodes(ss []string) ([]vipsmart.VIPNode, error) {
	var out []vipsmart.VIPNode
	for _, s := range ss {
		n, err := vipsmart.ParseVIPNode("--node", s)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	if err := vipsmart.ValidateVIPNodes(out); err != nil {
		return nil, err
	}
	return out, nil
}

func newVIPUpdateCmd(g *globals) *cobra.Command {
	var iface, check string
	var nodes []string
	var preempt, noCheck bool
	var interval, timeout time.Duration
	var rise, fall, expect int
	c := &cobra.Command{
		Use:   "update NAME",
		Short: "Change a VIP: its nodes and priorities, preemption, interface or health check",
		Example: `  vipsmart vip update web --node n1:200 --node n2:100 --preempt=true
  vipsmart vip update web --node ''         # every node again, at equal priority
  vipsmart vip update web --check tcp://10.0.0.5:443 --check-rise 3`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			fl := cmd.Flags()
			given := false
			for _, n := range []string{"node", "preempt", "interface", "check", "no-check", "check-interval", "check-timeout", "check-rise", "check-fall", "check-expect-status"} {
				given = given || fl.Changed(n)
			}
			if !given {
				return usageError{fmt.Errorf("nothing to change: give --node, --preempt, --interface, --check or --no-check")}
			}
			if err := vipsmart.ValidateName("name", args[0]); err != nil {
				return err
			}
			ctx, cancel := g.ctx()
			defer cancel()
			info, err := g.client().GetVIP(ctx, args[0])
			if err != nil {
				return err
			}
			v := info.VIP
			if fl.Changed("node") {
				var given []string
				for _, n := range nodes {
					if n != "" {
						given = append(given, n)
					}
				}
				if v.Nodes, err = parseVIPNodes(given); err != nil {
					return err
				}
			}
			if fl.Changed("preempt") {
				v.Preempt = preempt
			}
			if fl.Changed("interface") {
				v.Interface = iface
			}
			checkFlags := fl.Changed("check-interval") || fl.Changed("check-timeout") || fl.Changed("check-rise") || fl.Changed("check-fall") || fl.Changed("check-expect-status")
			switch {
			case noCheck && (check != "" || checkFlags):
				return usageError{fmt.Errorf("--no-check removes the check: give it without --check or --check-* flags")}
			case noCheck:
				v.Check = nil
			case check != "":
				v.Check = &vipsmart.Check{URL: check, Interval: vipsmart.Duration(interval), Timeout: vipsmart.Duration(timeout), Rise: rise, Fall: fall, ExpectStatus: expect}
			case checkFlags:
				if v.Check == nil {
					return usageError{fmt.Errorf("VIP %s has no check: --check-* flags need --check URL", v.Name)}
				}
				c := *v.Check
				if fl.Changed("check-interval") {
					c.Interval = vipsmart.Duration(interval)
				}
				if fl.Changed("check-timeout") {
					c.Timeout = vipsmart.Duration(timeout)
				}
				if fl.Changed("check-rise") {
					c.Rise = rise
				}
				if fl.Changed("check-fall") {
					c.Fall = fall
				}
				if fl.Changed("check-expect-status") {
					c.ExpectStatus = expect
				}
				v.Check = &c
			}
			if err := v.Validate(); err != nil {
				return err
			}
			res, err := g.client().Apply(ctx, vipsmart.ApplyRequest{VIPs: []vipsmart.VIP{v}})
			if err != nil {
				return err
			}
			if g.output == "json" {
				out, err := g.client().GetVIP(ctx, v.Name)
				if err != nil {
					return err
				}
				return printJSON(g.stdout, out)
			}
			if res.Changed == 0 {
				fmt.Fprintf(g.stdout, "VIP %s unchanged\n", v.Name)
				return nil
			}
			for _, ch := range res.Changes {
				fmt.Fprintf(g.stdout, "VIP %s updated: %s\n", v.Name, strings.Join(ch.Fields, "; "))
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&iface, "interface", "", "interface the netlink announcer binds the VIP on")
	f.StringVar(&check, "check", "", "new health check: tcp://HOST:PORT or http://HOST:PORT/PATH")
	f.BoolVar(&noCheck, "no-check", false, "remove the health check (the VIP is always up)")
	f.DurationVar(&interval, "check-interval", 0, "time between checks")
	f.DurationVar(&timeout, "check-timeout", 0, "timeout of one check, shorter than the interval")
	f.IntVar(&rise, "check-rise", 0, "consecutive successes that mark the VIP up")
	f.IntVar(&fall, "check-fall", 0, "consecutive failures that mark the VIP down")
	f.IntVar(&expect, "check-expect-status", 0, "HTTP status an http:// check expects")
	vipMoveFlags(f, &nodes, &preempt)
	return c
}

func anyHolders(vs []vipsmart.VIPInfo) bool {
	for _, v := range vs {
		if v.Holder != nil || len(v.Eligibility) > 0 {
			return true
		}
	}
	return false
}

func holderCell(v vipsmart.VIPInfo) string {
	if v.Holder == nil {
		return "-"
	}
	return v.Holder.Node
}

// printHolder prints the holder part of `vip show`.
func printHolder(w io.Writer, v vipsmart.VIPInfo) {
	if len(v.Nodes) > 0 || v.Preempt {
		fmt.Fprintf(w, "Nodes:      %s\nPreempt:    %t\n", vipsmart.VIPNodesString(v.Nodes), v.Preempt)
	}
	if v.Holder == nil && len(v.Eligibility) == 0 {
		return
	}
	if v.Holder != nil {
		fmt.Fprintf(w, "Holder:     %s since %s: %s\n", v.Holder.Node, v.Holder.Since.Format(time.RFC3339), v.Holder.Reason)
	} else {
		fmt.Fprintf(w, "Holder:     none\n")
	}
	for _, e := range v.Eligibility {
		s := "eligible"
		if !e.Eligible {
			s = "not eligible: " + e.Why
		}
		fmt.Fprintf(w, "Node:       %s priority %d, %s\n", e.Node, e.Priority, s)
	}
}
