package daemon

import (
	"context"
	"errors"

	"github.com/vipsmart/vipsmart"
)

// federationEventSaver is a store that can save a federation update and
// events in one transaction (bolt.Store): one commit, one fsync, where
// SaveFederation then AppendEvents cost two. Optional: other stores (etcd)
// save the two apart.
type federationEventSaver interface {
	SaveFederationEvents(ctx context.Context, u vipsmart.FederationUpdate, evs []vipsmart.Event) ([]vipsmart.Event, error)
}

// saveFederation persists u and, where the store can, evs with it in the
// same transaction. It reports whether evs were stored (and logged); if
// not, the caller appends them as before. The update is durable when it
// returns nil, whichever way it went: a combined transaction that failed
// wrote nothing, and the update is then saved alone.
func (d *Daemon) saveFederation(ctx context.Context, u vipsmart.FederationUpdate, evs []vipsmart.Event) (eventsStored bool, err error) {
	s, ok := eventSaver(d.cfg.Store)
	if ok && len(evs) > 0 && d.cfg.Now().UnixNano() >= d.eventsSkipUntil.Load() {
		_, err := s.SaveFederationEvents(ctx, u, evs)
		if err == nil {
			d.logEvents(ctx, evs)
			d.metrics.eventsAppended(evs)
			return true, nil
		}
		if !errors.Is(err, errors.ErrUnsupported) {
			d.log.Warn("saving the federation state with its events failed: saving them apart", "err", err)
		}
	}
	return false, d.cfg.Store.SaveFederation(ctx, u)
}

// SaveFederationEvents times the wrapped store's SaveFederationEvents; it
// fails with errors.ErrUnsupported if that store has none.
func (s *timedStore) SaveFederationEvents(ctx context.Context, u vipsmart.FederationUpdate, evs []vipsmart.Event) ([]vipsmart.Event, error) {
	fs, ok := eventSaver(s.Store)
	if !ok {
		return nil, errors.ErrUnsupported
	}
	start := s.now()
	out, err := fs.SaveFederationEvents(ctx, u, evs)
	s.observe("save_federation", start, err)
	return out, err
}

// eventSaver finds a federationEventSaver in s or the stores it wraps
// (through their Unwrap methods).
func eventSaver(s vipsmart.Store) (federationEventSaver, bool) {
	for range 8 {
		if fs, ok := s.(federationEventSaver); ok {
			return fs, true
		}
		u, ok := s.(interface{ Unwrap() vipsmart.Store })
		if !ok {
			return nil, false
		}
		s = u.Unwrap()
	}
	return nil, false
}
