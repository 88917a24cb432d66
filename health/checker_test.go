package health

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
)

// fakeClock hands out tickers that fire only when the test sends on tick.
// Every ticker reports on idle each time the check loop is about to wait for
// a tick (the loop calls C() once per wait), that is after it has fully
// handled a probe, onChange included.
type fakeClock struct {
	tick chan time.Time
	idle chan struct{}
}

func newFakeClock() *fakeClock {
	return &fakeClock{tick: make(chan time.Time), idle: make(chan struct{}, 1000)}
}

func (f *fakeClock) NewTicker(time.Duration) Ticker { return fakeTicker{f} }

type fakeTicker struct{ f *fakeClock }

func (t fakeTicker) C() <-chan time.Time { t.f.idle <- struct{}{}; return t.f.tick }
func (t fakeTicker) Stop()               {}

// waitIdle waits until a check loop has handled its probe.
func (f *fakeClock) waitIdle(t *testing.T) {
	t.Helper()
	select {
	case <-f.idle:
	case <-time.After(5 * time.Second):
		t.Fatal("check loop did not finish a probe")
	}
}

// step fires one tick and waits for the probe it causes to be handled.
func (f *fakeClock) step(t *testing.T) {
	t.Helper()
	select {
	case f.tick <- time.Now():
	case <-time.After(5 * time.Second):
		t.Fatal("no check loop waiting for a tick")
	}
	f.waitIdle(t)
}

// fakeProber answers from healthy[URL] and counts probes per URL.
type fakeProber struct {
	mu      sync.Mutex
	healthy map[string]bool
	calls   map[string]int
}

func newFakeProber() *fakeProber {
	return &fakeProber{healthy: map[string]bool{}, calls: map[string]int{}}
}

func (p *fakeProber) Probe(ctx context.Context, c vipsmart.Check) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls[c.URL]++
	if !p.healthy[c.URL] {
		return errors.New("fake failure")
	}
	return nil
}

func (p *fakeProber) set(url string, ok bool) { p.mu.Lock(); p.healthy[url] = ok; p.mu.Unlock() }
func (p *fakeProber) count(url string) int    { p.mu.Lock(); defer p.mu.Unlock(); return p.calls[url] }

// recorder records onChange calls.
type recorder struct {
	mu    sync.Mutex
	calls []string
	ch    chan string
}

func newRecorder() *recorder { return &recorder{ch: make(chan string, 100)} }

func (r *recorder) onChange(name string, st vipsmart.VIPState, lastErr string) {
	s := name + ":" + string(st)
	if lastErr != "" {
		s += ":" + lastErr
	}
	r.mu.Lock()
	r.calls = append(r.calls, s)
	r.mu.Unlock()
	r.ch <- s
}

func (r *recorder) get() []string { r.mu.Lock(); defer r.mu.Unlock(); return slices.Clone(r.calls) }

func (r *recorder) want(t *testing.T, want ...string) {
	t.Helper()
	if got := r.get(); !slices.Equal(got, want) {
		t.Fatalf("onChange calls %q, want %q", got, want)
	}
}

func vip(name, url string, rise, fall int) vipsmart.VIP {
	return vipsmart.VIP{Name: name, Check: &vipsmart.Check{URL: url, Interval: vipsmart.Duration(time.Second), Timeout: vipsmart.Duration(time.Second / 2), Rise: rise, Fall: fall}}
}

func wantState(t *testing.T, c *Checker, name string, st vipsmart.VIPState, lastErr string) {
	t.Helper()
	if gst, gerr := c.State(name); gst != st || gerr != lastErr {
		t.Fatalf("State(%s) = %s, %q; want %s, %q", name, gst, gerr, st, lastErr)
	}
}

func TestCheckerTransitions(t *testing.T) {
	clk, p, rec := newFakeClock(), newFakeProber(), newRecorder()
	c := NewChecker(p, rec.onChange, nil, WithClock(clk))
	defer c.Close()
	const u = "tcp://web.test:80"
	p.set(u, true)
	c.Set([]vipsmart.VIP{vip("web", u, 2, 2)})
	clk.waitIdle(t) // the first probe runs at once
	wantState(t, c, "web", unknown, "")
	clk.step(t)
	wantState(t, c, "web", up, "")
	rec.want(t, "web:up")

	p.set(u, false)
	clk.step(t)
	wantState(t, c, "web", up, "fake failure") // one failure of two
	clk.step(t)
	wantState(t, c, "web", down, "fake failure")
	clk.step(t)
	rec.want(t, "web:up", "web:down:fake failure")

	p.set(u, true) // flapping: never two successes in a row
	clk.step(t)
	p.set(u, false)
	clk.step(t)
	p.set(u, true)
	clk.step(t)
	wantState(t, c, "web", down, "")
	clk.step(t)
	wantState(t, c, "web", up, "")
	rec.want(t, "web:up", "web:down:fake failure", "web:up")
	if n := p.count(u); n != 9 { // the first, then one per step
		t.Errorf("%d probes, want 9", n)
	}
}

func TestCheckerSetIsDeclarative(t *testing.T) {
	clk, p, rec := newFakeClock(), newFakeProber(), newRecorder()
	c := NewChecker(p, rec.onChange, nil, WithClock(clk))
	defer c.Close()
	const u = "tcp://web.test:80"
	p.set(u, true)
	set := []vipsmart.VIP{vip("web", u, 1, 1), {Name: "plain"}}
	c.Set(set)
	clk.waitIdle(t)
	wantState(t, c, "web", up, "")
	wantState(t, c, "plain", up, "") // no check: always up
	wantState(t, c, "nosuch", unknown, "")
	rec.want(t, "web:up")

	// The same set again, even as fresh copies, restarts nothing.
	c.Set(set)
	c.Set([]vipsmart.VIP{{Name: "plain"}, vip("web", u, 1, 1)})
	if n := c.starts.Load(); n != 1 {
		t.Fatalf("%d check goroutines started, want 1", n)
	}
	if n := p.count(u); n != 1 {
		t.Fatalf("%d probes, want 1 (a restart probes at once)", n)
	}

	// A changed check restarts, keeping the state: no onChange, still up.
	p.set(u, false)
	changed := vip("web", u, 1, 2)
	c.Set([]vipsmart.VIP{changed, {Name: "plain"}})
	clk.waitIdle(t)
	if n := c.starts.Load(); n != 2 {
		t.Fatalf("%d check goroutines started, want 2", n)
	}
	wantState(t, c, "web", up, "fake failure") // fall is 2 now
	clk.step(t)
	wantState(t, c, "web", down, "fake failure")
	rec.want(t, "web:up", "web:down:fake failure")

	// Removing the check stops probing and makes the VIP up.
	c.Set([]vipsmart.VIP{{Name: "web"}, {Name: "plain"}})
	rec.want(t, "web:up", "web:down:fake failure", "web:up")
	wantState(t, c, "web", up, "")
	n := p.count(u)
	select {
	case clk.tick <- time.Now():
		t.Fatal("a check loop still runs")
	case <-time.After(50 * time.Millisecond):
	}
	if p.count(u) != n {
		t.Fatal("probed after the check was removed")
	}

	// Removing the VIP forgets it.
	c.Set(nil)
	wantState(t, c, "web", unknown, "")
	wantState(t, c, "plain", unknown, "")
	if n := c.starts.Load(); n != 2 {
		t.Fatalf("%d check goroutines started, want 2", n)
	}
}

func TestCheckerRemovalStopsProbing(t *testing.T) {
	p := newFakeProber()
	c := NewChecker(p, nil, nil) // real clock
	defer c.Close()
	a, b := vip("a", "tcp://a.test:1", 1, 1), vip("b", "tcp://b.test:1", 1, 1)
	a.Check.Interval, a.Check.Timeout = vipsmart.Duration(5*time.Millisecond), vipsmart.Duration(time.Millisecond)
	b.Check.Interval, b.Check.Timeout = a.Check.Interval, a.Check.Timeout
	c.Set([]vipsmart.VIP{a, b})
	deadline := time.Now().Add(5 * time.Second)
	for p.count(a.Check.URL) < 3 || p.count(b.Check.URL) < 3 {
		if time.Now().After(deadline) {
			t.Fatal("probes do not run")
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.Set([]vipsmart.VIP{b}) // returns once a's loop is gone
	na := p.count(a.Check.URL)
	nb := p.count(b.Check.URL)
	time.Sleep(100 * time.Millisecond)
	if p.count(a.Check.URL) != na {
		t.Errorf("a probed after removal")
	}
	if p.count(b.Check.URL) <= nb {
		t.Errorf("b stopped probing")
	}
	c.Close()
	nb = p.count(b.Check.URL)
	time.Sleep(50 * time.Millisecond)
	if p.count(b.Check.URL) != nb {
		t.Errorf("b probed after Close")
	}
	c.Set([]vipsmart.VIP{a}) // no-op after Close
	if _, err := c.State("a"); err != "" || c.starts.Load() != 2 {
		t.Errorf("Set after Close started a check")
	}
}

// blockingProber blocks until its context ends.
type blockingProber struct{ started chan struct{} }

func (p blockingProber) Probe(ctx context.Context, _ vipsmart.Check) error {
	p.started <- struct{}{}
	<-ctx.Done()
	return ctx.Err()
}

func TestCheckerStopsProbeInProgress(t *testing.T) {
	p := blockingProber{started: make(chan struct{}, 10)}
	rec := newRecorder()
	c := NewChecker(p, rec.onChange, nil)
	c.Set([]vipsmart.VIP{vip("web", "tcp://web.test:80", 1, 1)})
	<-p.started
	done := make(chan struct{})
	go func() { c.Set(nil); c.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Set/Close hung on a probe in progress")
	}
	rec.want(t) // a cancelled probe is not a failure
}

// TestCheckerLoopback runs the real prober against a loopback listener.
func TestCheckerLoopback(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	rec := newRecorder()
	c := NewChecker(NetProber{}, rec.onChange, nil)
	defer c.Close()
	v := vipsmart.VIP{Name: "web", Check: &vipsmart.Check{URL: "tcp://" + addr, Interval: vipsmart.Duration(20 * time.Millisecond), Rise: 2, Fall: 2}}
	if err := v.Check.Validate(); err != nil { // fills in the timeout
		t.Fatal(err)
	}
	c.Set([]vipsmart.VIP{v})

	next := func(want string) {
		t.Helper()
		select {
		case got := <-rec.ch:
			if !strings.HasPrefix(got, want) {
				t.Fatalf("onChange %q, want %q...", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no onChange, want %q (calls so far %q)", want, rec.get())
		}
	}
	next("web:up")
	wantState(t, c, "web", up, "")
	ln.Close()
	next("web:down:")
	if st, lastErr := c.State("web"); st != down || !strings.Contains(lastErr, "refused") {
		t.Fatalf("State = %s, %q; want down, connection refused", st, lastErr)
	}
	// Exactly one call per transition: no more while it stays down.
	time.Sleep(200 * time.Millisecond)
	if calls := rec.get(); len(calls) != 2 {
		t.Fatalf("onChange calls %q, want exactly up then down", calls)
	}

	// Back up when something listens again (skip if the port was taken).
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Logf("cannot listen on %s again: %v", addr, err)
		return
	}
	defer ln.Close()
	next("web:up")
}
