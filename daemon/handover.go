package daemon

import (
	"slices"
	"sync"
	"time"

	"github.com/vipsmart/vipsmart"
)

// Several nodes per DC (docs/ha.md): every node announces the DC's set.
// A follower mirrors the set its leader hands its announcer
// (Announcements); when the follower becomes the leader, its daemon starts
// with that set as Config.Inherited, so that the routes it announced stay
// announced while it learns what the DC wants (the start-up hold-down,
// VIP health checks that have not passed yet) instead of being withdrawn
// and announced again.

// published is the set the daemon last handed its announcer, for the
// DC's other nodes to mirror.
type published struct {
	mu  sync.Mutex
	gen uint64
	set []vipsmart.Announcement
}

// Announcements returns the set the daemon last handed its announcer and
// its generation, which grows by one each time the set changes (0: none
// handed yet). It is safe to call from any goroutine.
func (d *Daemon) Announcements() (uint64, []vipsmart.Announcement) {
	d.pub.mu.Lock()
	defer d.pub.mu.Unlock()
	return d.pub.gen, slices.Clone(d.pub.set)
}

// AnnouncementsGeneration is the generation Announcements would return,
// without copying the set.
func (d *Daemon) AnnouncementsGeneration() uint64 {
	d.pub.mu.Lock()
	defer d.pub.mu.Unlock()
	return d.pub.gen
}

func (d *Daemon) publish(set []vipsmart.Announcement) {
	d.pub.mu.Lock()
	defer d.pub.mu.Unlock()
	if d.pub.gen > 0 && slices.Equal(d.pub.set, set) {
		return
	}
	d.pub.gen++
	d.pub.set = slices.Clone(set)
}

// inheriting reports whether inherited announcements may still be kept:
// until Config.ActivationWait after the start at the longest.
func (d *Daemon) inheriting(now time.Time) bool {
	return len(d.cfg.Inherited) > 0 && now.Before(d.inheritUntil)
}

// withInherited adds to want the inherited announcements the daemon does
// not know better about yet: a GIP entry while the start-up hold-down
// lasts or while the health of the local VIP backing the GIP is not known;
// a VIP entry while that VIP's health is not known. Entries of GIPs and
// VIPs that no longer exist, and addresses want already holds, are left
// out. When nothing is kept any more, the inheritance ends for good.
func (d *Daemon) withInherited(want []vipsmart.Announcement, gs []vipsmart.GIP, holdDown bool) []vipsmart.Announcement {
	if !d.inheriting(d.cfg.Now()) {
		d.cfg.Inherited = nil
		return want
	}
	have := make(map[string]bool, len(want))
	for _, a := range want {
		have[a.Addr.String()] = true
	}
	gips := make(map[string]vipsmart.GIP, len(gs))
	for _, g := range gs {
		gips[g.Name] = g
	}
	unknown := func(vip string) bool {
		if _, ok := d.vips[vip]; !ok {
			return false
		}
		st, _ := d.vipState(vip)
		return st == vipsmart.VIPUnknown
	}
	var kept []vipsmart.Announcement
	for _, a := range d.cfg.Inherited {
		keep := false
		switch a.Kind {
		case vipsmart.AnnounceVIP:
			v, ok := d.vips[a.Name]
			keep = ok && v.Address == a.Addr && unknown(a.Name)
		case vipsmart.AnnounceGIPActive, vipsmart.AnnounceGIPStandby:
			g, ok := gips[a.Name]
			if !ok || g.Address != a.Addr {
				break
			}
			keep = holdDown
			for _, p := range g.Placements {
				if p.DC == d.cfg.Self.Name && p.VIP != "" && unknown(p.VIP) {
					keep = true
				}
			}
		}
		if keep {
			kept = append(kept, a)
		}
	}
	if len(kept) == 0 {
		d.cfg.Inherited = nil
		return want
	}
	d.cfg.Inherited = kept
	out := slices.Clone(want)
	for _, a := range kept {
		if !have[a.Addr.String()] {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(a, b vipsmart.Announcement) int { return a.Addr.Compare(b.Addr) })
	return out
}
