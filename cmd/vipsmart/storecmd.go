package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/vipsmart/vipsmart/bolt"
	"github.com/vipsmart/vipsmart/federation"
	"github.com/vipsmart/vipsmart/identity"
)

// storeFile is the name of the store in a data directory.
const storeFile = "vipsmart.db"

// evidenceFiles are the other files of a data directory whose presence
// shows it held a DC before (besides the store's marker). The DC's
// identity key is one: it is created after the store is opened, so a
// fresh directory holds neither.
var evidenceFiles = []string{identity.KeyFile}

// boltOptions are the bolt options every command that opens or inspects
// a store uses.
func boltOptions(log *slog.Logger) bolt.Options {
	return bolt.Options{Describe: describeRecord, DescribeSaved: describeSavedRecord, Evidence: evidenceFiles, Logger: log}
}

func describeRecord(b []byte) (bolt.RecordInfo, error) {
	dc, fed, epoch, err := federation.DescribeRecord(b)
	return bolt.RecordInfo{DC: dc, Federation: fed, Epoch: epoch}, err
}

// describeSavedRecord is describeRecord for the records the daemon saves.
func describeSavedRecord(b []byte) (bolt.RecordInfo, error) {
	dc, fed, epoch, err := federation.DescribeOwnRecord(b)
	return bolt.RecordInfo{DC: dc, Federation: fed, Epoch: epoch}, err
}

// storeAdvice adds to a store refusal what the operator can do about it.
func storeAdvice(err error, dataDir string) error {
	var re *bolt.RefusedError
	if !errors.As(err, &re) {
		return err
	}
	fed := "FEDERATION-ID"
	if re.Marker != nil && re.Marker.Federation != "" {
		fed = re.Marker.Federation
	}
	marker := re.Path + bolt.MarkerSuffix
	rebuild := fmt.Sprintf("rebuild it from its federation: start it with --rebuild-federation %s --rebuild-from NAME,IP,PORT --rebuild-identity ID (a member to fetch the state from, and its identity as `vipsmart status` on it shows)", fed)
	restore := fmt.Sprintf("vipsmart restore BACKUP-FILE --data-dir %s", dataDir)
	var what string
	switch re.Kind {
	case bolt.Lost:
		what = fmt.Sprintf("vipsmart refuses to start afresh, which would silently drop this DC's state (it would come back as a new standalone DC at epoch 0 while its federation still lists it). "+
			"If this DC was a member of a federation, %s; or put a backup back: %s (the DC then catches up from its federation). "+
			"Only to really start this DC anew as a standalone DC (its federation must force-remove it first), delete %s", rebuild, restore, marker)
	case bolt.Damaged:
		what = fmt.Sprintf("do not delete the file yet: `vipsmart store check --data-dir %s` shows the damage. Then move it aside (mv %s %s.damaged) and either %s, or restore a backup: %s",
			dataDir, re.Path, re.Path, rebuild, restore)
	case bolt.Replaced:
		what = fmt.Sprintf("to put a backup in place use `%s`, which checks it and records it in the marker; if you are sure this file is the right store of this directory, delete %s", restore, marker)
	case bolt.Behind:
		what = fmt.Sprintf("to go back to an older copy on purpose use `%s --force` (the DC then catches up from its federation); otherwise put the newer store back, or move this file aside and %s", restore, rebuild)
	case bolt.RebuildPending:
		what = fmt.Sprintf("start it again with --rebuild-federation %s --rebuild-from NAME,IP,PORT --rebuild-identity ID", fed)
	default:
		return err
	}
	return fmt.Errorf("%w. What to do: %s (see docs/operations.md)", err, what)
}

func newStoreCmd(g *globals) *cobra.Command {
	c := group(&cobra.Command{Use: "store", Short: "Inspect a DC's store offline"})
	var dataDir, file string
	check := &cobra.Command{
		Use:   "check",
		Short: "Verify a data directory's store (or a backup file) offline",
		Long: `Check reads the store of a data directory (--data-dir) or a backup file
(--file) and checks all of it, as the daemon does before it starts: bbolt's
structure (meta pages, every page, the freelist), the schema, that every value
decodes, the content checksum, and, for a data directory, the marker beside
the store (lost, replaced or older copies). It changes nothing. It waits
--timeout for a running daemon to release the store; to check the store of a
running daemon take a backup and check that.

Exit status: 0 the store is sound, 1 it is not (the message says why and what
to do), 2 bad usage.`,
		Example: "  vipsmart store check --data-dir /var/lib/vipsmart\n  vipsmart store check --file vipsmart-backup.db",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (dataDir == "") == (file == "") {
				return usageError{errors.New("give either --data-dir DIR (a DC's data directory) or --file FILE (a backup)")}
			}
			opts := boltOptions(nil)
			opts.Timeout = g.timeout
			if file != "" {
				in, err := bolt.Inspect(file, opts)
				if err != nil {
					return fmt.Errorf("backup %s is not sound: %w", file, err)
				}
				if g.output == "json" {
					return printJSON(g.stdout, in)
				}
				printInspection(g, in)
				fmt.Fprintln(g.stdout, "result:   OK, the file is a sound vipsmart store")
				return nil
			}
			path := filepath.Join(dataDir, storeFile)
			ck, err := bolt.CheckStore(path, opts)
			if err != nil {
				return err
			}
			if g.output == "json" {
				out := struct {
					*bolt.Check
					OK      bool   `json:"ok"`
					Problem string `json:"problem,omitempty"`
				}{Check: ck, OK: ck.Refusal == nil && !ck.Fresh}
				if ck.Refusal != nil {
					out.Problem = storeAdvice(ck.Refusal, dataDir).Error()
				}
				if err := printJSON(g.stdout, out); err != nil {
					return err
				}
				switch {
				case ck.Fresh:
					return fmt.Errorf("%s holds no store and no sign of one", dataDir)
				case !out.OK:
					return errors.New(out.Problem)
				}
				return nil
			}
			if ck.Inspection != nil {
				printInspection(g, ck.Inspection)
			}
			if m := ck.Marker; m != nil {
				fmt.Fprintf(g.stdout, "marker:   %s: store %s, DC %s, federation %s, epoch %d, last change %s\n", path+bolt.MarkerSuffix,
					m.StoreID, orDash(m.DC), orDash(m.Federation), m.Epoch, m.Updated.UTC().Format(time.RFC3339))
			}
			switch {
			case ck.Fresh:
				return fmt.Errorf("%s holds no store and no sign of one: the daemon would start a new standalone DC there", dataDir)
			case ck.Refusal != nil:
				return storeAdvice(ck.Refusal, dataDir)
			}
			fmt.Fprintln(g.stdout, "result:   OK, the store is sound and the daemon would start on it")
			return nil
		},
	}
	check.Flags().StringVar(&dataDir, "data-dir", "", "data directory whose store to check")
	check.Flags().StringVar(&file, "file", "", "backup file to check")
	c.AddCommand(check)
	return c
}

func printInspection(g *globals, in *bolt.Inspection) {
	w := g.stdout
	fmt.Fprintf(w, "store:    %s (%d bytes: %d pages of %d bytes, %d free)\n", in.Path, in.Size, in.Pages, in.PageSize, in.FreePages)
	fmt.Fprintf(w, "format:   schema version %d, store id %s, transaction %d\n", in.Schema, orDash(in.StoreID), in.TxID)
	switch r := in.Record; {
	case r == nil && !in.HasRecord:
		fmt.Fprintln(w, "state:    no federation state (a new DC)")
	case r == nil:
		fmt.Fprintln(w, "state:    a federation record")
	case r.Federation == "":
		fmt.Fprintf(w, "state:    DC %s, standalone, epoch %d\n", r.DC, r.Epoch)
	default:
		fmt.Fprintf(w, "state:    DC %s, member of federation %s at epoch %d\n", r.DC, r.Federation, r.Epoch)
	}
	fmt.Fprintf(w, "content:  %d VIPs, %d GIPs, %d events (last %s); checksum ok\n", in.VIPs, in.GIPs, in.Events, strconv.FormatUint(in.LastEvent, 10))
}

// checkedDataDir returns the absolute data directory dir, which must exist.
func checkedDataDir(dir string) (string, error) {
	if dir == "" {
		return "", usageError{errors.New("--data-dir is required: give the DC's data directory, e.g. --data-dir /var/lib/vipsmart")}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", usageError{fmt.Errorf("--data-dir %q: %w", dir, err)}
	}
	if fi, err := os.Stat(abs); err != nil || !fi.IsDir() {
		return "", usageError{fmt.Errorf("--data-dir %s is not a directory: create it first (mkdir -p %s)", abs, abs)}
	}
	return abs, nil
}
