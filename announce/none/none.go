// Package none is the announcer that only keeps state: it records the
// desired set as announced (Via "none") and touches neither the network nor
// the OS. It is the default for a quick start and the announcer of tests.
package none

import (
	"context"
	"sync"
	"time"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/announce/internal/annset"
)

// Via is the Via of everything this announcer announces.
const Via = "none"

// Announcer records the desired set. It is safe for concurrent use.
type Announcer struct {
	now func() time.Time

	mu        sync.Mutex
	announced []vipsmart.Announced // sorted by address, one per address
	closed    bool
}

var _ vipsmart.Announcer = (*Announcer)(nil)

// Option configures an Announcer.
type Option func(*Announcer)

// WithClock sets the clock that stamps Since (default time.Now).
func WithClock(now func() time.Time) Option {
	return func(a *Announcer) {
		if now != nil {
			a.now = now
		}
	}
}

// New returns an Announcer with nothing announced.
func New(opts ...Option) *Announcer {
	a := &Announcer{now: time.Now}
	for _, o := range opts {
		o(a)
	}
	return a
}

// Set records desired as the announced set. An address that stays with the
// same kind keeps its Since; a new address, or one whose kind changed, gets
// the current time. Invalid entries are left out and reported (code
// invalid); the valid ones are recorded all the same.
func (a *Announcer) Set(ctx context.Context, desired []vipsmart.Announcement) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	want, err := annset.NormalizeSorted(desired)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return vipsmart.Errorf(vipsmart.ESTATE, "", "announcer none is closed")
	}
	now := a.now()
	// Both lists are sorted by address: one walk finds each address's
	// previous entry (no maps of 10,000 entries rebuilt at each Set).
	next := make([]vipsmart.Announced, len(want))
	old := a.announced
	j := 0
	for i, w := range want {
		for j < len(old) && old[j].Addr.Less(w.Addr) {
			j++
		}
		since := now
		if j < len(old) && old[j].Addr == w.Addr && old[j].Kind == w.Kind {
			since = old[j].Since
		}
		next[i] = vipsmart.Announced{Announcement: w, Via: Via, Since: since, State: vipsmart.AnnounceUp}
	}
	a.announced = next
	return err
}

// Announced returns the recorded set, sorted by address.
func (a *Announcer) Announced() []vipsmart.Announced {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append(make([]vipsmart.Announced, 0, len(a.announced)), a.announced...)
}

// Close forgets everything; later Sets fail.
func (a *Announcer) Close(context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.announced = nil
	a.closed = true
	return nil
}
