package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/httpapi"
	"github.com/vipsmart/vipsmart/manifest"
)

// exitStatus is an error that only sets the exit status (diff's 1 when
// something would change); it prints nothing.
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// fileFlags are the flags apply and diff share.
type fileFlags struct {
	files   []string
	prune   bool
	version string
}

func (f *fileFlags) add(c *cobra.Command) {
	c.Flags().StringArrayVarP(&f.files, "filename", "f", nil, "a YAML or JSON file, a directory of them (*.yaml, *.yml, *.json), or - for standard input; repeatable")
	c.Flags().BoolVar(&f.prune, "prune", false, "also remove the VIPs of this DC and the GIPs of the federation that the files do not declare")
	c.Flags().StringVar(&f.version, "expect-version", "", "refuse unless the objects are still at this resource version (as `vipsmart diff` printed it)")
}

// request reads the files into a request (nothing is sent yet).
func (f *fileFlags) request(stdin io.Reader) (vipsmart.ApplyRequest, error) {
	adviseHeap() // a large file: tens of megabytes of fresh heap
	s, err := manifest.ReadPaths(f.files, stdin)
	if err != nil {
		return vipsmart.ApplyRequest{}, err
	}
	req, err := s.Request()
	if err != nil {
		return req, err
	}
	req.Prune, req.ResourceVersion = f.prune, f.version
	if req.ResourceVersion != "" {
		if _, _, err := vipsmart.ParseResourceVersion(req.ResourceVersion); err != nil {
			return req, vipsmart.Errorf(vipsmart.EINVALID, "--expect-version", "--expect-version: %s", err.(*vipsmart.Error).Message)
		}
	}
	return req, nil
}

func newDiffCmd(g *globals) *cobra.Command {
	var ff fileFlags
	c := &cobra.Command{
		Use:   "diff -f FILE|DIR|- [--prune] [--expect-version V]",
		Short: "Show what apply would change: added, changed and removed objects",
		Long: `Diff compares the VIPs and GIPs declared in the files with the local DC's VIPs
and the federation's GIPs, and prints what vipsmart apply with the same flags
would change, with the resource version it compared against (give it to apply
--expect-version to apply exactly this diff). Exit status: 0 when nothing
would change, 1 when something would, 2 on trouble (bad files, daemon not
reachable), as diff(1). See docs/apply.md for the file format.`,
		Example: "  vipsmart diff -f addresses/\n  vipsmart export | vipsmart diff -f -",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			req, err := ff.request(cmd.InOrStdin())
			if err != nil {
				return usageError{err}
			}
			req.DryRun = true
			ctx, cancel := g.ctx()
			defer cancel()
			res, err := g.client().Apply(ctx, req)
			if err != nil {
				return usageError{err}
			}
			if g.output == "json" {
				if err := printApplyResult(g.stdout, &res); err != nil {
					return err
				}
			} else {
				printDiff(g.stdout, res)
			}
			if len(res.Changes) > 0 {
				return exitStatus(1)
			}
			return nil
		},
	}
	ff.add(c)
	return c
}

func newApplyCmd(g *globals) *cobra.Command {
	var ff fileFlags
	var dry bool
	c := &cobra.Command{
		Use:   "apply -f FILE|DIR|- [--prune] [--dry-run] [--expect-version V]",
		Short: "Make the VIPs and GIPs what the files declare: every GIP change in one federation change",
		Long: `Apply makes the local DC's VIPs and the federation's GIPs what the files declare
(YAML or JSON, one or many objects per file; see docs/apply.md). The daemon
computes the diff (as vipsmart diff), then commits every GIP change as ONE
federation change, on every member or on none, and applies the VIP changes
on the local DC; if the federation change fails, the VIP changes are undone.
Applying the same files again changes nothing and makes no federation change.

Apply is refused, changing nothing, when the objects changed since the
resource version it read first (another apply, a gip or vip command, a DC added): so two
pipelines never silently overwrite each other. --expect-version V pins the
resource version a reviewed diff printed. --prune also removes the objects the
files do not declare; --dry-run prints the diff and changes nothing.`,
		Example: "  vipsmart apply -f addresses/ --prune\n  vipsmart apply -f gips.yaml --expect-version 7-3f9a2c1b0d4e5f60",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			req, err := ff.request(cmd.InOrStdin())
			if err != nil {
				return err
			}
			if ff.prune && !dry && len(req.VIPs)+len(req.GIPs) == 0 {
				// An empty standard input (export failed before the
				// pipe) or an emptied file must not erase everything.
				return vipsmart.Errorf(vipsmart.EINVALID, "-f", "the files (%s) declare no object: apply --prune would remove every VIP of this DC and every GIP of the federation; nothing was sent. If a file or the standard input is empty by mistake, fix it; to remove objects, declare the ones to keep, or use vip remove and gip remove", filesString(ff.files))
			}
			ctx, cancel := g.ctx()
			defer cancel()
			cl := g.client()
			if dry {
				req.DryRun = true
				plan, err := cl.Apply(ctx, req)
				if err != nil {
					return err
				}
				return printPlan(g, plan, "dry run: nothing was changed")
			}
			if req.ResourceVersion == "" {
				// The objects travel once: the version this apply is
				// based on comes from a diff of no objects (tiny), and
				// the daemon diffs the files against it as it commits.
				// A change between the two (another apply, a gip
				// command) makes the apply refused, as with
				// --expect-version.
				cur, err := cl.Apply(ctx, vipsmart.ApplyRequest{DryRun: true})
				if err != nil {
					return err
				}
				req.ResourceVersion = cur.ResourceVersion
			}
			res, err := cl.Apply(ctx, req)
			if err != nil {
				return err
			}
			if len(res.Changes) == 0 {
				return printPlan(g, res, "nothing to change")
			}
			warnVIPs(ctx, g, cl, res)
			if g.output == "json" {
				return printApplyResult(g.stdout, &res)
			}
			printDiff(g.stdout, res)
			fmt.Fprintf(g.stdout, "applied")
			if res.OpID != "" {
				fmt.Fprintf(g.stdout, ": GIP changes committed by operation %s on every member (epoch %d)", res.OpID, res.Epoch)
			}
			fmt.Fprintf(g.stdout, "; resource version now %s\n", res.NewVersion)
			return nil
		},
	}
	ff.add(c)
	c.Flags().BoolVar(&dry, "dry-run", false, "print what would change and change nothing")
	return c
}

// printPlan prints a diff that changed nothing, and what says why.
func printPlan(g *globals, plan vipsmart.ApplyResult, what string) error {
	if g.output == "json" {
		return printApplyResult(g.stdout, &plan)
	}
	printDiff(g.stdout, plan)
	if len(plan.Changes) == 0 {
		what = "nothing to change"
	}
	fmt.Fprintln(g.stdout, what)
	return nil
}

func newExportCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "export [-o yaml|json]",
		Short: "Print the local DC's VIPs and the federation's GIPs in the file format of apply",
		Long: `Export prints every VIP of the local DC and every GIP of the federation as
apply reads them (YAML documents by default, -o json for a JSON array), so
that vipsmart export | vipsmart apply -f - changes nothing.`,
		Example: "  vipsmart export > addresses.yaml\n  vipsmart export -o json",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			adviseHeap()
			ctx, cancel := g.ctx()
			defer cancel()
			cl := g.client()
			vs, err := cl.ListVIPs(ctx)
			if err != nil {
				return err
			}
			gs, err := cl.ListGIPs(ctx)
			if err != nil {
				return err
			}
			vips := make([]vipsmart.VIP, 0, len(vs))
			for _, v := range vs {
				vips = append(vips, v.VIP)
			}
			gips := make([]vipsmart.GIP, 0, len(gs))
			for _, gi := range gs {
				gips = append(gips, gi.GIP)
			}
			objs := manifest.Objects(vips, gips)
			if g.output == "json" {
				return manifest.WriteJSON(g.stdout, objs)
			}
			return manifest.WriteYAML(g.stdout, objs)
		},
	}
}

// printDiff prints the changes of res, one object a line (+ add, ~ change,
// - remove), the fields a change changes, and the counts.
func printDiff(out io.Writer, res vipsmart.ApplyResult) {
	w := bufio.NewWriterSize(out, 64<<10) // one write per line is 10,000 system calls
	defer w.Flush()
	fmt.Fprintf(w, "resource version %s\n", res.ResourceVersion)
	for _, c := range res.Changes {
		sign := ""
		switch c.Action {
		case vipsmart.ActionAdd:
			sign = "+"
		case vipsmart.ActionChange:
			sign = "~"
		case vipsmart.ActionRemove:
			sign = "-"
		}
		what := ""
		switch {
		case c.VIP != nil && c.Action != vipsmart.ActionChange:
			what = " " + c.VIP.Address.String()
		case c.GIP != nil && c.Action != vipsmart.ActionChange:
			what = " " + c.GIP.Address.String() + " " + vipsmart.PlacementsString(c.GIP.Placements)
		}
		fmt.Fprintf(w, "%s %s %s%s\n", sign, c.Kind, c.Name, what)
		for _, f := range c.Fields {
			fmt.Fprintf(w, "    %s\n", f)
		}
	}
	fmt.Fprintf(w, "%d to add, %d to change, %d to remove\n", res.Added, res.Changed, res.Removed)
}

// filesString names the -f arguments for a message.
func filesString(files []string) string {
	out := make([]string, 0, len(files))
	for _, f := range files {
		if f == "-" {
			f = "standard input"
		}
		out = append(out, f)
	}
	return strings.Join(out, ", ")
}

// warnVIPs warns on stderr, as vip add does, of the VIPs the apply added
// or changed that an announcer cannot announce (netlink without an
// interface for the address): one read of the VIPs, whatever their
// number.
func warnVIPs(ctx context.Context, g *globals, cl *httpapi.Client, res vipsmart.ApplyResult) {
	touched := map[string]bool{}
	for _, c := range res.Changes {
		if c.Kind == vipsmart.KindVIP && c.Action != vipsmart.ActionRemove {
			touched[c.Name] = true
		}
	}
	if len(touched) == 0 {
		return
	}
	vs, err := cl.ListVIPs(ctx)
	if err != nil {
		return // the apply is done; the warnings are in vip list
	}
	for _, v := range vs {
		if touched[v.Name] {
			for _, w := range v.Warnings {
				fmt.Fprintf(g.stderr, "warning: VIP %s %s: %s\n", v.Name, v.Address, w)
			}
		}
	}
}
