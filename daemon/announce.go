package daemon

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/vipsmart/vipsmart"
)

// desired is the set this DC wants announced: every healthy local VIP,
// every GIP it is active for and, for failover GIPs, every GIP it holds a
// healthy standby placement of (only BGP announces those, with a longer AS
// path). During the start-up hold-down it claims no GIP.
func (d *Daemon) desired(gs []vipsmart.GIP, view vipsmart.HealthView, holdDown bool) []vipsmart.Announcement {
	self := d.cfg.Self.Name
	// Room for every VIP and GIP: a member pre-announces a standby entry
	// for each of 10,000 GIPs, a slice not to be grown step by step.
	out := make([]vipsmart.Announcement, 0, len(d.vips)+len(gs))
	for _, v := range d.vips {
		if st, _ := d.vipState(v.Name); st == vipsmart.VIPUp {
			out = append(out, vipsmart.Announcement{Addr: v.Address, Kind: vipsmart.AnnounceVIP, Name: v.Name, Interface: v.Interface})
		}
	}
	if !holdDown {
		for _, g := range gs {
			if slices.Contains(d.active[g.Name], self) {
				out = append(out, vipsmart.Announcement{Addr: g.Address, Kind: vipsmart.AnnounceGIPActive, Name: g.Name, Interface: d.gipInterface(g)})
				continue
			}
			if g.Mode == vipsmart.ModeAnycast || !d.standbyAllowed(g) {
				continue
			}
			for _, p := range g.Placements {
				if p.DC == self {
					if ok, _ := vipsmart.PlacementHealthy(view, p); ok {
						out = append(out, vipsmart.Announcement{Addr: g.Address, Kind: vipsmart.AnnounceGIPStandby, Name: g.Name, Interface: d.gipInterface(g)})
					}
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b vipsmart.Announcement) int { return a.Addr.Compare(b.Addr) })
	return out
}

// gipInterface is where the netlink announcer binds a GIP: on the interface
// of the local VIP that backs its placement here, if that VIP names one.
func (d *Daemon) gipInterface(g vipsmart.GIP) string {
	for _, p := range g.Placements {
		if p.DC == d.cfg.Self.Name && p.VIP != "" {
			return d.vips[p.VIP].Interface
		}
	}
	return ""
}

// annRetryEvery is how often a failed Set is retried.
const annRetryEvery = time.Second

// announce hands the announcer the desired set when it changed (or when the
// last Set failed, to retry). Announcers are declarative, so a repeated set
// would be harmless; skipping it just saves the work. A failure is an
// event at error level (once per distinct failure), its end one at info;
// what failed shows in status (Announced, state failed).
func (d *Daemon) announce(gs []vipsmart.GIP, view vipsmart.HealthView, holdDown bool) {
	want := d.withInherited(d.desired(gs, view, holdDown), gs, holdDown)
	if d.lastAnnErr == "" && d.lastDesired != nil && slices.Equal(want, d.lastDesired) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := d.cfg.Announcer.Set(ctx, want)
	d.lastDesired = want
	d.publish(want)
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if msg != d.lastAnnErr {
		if err != nil {
			d.eventAt(vipsmart.EventAnnounce, vipsmart.LevelError, "announcing failed: "+msg)
		} else {
			d.eventAt(vipsmart.EventAnnounce, vipsmart.LevelInfo, "announcing works again")
		}
	}
	if err != nil {
		d.annRetryAt = d.cfg.Now().Add(annRetryEvery)
	}
	d.lastAnnErr = msg
}

// annRetryDue reports whether a failed Set is due for a retry.
func (d *Daemon) annRetryDue() bool {
	return d.lastAnnErr != "" && !d.cfg.Now().Before(d.annRetryAt)
}

// reportQueue carries the announcer's reports (vipsmart.Watcher) to the
// loop without ever blocking the announcer.
type reportQueue struct {
	mu     sync.Mutex
	items  [][2]string
	notify chan struct{}
}

func newReportQueue() *reportQueue { return &reportQueue{notify: make(chan struct{}, 1)} }

func (q *reportQueue) push(level, msg string) {
	q.mu.Lock()
	q.items = append(q.items, [2]string{level, msg})
	q.mu.Unlock()
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

func (q *reportQueue) drain() [][2]string {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.items
	q.items = nil
	return out
}

// onAnnouncerReports records the announcer's reports as events, on the
// loop, in one store write.
func (d *Daemon) onAnnouncerReports() {
	rs := d.reports.drain()
	if len(rs) == 0 {
		return
	}
	now := d.cfg.Now()
	evs := make([]vipsmart.Event, 0, len(rs))
	for _, r := range rs {
		level := r[0]
		if level == vipsmart.LevelInfo {
			level = ""
		}
		evs = append(evs, vipsmart.Event{Time: now, DC: d.cfg.Self.Name, Kind: vipsmart.EventAnnounce, Message: r[1], Level: level})
	}
	d.appendEvents(context.Background(), evs)
}

// announcedByAddr indexes what the announcers report by address.
func announcedByAddr(as []vipsmart.Announced) map[netip.Addr][]vipsmart.Announced {
	m := make(map[netip.Addr][]vipsmart.Announced, len(as))
	for _, a := range as {
		m[a.Addr] = append(m[a.Addr], a)
	}
	return m
}

// preflightCache remembers, within one read, which VIP interfaces the
// announcer accepts, so that listing 10,000 VIPs asks once per interface.
type preflightCache map[string]bool

// preflight asks the announcer whether it could announce v (nil if it
// cannot tell).
func (d *Daemon) preflight(v vipsmart.VIP, pf preflightCache) error {
	p, ok := d.cfg.Announcer.(vipsmart.Preflighter)
	if !ok || pf[v.Interface] {
		return nil
	}
	err := p.Preflight(vipsmart.Announcement{Addr: v.Address, Kind: vipsmart.AnnounceVIP, Name: v.Name, Interface: v.Interface})
	if err == nil {
		pf[v.Interface] = true
	}
	return err
}

// withdrawAll withdraws everything at shutdown (graceful: before the
// process exits).
func (d *Daemon) withdrawAll() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.cfg.Announcer.Close(ctx); err != nil {
		d.log.Error("withdrawing announcements", "err", err)
	}
}

// reannounceOnReturn repeats the announcements (gratuitous ARP) when a DC
// that was unreachable is reachable again, or when another DC reports
// holding a GIP this DC is active for (conflict): during a partition the
// other DC may have taken over this DC's GIPs on a shared segment, and when
// it lets go, only this DC's announcement points the segment back here.
// (The conflict signal covers a partition so short that this DC never saw
// the other one as unreachable.)
func (d *Daemon) reannounceOnReturn(view vipsmart.HealthView, conflict bool) {
	back := conflict
	for dc, ok := range view.Reachable {
		if ok && d.wasUnreachable[dc] {
			back = true
		}
	}
	d.wasUnreachable = map[string]bool{}
	for dc, ok := range view.Reachable {
		if !ok {
			d.wasUnreachable[dc] = true
		}
	}
	if !back {
		return
	}
	if r, ok := d.cfg.Announcer.(vipsmart.Reannouncer); ok {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := r.Reannounce(ctx); err != nil {
			d.log.Warn("re-announcing failed", "err", err)
		}
	}
}
