package main

import (
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/httpapi"
)

// oneNode answers GET /v1/nodes on a DC on bolt (one daemon, no nodes to
// list) with a 404 that says so, and the rest with h.
func oneNode(h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(httpapi.NodesPath, func(w http.ResponseWriter, r *http.Request) {
		httpapi.WriteError(w, vipsmart.Errorf(vipsmart.ENOTFOUND, "", "this DC runs one daemon on the bolt store (serve --store bolt): node list applies to a DC whose daemons run on etcd (serve --store etcd, docs/ha.md)"))
	})
	mux.Handle("/", h)
	return mux
}

func newNodeCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "node",
		Short: "The nodes of a DC run by several daemons on etcd (docs/ha.md)",
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List the DC's live nodes: address, identity, leader or follower, lease remaining, last seen, version",
		Long: `List the live nodes of the DC (its daemons on etcd, serve --store etcd): each
node's federation address, the key it presents (the DC's), whether it leads,
the time left on its etcd lease, when it last renewed it, and its version. Any
node answers. A DC on bolt has one node and answers 404.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := g.ctx()
			defer cancel()
			ns, err := g.client().ListNodes(ctx)
			if err != nil {
				return err
			}
			if ns == nil {
				ns = []vipsmart.NodeInfo{}
			}
			if g.output == "json" {
				return printJSON(g.stdout, ns)
			}
			return nodeTable(g.stdout, ns)
		},
	}
	c.AddCommand(list)
	return c
}

func nodeTable(w io.Writer, ns []vipsmart.NodeInfo) error {
	now := time.Now()
	rows := make([][]string, 0, len(ns))
	for _, n := range ns {
		rows = append(rows, []string{n.Name, orDash(n.Address), n.Role, vipsmart.ShortIdentity(n.Identity), time.Duration(n.LeaseRemaining).String(), ago(now, n.LastSeen), orDash(n.Version), strconv.Itoa(n.PID)})
	}
	return table(w, []string{"NODE", "ADDRESS", "ROLE", "IDENTITY", "LEASE", "LAST SEEN", "VERSION", "PID"}, rows)
}
