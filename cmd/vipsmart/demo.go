package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/httpapi"
)

// newDemoCmd is `vipsmart demo`: a local federation on loopback, started
// and federated with the same commands an operator would type.
func newDemoCmd(g *globals) *cobra.Command {
	var n, basePort int
	var dir string
	var exit bool
	c := &cobra.Command{
		Use:   "demo",
		Short: "Start a local federation of DCs on loopback and federate them with dc add",
		Long: `Demo starts --dcs daemons (vipsmart serve) on 127.0.0.1, ports --base-port and
up, each with its own data directory and operator socket under --dir,
federates them by making a join token on each of the others and running
"dc add --token" on the first one, and prints the federation's status. It then
keeps them running until Ctrl-C (or stops at once with --exit), so you can try
the CLI against them from another terminal (--server names each DC's socket).`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if n < 2 || n > 50 {
				return usageError{fmt.Errorf("--dcs %d is out of range: give 2 to 50", n)}
			}
			if basePort < 1 || basePort+n-1 > 65535 {
				return usageError{fmt.Errorf("--base-port %d is out of range", basePort)}
			}
			return runDemo(g, n, basePort, dir, exit)
		},
	}
	c.Flags().IntVar(&n, "dcs", 3, "number of DCs to start")
	c.Flags().IntVar(&basePort, "base-port", 9611, "API port of the first DC; the others follow")
	c.Flags().StringVar(&dir, "dir", "", "directory for the DCs' data and logs (default: a new temporary directory)")
	c.Flags().BoolVar(&exit, "exit", false, "stop the DCs and exit after printing the status")
	return c
}

func runDemo(g *globals, n, basePort int, dir string, exit bool) error {
	out := g.stdout
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if dir == "" {
		if dir, err = os.MkdirTemp("", "vipsmart-demo-"); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(basePort+i))
		if err != nil {
			return fmt.Errorf("port %d is not free (%v): give another --base-port", basePort+i, err)
		}
		l.Close()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	dcs := make([]vipsmart.DC, n)
	socks := make([]string, n)
	clients := make([]*httpapi.Client, n)
	procs := make([]*exec.Cmd, 0, n)
	defer func() {
		for _, p := range procs {
			_ = p.Process.Signal(syscall.SIGTERM)
		}
		for _, p := range procs {
			_ = p.Wait()
		}
	}()
	fmt.Fprintf(out, "Starting %d DCs on loopback (data and logs in %s):\n", n, dir)
	for i := range dcs {
		d := vipsmart.DC{Name: fmt.Sprintf("dc-%d", i+1), Address: netipLoopback, Port: uint16(basePort + i)}
		dcs[i] = d
		data := filepath.Join(dir, d.Name)
		socks[i] = filepath.Join(dir, d.Name+".sock")
		clients[i] = httpapi.NewClient(socks[i])
		args := []string{"serve", "--name", d.Name, "--listen", d.AddrPort().String(), "--data-dir", data, "--socket", socks[i]}
		fmt.Fprintf(out, "  $ vipsmart %s\n", joinArgs(args))
		logf, err := os.Create(filepath.Join(dir, d.Name+".log"))
		if err != nil {
			return err
		}
		p := exec.Command(self, args...)
		p.Stdout, p.Stderr = logf, logf
		p.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := p.Start(); err != nil {
			return fmt.Errorf("starting %s: %w", d.Name, err)
		}
		procs = append(procs, p)
	}
	for i, d := range dcs {
		if err := waitHealthy(ctx, clients[i]); err != nil {
			return fmt.Errorf("%s did not start (see %s): %w", d.Name, filepath.Join(dir, d.Name+".log"), err)
		}
	}
	first := clients[0]
	fmt.Fprintf(out, "\nFederating them from %s, with a join token made on each DC it adds:\n", dcs[0].Name)
	for i, d := range dcs[1:] {
		fmt.Fprintf(out, "  $ vipsmart --server %s dc add %s --token \"$(vipsmart --server %s dc join-token)\"\n", socks[0], d, socks[i+1])
		tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		jt, err := clients[i+1].CreateJoinToken(tctx, vipsmart.DefaultJoinTokenTTL)
		cancel()
		if err != nil {
			return fmt.Errorf("dc join-token on %s: %w", d.Name, err)
		}
		start := time.Now()
		actx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err = first.AddDC(actx, d, jt.Token)
		cancel()
		if err != nil {
			return fmt.Errorf("dc add %s: %w", d, err)
		}
		fmt.Fprintf(out, "    DC %s (key %s) added in %s\n", d.Name, vipsmart.ShortIdentity(jt.Identity), time.Since(start).Round(100*time.Microsecond))
	}
	// A global IP placed in every DC, best priority first.
	gip := vipsmart.GIP{Name: "www", Mode: vipsmart.ModeFailover, Preempt: true}
	gip.Address, _ = vipsmart.ParseHostAddr("", "203.0.113.10")
	specs := make([]string, 0, len(dcs))
	for i, d := range dcs {
		p := vipsmart.Placement{DC: d.Name, Priority: 200 - 50*i}
		if p.Priority < 1 {
			p.Priority = 1
		}
		gip.Placements = append(gip.Placements, p)
		specs = append(specs, fmt.Sprintf("%s:%d", p.DC, p.Priority))
	}
	fmt.Fprintf(out, "  $ vipsmart --server %s gip add www 203.0.113.10 --placement %s\n", socks[0], strings.Join(specs, ","))
	gctx, gcancel := context.WithTimeout(ctx, 30*time.Second)
	_, err = first.AddGIP(gctx, gip)
	gcancel()
	if err != nil {
		return fmt.Errorf("gip add: %w", err)
	}
	// Let the DCs hear each other for one detection window, so that
	// reachability and the GIP's active placement are filled in.
	time.Sleep(time.Second)
	fmt.Fprintf(out, "\n$ vipsmart --server %s status\n", socks[0])
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := first.Status(sctx)
	if err != nil {
		return err
	}
	dg := *g
	printStatus(&dg, st)
	fmt.Fprintf(out, "\n$ vipsmart --server %s dc list\n", socks[0])
	ds, err := first.ListDCs(sctx)
	if err != nil {
		return err
	}
	rows := [][]string{}
	for _, d := range ds {
		reach := "no"
		if d.Reachable {
			reach = "yes"
		}
		rows = append(rows, []string{d.Name, d.AddrPort().String(), reach, orDash(string(d.Status)), strconv.FormatUint(d.LastEpoch, 10)})
	}
	if err := table(out, []string{"NAME", "ADDRESS", "REACHABLE", "STATUS", "EPOCH"}, rows); err != nil {
		return err
	}
	fmt.Fprintf(out, "\n$ vipsmart --server %s gip list\n", socks[n-1])
	gs, err := clients[n-1].ListGIPs(sctx)
	if err != nil {
		return err
	}
	grows := [][]string{}
	for _, gp := range gs {
		grows = append(grows, []string{gp.Name, gp.Address.String(), string(gp.Mode), placementsString(gp.Placements), orDash(strings.Join(gp.Active, ","))})
	}
	if err := table(out, []string{"NAME", "ADDRESS", "MODE", "PLACEMENTS", "ACTIVE"}, grows); err != nil {
		return err
	}
	fmt.Fprintln(out, "\nEvery DC holds the same federation:")
	for i, d := range dcs {
		st, err := clients[i].Status(sctx)
		if err != nil {
			return err
		}
		fed := "-"
		if st.Federation != nil {
			fed = fmt.Sprintf("%s epoch %d, %d members", st.Federation.ID, st.Federation.Epoch, len(st.Federation.Members))
		}
		fmt.Fprintf(out, "  %s: %s, %s\n", d.Name, st.Status, fed)
	}
	if exit {
		return nil
	}
	fmt.Fprintf(out, "\nThe DCs keep running until Ctrl-C. Each DC's operator API is its socket\n")
	fmt.Fprintf(out, "(--server); the DCs talk to each other over mutual TLS on their ports. Try, from\n")
	fmt.Fprintf(out, "another terminal (go run ./cmd/vipsmart in place of vipsmart from a checkout):\n")
	fmt.Fprintf(out, "  vipsmart --server %s status\n", socks[0])
	fmt.Fprintf(out, "  vipsmart --server %s vip add web 192.0.2.10\n", socks[1])
	fmt.Fprintf(out, "  vipsmart --server %s gip show www      # then stop dc-1 (kill %d) and ask again\n", socks[1], procs[0].Process.Pid)
	fmt.Fprintf(out, "  vipsmart --server %s dc leave\n", socks[n-1])
	fmt.Fprintf(out, "  vipsmart --server %s events\n", socks[0])
	<-ctx.Done()
	fmt.Fprintln(out, "\nStopping the DCs.")
	return nil
}

var netipLoopback = netip.MustParseAddr("127.0.0.1")

func joinArgs(a []string) string {
	s := ""
	for i, x := range a {
		if i > 0 {
			s += " "
		}
		s += x
	}
	return s
}

// waitHealthy waits until the daemon answers on its socket.
func waitHealthy(ctx context.Context, c *httpapi.Client) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := c.Status(sctx)
		cancel()
		if err == nil {
			return nil
		}
		time.Sleep(25 * time.Millisecond)
	}
	return errors.New("no answer on its socket within 20s")
}
