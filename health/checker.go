package health

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vipsmart/vipsmart"
)

// Clock makes the tickers that pace the checks, so that tests can drive
// them.
type Clock interface {
	NewTicker(d time.Duration) Ticker
}

// Ticker is the part of *time.Ticker a Checker uses.
type Ticker interface {
	C() <-chan time.Time
	Stop()
}

// RealClock is the Clock of package time.
var RealClock Clock = realClock{}

type realClock struct{}

func (realClock) NewTicker(d time.Duration) Ticker { return realTicker{time.NewTicker(d)} }

type realTicker struct{ t *time.Ticker }

func (t realTicker) C() <-chan time.Time { return t.t.C }
func (t realTicker) Stop()               { t.t.Stop() }

// Option configures a Checker.
type Option func(*Checker)

// WithClock makes the Checker pace its checks with clk instead of RealClock.
func WithClock(clk Clock) Option { return func(c *Checker) { c.clock = clk } }

// Checker keeps the health of a DC's VIPs: one goroutine per VIP with a
// check probes it every Interval and feeds a Counter. It is safe for
// concurrent use.
type Checker struct {
	prober   Prober
	onChange func(name string, st vipsmart.VIPState, lastErr string)
	log      *slog.Logger
	clock    Clock

	setMu sync.Mutex // serializes Set and Close

	mu     sync.Mutex // guards vips, closed and every entry's state and lastErr
	vips   map[string]*entry
	closed bool

	starts atomic.Int64 // check goroutines started, for tests
}

type entry struct {
	check   *vipsmart.Check // with defaults filled in; nil: no check
	state   vipsmart.VIPState
	lastErr string
	cancel  context.CancelFunc // nil without a check
	done    chan struct{}      // closed when the goroutine has returned
}

// NewChecker returns a Checker that probes with p and calls onChange (if not
// nil) each time a VIP's state changes, with the error of the probe that
// caused it ("" after a success). onChange is called from the Checker's
// goroutines, one call at a time per VIP and in order; it may call State but
// must not call Set or Close, which wait for those goroutines. A nil logger
// logs nothing.
func NewChecker(p Prober, onChange func(name string, st vipsmart.VIPState, lastErr string), logger *slog.Logger, opts ...Option) *Checker {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Checker{prober: p, onChange: onChange, log: logger, clock: RealClock, vips: map[string]*entry{}}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Set declares the VIPs to check, replacing the previous set: it starts
// checks for new VIPs, restarts those whose check changed and stops those no
// longer present (or no longer checked). Calling it again with the same
// checks changes nothing. When Set returns, no probe or onChange call of a
// stopped check is still running.
//
// A new VIP starts unknown if it has a check and up if not, without an
// onChange call. A VIP whose check changes keeps its state until the new
// check moves it, so that editing a check does not fail a GIP over; a VIP
// whose check is removed becomes up (with an onChange call if it was not).
// If names repeat, the last VIP of the name wins. Set does nothing after
// Close.
func (c *Checker) Set(vips []vipsmart.VIP) {
	c.setMu.Lock()
	defer c.setMu.Unlock()
	want := make(map[string]*vipsmart.Check, len(vips))
	for _, v := range vips {
		want[v.Name] = normalize(v.Check)
	}

	// Stop the checks that go away or change, and wait for them, outside mu
	// so that their last onChange can call State.
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	var stopping []*entry
	for name, e := range c.vips {
		if w, ok := want[name]; (!ok || !sameCheck(e.check, w)) && e.cancel != nil {
			e.cancel()
			stopping = append(stopping, e)
		}
	}
	c.mu.Unlock()
	for _, e := range stopping {
		<-e.done
	}

	type change struct {
		name string
		st   vipsmart.VIPState
	}
	var changes []change
	c.mu.Lock()
	for name := range c.vips {
		if _, ok := want[name]; !ok {
			c.log.Debug("health: check stopped", "vip", name)
			delete(c.vips, name)
		}
	}
	for name, w := range want {
		old, had := c.vips[name]
		if had && sameCheck(old.check, w) {
			continue
		}
		e := &entry{check: w, state: vipsmart.VIPUnknown}
		if had {
			e.state, e.lastErr = old.state, old.lastErr
		}
		if w == nil {
			if had && e.state != vipsmart.VIPUp {
				changes = append(changes, change{name, vipsmart.VIPUp})
			}
			e.state, e.lastErr = vipsmart.VIPUp, ""
		} else {
			ctx, cancel := context.WithCancel(context.Background())
			e.cancel, e.done = cancel, make(chan struct{})
			c.starts.Add(1)
			c.log.Debug("health: check started", "vip", name, "url", w.URL, "interval", time.Duration(w.Interval))
			go c.run(ctx, name, e, *w, e.state)
		}
		c.vips[name] = e
	}
	c.mu.Unlock()
	for _, ch := range changes {
		c.log.Info("health: VIP state changed", "vip", ch.name, "state", ch.st, "reason", "check removed")
		if c.onChange != nil {
			c.onChange(ch.name, ch.st, "")
		}
	}
}

// State returns the state of the named VIP and the error of its last probe
// ("" if it passed). A VIP without a check is always up; a name Set was not
// given is unknown.
func (c *Checker) State(name string) (vipsmart.VIPState, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.vips[name]
	if !ok {
		return vipsmart.VIPUnknown, ""
	}
	return e.state, e.lastErr
}

// Close stops every check and waits for the goroutines to return. Set does
// nothing afterwards.
func (c *Checker) Close() {
	c.setMu.Lock()
	defer c.setMu.Unlock()
	c.mu.Lock()
	c.closed = true
	var stopping []*entry
	for _, e := range c.vips {
		if e.cancel != nil {
			e.cancel()
			stopping = append(stopping, e)
		}
	}
	c.mu.Unlock()
	for _, e := range stopping {
		<-e.done
	}
}

// run probes one VIP at once and then on every tick until ctx is done.
func (c *Checker) run(ctx context.Context, name string, e *entry, ck vipsmart.Check, st vipsmart.VIPState) {
	defer close(e.done)
	counter := NewCounter(st)
	t := c.clock.NewTicker(time.Duration(ck.Interval))
	defer t.Stop()
	for {
		err := c.prober.Probe(ctx, ck)
		if ctx.Err() != nil {
			return
		}
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		st, changed := counter.Observe(err == nil, ck.Rise, ck.Fall)
		c.mu.Lock()
		e.state, e.lastErr = st, msg
		c.mu.Unlock()
		if changed {
			c.log.Info("health: VIP state changed", "vip", name, "state", st, "error", msg)
			if c.onChange != nil {
				c.onChange(name, st, msg)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
	}
}

// normalize returns a copy of ck with the defaults filled in, so that a check
// that skipped Validate still runs sanely; nil stays nil.
func normalize(ck *vipsmart.Check) *vipsmart.Check {
	if ck == nil {
		return nil
	}
	n := *ck
	if n.Interval <= 0 {
		n.Interval = vipsmart.Duration(vipsmart.DefaultCheckInterval)
	}
	if n.Timeout <= 0 || n.Timeout >= n.Interval {
		n.Timeout = min(vipsmart.Duration(vipsmart.DefaultCheckTimeout), n.Interval/2)
	}
	if n.Rise < 1 {
		n.Rise = vipsmart.DefaultCheckRise
	}
	if n.Fall < 1 {
		n.Fall = vipsmart.DefaultCheckFall
	}
	return &n
}

func sameCheck(a, b *vipsmart.Check) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}
