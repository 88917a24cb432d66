package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
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
			cols := eventColumns{w: g.stdout}
			print := func(es []vipsmart.Event) error {
				if g.output == "json" {
					enc := json.NewEncoder(g.stdout)
					enc.SetEscapeHTML(false)
					for _, e := range es {
						if err := enc.Encode(e); err != nil {
							return err
						}
					}
					return nil
				}
				return cols.print(es)
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

// eventColumns prints events as a table (SEQ, TIME, DC, KIND, MESSAGE with
// the operation id in brackets; a warn or error event's message starts
// with WARN: or ERROR:). The widths are fixed by the first batch
// (with room for the sequence numbers to grow), so that --follow keeps its
// columns aligned.
type eventColumns struct {
	w          io.Writer
	seqW, dcW  int
	headerDone bool
}

func (c *eventColumns) print(es []vipsmart.Event) error {
	var b strings.Builder
	if !c.headerDone {
		c.headerDone = true
		c.seqW, c.dcW = 3, 2
		for _, e := range es {
			c.seqW = max(c.seqW, len(strconv.FormatUint(e.Seq, 10))+1)
			c.dcW = max(c.dcW, len(e.DC))
		}
		fmt.Fprintf(&b, "%-*s  %-29s  %-*s  %-10s  %s\n", c.seqW, "SEQ", "TIME", c.dcW, "DC", "KIND", "MESSAGE")
	}
	for _, e := range es {
		op := ""
		if e.OpID != "" {
			op = " [" + e.OpID + "]"
		}
		level := ""
		if e.Level != "" && e.Level != vipsmart.LevelInfo {
			level = strings.ToUpper(e.Level) + ": "
		}
		fmt.Fprintf(&b, "%-*d  %-29s  %-*s  %-10s  %s%s%s\n", c.seqW, e.Seq, e.Time.Local().Format("2006-01-02T15:04:05.000Z07:00"), c.dcW, e.DC, e.Kind, level, e.Message, op)
	}
	_, err := io.WriteString(c.w, b.String())
	return err
}
