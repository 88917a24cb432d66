package main

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/announce"
	"github.com/vipsmart/vipsmart/announce/netlink"
	"github.com/vipsmart/vipsmart/daemon"
	"github.com/vipsmart/vipsmart/etcd"
	"github.com/vipsmart/vipsmart/health"
	"github.com/vipsmart/vipsmart/vipmove"
)

// VIPs that move between the nodes of a DC on etcd (docs/ha.md, "VIPs
// that move between nodes"): every node runs a mover, which checks every
// VIP from this node, runs the vipmove engine against etcd and binds the
// VIPs this node holds through the node's announcers (splitAnnouncer), with
// a kernel lifetime and under the address guard (guard.go). The daemon (on
// the leader) and the follower's mirror announce everything else: they no
// longer announce VIPs.

// moveOptions are the flags of the mover.
type moveOptions struct {
	enabled bool
	timers  vipmove.Timers
	guard   bool
}

func (o *moveOptions) flags(f *pflag.FlagSet) {
	f.BoolVar(&o.enabled, "vip-move", true, "etcd: each VIP is held by one node of the DC, which binds it, and moves when that node fails (docs/ha.md); false: the leader announces every VIP, as before")
	f.DurationVar(&o.timers.Renew, "vip-renew-interval", vipmove.DefaultRenew, "etcd, --vip-move: how often a node renews its claim to the VIPs it holds")
	f.DurationVar(&o.timers.Deadline, "vip-renew-deadline", vipmove.DefaultDeadline, "etcd, --vip-move: a holder whose renewal sent this long ago is still not acknowledged withdraws its VIPs")
	f.DurationVar(&o.timers.Takeover, "vip-takeover", vipmove.DefaultTakeover, "etcd, --vip-move: another node takes the VIPs of a holder whose claim it did not see renewed for this long (at least --vip-renew-deadline + 100ms)")
	f.BoolVar(&o.guard, "vip-guard", true, "etcd, --vip-move, netlink: run the address guard, a child process that removes the VIPs this node bound when the renew deadline passes even if this process is frozen, and at once if it dies (then it fences this node's claim in etcd, so another node takes the VIPs at once)")
}

// splitAnnouncer shares a node's announcers between its mover (the VIPs
// this node holds, through every announcer) and the daemon or the
// follower's mirror (everything else: GIPs; VIP announcements handed to it
// are dropped). While the node follows, the main part does not reach the
// netlink announcer: GIPs stay bound on the leader only.
type splitAnnouncer struct {
	parts announce.Multi
	nl    *netlink.Announcer

	mu       sync.Mutex
	main     []vipsmart.Announcement
	vips     []vipsmart.Announcement
	follower bool
	closed   bool
}

func newSplitAnnouncer(a vipsmart.Announcer) *splitAnnouncer {
	parts, ok := a.(announce.Multi)
	if !ok {
		parts = announce.Multi{a}
	}
	s := &splitAnnouncer{parts: parts, follower: true}
	for _, p := range parts {
		if nl, ok := p.(*netlink.Announcer); ok {
			s.nl = nl
		}
	}
	return s
}

// apply hands every part its set. s.mu is held.
func (s *splitAnnouncer) apply(ctx context.Context) error {
	if s.closed {
		return nil
	}
	var errs []error
	for _, p := range s.parts {
		_, isNL := p.(*netlink.Announcer)
		want := slices.Clone(s.vips)
		if !(s.follower && isNL) {
			want = append(want, s.main...)
		}
		slices.SortFunc(want, func(a, b vipsmart.Announcement) int { return a.Addr.Compare(b.Addr) })
		if err := p.Set(ctx, want); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 1 {
		return errs[0]
	}
	if len(errs) > 1 {
		return fmt.Errorf("%v", errs)
	}
	return nil
}

// setFollower switches the main part between follower and leader.
func (s *splitAnnouncer) setFollower(f bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.follower = f
}

// setVIPs is the mover's part.
func (s *splitAnnouncer) setVIPs(ctx context.Context, vips []vipsmart.Announcement) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.vips = vips
	return s.apply(ctx)
}

// refresh restarts the kernel lifetime of the bound VIPs.
func (s *splitAnnouncer) refresh(ctx context.Context) error {
	if s.nl == nil {
		return nil
	}
	return s.nl.Refresh(ctx)
}

// mainPart is what the daemon and the mirror announce with.
type mainPart struct{ s *splitAnnouncer }

func (m mainPart) Set(ctx context.Context, desired []vipsmart.Announcement) error {
	var keep []vipsmart.Announcement
	for _, d := range desired {
		if d.Kind != vipsmart.AnnounceVIP {
			keep = append(keep, d)
		}
	}
	m.s.mu.Lock()
	defer m.s.mu.Unlock()
	m.s.main = keep
	return m.s.apply(ctx)
}

func (m mainPart) Announced() []vipsmart.Announced { return m.s.parts.Announced() }

func (m mainPart) Close(ctx context.Context) error {
	m.s.mu.Lock()
	if m.s.closed {
		m.s.mu.Unlock()
		return nil
	}
	m.s.closed = true
	m.s.mu.Unlock()
	return m.s.parts.Close(ctx)
}

func (m mainPart) Reannounce(ctx context.Context) error    { return m.s.parts.Reannounce(ctx) }
func (m mainPart) Preflight(a vipsmart.Announcement) error { return m.s.parts.Preflight(a) }
func (m mainPart) Watch(report func(level, msg string))    { m.s.parts.Watch(report) }
func (m mainPart) BGPPeers() []vipsmart.BGPPeer            { return m.s.parts.BGPPeers() }

// mover runs this node's part of the VIP holder protocol.
type mover struct {
	log    *slog.Logger
	st     *etcd.Store
	store  *openedStore
	node   string
	dc     string
	timers vipmove.Timers
	split  *splitAnnouncer
	guard  addrGuard // nil: none

	mu      sync.Mutex
	eng     *vipmove.Engine
	vips    map[string]vipsmart.VIP
	lastUp  map[string]bool      // a VIP's last known health here (run's loop)
	goneAt  map[string]time.Time // when a VIP of lastUp left the configuration
	checker *health.Checker
	healthC chan struct{}
	results chan moveResult
	bound   []vipsmart.Announcement
	stopped chan struct{}
	cancel  context.CancelFunc
}

type moveResult struct {
	a   vipmove.Action
	res vipmove.Result
	err error
}

// addrGuard is the address guard (guard.go): it removes addrs when the
// deadline passes, whatever becomes of this process.
type addrGuard interface {
	set(addrs []netlink.Addr, deadline time.Time, inc int64)
	close()
}

func newMover(log *slog.Logger, o *serveOptions, store *openedStore, split *splitAnnouncer, guard addrGuard) *mover {
	m := &mover{
		log: log.With("part", "vip-move"), st: store.etcd, store: store, node: o.store.node, dc: o.name,
		timers: o.move.timers, split: split, guard: guard,
		eng:     vipmove.New(o.store.node, o.move.timers),
		vips:    map[string]vipsmart.VIP{},
		healthC: make(chan struct{}, 1),
		results: make(chan moveResult, 16),
		stopped: make(chan struct{}),
	}
	m.checker = health.NewChecker(health.NetProber{}, func(string, vipsmart.VIPState, string) {
		select {
		case m.healthC <- struct{}{}:
		default:
		}
	}, m.log)
	if split.nl != nil {
		lt := o.move.timers.Deadline
		split.nl.SetLifetime(func(a vipsmart.Announcement) time.Duration {
			if a.Kind == vipsmart.AnnounceVIP {
				return lt
			}
			return 0
		})
	}
	return m
}

// start runs the mover until stop.
func (m *mover) start(ctx context.Context) {
	ctx, m.cancel = context.WithCancel(ctx)
	go m.run(ctx)
}

func (m *mover) lease() (*etcd.Session, bool) {
	m.store.mu.Lock()
	defer m.store.mu.Unlock()
	return m.store.session, m.store.session != nil
}

func (m *mover) run(ctx context.Context) {
	defer close(m.stopped)
	// Register only once this process holds the node's name: a second
	// process started under a live node's name must not touch its beat.
	for !m.claimed(ctx) {
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
	// Remove what a former run of this node left bound (its guard did
	// unless it was killed too) before this node registers: the other
	// nodes take a restarted node's VIPs at once.
	for ctx.Err() == nil {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := m.split.setVIPs(sctx, nil)
		cancel()
		if err == nil {
			break
		}
		m.log.Warn("removing the addresses a former run left; retrying", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
	watch := m.st.WatchMove(ctx)
	var state etcd.MoveState
	have, fresh := false, false
	wake := time.NewTimer(0)
	defer wake.Stop()
	for {
		refreshed := false
		select {
		case <-ctx.Done():
			return
		case s, ok := <-watch:
			if !ok {
				return
			}
			state, have, fresh = s, true, true
			m.setVIPs(s.VIPs)
		case <-m.healthC:
		case r := <-m.results:
			m.done(r)
			refreshed = r.err == nil && r.res.OK && (r.a.Kind == vipmove.Register || r.a.Kind == vipmove.Renew)
		case <-wake.C:
		}
		now := time.Now()
		m.mu.Lock()
		for name, v := range m.vips {
			up := v.Check == nil
			if !up {
				st, _ := m.checker.State(name)
				switch st {
				case vipsmart.VIPUp:
					up = true
				case vipsmart.VIPDown:
				default:
					// Not known yet (a new VIP, or its check was set again
					// by `vip update`): the last result stands until the
					// first one, so an update does not move the VIP.
					up = m.lastUp[name]
				}
			}
			if m.lastUp == nil {
				m.lastUp = map[string]bool{}
			}
			m.lastUp[name] = up
			m.eng.SetHealth(name, up)
		}
		// A VIP's last result outlives a short absence: `vip update`
		// (apply) replaces a VIP by a delete and a create, which a watch
		// may see apart, and the re-created check starts unknown.
		for name := range m.lastUp {
			if _, ok := m.vips[name]; ok {
				delete(m.goneAt, name)
				continue
			}
			if m.goneAt == nil {
				m.goneAt = map[string]time.Time{}
			}
			if at, ok := m.goneAt[name]; !ok {
				m.goneAt[name] = now
			} else if now.Sub(at) > 10*time.Second {
				delete(m.lastUp, name)
				delete(m.goneAt, name)
			}
		}
		if fresh {
			m.eng.Observe(now, state.View)
			fresh = false
		}
		// The bound set first: a release is written only once the address
		// is gone.
		m.applyBound(ctx, now, refreshed)
		var acts []vipmove.Action
		if have {
			acts = m.eng.Step(now)
			// Step leaves out of Bound what it releases (a preempt
			// handover, a failing check): unbind it before the Release
			// below is sent, so that the next holder never binds it while
			// it is still bound here.
			m.applyBound(ctx, now, false)
		}
		moves := m.eng.Moves()
		next := 25 * time.Millisecond
		if d := time.Until(m.eng.Deadline()); d > 0 && d < next {
			next = d + time.Millisecond
		}
		m.mu.Unlock()
		for _, a := range acts {
			go m.exec(ctx, a)
		}
		if len(moves) > 0 {
			go m.record(moves)
		}
		wake.Reset(next)
	}
}

// claimed reports whether this node's claim (P nodes/<node>) is bound
// to this process's session lease.
func (m *mover) claimed(ctx context.Context) bool {
	se, ok := m.lease()
	if !ok {
		return false
	}
	c, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	cs, err := m.st.Claims(c)
	if err != nil {
		return false
	}
	for _, cl := range cs {
		if cl.Node == m.node && cl.Lease == se.Lease() {
			return true
		}
	}
	return false
}

// setVIPs takes the configured VIPs.
func (m *mover) setVIPs(vs []vipsmart.VIP) {
	m.mu.Lock()
	defer m.mu.Unlock()
	changed := len(vs) != len(m.vips)
	next := make(map[string]vipsmart.VIP, len(vs))
	for _, v := range vs {
		next[v.Name] = v
		if old, ok := m.vips[v.Name]; !ok || old.Address != v.Address || old.Interface != v.Interface || !sameCheck(old.Check, v.Check) {
			changed = true
		}
	}
	m.vips = next
	if changed {
		m.checker.Set(vs)
	}
}

func sameCheck(a, b *vipsmart.Check) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// applyBound makes the bound VIPs those the engine holds. m.mu is held.
func (m *mover) applyBound(ctx context.Context, now time.Time, refreshed bool) {
	var want []vipsmart.Announcement
	for _, name := range m.eng.Bound(now) {
		v := m.vips[name]
		want = append(want, vipsmart.Announcement{Addr: v.Address, Kind: vipsmart.AnnounceVIP, Name: v.Name, Interface: v.Interface})
	}
	changed := !slices.Equal(want, m.bound)
	if m.guard != nil && (changed || refreshed) {
		// The guard learns of an address before it is bound.
		m.guard.set(m.guardAddrs(want), m.eng.Deadline(), m.eng.Incarnation())
	}
	if changed {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if err := m.split.setVIPs(sctx, want); err != nil {
			m.log.Warn("binding the VIPs this node holds", "err", err)
		}
		cancel()
		m.bound = want
	} else if refreshed && len(want) > 0 {
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		if err := m.split.refresh(sctx); err != nil {
			m.log.Warn("refreshing the lifetime of the VIPs this node holds", "err", err)
		}
		cancel()
	}
}

// guardAddrs are the kernel addresses of want on this node's netlink
// announcer (none without netlink).
func (m *mover) guardAddrs(want []vipsmart.Announcement) []netlink.Addr {
	if m.split.nl == nil {
		return nil
	}
	var out []netlink.Addr
	for _, w := range want {
		if x, ok := m.split.nl.AddrFor(w); ok {
			out = append(out, x)
		}
	}
	return out
}

// exec makes one write of the engine and hands back its result.
func (m *mover) exec(ctx context.Context, a vipmove.Action) {
	timeout := time.Second
	if a.Kind == vipmove.Renew || a.Kind == vipmove.Register {
		timeout = m.timers.Deadline // an answer after the deadline is of no use
	}
	var r moveResult
	r.a = a
	se, ok := m.lease()
	if !ok {
		r.err = fmt.Errorf("no etcd session")
	} else {
		c, cancel := context.WithTimeout(ctx, timeout)
		r.res, r.err = m.st.DoMove(c, m.node, se.Lease(), a)
		cancel()
	}
	r.res.At = time.Now()
	select {
	case m.results <- r:
	case <-ctx.Done():
	}
}

func (m *mover) done(r moveResult) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r.err != nil {
		r.res = vipmove.Result{At: r.res.At}
		if r.a.Kind != vipmove.Renew {
			m.log.Debug("VIP holder write failed", "kind", r.a.Kind.String(), "vip", r.a.VIP, "err", r.err)
		}
	}
	m.eng.Done(r.a, r.res)
}

// record writes the moves this node made to the DC's event log.
func (m *mover) record(moves []vipmove.Move) {
	now := time.Now()
	evs := make([]vipsmart.Event, 0, len(moves))
	for _, mv := range moves {
		msg := fmt.Sprintf("VIP %s: %s", mv.VIP, mv.Reason)
		level := ""
		if mv.To != "" {
			msg = fmt.Sprintf("VIP %s is held by %s: %s", mv.VIP, mv.To, mv.Reason)
			if mv.From != "" && mv.From != mv.To {
				level = vipsmart.LevelWarn
			}
		}
		m.log.Info(msg)
		evs = append(evs, vipsmart.Event{Time: now, DC: m.dc, Kind: vipsmart.EventVIPHolder, Message: msg, Level: level})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := m.st.AppendEvents(ctx, evs); err != nil {
		m.log.Warn("recording VIP moves in the event log", "err", err)
	}
}

// stop ends the mover: it unbinds what this node holds and releases it
// in etcd, so that another node takes it at once (a clean stop).
func (m *mover) stop() {
	if m.cancel == nil {
		return
	}
	m.cancel()
	<-m.stopped
	m.checker.Close()
	m.mu.Lock()
	held := m.eng.Bound(time.Now())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = m.split.setVIPs(ctx, nil)
	m.bound = nil
	var acts []vipmove.Action
	for _, name := range held {
		h := m.eng.Holder(name)
		acts = append(acts, vipmove.Action{Kind: vipmove.Release, VIP: name, HolderRev: h.Rev, Reason: fmt.Sprintf("released by %s: it stopped", m.node)})
	}
	m.mu.Unlock()
	if m.guard != nil {
		m.guard.close()
	}
	se, ok := m.lease()
	if !ok {
		return
	}
	for _, a := range acts {
		if _, err := m.st.DoMove(ctx, m.node, se.Lease(), a); err != nil {
			m.log.Warn("releasing a VIP at stop", "vip", a.VIP, "err", err)
		}
	}
	if len(acts) > 0 {
		moves := make([]vipmove.Move, len(acts))
		for i, a := range acts {
			moves[i] = vipmove.Move{VIP: a.VIP, From: m.node, Reason: a.Reason}
		}
		m.record(moves)
	}
}

// info adds the holder and each node's eligibility to a VIP as read.
func (m *mover) info(v *vipsmart.VIPInfo) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	if h := m.eng.Holder(v.Name); h.Node != "" {
		v.Holder = &vipsmart.VIPHolder{Node: h.Node, Since: h.Since, Reason: h.Reason}
	}
	v.Eligibility = m.eng.Eligibility(v.Name, now)
}

// moveService is the leader's operator API with the holders in VIP reads.
type moveService struct {
	*daemon.Daemon
	m *mover
}

func (s moveService) ListVIPs(ctx context.Context) ([]vipsmart.VIPInfo, error) {
	vs, err := s.Daemon.ListVIPs(ctx)
	for i := range vs {
		s.m.info(&vs[i])
	}
	return vs, err
}

func (s moveService) GetVIP(ctx context.Context, name string) (vipsmart.VIPInfo, error) {
	v, err := s.Daemon.GetVIP(ctx, name)
	if err == nil {
		s.m.info(&v)
	}
	return v, err
}

// validate checks the flags: the timers with etcd; none of them with bolt.
func (o *moveOptions) validate(store string, changed func(string) bool) error {
	if store != "etcd" {
		for _, f := range []string{"vip-move", "vip-renew-interval", "vip-renew-deadline", "vip-takeover", "vip-guard"} {
			if changed(f) {
				return usageError{fmt.Errorf("--%s applies to --store etcd only: a one-node DC on bolt binds its healthy VIPs itself (see docs/ha.md)", f)}
			}
		}
		return nil
	}
	if err := o.timers.Validate(); err != nil {
		return usageError{err}
	}
	return nil
}

// startMover starts this node's mover on the announcer ann, which it
// shares with the daemon through the split it returns.
func startMover(ctx context.Context, log *slog.Logger, o *serveOptions, store *openedStore, ann vipsmart.Announcer) (*splitAnnouncer, *mover) {
	split := newSplitAnnouncer(ann)
	var guard addrGuard
	if o.move.guard && split.nl != nil {
		prefix := o.store.prefix
		if prefix == "" {
			prefix = "/vipsmart/" + o.name + "/"
		}
		g, err := startGuard(log, guardEtcd{dc: o.name, node: o.store.node, prefix: prefix, endpoints: o.store.endpoints, cert: o.store.cert, key: o.store.key, ca: o.store.ca})
		if err != nil {
			log.Warn("the address guard did not start: a killed or frozen holder's VIPs are removed by the kernel's address lifetime only (see docs/ha.md)", "err", err)
		} else {
			guard = g
		}
	}
	m := newMover(log, o, store, split, guard)
	m.start(ctx)
	return split, m
}

// storedHolders adds to VIPs read from etcd (a follower that cannot reach
// the leader) their holder as stored; eligibility is left out (it is
// what the mover of a node sees).
func storedHolders(ctx context.Context, st *etcd.Store, vs []vipsmart.VIPInfo) {
	ms, err := st.MoveState(ctx)
	if err != nil {
		return
	}
	for i := range vs {
		if h, ok := ms.View.Holders[vs[i].Name]; ok && h.Node != "" {
			vs[i].Holder = &vipsmart.VIPHolder{Node: h.Node, Since: h.Since, Reason: h.Reason}
		}
	}
}
