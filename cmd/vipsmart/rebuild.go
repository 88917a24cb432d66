package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/bolt"
	"github.com/vipsmart/vipsmart/federation"
	"github.com/vipsmart/vipsmart/httpapi"
)

// rebuildOptions are the flags of `vipsmart serve` that rebuild a lost
// store from the federation.
type rebuildOptions struct {
	federation string
	from       string
	identity   string
	timeout    time.Duration
}

func (o *rebuildOptions) flags(f *pflag.FlagSet) {
	f.StringVar(&o.federation, "rebuild-federation", "", "rebuild a lost store: the id of the federation this DC was a member of (with --rebuild-from)")
	f.StringVar(&o.from, "rebuild-from", "", "rebuild a lost store: NAME,IP,PORT of a member to fetch the federation state from (with --rebuild-federation)")
	f.StringVar(&o.identity, "rebuild-identity", "", "rebuild a lost store: the identity (sha256:...) of the --rebuild-from member, as `vipsmart status` on it shows: its key is pinned")
	f.DurationVar(&o.timeout, "rebuild-timeout", time.Minute, "how long to keep asking --rebuild-from for the state before giving up")
}

func (o *rebuildOptions) enabled() bool {
	return o.federation != "" || o.from != "" || o.identity != ""
}

// parse checks the flags and returns the member to fetch from.
func (o *rebuildOptions) parse() (vipsmart.DC, error) {
	if o.federation == "" || o.from == "" || o.identity == "" {
		return vipsmart.DC{}, usageError{errors.New("--rebuild-federation, --rebuild-from and --rebuild-identity go together: give the federation's id, NAME,IP,PORT of a member and that member's identity (vipsmart status on the member shows both)")}
	}
	if len(o.federation) > 200 || strings.ContainsFunc(o.federation, func(r rune) bool { return r <= ' ' || r > '~' }) {
		return vipsmart.DC{}, usageError{fmt.Errorf("--rebuild-federation %q is not a federation id: give the id vipsmart status shows on a member, e.g. f-dc-1-3fa9c1-1", o.federation)}
	}
	d, err := vipsmart.ParseDCSpec(o.from)
	if err != nil {
		return vipsmart.DC{}, usageError{fmt.Errorf("--rebuild-from: %w", err)}
	}
	if d.Identity, err = vipsmart.ParseIdentity("--rebuild-identity", o.identity); err != nil {
		return vipsmart.DC{}, err
	}
	return d, nil
}

// run rebuilds the state of store (opened with Options.Rebuild) from the
// federation before the daemon starts on it.
func (o *rebuildOptions) run(ctx context.Context, log *slog.Logger, store *bolt.Store, self vipsmart.DC, pc *httpapi.PeerClient) error {
	from, err := o.parse()
	if err != nil {
		return err
	}
	if from.Name == self.Name {
		return usageError{fmt.Errorf("--rebuild-from names %s itself: name another member of the federation", self.Name)}
	}
	rec, _, err := store.LoadFederation(ctx)
	if err != nil {
		return err
	}
	if rec != nil {
		dc, fed, epoch, err := federation.DescribeRecord(rec)
		if err == nil && fed == o.federation && dc == self.Name {
			log.Warn("--rebuild-federation ignored: the store already holds this DC's state (remove the rebuild flags)", "federation", fed, "epoch", epoch)
			return nil
		}
		return usageError{fmt.Errorf("--rebuild-federation given, but the store in %s holds the state of DC %s (federation %s, epoch %d): a rebuild only replaces a lost store; start without the rebuild flags (a DC that is behind catches up by itself)",
			store.Path(), dc, orDash(fed), epoch)}
	}
	minEpoch := uint64(0)
	if prev := store.Previous(); prev != nil {
		if prev.DC != "" && prev.DC != self.Name {
			return usageError{fmt.Errorf("the lost store of %s was DC %s's, not %s: start with --name %s", store.Path(), prev.DC, self.Name, prev.DC)}
		}
		if prev.Federation != "" && prev.Federation != o.federation {
			return usageError{fmt.Errorf("the lost store of %s was a member of federation %s, not %s: check --rebuild-federation", store.Path(), prev.Federation, o.federation)}
		}
		minEpoch = prev.Epoch
	}
	log.Info("rebuilding the store from the federation", "federation", o.federation, "from", from.String(), "min_epoch", minEpoch)
	deadline := time.Now().Add(o.timeout)
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		st, err := pc.FetchRebuildState(actx, self, from, o.federation)
		cancel()
		var record []byte
		var gips []vipsmart.GIP
		if err == nil {
			record, gips, err = federation.RebuildRecord(self, *st, o.federation, minEpoch)
		}
		if err == nil {
			if err := store.SaveFederation(ctx, vipsmart.FederationUpdate{Record: record, ReplaceGIPs: true, PutGIPs: gips}); err != nil {
				return fmt.Errorf("saving the rebuilt state: %w", err)
			}
			msg := fmt.Sprintf("rebuilt from %s: member of federation %s at epoch %d with %d members and %d GIPs; this DC's VIPs are not kept by the federation: add them again", from.Name, st.FedID, st.Epoch, len(st.Members), len(gips))
			if _, err := store.AppendEvents(ctx, []vipsmart.Event{{Time: time.Now(), DC: self.Name, Kind: vipsmart.EventFederation, Message: msg}}); err != nil {
				log.Warn("storing the rebuild event", "err", err)
			}
			log.Info(msg)
			return nil
		}
		switch vipsmart.ErrorCodeOf(err) {
		case vipsmart.EBUSY, vipsmart.EUNAVAILABLE, vipsmart.ETIMEOUT, vipsmart.EINTERNAL:
		default:
			return fmt.Errorf("rebuild from %s refused: %w", from.Name, err)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("rebuild from %s gave up after %d attempts in %s (--rebuild-timeout): %w", from.Name, attempt, o.timeout, err)
		}
		log.Warn("rebuild: the state is not available yet, retrying", "from", from.Name, "attempt", attempt, "err", err)
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
		}
	}
}
