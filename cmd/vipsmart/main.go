// Command vipsmart is the vipsmart daemon (`vipsmart serve`) and the CLI
// that talks to a daemon's operator API. All wiring of the program lives in
// this package.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/httpapi"
)

// Exit statuses: 0 success, 1 the daemon refused or failed the request (or
// could not be reached), 2 bad usage or bad input caught before or by the
// daemon's validation.
const (
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	// VIPSMART_CPUPROFILE=FILE writes a CPU profile of this run (for
	// looking into the CLI's own speed, or a daemon's until it stops on
	// SIGTERM); "%p" in FILE becomes the process id, so that the daemons
	// and CLI runs of one federation on one host each write their own.
	if p := os.Getenv("VIPSMART_CPUPROFILE"); p != "" {
		f, err := os.Create(strings.ReplaceAll(p, "%p", strconv.Itoa(os.Getpid())))
		if err == nil {
			_ = pprof.StartCPUProfile(f)
			code := run(os.Args[1:], os.Stdout, os.Stderr)
			pprof.StopCPUProfile()
			f.Close()
			os.Exit(code)
		}
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// usageError marks an error in the command line itself.
type usageError struct{ error }

func run(args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return 0
	}
	var es exitStatus
	if errors.As(err, &es) {
		return int(es) // apply.go: diff's "something would change"
	}
	fmt.Fprintln(stderr, "Error:", err)
	var ue usageError
	if errors.As(err, &ue) || vipsmart.IsCode(err, vipsmart.EINVALID) || strings.HasPrefix(err.Error(), "unknown command") {
		return exitUsage
	}
	return exitFailure
}

// globals are the flags every client command shares.
type globals struct {
	server      string
	token       string
	fingerprint string
	caFile      string
	tlsConf     *tls.Config
	output      string
	timeout     time.Duration
	noRetry     bool
	stdout      io.Writer
	stderr      io.Writer
}

func (g *globals) client() *httpapi.Client {
	c := httpapi.NewClientTLS(g.server, g.tlsConf)
	c.Token = g.token
	c.HTTP.Timeout = g.timeout
	return g.retrying(c)
}

func (g *globals) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), g.timeout)
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	g := &globals{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "vipsmart",
		Short: "Virtual IPs per datacenter and global IPs across a federation of datacenters",
		Long: `vipsmart manages virtual IPs (VIPs) inside a datacenter and global IPs (GIPs)
across a federation of datacenters. One daemon runs per DC (vipsmart serve);
every other command is a client of a daemon's operator API.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			// Only the global flags come from the environment here:
			// a command's own flags (--force, --mode, ...) never do;
			// serve binds its own flags itself.
			given := changedFlags(cmd.Root().PersistentFlags())
			if err := bindEnv(cmd.Root().PersistentFlags(), nil); err != nil {
				return usageError{err}
			}
			if err := checkRanges(cmd.Root().PersistentFlags(), clientRanges, given, nil, ""); err != nil {
				return usageError{err}
			}
			switch g.output {
			case "table", "json":
			case "yaml":
				if cmd.Name() != "export" {
					return usageError{fmt.Errorf("--output %q is unknown for %s (yaml is for export only): give table or json", g.output, cmd.CommandPath())}
				}
			default:
				if cmd.Name() == "export" {
					return usageError{fmt.Errorf("--output %q is unknown for %s: give yaml (the default) or json", g.output, cmd.CommandPath())}
				}
				return usageError{fmt.Errorf("--output %q is unknown: give table or json", g.output)}
			}
			if cmd.Name() == "serve" || cmd.Name() == "demo" {
				return nil
			}
			if _, err := httpapi.ParseServer(g.server); err != nil {
				return err
			}
			tc, err := g.clientTLS()
			if err != nil {
				return err
			}
			g.tlsConf = tc
			return nil
		},
	}
	root.Version = buildInfo().String()
	root.SetVersionTemplate("vipsmart {{.Version}}\n")
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&g.server, "server", httpapi.DefaultSocket, "the daemon's operator API: a socket path, unix:///PATH, or https://HOST:PORT (serve --api-listen) (env VIPSMART_SERVER)")
	pf.StringVar(&g.token, "token", "", "API token for an https:// --server (env VIPSMART_TOKEN)")
	pf.StringVar(&g.fingerprint, "server-fingerprint", "", "pin an https:// --server's key: its identity as `vipsmart status` shows it (env VIPSMART_SERVER_FINGERPRINT)")
	pf.StringVar(&g.caFile, "ca", "", "PEM CA file to verify an https:// --server with, instead of the system's roots (env VIPSMART_CA)")
	pf.StringVarP(&g.output, "output", "o", "table", "output format of read commands: table or json (env VIPSMART_OUTPUT)")
	pf.DurationVar(&g.timeout, "timeout", 30*time.Second, "how long to wait for the daemon's answer (env VIPSMART_TIMEOUT)")
	pf.BoolVar(&g.noRetry, "no-retry", false, "fail at once when the federation is busy instead of retrying until --timeout (env VIPSMART_NO_RETRY)")
	root.AddCommand(newServeCmd(g), newStatusCmd(g), newVIPCmd(g), newDCCmd(g), newGIPCmd(g), newEventsCmd(g), newDemoCmd(g),
		newStoreCmd(g), newBackupCmd(g), newRestoreCmd(g))
	root.AddCommand(newVersionCmd(g), newUICmd(g), newBGPCmd(g), newTokenCmd(g), newNodeCmd(g))
	root.AddCommand(newApplyCmd(g), newDiffCmd(g), newExportCmd(g))
	root.AddCommand(newGuardCmd())
	g.completions(root)
	return root
}

// group makes a command that only holds subcommands: run without one, or
// with an unknown one, it is a usage error (exit 2), not help and exit 0.
func group(c *cobra.Command) *cobra.Command {
	c.Args = func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			if s := suggest(cmd, args[0]); s != "" {
				return usageError{fmt.Errorf("unknown command %q for %q: did you mean %s? (see %s --help)", args[0], cmd.CommandPath(), s, cmd.CommandPath())}
			}
			return usageError{fmt.Errorf("unknown command %q for %q: see %s --help", args[0], cmd.CommandPath(), cmd.CommandPath())}
		}
		return nil
	}
	c.RunE = func(cmd *cobra.Command, args []string) error {
		return usageError{fmt.Errorf("%s needs a subcommand: see %s --help", cmd.CommandPath(), cmd.CommandPath())}
	}
	return c
}

// namedRun is the RunE of a command whose one argument is a name: it
// checks the name (a usage error, exit 2, for a bad one) and runs f with a
// context bounded by --timeout.
func (g *globals) namedRun(f func(ctx context.Context, name string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := vipsmart.ValidateName("name", args[0]); err != nil {
			return err
		}
		ctx, cancel := g.ctx()
		defer cancel()
		return f(ctx, args[0])
	}
}

// exactArgs is cobra.ExactArgs with a usage error that names the syntax.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageError{fmt.Errorf("%s takes %d argument(s), got %d: usage: %s", cmd.CommandPath(), n, len(args), cmd.UseLine())}
		}
		return nil
	}
}
