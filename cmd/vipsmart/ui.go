package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/vipsmart/vipsmart/ui"
)

// newUICmd is `vipsmart ui`: the web UI of a daemon, served on a local
// address from the same client every other command uses (so --server and
// its transport apply).
func newUICmd(g *globals) *cobra.Command {
	var listen string
	c := &cobra.Command{
		Use:   "ui",
		Short: "Serve the web UI of a daemon on a local address and print its URL",
		Long: `UI serves the read-only web UI of the daemon named by --server on --listen and
prints its URL: the federation as a picture (DCs, reachability, status and the
countdown of a temporary status, epoch), every GIP with its active and standby
placements and why, VIPs with their health, what is announced here, BGP
sessions and the event log, all updated live. The same page is at /ui/ on the
daemon's operator API. It stops on Ctrl-C.`,
		Example: "  vipsmart ui\n  vipsmart --server 127.0.0.1:9611 ui --listen 127.0.0.1:8081",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			host, _, err := net.SplitHostPort(listen)
			if err != nil {
				return usageError{fmt.Errorf("--listen %q is not IP:PORT (e.g. 127.0.0.1:8080)", listen)}
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("cannot listen on --listen %s (give another port): %w", listen, err)
			}
			mux := http.NewServeMux()
			mux.Handle("/ui/", ui.Handler(g.client(), ui.Options{Server: g.server}))
			mux.Handle("/", http.RedirectHandler("/ui/", http.StatusFound))
			srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			fmt.Fprintf(g.stdout, "vipsmart UI of the daemon at %s: http://%s/ui/\n(read-only; Ctrl-C stops it)\n", g.server, ln.Addr())
			if a, err := netip.ParseAddr(host); host != "localhost" && (err != nil || !a.IsLoopback()) {
				fmt.Fprintf(g.stderr, "warning: --listen %s is reachable from other hosts and the UI asks for no credentials: anyone there sees this DC's state\n", listen)
			}
			errc := make(chan error, 1)
			go func() { errc <- srv.Serve(ln) }()
			select {
			case <-ctx.Done():
			case err := <-errc:
				if !errors.Is(err, http.ErrServerClosed) {
					return err
				}
			}
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
			return nil
		},
	}
	c.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "IP:PORT the UI is served on")
	return c
}
