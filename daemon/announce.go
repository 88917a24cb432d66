package daemon

import (
	"context"
	"slices"
	"time"

	"github.com/vipsmart/vipsmart"
)

// desired is the set this DC wants announced: every healthy local VIP,
// every GIP it is active for and, for failover GIPs, every GIP it holds a
// healthy standby placement of (only BGP announces those, with a longer AS
// path). During the start-up hold-down it claims no GIP.
func (d *Daemon) desired(gs []vipsmart.GIP, view vipsmart.HealthView, holdDown bool) []vipsmart.Announcement {
	self := d.cfg.Self.Name
	var out []vipsmart.Announcement
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
			if g.Mode == vipsmart.ModeAnycast {
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

// announce hands the announcer the desired set when it changed (or when the
// last Set failed, to retry). Announcers are declarative, so a repeated set
// would be harmless; skipping it just saves the work.
func (d *Daemon) announce(gs []vipsmart.GIP, view vipsmart.HealthView, holdDown bool) {
	want := d.desired(gs, view, holdDown)
	if d.lastAnnErr == "" && d.lastDesired != nil && slices.Equal(want, d.lastDesired) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := d.cfg.Announcer.Set(ctx, want)
	d.lastDesired = want
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if msg != d.lastAnnErr {
		if err != nil {
			d.event(vipsmart.EventHealth, "announcing failed: "+msg)
		} else {
			d.event(vipsmart.EventHealth, "announcing works again")
		}
	}
	if err != nil {
		d.lastActiveKey = "" // retry at the next tick
	}
	d.lastAnnErr = msg
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
