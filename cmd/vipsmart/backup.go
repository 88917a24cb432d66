package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/vipsmart/vipsmart/bolt"
)

func newBackupCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "backup FILE",
		Short: "Write a consistent snapshot of the daemon's store to FILE",
		Long: `Backup asks the daemon (--server) for a consistent snapshot of its store, taken
in one read transaction while the daemon keeps running and writing, and
writes it to FILE: first to a temporary file beside it, which is checked as
"vipsmart store check --file" does, then renamed to FILE (an existing FILE is
replaced only by a sound backup). Put it back with "vipsmart restore".

A backup holds the DC's VIPs, its federation state (members, GIPs, epoch) and
its event log. See docs/operations.md for what a restored DC does in its
federation.`,
		Example: "  vipsmart backup /var/backups/vipsmart-dc-1.db",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dst := args[0]
			if fi, err := os.Stat(dst); err == nil && fi.IsDir() {
				return usageError{fmt.Errorf("%s is a directory: give the backup file's name, e.g. %s", dst, filepath.Join(dst, "vipsmart-backup.db"))}
			}
			tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp-*")
			if err != nil {
				return fmt.Errorf("cannot write the backup next to %s: %w", dst, err)
			}
			defer os.Remove(tmp.Name())
			ctx, cancel := g.ctx()
			defer cancel()
			if _, err := g.client().Backup(ctx, tmp); err != nil {
				tmp.Close()
				return err
			}
			if err := tmp.Sync(); err != nil {
				tmp.Close()
				return fmt.Errorf("writing %s: %w", tmp.Name(), err)
			}
			if err := tmp.Close(); err != nil {
				return fmt.Errorf("writing %s: %w", tmp.Name(), err)
			}
			opts := boltOptions(nil)
			in, err := bolt.Inspect(tmp.Name(), opts)
			if err != nil {
				return fmt.Errorf("the backup received from %s is not sound, %s was left as it was: %w", g.server, dst, err)
			}
			if err := os.Rename(tmp.Name(), dst); err != nil {
				return fmt.Errorf("putting the backup in place: %w", err)
			}
			in.Path = dst
			if g.output == "json" {
				return printJSON(g.stdout, in)
			}
			fmt.Fprintf(g.stdout, "Backup written to %s\n", dst)
			printInspection(g, in)
			return nil
		},
	}
}

func newRestoreCmd(g *globals) *cobra.Command {
	var dataDir string
	var force bool
	c := &cobra.Command{
		Use:   "restore FILE --data-dir DIR",
		Short: "Put a backup back as the store of a data directory (daemon stopped)",
		Long: `Restore puts the backup FILE (made by "vipsmart backup") in place as the store
of the data directory --data-dir, offline: the daemon of that directory must be
stopped. The backup is checked first; the store it replaces, if any, is moved
aside to vipsmart.db.before-restore-TIME, never deleted. A sound store that
holds a federation state, or the store of another DC, is replaced only with
--force.

When the daemon starts again, the DC is where the backup left it: if its
federation moved on meanwhile it catches up from the other members (fetching
their state); if the federation removed it meanwhile (dc remove --force), it
finds itself fenced out, turns standalone and must be added again. See
docs/operations.md.`,
		Example: "  vipsmart restore /var/backups/vipsmart-dc-1.db --data-dir /var/lib/vipsmart",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := checkedDataDir(dataDir)
			if err != nil {
				return err
			}
			if _, err := os.Stat(args[0]); err != nil {
				return usageError{fmt.Errorf("backup file %s: %w", args[0], errors.Unwrap(err))}
			}
			res, err := bolt.Restore(args[0], filepath.Join(dir, storeFile), boltOptions(nil), bolt.RestoreOptions{Force: force})
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(g.stdout, res)
			}
			w := g.stdout
			what := "a store without federation state"
			if r := res.Backup.Record; r != nil {
				what = fmt.Sprintf("DC %s at epoch %d", r.DC, r.Epoch)
				if r.Federation != "" {
					what += ", member of federation " + r.Federation
				}
			}
			fmt.Fprintf(w, "Restored %s (%d VIPs, %d GIPs, %d events) from %s into %s\n", what, res.Backup.VIPs, res.Backup.GIPs, res.Backup.Events, args[0], filepath.Join(dir, storeFile))
			if res.KeptAs != "" {
				fmt.Fprintf(w, "The store it replaced is kept as %s\n", res.KeptAs)
			}
			name := "its name"
			if r := res.Backup.Record; r != nil {
				name = r.DC
			}
			fmt.Fprintf(w, "Start the daemon with --name %s --data-dir %s: if its federation moved on it catches up; if the federation removed it meanwhile it turns standalone and must be added again.\n", name, dir)
			return nil
		},
	}
	c.Flags().StringVar(&dataDir, "data-dir", "", "data directory to restore into (required; its daemon must be stopped)")
	c.Flags().BoolVar(&force, "force", false, "replace a sound store that holds federation state, or the store of another DC")
	return c
}
