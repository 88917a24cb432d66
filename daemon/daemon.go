// Package daemon runs one DC: it owns the store, the clock and the network
// around the pure federation state machine, and implements vipsmart.Service
// for the operator API.
//
// Invariants: one goroutine at a time owns the federation node, the VIP
// cache and the waiters: the one holding the loop's token (owner.go), Run's
// loop or a caller that found the loop idle; a caller that finds the token
// taken reaches them through d.reqs. A Ready is persisted before any of its
// messages is sent or any of its results is reported. While the loop waits
// for the store, the heartbeat keeper (keeper.go) sends heartbeats built
// only from the last stored record.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/announce/none"
	"github.com/vipsmart/vipsmart/federation"
	"github.com/vipsmart/vipsmart/health"
)

// federationReport is what the daemon tells the other members in its
// heartbeats.
type federationReport = federation.Report

// Transport delivers a federation message to the DC named in m.To.
type Transport interface {
	Send(ctx context.Context, m federation.Message) error
}

// Config configures a Daemon. Store, Transport and Self are required.
type Config struct {
	Self       vipsmart.DC
	Store      vipsmart.Store
	Transport  Transport
	Federation federation.Config
	// TickInterval is how often the node's clock advances; default
	// HeartbeatInterval/4, at most 50ms.
	TickInterval time.Duration
	// SendTimeout bounds one delivery to a peer; default 2s.
	SendTimeout time.Duration
	Logger      *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Prober runs VIP health checks; default health.NetProber.
	Prober health.Prober
	// Announcer makes the desired addresses real; default state only
	// (announce/none).
	Announcer vipsmart.Announcer
	// ActivationWait bounds how long this DC waits, before it activates a
	// GIP placement, for a better placement whose VIP's health is not
	// known yet (default 10s; see gips.go).
	ActivationWait time.Duration
	// Inherited is what this process already announced when the daemon
	// starts (a node of a DC on etcd that followed the DC's leader and
	// mirrored its set, handover.go): kept announced until the daemon
	// knows better, at most ActivationWait. Nil for a daemon of its own.
	Inherited []vipsmart.Announcement
	// Fault, for tests only, makes the daemon crash at a chosen point of
	// the protocol (see Fault). Nil in production.
	Fault *Fault
	// Metrics, if set, receives the daemon's Prometheus series
	// (metrics.go; docs/metrics.md).
	Metrics prometheus.Registerer
	// Keys is the DC's key (Self.Identity is its fingerprint); nil: no
	// rotation. Tokens keeps the join and API tokens; nil: invites are
	// refused.
	Keys   Keyring
	Tokens Tokens
}

// Daemon is one DC's running daemon.
type Daemon struct {
	cfg  Config
	log  *slog.Logger
	node *federation.Node

	// eventsSkipUntil is set when storing events failed: until then new
	// events are logged but not stored (appendEvents).
	eventsSkipUntil atomic.Int64

	reqs    chan func()
	own     chan struct{} // the loop's token (owner.go)
	kick    chan struct{} // the token handed to the loop (owner.go)
	waiters map[string]chan error
	vips    map[string]vipsmart.VIP

	// answerTo is the request context of the operator waiting for each
	// operation, and held the commit messages put off until that
	// operator has the answer (answer.go).
	answerTo map[string]context.Context
	held     heldSends

	checker *health.Checker
	health  *healthQueue
	// active is the set of DCs active for each GIP as last computed here;
	// holding what each other DC reports holding (GIPs without
	// preemption, and GIPs held in place of a better placement);
	// reported the GIPs this DC reports holding; conflicts the GIPs this
	// DC is active for that another DC reported holding at the last
	// evaluation.
	active        map[string][]string
	holding       map[string]map[string]bool
	reported      map[string]bool
	conflicts     map[string]bool
	holdDownUntil time.Time
	lastReport    federationReport
	lastActiveKey string
	keyBuf        []byte // activeKey's buffer
	lastDesired   []vipsmart.Announcement
	pub           published // handover.go
	inheritUntil  time.Time
	// wasUnreachable are the members seen unreachable at the last
	// evaluation.
	wasUnreachable map[string]bool
	lastAnnErr     string
	annRetryAt     time.Time
	healthVersion  uint64
	// reports carries the announcer's own reports (BGP sessions) to the
	// loop; waitSince is when this DC began to hold back its activation
	// of each GIP for a better placement's unknown VIP health.
	reports   *reportQueue
	waitSince map[string]time.Time

	mu     sync.Mutex
	peers  map[string]*peerQueue
	closed bool

	refusals refusalLimiter

	stopped chan struct{} // closed when Run returns

	// capture, while a heartbeat is delivered for a reply, catches its
	// answer in processReady (reply.go).
	capture *replySlot

	q       quorumState  // quorum.go
	metrics *metrics     // nil without Config.Metrics
	ticker  *time.Ticker // the loop's clock (Run); Reload resets it

	nodes nodesSync // dcnodes.go
	keep  keeper    // keeper.go

	// gips is the node's sorted list for updateActive, read-only (gipList).
	gips        []vipsmart.GIP
	gipsVersion uint64
	gipsCached  bool

	// onCommit runs, on the loop, the end of an apply when its operation
	// ends (commits: nil; fails: the reason), before its waiter hears of
	// it, and also when the waiter is gone (apply.go).
	onCommit map[string]func(error)

	// quorumKeyLen is the length of the quorum's part at the end of the
	// last activeKey, lastQuorumKeyLen of lastActiveKey's (gips.go).
	quorumKeyLen, lastQuorumKeyLen int

	// actBuf is computeActive's map, reused (gips.go).
	actBuf map[string][]string
}

// New loads the DC's state from the store and returns a daemon ready to Run.
func New(ctx context.Context, cfg Config) (*Daemon, error) {
	if cfg.Store == nil || cfg.Transport == nil {
		return nil, errors.New("daemon: Store and Transport are required")
	}
	if err := cfg.Self.Validate(); err != nil {
		return nil, fmt.Errorf("daemon: local DC: %w", err)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.SendTimeout == 0 {
		cfg.SendTimeout = 2 * time.Second
	}
	cfg.Federation.Self = cfg.Self
	if cfg.TickInterval == 0 {
		hb := cfg.Federation.HeartbeatInterval
		if hb == 0 {
			hb = 200 * time.Millisecond
		}
		cfg.TickInterval = min(hb/4, 50*time.Millisecond)
		cfg.TickInterval = max(cfg.TickInterval, time.Millisecond)
	}
	rec, gips, err := cfg.Store.LoadFederation(ctx)
	if err != nil {
		return nil, fmt.Errorf("loading federation state: %w", err)
	}
	if cfg.Keys != nil {
		cfg.Self.Identity = cfg.Keys.Fingerprint()
		cfg.Federation.Self = cfg.Self
	}
	node, err := federation.NewNode(cfg.Federation, rec, gips, cfg.Now())
	if err != nil {
		return nil, fmt.Errorf("restoring federation state: %w", err)
	}
	vl, err := cfg.Store.ListVIPs(ctx)
	if err != nil {
		return nil, fmt.Errorf("loading VIPs: %w", err)
	}
	d := &Daemon{
		cfg: cfg, log: cfg.Logger, node: node,
		keep:      keeper{record: rec},
		reqs:      make(chan func()),
		own:       make(chan struct{}, 1),
		kick:      make(chan struct{}, 1),
		waiters:   map[string]chan error{},
		answerTo:  map[string]context.Context{},
		vips:      map[string]vipsmart.VIP{},
		peers:     map[string]*peerQueue{},
		stopped:   make(chan struct{}),
		health:    newHealthQueue(),
		active:    map[string][]string{},
		holding:   map[string]map[string]bool{},
		reported:  map[string]bool{},
		conflicts: map[string]bool{},
		reports:   newReportQueue(),
		waitSince: map[string]time.Time{},
	}
	d.own <- struct{}{} // held until Run's loop starts (owner.go)
	if d.cfg.ActivationWait <= 0 {
		d.cfg.ActivationWait = DefaultActivationWait
	}
	if cfg.Prober == nil {
		cfg.Prober = health.NetProber{}
		d.cfg.Prober = cfg.Prober
	}
	if cfg.Announcer == nil {
		cfg.Announcer = none.New(none.WithClock(cfg.Now))
		d.cfg.Announcer = cfg.Announcer
	}
	if d.metrics, err = newMetrics(cfg.Metrics, d); err != nil {
		return nil, fmt.Errorf("registering the daemon's metrics: %w", err)
	}
	d.cfg.Store = d.metrics.store(d.cfg.Store, cfg.Now)
	if w, ok := cfg.Announcer.(vipsmart.Watcher); ok {
		w.Watch(d.reports.push)
	}
	d.checker = health.NewChecker(cfg.Prober, d.health.push, cfg.Logger)
	fc := cfg.Federation
	hb, misses := fc.HeartbeatInterval, fc.HeartbeatMisses
	if hb == 0 {
		hb = federation.DefaultHeartbeatInterval
	}
	if misses == 0 {
		misses = federation.DefaultHeartbeatMisses
	}
	d.holdDownUntil = cfg.Now().Add(hb * time.Duration(misses+1))
	d.inheritUntil = cfg.Now().Add(d.cfg.ActivationWait)
	for _, v := range vl {
		d.vips[v.Name] = v
	}
	if changed, err := d.reconcileKeys(); err != nil {
		return nil, fmt.Errorf("installing the key of a committed rotation: %w", err)
	} else if changed {
		// The rotation committed before the daemon stopped: restart the
		// node with the installed key.
		d.cfg.Self.Identity = cfg.Keys.Fingerprint()
		d.cfg.Federation.Self = d.cfg.Self
		if d.node, err = federation.NewNode(d.cfg.Federation, rec, gips, cfg.Now()); err != nil {
			return nil, fmt.Errorf("restoring federation state: %w", err)
		}
	}
	d.consumeJoinTokens(ctx)
	d.node.SetLocalVIPs(d.vipAddrs())
	d.setChecks()
	d.node.SetLocalReport(d.localReport())
	return d, nil
}

// Run drives the daemon until ctx is done. It returns nil on a clean stop
// and an error if the store failed (the daemon cannot go on safely then).
func (d *Daemon) Run(ctx context.Context) error {
	d.ticker = time.NewTicker(d.cfg.TickInterval)
	defer d.ticker.Stop()
	kctx, stopKeeper := context.WithCancel(ctx)
	defer stopKeeper()
	d.startKeeper(kctx) // keeper.go
	defer close(d.stopped)
	defer d.withdrawAll()
	defer d.stopPeers()
	defer d.flushHeld() // answer.go
	defer d.checker.Close()
	// The token (owner.go), held since New, is the loop's while it works
	// and kept once Run returns: nothing steps the node after.
	owned := true
	defer func() {
		if !owned {
			_ = d.loopOwn(context.WithoutCancel(ctx))
		}
	}()
	if err := d.processReady(ctx); err != nil {
		return err
	}
	d.giveOwn()
	owned = false
	for {
		var err error
		select {
		case <-ctx.Done():
			return nil
		case <-d.kick:
			// A caller handed the token over with a Ready it could not
			// persist: processReady below retries it.
		case <-d.ticker.C:
			if err = d.loopOwn(ctx); err == nil {
				d.drainReqs()
				d.node.Tick(d.cfg.Now())
				// Heartbeats leave before the evaluation, which may take
				// a while with 10,000 GIPs.
				if err = d.processReady(ctx); err == nil {
					d.updateActive()
				}
			}
		case <-d.health.notify:
			if err = d.loopOwn(ctx); err == nil {
				d.onHealthChanges()
			}
		case <-d.reports.notify:
			if err = d.loopOwn(ctx); err == nil {
				d.onAnnouncerReports()
			}
		case f := <-d.reqs:
			if err = d.loopOwn(ctx); err == nil {
				f()
			}
		}
		owned = true
		if err != nil {
			return err
		}
		if err := d.processReady(ctx); err != nil {
			return err
		}
		d.giveOwn()
		owned = false
	}
}

// drainReqs runs the requests already waiting for the loop (peer messages
// above all) before a tick: after the loop was busy (a large batch applied,
// 10,000 GIPs evaluated) the heartbeats that arrived meanwhile count before
// the tick judges reachability, so a busy DC does not see its peers
// unreachable, fail over and back, only because it was not listening.
func (d *Daemon) drainReqs() {
	d.ticked() // keeper.go
	for range maxDrain {
		select {
		case f := <-d.reqs:
			f()
		default:
			return
		}
	}
}

// maxDrain bounds the requests one drain runs, so that a flood of requests
// never starves the ticker.
const maxDrain = 256

// processReady persists, sends, reports and advances until the node has
// nothing more to say.
func (d *Daemon) processReady(ctx context.Context) error {
	for d.node.HasReady() {
		rd := d.node.Ready()
		d.cfg.Fault.beforePersist(rd)
		eventsStored := false
		if rd.Update != nil {
			// Persist even if ctx is cancelled: the node has already
			// moved on in memory.
			stored, err := d.saveFederation(context.WithoutCancel(ctx), *rd.Update, rd.Events) // persist.go
			if err != nil {
				return fmt.Errorf("persisting federation state: %w", err)
			}
			d.keepRecord(rd.Update.Record) // keeper.go
			eventsStored = stored
			d.afterPersist(ctx)
			d.afterLargeUpdate(rd.Update) // apply.go
		}
		if len(rd.Events) > 0 && !eventsStored {
			d.appendEvents(context.WithoutCancel(ctx), rd.Events)
		}
		var failed []sendFailure
		d.flushHeld() // answer.go: what was held leaves first
		answer := d.answerCtx(rd)
		var held []federation.Message
		for _, m := range rd.Messages {
			if d.cfg.Fault != nil {
				if f := d.cfg.Fault.beforeSend(d, m); f != nil {
					failed = append(failed, *f)
				}
				continue
			}
			if d.capture.take(m) { // reply.go
				continue
			}
			if answer != nil && m.Type == federation.MsgCommit {
				held = append(held, m)
				continue
			}
			if m.Type == federation.MsgHeartbeat {
				d.heartbeatsSent() // keeper.go
			}
			d.send(m)
		}
		d.hold(answer, held)
		for _, r := range rd.Results {
			if f, ok := d.onCommit[r.OpID]; ok {
				delete(d.onCommit, r.OpID)
				f(r.Err) // apply.go
			}
			if ch, ok := d.waiters[r.OpID]; ok {
				ch <- r.Err
				delete(d.waiters, r.OpID)
				delete(d.answerTo, r.OpID)
			}
		}
		d.node.Advance(rd)
		for _, f := range failed {
			d.node.ReportUnreachable(d.cfg.Now(), f.to, f.reason)
		}
	}
	return nil
}

func (d *Daemon) appendEvents(ctx context.Context, evs []vipsmart.Event) {
	d.logEvents(ctx, evs)
	// The event log is not worth a stalled loop: a store that does not
	// answer (etcd cut off) is given eventStoreTimeout, then skipped for
	// eventStoreBackoff, so that heartbeats keep going out. What is not
	// stored is still in the daemon's log.
	now := d.cfg.Now()
	if now.UnixNano() < d.eventsSkipUntil.Load() {
		d.log.Warn("events not stored: the store did not answer lately", "events", len(evs))
		return
	}
	ctx, cancel := context.WithTimeout(ctx, eventStoreTimeout)
	defer cancel()
	if _, err := d.cfg.Store.AppendEvents(ctx, evs); err != nil {
		d.eventsSkipUntil.Store(now.Add(eventStoreBackoff).UnixNano())
		d.log.Error("storing events", "err", err, "events", len(evs))
		return
	}
	d.metrics.eventsAppended(evs)
}

func (d *Daemon) logEvents(ctx context.Context, evs []vipsmart.Event) {
	for _, e := range evs {
		d.log.Log(ctx, logLevel(e.Level), e.Message, "kind", e.Kind, "op", e.OpID)
	}
}

// eventStoreTimeout bounds how long the loop waits to store events, and
// eventStoreBackoff how long it then stops trying (docs/ha.md).
const (
	eventStoreTimeout = 250 * time.Millisecond
	eventStoreBackoff = 2 * time.Second
)

// event records one daemon-level event (VIP changes) from the loop.
func (d *Daemon) event(kind, msg string) {
	d.eventAt(kind, "", msg)
}

// eventAt records one daemon-level event at level (vipsmart.LevelWarn,
// LevelError; "" for info).
func (d *Daemon) eventAt(kind, level, msg string) {
	if level == vipsmart.LevelInfo {
		level = ""
	}
	d.appendEvents(context.Background(), []vipsmart.Event{{Time: d.cfg.Now(), DC: d.cfg.Self.Name, Kind: kind, Message: msg, Level: level}})
}

func logLevel(level string) slog.Level {
	switch level {
	case vipsmart.LevelWarn:
		return slog.LevelWarn
	case vipsmart.LevelError:
		return slog.LevelError
	}
	return slog.LevelInfo
}

// call runs f as the loop's owner and returns its error: on the caller's
// goroutine when the loop's token is free (owner.go), with the Ready f
// leaves processed before call returns, else on the loop. Once f is
// handed to the loop, call waits for it to finish (the loop never blocks on
// the network, so that is prompt), so that f never runs concurrently with
// the caller's use of what it wrote. If the loop has stopped, call fails
// with EUNAVAILABLE instead of waiting.
func (d *Daemon) call(ctx context.Context, f func() error) error {
	if d.tryOwn() { // owner.go: the loop is idle, run f here
		return d.runOwned(ctx, f)
	}
	done := make(chan error, 1)
	select {
	case d.reqs <- func() { done <- f() }:
	case <-ctx.Done():
		return ctxErr(ctx)
	case <-d.stopped:
		return errStopped
	}
	select {
	case err := <-done:
		return err
	case <-d.stopped:
		return errStopped
	}
}

var errStopped = &vipsmart.Error{Code: vipsmart.EUNAVAILABLE, Message: "the daemon is stopping"}

func ctxErr(ctx context.Context) error {
	return &vipsmart.Error{Code: vipsmart.ETIMEOUT, Message: "request cancelled or timed out", Err: ctx.Err()}
}

func (d *Daemon) vipAddrs() map[string]netip.Addr {
	m := make(map[string]netip.Addr, len(d.vips))
	for n, v := range d.vips {
		m[n] = v.Address
	}
	return m
}

// vipsChanged tells the node, the checker and the heartbeats about a change
// of the VIP set.
func (d *Daemon) vipsChanged() {
	d.healthVersion++
	d.node.SetLocalVIPs(d.vipAddrs())
	d.setChecks()
	d.node.SetLocalReport(d.localReport())
	d.updateActive()
}

// propose starts a federation operation and waits for its result.
func (d *Daemon) propose(ctx context.Context, p federation.Proposal) error {
	p.By = askedBy(ctx)
	return d.proposeWith(ctx, func() (federation.Proposal, error) { return p, nil }, nil)
}

// proposeWith is propose with the proposal made on the loop by mk (which
// may refuse it); refused, if set, runs on the loop when the node refuses
// the proposal at once. Its outcome and duration go to the metrics.
func (d *Daemon) proposeWith(ctx context.Context, mk func() (federation.Proposal, error), refused func()) (err error) {
	var p federation.Proposal
	start := d.cfg.Now()
	defer func() { d.metrics.operation(p, start, d.cfg.Now, &err) }()
	ch := make(chan error, 1)
	var opID string
	err = d.call(ctx, func() error {
		var err error
		p, err = mk()
		if err != nil {
			return err
		}
		id, err := d.node.Propose(d.cfg.Now(), p)
		if err != nil {
			if refused != nil {
				refused()
			}
			return err
		}
		opID = id
		d.waiters[id] = ch
		d.answerTo[id] = ctx
		return nil
	})
	if err != nil {
		return err
	}
	select {
	case err := <-ch:
		return err
	case <-d.stopped:
		return errStopped
	case <-ctx.Done():
		return &vipsmart.Error{Code: vipsmart.ETIMEOUT, Message: fmt.Sprintf("operation %s is still running: see `vipsmart status` and `vipsmart events`", opID), Err: ctx.Err()}
	}
}

// Status implements vipsmart.Service.
func (d *Daemon) Status(ctx context.Context) (vipsmart.StatusInfo, error) {
	var st vipsmart.StatusInfo
	err := d.call(ctx, func() error {
		st = d.node.Status(d.cfg.Now())
		st.Identity = d.node.Self().Identity
		st.VIPs = len(d.vips)
		return nil
	})
	if err != nil {
		return st, err
	}
	// The announcer is safe for concurrent use: read it off the loop
	// (BGPPeers asks the speaker).
	st.Announced = d.cfg.Announcer.Announced()
	if st.Announced == nil {
		st.Announced = []vipsmart.Announced{}
	}
	if pl, ok := d.cfg.Announcer.(vipsmart.PeerLister); ok {
		st.BGPPeers = pl.BGPPeers()
		if st.BGPPeers == nil {
			st.BGPPeers = []vipsmart.BGPPeer{}
		}
	}
	return st, nil
}

// ListVIPs implements vipsmart.Service.
func (d *Daemon) ListVIPs(ctx context.Context) ([]vipsmart.VIPInfo, error) {
	var out []vipsmart.VIPInfo
	err := d.call(ctx, func() error {
		out = make([]vipsmart.VIPInfo, 0, len(d.vips))
		anns := announcedByAddr(d.cfg.Announcer.Announced())
		pf := preflightCache{}
		for _, v := range d.vips {
			out = append(out, d.vipInfo(v, anns, pf))
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

func (d *Daemon) vipInfo(v vipsmart.VIP, anns map[netip.Addr][]vipsmart.Announced, pf preflightCache) vipsmart.VIPInfo {
	st, lastErr := d.vipState(v.Name)
	vi := vipsmart.VIPInfo{VIP: v, State: st, LastError: lastErr}
	for _, a := range anns[v.Address] {
		if a.Kind == vipsmart.AnnounceVIP && a.Name == v.Name {
			vi.Announced = append(vi.Announced, a)
		}
	}
	if err := d.preflight(v, pf); err != nil {
		vi.Warnings = append(vi.Warnings, err.Error())
	}
	return vi
}

// GetVIP implements vipsmart.Service.
func (d *Daemon) GetVIP(ctx context.Context, name string) (vipsmart.VIPInfo, error) {
	var out vipsmart.VIPInfo
	err := d.call(ctx, func() error {
		v, ok := d.vips[name]
		if !ok {
			return vipsmart.Errorf(vipsmart.ENOTFOUND, "name", "VIP %s does not exist: see `vipsmart vip list`", name)
		}
		out = d.vipInfo(v, announcedByAddr(d.cfg.Announcer.Announced()), preflightCache{})
		return nil
	})
	return out, err
}

// AddVIP implements vipsmart.Service.
func (d *Daemon) AddVIP(ctx context.Context, v vipsmart.VIP) (vipsmart.VIP, error) {
	if err := v.Validate(); err != nil {
		return vipsmart.VIP{}, err
	}
	err := d.call(ctx, func() error {
		if err := d.refuseOnWitness(); err != nil {
			return err
		}
		if err := d.node.LocalChangeAllowed(); err != nil {
			return err
		}
		for _, g := range d.node.GIPs() {
			if g.Address == v.Address {
				return vipsmart.Errorf(vipsmart.ECONFLICT, "address", "address %s is already used by GIP %s: pick another address", v.Address, g.Name)
			}
		}
		v.Created = d.cfg.Now().UTC().Truncate(time.Millisecond)
		if err := d.cfg.Store.CreateVIP(ctx, v); err != nil {
			return err
		}
		d.vips[v.Name] = v
		d.vipsChanged()
		d.event(vipsmart.EventVIP, fmt.Sprintf("VIP %s %s added%s", v.Name, v.Address, byNote(ctx)))
		if err := d.preflight(v, preflightCache{}); err != nil {
			d.eventAt(vipsmart.EventAnnounce, vipsmart.LevelWarn, fmt.Sprintf("VIP %s %s cannot be announced: %v", v.Name, v.Address, err))
		}
		return nil
	})
	return v, err
}

// RemoveVIP implements vipsmart.Service.
func (d *Daemon) RemoveVIP(ctx context.Context, name string) error {
	return d.call(ctx, func() error {
		if err := d.node.LocalChangeAllowed(); err != nil {
			return err
		}
		if _, ok := d.vips[name]; !ok {
			return vipsmart.Errorf(vipsmart.ENOTFOUND, "name", "VIP %s does not exist: see `vipsmart vip list`", name)
		}
		for _, g := range d.node.GIPs() {
			for _, p := range g.Placements {
				if p.DC == d.cfg.Self.Name && p.VIP == name {
					return vipsmart.Errorf(vipsmart.ECONFLICT, "name", "VIP %s backs the placement of GIP %s in %s: update or remove the GIP first", name, g.Name, p.DC)
				}
			}
		}
		if err := d.cfg.Store.DeleteVIP(ctx, name); err != nil {
			return err
		}
		v := d.vips[name]
		delete(d.vips, name)
		d.vipsChanged()
		d.event(vipsmart.EventVIP, fmt.Sprintf("VIP %s %s removed%s", name, v.Address, byNote(ctx)))
		return nil
	})
}

// ListDCs implements vipsmart.Service.
func (d *Daemon) ListDCs(ctx context.Context) ([]vipsmart.DCInfo, error) {
	var out []vipsmart.DCInfo
	err := d.call(ctx, func() error {
		out = d.node.DCs(d.cfg.Now())
		return nil
	})
	return out, err
}

// AddDC implements vipsmart.Service. tok is the candidate's join token:
// it binds the candidate's key, which the coordinator then pins.
func (d *Daemon) AddDC(ctx context.Context, c vipsmart.DC, tok string) (vipsmart.StatusInfo, error) {
	if err := c.Validate(); err != nil {
		return vipsmart.StatusInfo{}, err
	}
	c, err := checkJoinToken(c, tok, d.cfg.Now())
	if err != nil {
		return vipsmart.StatusInfo{}, err
	}
	if err := d.propose(ctx, federation.Proposal{Kind: federation.AddDC, DC: c, Token: tok}); err != nil {
		return vipsmart.StatusInfo{}, err
	}
	return d.Status(context.WithoutCancel(ctx))
}

// RemoveDC implements vipsmart.Service.
func (d *Daemon) RemoveDC(ctx context.Context, names []string, force bool) (vipsmart.StatusInfo, error) {
	if len(names) == 0 {
		return vipsmart.StatusInfo{}, vipsmart.Errorf(vipsmart.EINVALID, "name", "no DC to remove: give the NAME of a member")
	}
	for _, name := range names {
		if err := vipsmart.ValidateName("name", name); err != nil {
			return vipsmart.StatusInfo{}, err
		}
	}
	if err := d.propose(ctx, federation.Proposal{Kind: federation.RemoveDC, Name: names[0], Names: names[1:], Force: force}); err != nil {
		return vipsmart.StatusInfo{}, err
	}
	return d.Status(context.WithoutCancel(ctx))
}

// Leave implements vipsmart.Service.
func (d *Daemon) Leave(ctx context.Context) (vipsmart.StatusInfo, error) {
	if err := d.propose(ctx, federation.Proposal{Kind: federation.Leave}); err != nil {
		return vipsmart.StatusInfo{}, err
	}
	return d.Status(context.WithoutCancel(ctx))
}

// Events implements vipsmart.Service. It reads the store directly: the log
// is append-only and needs no loop.
func (d *Daemon) Events(ctx context.Context, after uint64, limit int) ([]vipsmart.Event, error) {
	return d.cfg.Store.ListEvents(ctx, after, limit)
}
