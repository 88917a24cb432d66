package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/vipsmart/vipsmart"
)

func newEventsCmd(g *globals) *cobra.Command {
	var follow bool
	var after uint64
	var limit int
	c := &cobra.Command{
		Use:   "events",
		Short: "Show the local DC's event log (status changes, operations, health, GIPs)",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 1 || limit > 10000 {
				return usageError{fmt.Errorf("--limit %d is out of range: give 1 to 10000", limit)}
			}
			cl := g.client()
			print := func(es []vipsmart.Event) error {
				for _, e := range es {
					if g.output == "json" {
						b, err := json.Marshal(e)
						if err != nil {
							return err
						}
						if _, err := g.stdout.Write(append(b, '\n')); err != nil {
							return err
						}
						continue
					}
					op := ""
					if e.OpID != "" {
						op = " [" + e.OpID + "]"
					}
					level := ""
					if e.Level != "" && e.Level != vipsmart.LevelInfo {
						level = " " + strings.ToUpper(e.Level)
					}
					if _, err := g.stdout.Write([]byte(e.Time.Local().Format("2006-01-02T15:04:05.000Z07:00") + " " + e.DC + level + " " + e.Kind + op + ": " + e.Message + "\n")); err != nil {
						return err
					}
				}
				return nil
			}
			for {
				ctx, cancel := g.ctx()
				es, err := cl.Events(ctx, after, limit)
				cancel()
				if err != nil {
					return err
				}
				if !follow && g.output == "json" {
					if es == nil {
						es = []vipsmart.Event{}
					}
					return printJSON(g.stdout, es)
				}
				if err := print(es); err != nil {
					return err
				}
				if len(es) > 0 {
					after = es[len(es)-1].Seq
				}
				if !follow {
					return nil
				}
				if len(es) < limit {
					time.Sleep(200 * time.Millisecond)
				}
			}
		},
	}
	c.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new events as they happen (JSON: one object per line)")
	c.Flags().Uint64Var(&after, "after", 0, "show only events with a sequence number above this")
	c.Flags().IntVar(&limit, "limit", 10000, "most events to fetch per request (1-10000; the default shows every event kept)")
	return c
}
