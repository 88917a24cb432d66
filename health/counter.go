package health

import "github.com/vipsmart/vipsmart"

// Counter turns a stream of probe results into a VIP state. It starts at
// VIPUnknown; rise consecutive successes make it up and fall consecutive
// failures make it down. It is deterministic and has no clock. The zero value
// is ready to use; a Counter is not safe for concurrent use.
type Counter struct {
	state  vipsmart.VIPState
	ok     bool // the outcome of the current streak
	streak int  // consecutive results equal to ok
}

// NewCounter returns a Counter that starts in state st instead of unknown,
// for a check that replaces another one of the same VIP.
func NewCounter(st vipsmart.VIPState) *Counter { return &Counter{state: st} }

// State returns the current state.
func (c *Counter) State() vipsmart.VIPState {
	if c.state == "" {
		return vipsmart.VIPUnknown
	}
	return c.state
}

// Observe records one probe result and returns the state after it, and
// whether that state differs from the one before. A rise or fall below 1
// counts as 1.
func (c *Counter) Observe(ok bool, rise, fall int) (state vipsmart.VIPState, changed bool) {
	before := c.State()
	if c.streak == 0 || ok != c.ok {
		c.ok, c.streak = ok, 0
	}
	if c.streak < 1<<30 {
		c.streak++
	}
	switch {
	case ok && c.streak >= max(rise, 1):
		c.state = vipsmart.VIPUp
	case !ok && c.streak >= max(fall, 1):
		c.state = vipsmart.VIPDown
	}
	after := c.State()
	return after, after != before
}
