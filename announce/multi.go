// Package announce combines announcers; its subpackages hold them: none
// (state only), netlink (addresses on an interface with gratuitous ARP and
// unsolicited neighbour advertisements) and bgp (an embedded BGP speaker).
package announce

import (
	"context"
	"errors"
	"sort"

	"github.com/vipsmart/vipsmart"
)

// Multi hands the same desired set to several announcers (e.g. netlink and
// bgp together). Each does its own filtering: netlink ignores GIP standby
// entries, bgp announces them with a longer AS path.
type Multi []vipsmart.Announcer

var (
	_ vipsmart.Announcer   = Multi(nil)
	_ vipsmart.Preflighter = Multi(nil)
	_ vipsmart.Watcher     = Multi(nil)
	_ vipsmart.PeerLister  = Multi(nil)
)

// Set calls Set on every announcer, going on past failures, and returns
// their errors joined.
func (m Multi) Set(ctx context.Context, desired []vipsmart.Announcement) error {
	var errs []error
	for _, a := range m {
		errs = append(errs, a.Set(ctx, desired))
	}
	return errors.Join(errs...)
}

// Announced returns what every announcer announces, sorted by address and
// then by Via.
func (m Multi) Announced() []vipsmart.Announced {
	var out []vipsmart.Announced
	for _, a := range m {
		out = append(out, a.Announced()...)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if c := out[i].Addr.Compare(out[j].Addr); c != 0 {
			return c < 0
		}
		return out[i].Via < out[j].Via
	})
	return out
}

// Close closes every announcer and returns their errors joined.
func (m Multi) Close(ctx context.Context) error {
	var errs []error
	for _, a := range m {
		errs = append(errs, a.Close(ctx))
	}
	return errors.Join(errs...)
}

// Reannounce calls Reannounce on every announcer that has it.
func (m Multi) Reannounce(ctx context.Context) error {
	var errs []error
	for _, a := range m {
		if r, ok := a.(vipsmart.Reannouncer); ok {
			errs = append(errs, r.Reannounce(ctx))
		}
	}
	return errors.Join(errs...)
}

// Preflight asks every announcer that can tell and returns their
// objections joined.
func (m Multi) Preflight(a vipsmart.Announcement) error {
	var errs []error
	for _, x := range m {
		if p, ok := x.(vipsmart.Preflighter); ok {
			errs = append(errs, p.Preflight(a))
		}
	}
	return errors.Join(errs...)
}

// Watch hands report to every announcer that reports by itself.
func (m Multi) Watch(report func(level, msg string)) {
	for _, x := range m {
		if w, ok := x.(vipsmart.Watcher); ok {
			w.Watch(report)
		}
	}
}

// BGPPeers returns the BGP sessions of every announcer that has some.
func (m Multi) BGPPeers() []vipsmart.BGPPeer {
	var out []vipsmart.BGPPeer
	for _, x := range m {
		if p, ok := x.(vipsmart.PeerLister); ok {
			out = append(out, p.BGPPeers()...)
		}
	}
	return out
}
