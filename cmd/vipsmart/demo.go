package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/httpapi"
	"github.com/vipsmart/vipsmart/internal/daemonenv"
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
up, each with its own data directory under --dir, federates them by running
"dc add" on the first one for each of the others, and prints the federation's
status. It then keeps them running until Ctrl-C (or stops at once with
--exit), so you can try the CLI against them from another terminal.`,
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
	cmdName := invokedAs(self)
	temp := dir == ""
	if temp {
		if dir, err = os.MkdirTemp("", "vipsmart-demo-"); err != nil {
			return err
		}
		// Removed on exit, after the DCs have stopped (deferred first,
		// so it runs last).
		defer os.RemoveAll(dir)
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("cannot create --dir %s: %w", dir, err)
	}
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(basePort+i))
		if err != nil {
			return fmt.Errorf("port %d is not free (%v): is another demo running? give another --base-port", basePort+i, err)
		}
		l.Close()
	}
	earlier := demoDataIn(dir, n)
	// SIGPIPE too (output piped into head): stop the DCs rather than die
	// and leave them running.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGPIPE)
	defer stop()

	dcs := make([]vipsmart.DC, n)
	// Each DC's operator API is a socket in dir; the DCs talk to each
	// other over mutual TLS on their ports.
	socks := make([]string, n)
	clients := make([]*httpapi.Client, n)
	procs := make([]*demoProc, 0, n)
	var stopping atomic.Bool
	defer func() {
		stopping.Store(true)
		for _, p := range procs {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
		}
		for _, p := range procs {
			<-p.done // reaped by its own goroutine: no zombie
		}
	}()
	where := dir
	if temp {
		where += ", removed on exit (give --dir to keep them)"
	}
	fmt.Fprintf(out, "Starting %d DCs on loopback (data and logs in %s):\n", n, where)
	for i := range dcs {
		d := vipsmart.DC{Name: fmt.Sprintf("dc-%d", i+1), Address: netipLoopback, Port: uint16(basePort + i)}
		dcs[i] = d
		data := filepath.Join(dir, d.Name)
		socks[i] = filepath.Join(dir, d.Name+".sock")
		clients[i] = httpapi.NewClient(socks[i])
		args := []string{"serve", "--name", d.Name, "--listen", d.AddrPort().String(), "--data-dir", data, "--socket", socks[i]}
		env := daemonenv.Env(n) // Go runtime settings (docs/operations.md), shown as a shell would take them
		fmt.Fprintf(out, "  $ %s%s %s\n", envPrefix(env), cmdName, joinArgs(args))
		logf, err := os.OpenFile(filepath.Join(dir, d.Name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		p := &demoProc{name: d.Name, cmd: exec.Command(self, args...), done: make(chan struct{}), stopping: &stopping}
		p.cmd.Stdout, p.cmd.Stderr = logf, logf
		if env != nil {
			p.cmd.Env = append(os.Environ(), env...)
		}
		p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := p.cmd.Start(); err != nil {
			logf.Close()
			return fmt.Errorf("starting %s: %w", d.Name, err)
		}
		logf.Close()
		procs = append(procs, p)
		go p.wait(out)
	}
	for i, d := range dcs {
		if err := waitHealthy(ctx, clients[i], procs[i].done); err != nil {
			log := filepath.Join(dir, d.Name+".log")
			return fmt.Errorf("%s did not start: %w; see %s (is another demo using --dir %s?)", d.Name, err, log, dir)
		}
	}
	server := func(i int) string { return cmdName + " --server " + socks[i] }
	first := clients[0]
	if earlier {
		if err := resumeDemo(ctx, out, dcs, clients, dir); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(out, "\nFederating them from %s, with a join token made on each DC it adds:\n", dcs[0].Name)
		for i, d := range dcs[1:] {
			fmt.Fprintf(out, "  $ %s dc add %s --token \"$(%s dc join-token)\"\n", server(0), d, server(i+1))
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
	}
	gctx, gcancel := context.WithTimeout(ctx, 30*time.Second)
	_, err = first.GetGIP(gctx, "www")
	gcancel()
	if vipsmart.IsCode(err, vipsmart.ENOTFOUND) {
		// A global IP placed in every DC, best priority first.
		gip := vipsmart.GIP{Name: "www", Mode: vipsmart.ModeFailover, Preempt: true}
		gip.Address, _ = vipsmart.ParseHostAddr("", "203.0.113.10")
		specs := make([]string, 0, len(dcs))
		for i, d := range dcs {
			p := vipsmart.Placement{DC: d.Name, Priority: max(200-50*i, 1)}
			gip.Placements = append(gip.Placements, p)
			specs = append(specs, fmt.Sprintf("%s:%d", p.DC, p.Priority))
		}
		fmt.Fprintf(out, "  $ %s gip add www 203.0.113.10 --placement %s\n", server(0), strings.Join(specs, ","))
		gctx, gcancel := context.WithTimeout(ctx, 30*time.Second)
		_, err = first.AddGIP(gctx, gip)
		gcancel()
	}
	if err != nil {
		return fmt.Errorf("gip add: %w", err)
	}
	// Let the DCs hear each other for one detection window, so that
	// reachability and the GIP's active placement are filled in.
	select {
	case <-time.After(time.Second):
	case <-ctx.Done():
		return nil
	}
	fmt.Fprintf(out, "\n$ %s status\n", server(0))
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := first.Status(sctx)
	if err != nil {
		return err
	}
	dg := *g
	printStatus(&dg, st)
	fmt.Fprintf(out, "\n$ %s dc list\n", server(0))
	ds, err := first.ListDCs(sctx)
	if err != nil {
		return err
	}
	if err := dcTable(out, ds); err != nil {
		return err
	}
	fmt.Fprintf(out, "\n$ %s gip list\n", server(n-1))
	gs, err := clients[n-1].ListGIPs(sctx)
	if err != nil {
		return err
	}
	if err := gipTable(out, gs); err != nil {
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
	fmt.Fprintf(out, "(--server); the DCs talk to each other over mutual TLS on their ports.\n")
	fmt.Fprintf(out, "Try, from another terminal:\n")
	fmt.Fprintf(out, "  %s ui                  # the web UI of dc-2, live: open the URL it prints\n", server(1))
	fmt.Fprintf(out, "  %s vip add web 192.0.2.10\n", server(1))
	fmt.Fprintf(out, "  %s gip show www      # then stop dc-1 (kill %d) and ask again\n", server(1), procs[0].cmd.Process.Pid)
	fmt.Fprintf(out, "  %s dc leave\n", server(n-1))
	fmt.Fprintf(out, "  %s events\n", server(0))
	<-ctx.Done()
	fmt.Fprintln(out, "\nStopping the DCs.")
	return nil
}

// demoProc is one DC of the demo. Its goroutine waits for it as soon as it
// starts, so that a DC killed from another terminal is reaped at once (no
// zombie) and reported.
type demoProc struct {
	name     string
	cmd      *exec.Cmd
	done     chan struct{}
	stopping *atomic.Bool // set when the demo stops its DCs itself
}

func (p *demoProc) wait(out io.Writer) {
	err := p.cmd.Wait()
	close(p.done)
	if !p.stopping.Load() {
		how := "exited"
		if err != nil {
			how = err.Error()
		}
		fmt.Fprintf(out, "\n[demo] %s (pid %d) stopped: %s\n", p.name, p.cmd.Process.Pid, how)
	}
}

// invokedAs is how the user ran this binary, for the commands the demo
// prints: "vipsmart" when that is what PATH finds, "go run ./cmd/vipsmart"
// under go run (the binary lives in a go-build temporary directory), else
// the path as typed.
func invokedAs(self string) string {
	if p, err := exec.LookPath("vipsmart"); err == nil {
		a, _ := filepath.EvalSymlinks(p)
		b, _ := filepath.EvalSymlinks(self)
		if a != "" && a == b {
			return "vipsmart"
		}
	}
	if strings.Contains(self, string(filepath.Separator)+"go-build") {
		if _, err := os.Stat(filepath.Join("cmd", "vipsmart")); err == nil {
			return "go run ./cmd/vipsmart"
		}
		return "go run github.com/vipsmart/vipsmart/cmd/vipsmart@latest"
	}
	if len(os.Args) > 0 && os.Args[0] != "" {
		return os.Args[0]
	}
	return self
}

// demoDataIn reports whether dir holds the data of an earlier demo.
func demoDataIn(dir string, n int) bool {
	for i := 1; i <= n+1; i++ {
		if _, err := os.Stat(filepath.Join(dir, fmt.Sprintf("dc-%d", i), "vipsmart.db")); err == nil {
			return true
		}
	}
	return false
}

// resumeDemo checks that the DCs started on an earlier demo's data form the
// federation this demo would make; if not it says why and how to go on.
func resumeDemo(ctx context.Context, out io.Writer, dcs []vipsmart.DC, clients []*httpapi.Client, dir string) error {
	var want []string
	for _, d := range dcs {
		want = append(want, d.Name)
	}
	var fed string
	// Members that restart hold their statuses; give temporary ones time
	// to settle (they end by their deadline).
	deadline := time.Now().Add(15 * time.Second)
	for {
		problem, settling := "", false
		for i, d := range dcs {
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			st, err := clients[i].Status(sctx)
			cancel()
			if err != nil {
				return err
			}
			var got []string
			if st.Federation != nil {
				for _, m := range st.Federation.Members {
					got = append(got, m.Name)
				}
			}
			switch {
			case st.Status.Temporary():
				problem, settling = fmt.Sprintf("%s is %s", d.Name, st.Status), true
			case st.Status != vipsmart.StatusMember || st.Federation == nil:
				problem = fmt.Sprintf("%s is %s", d.Name, st.Status)
			case strings.Join(got, ",") != strings.Join(want, ","):
				problem = fmt.Sprintf("%s is a member of a federation of %s", d.Name, strings.Join(got, ", "))
			case fed != "" && st.Federation.ID != fed:
				problem = fmt.Sprintf("%s is in another federation (%s)", d.Name, st.Federation.ID)
			default:
				fed = st.Federation.ID
			}
			if problem != "" {
				break
			}
		}
		if problem == "" {
			fmt.Fprintf(out, "\n%s holds an earlier demo's federation %s of %s: resuming it (no dc add needed).\n", dir, fed, strings.Join(want, ", "))
			return nil
		}
		if !settling || time.Now().After(deadline) {
			return fmt.Errorf("--dir %s holds the data of an earlier demo that this one cannot resume (%s; this demo wants a federation of %s): remove the directory or give another --dir", dir, problem, strings.Join(want, ", "))
		}
		select {
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
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

// waitHealthy waits until the DC answers on its socket, it exits, or 20 s
// pass.
func waitHealthy(ctx context.Context, c *httpapi.Client, exited <-chan struct{}) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-exited:
			return errors.New("it exited at start")
		default:
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

// envPrefix is env as the prefix of a shell command line ("" for none).
func envPrefix(env []string) string {
	if len(env) == 0 {
		return ""
	}
	return strings.Join(env, " ") + " "
}
